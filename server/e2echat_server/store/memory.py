"""A Store in process memory: for `--memory` runs, tests and embedded demos. Lost on exit."""

import bisect
import dataclasses
from collections import defaultdict

from e2echat_server.store.base import (
    Envelope,
    LogMovedError,
    MemberRecord,
    Retraction,
    RoomDeletionRecord,
    RoomExistsError,
    RoomRecord,
    Snapshot,
    UserRecord,
)


class MemoryStore:
    """Dicts and sorted lists behind the Store interface; nothing is ever written to disk."""

    def __init__(self) -> None:
        self._users: dict[bytes, UserRecord] = {}
        self._rooms: dict[bytes, RoomRecord] = {}
        self._members: dict[bytes, dict[bytes, MemberRecord]] = defaultdict(dict)
        self._room_seqs: dict[bytes, int] = {}
        self._history: dict[bytes, list[Envelope]] = defaultdict(list)
        self._mailbox_seqs: dict[bytes, int] = {}
        self._mailboxes: dict[bytes, list[Envelope]] = defaultdict(list)
        self._logs: dict[bytes, list[bytes]] = defaultdict(list)
        self._deletions: dict[bytes, dict[bytes, RoomDeletionRecord]] = defaultdict(dict)

    async def load(self) -> Snapshot:
        return Snapshot(
            users=list(self._users.values()),
            rooms=list(self._rooms.values()),
            members=[m for room in self._members.values() for m in room.values()],
            room_seqs=dict(self._room_seqs),
            mailbox_seqs=dict(self._mailbox_seqs),
            mailbox_counts={k: len(v) for k, v in self._mailboxes.items() if v},
        )

    async def put_user(self, user: UserRecord) -> None:
        self._users[user.key] = user

    async def set_last_seen(self, key: bytes, ts: int) -> None:
        user = self._users.get(key)
        if user is not None:
            self._users[key] = dataclasses.replace(user, last_seen=ts)

    async def create_room(self, room: RoomRecord, creator: MemberRecord) -> None:
        if room.id in self._rooms or any(r.name == room.name for r in self._rooms.values()):
            raise RoomExistsError("room exists")
        self._rooms[room.id] = room
        self._room_seqs[room.id] = 0
        self._members[room.id][creator.key] = creator

    async def add_member(self, member: MemberRecord, log_length: int) -> None:
        if len(self._logs.get(member.room, ())) != log_length:
            raise LogMovedError("the room's membership log has another length")
        self._members[member.room][member.key] = member

    async def remove_member(self, room: bytes, key: bytes, drop_room: bool) -> None:
        self._members[room].pop(key, None)
        if drop_room:
            self._rooms.pop(room, None)
            self._members.pop(room, None)
            self._room_seqs.pop(room, None)
            self._history.pop(room, None)
            self._logs.pop(room, None)

    async def delete_room(
        self, room: bytes, deletion: RoomDeletionRecord, members: list[bytes]
    ) -> None:
        await self.remove_member(room, members[0], drop_room=True)
        for key in members:
            self._deletions[key][room] = deletion

    async def deletions(self, key: bytes, now: int) -> list[RoomDeletionRecord]:
        kept = self._deletions.get(key, {}).values()
        return sorted((d for d in kept if d.expires > now), key=lambda d: d.ts)

    async def prune_deletions(self, now: int) -> int:
        removed = 0
        for key, notices in list(self._deletions.items()):
            for room in [room for room, d in notices.items() if d.expires <= now]:
                del notices[room]
                removed += 1
            if not notices:
                del self._deletions[key]
        return removed

    async def append(self, room: bytes, message: Envelope, keep: int) -> None:
        log = self._history[room]
        log.append(message)
        self._room_seqs[room] = message.seq
        if len(log) > keep:
            del log[: len(log) - keep]

    async def history(self, room: bytes, after: int, not_before: int, limit: int) -> list[Envelope]:
        log = self._history.get(room, [])
        start = bisect.bisect_right(log, after, key=lambda e: e.seq)
        return [e for e in log[start:] if e.ts >= not_before][:limit]

    async def prune(self, not_before: int) -> int:
        removed = 0
        for log in self._history.values():
            keep_from = bisect.bisect_left(log, not_before, key=lambda e: e.ts)
            removed += keep_from
            del log[:keep_from]
        return removed

    async def retract(self, room: bytes, seq: int, sender: bytes) -> Retraction:
        log = self._history.get(room, [])
        at = bisect.bisect_left(log, seq, key=lambda e: e.seq)
        if at == len(log) or log[at].seq != seq:
            return "absent"
        if log[at].sender != sender:
            return "foreign"
        del log[at]
        return "removed"

    async def mailbox_put(self, to: bytes, entry: Envelope) -> None:
        self._mailboxes[to].append(entry)
        self._mailbox_seqs[to] = entry.seq

    async def log_append(self, room: bytes, position: int, entry: bytes) -> bool:
        log = self._logs[room]
        if len(log) != position:
            return False
        log.append(entry)
        return True

    async def log_entries(self, room: bytes, after: int, limit: int) -> list[bytes]:
        return self._logs.get(room, [])[after : after + limit]

    async def latest_seq(self, room: bytes) -> None:
        """This relay is the only writer: its directory's count is exact."""

    async def mailbox(self, key: bytes, after: int, limit: int) -> list[Envelope]:
        box = self._mailboxes.get(key, [])
        start = bisect.bisect_right(box, after, key=lambda e: e.seq)
        return box[start : start + limit]

    async def mailbox_ack(self, key: bytes, upto: int) -> int:
        box = self._mailboxes.get(key, [])
        end = bisect.bisect_right(box, upto, key=lambda e: e.seq)
        del box[:end]
        return end

    async def forget_users(self, keys: list[bytes]) -> None:
        for key in keys:
            self._users.pop(key, None)
            self._mailbox_seqs.pop(key, None)
            self._mailboxes.pop(key, None)
            self._deletions.pop(key, None)

    async def close(self) -> None:
        """Nothing to flush."""
