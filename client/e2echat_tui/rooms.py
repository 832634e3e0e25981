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
    read_up_to: dict[bytes, bytes] = field(default_factory=dict)
    """By key: the message each member that sends read receipts read up to."""
    readers: dict[bytes, list[Member]] = field(default_factory=dict)
    """By message id: the members who read up to it (what its footer names), kept with
    ``read_up_to`` by ``read``, so drawing a message looks it up once."""
    failed: dict[int, str] = field(default_factory=dict)
    """By send id (``Message.send_id``): why the library gave up sending our message."""

    def read(self, member: Member, message_id: bytes) -> bytes | None:
        """``member``'s receipt: it read up to ``message_id``; the message it had read up
        to before, if any."""
        before = self.read_up_to.get(member.key)
        if before is not None:
            left = [m for m in self.readers[before] if m.key != member.key]
            if left:
                self.readers[before] = left
            else:
                del self.readers[before]
        self.read_up_to[member.key] = message_id
        self.readers.setdefault(message_id, []).append(member)
        return before

    @property
    def name(self) -> str:
        return self.room.name
