"""What the relay last said of each room, and where each room's live traffic began.

A message is live when the relay stored it after this client first connected (or,
for a room joined later, after the join): everything the relay already held then is
backlog (``Message.live`` False), even if it is delivered later, by the sync. A bot
restarted after an hour must not answer the commands of that hour as if they were
new; messages sent while it was reconnecting are late, not backlog. The last
``RoomInfo`` of a room outlives our membership, so a room the relay lost can be
created again as it was (a password room needs its salt).
"""

from dataclasses import dataclass, field

from e2echat.protocol import RoomInfo


@dataclass
class RelayRooms:
    infos: dict[bytes, RoomInfo] = field(default_factory=dict)
    """The newest ``RoomInfo`` of each room, by id (kept after we left it)."""
    live_after: dict[bytes, int] = field(default_factory=dict)
    """Messages above this seq are live, by room id."""

    def welcomed(self, rooms: list[RoomInfo]) -> None:
        """The rooms of a ``welcome``: the first one marks where live traffic begins;
        later ones only move the mark down, after a relay that lost its data restarted
        the room's seqs."""
        for info in rooms:
            self.infos[info.id] = info
            mark = self.live_after.get(info.id)
            if mark is None or info.seq < mark:
                self.live_after[info.id] = info.seq

    def entered(self, info: RoomInfo) -> None:
        """A created or joined room: what it held at the join is backlog."""
        self.infos[info.id] = info
        self.live_after[info.id] = info.seq

    def is_live(self, room_id: bytes, seq: int) -> bool:
        return seq > self.live_after.get(room_id, 0)
