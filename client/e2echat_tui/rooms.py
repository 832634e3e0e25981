"""What the client keeps of one joined room besides the library's ``Room``."""

from dataclasses import dataclass, field

from e2echat import Member, Room
from e2echat_tui.composer import InputHistory
from e2echat_tui.lines import Entry, RoomLog


@dataclass(eq=False)
class RoomTab:
    """One room as the app shows it: its scrollback and how much history it holds.

    ``loaded_seq`` is the newest seq read from the store: a live copy of a message at
    or below it is already shown. ``older_than`` is set while older stored messages
    remain to load above the first page. ``quiet_until`` (monotonic seconds) holds back
    the next mention bell of the room. ``draft`` and ``history`` are the composer's
    text and sent lines for this room while another room is shown.
    """

    room: Room
    log: RoomLog
    loaded_seq: int = 0
    older_than: int | None = None
    quiet_until: float = 0.0
    draft: str = ""
    history: InputHistory = field(default_factory=InputHistory)
    unread_line: Entry | None = None
    """The "new messages" line shown above the first message unread when the room was
    opened (it goes when another room is shown)."""
    receipts: dict[bytes, tuple[bytes, Member]] = field(default_factory=dict)
    """By key: the message each member that sends read receipts read up to, and that
    member (its footer says "read by" them)."""

    def readers(self) -> dict[bytes, list[Member]]:
        """By message id: the members who read up to it."""
        by_message: dict[bytes, list[Member]] = {}
        for message_id, member in self.receipts.values():
            by_message.setdefault(message_id, []).append(member)
        return by_message

    @property
    def name(self) -> str:
        return self.room.name
