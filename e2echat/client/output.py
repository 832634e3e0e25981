"""What one engine step asks the driver to do: frames to send, values to publish.

These are core values: messages and room events name their room by id (``R = bytes``);
the driver binds them to ``Room`` handles after the frames went out.
"""

from dataclasses import dataclass, field

from e2echat.client.events import Event
from e2echat.client.models import Message
from e2echat.crypto import DirectInvited
from e2echat.protocol import ClientFrame
from e2echat.store import ReadState


@dataclass
class Output:
    """Frames to send (in order), then messages and events to publish."""

    frames: list[ClientFrame] = field(default_factory=list)
    messages: list[Message[bytes]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    confirmed: list[tuple[int, Message[bytes]]] = field(default_factory=list)
    """Outbox ids the relay accepted, with the message as sent."""
    related: list[int] = field(default_factory=list)
    """Outbox ids of edits, deletes and reactions the relay accepted."""
    invitations: list[DirectInvited] = field(default_factory=list)
    """Checked invitations to direct conversations, for the client to join."""
    read: dict[bytes, ReadState] = field(default_factory=dict)
    """Rooms whose read state moved, as it stands now (published after the events)."""

    def extend(self, other: "Output") -> None:
        """Append everything ``other`` asks for, after what this one asks for."""
        self.frames += other.frames
        self.messages += other.messages
        self.events += other.events
        self.confirmed += other.confirmed
        self.related += other.related
        self.invitations += other.invitations
        self.read.update(other.read)
