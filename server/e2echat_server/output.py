"""The one port handlers write to: replies, fan-out and presence announcements.

Every frame is written without waiting, after a check of the recipient's send buffer, so
a slow consumer is dropped instead of stalling anyone (`Delivery`); the frames a
connection is given during one turn of the event loop leave in one socket write at the
end of that turn (a commit that acknowledges a batch of sends gives a sender its `sent`s
and a recipient its `message`s together); fan-out goes through
the engine's broker, which knows which connections get it. Bulk replies (welcome, sync,
the mailbox flush) are the exception: they wait for the client to drain, each frame
within ``send_timeout_s``, so a client that stops reading holds a page of replies for
that long at most, and is then dropped like any slow consumer.
"""

import asyncio
from collections.abc import Iterable

from websockets.asyncio.server import ServerConnection
from websockets.protocol import OPEN

from e2echat.protocol import (
    Error,
    ErrorCode,
    Message,
    Presence,
    RelayFrame,
    Renamed,
    encode_frame,
)
from e2echat_server.directory import OFFLINE, Directory
from e2echat_server.engine import Broker
from e2echat_server.metrics import Metrics
from e2echat_server.refusals import printable
from e2echat_server.session import Session, SlowConsumerError, peer


class Delivery:
    """Writes encoded frames to local connections, dropping any whose buffer overflowed.

    A frame is framed at once into the connection's protocol (so it keeps its order with
    any frame websockets itself sends) and written with the others of the same loop turn
    by one `_flush`: one system call per connection per turn instead of one per frame.
    """

    def __init__(self, send_buffer: int, metrics: Metrics) -> None:
        self.send_buffer = send_buffer
        self._metrics = metrics
        self._unflushed: set[ServerConnection] = set()

    def send(
        self, conns: Iterable[ServerConnection], data: bytes, skip: ServerConnection | None
    ) -> int:
        """Send ``data`` to ``conns`` but ``skip`` without waiting; return how many got it."""
        limit = self.send_buffer
        unflushed = self._unflushed
        sent = 0
        for conn in conns:
            if conn is skip:
                continue
            transport = conn.transport
            if transport.is_closing() or conn.protocol.state is not OPEN:
                continue
            if transport.get_write_buffer_size() > limit:
                self.drop(conn)
                continue
            conn.protocol.send_text(data)
            if not unflushed:
                asyncio.get_running_loop().call_soon(self._flush)
            unflushed.add(conn)
            sent += 1
        self._metrics.bytes_out += len(data) * sent
        return sent

    def _flush(self) -> None:
        """Write each connection's frames of this loop turn in one system call."""
        conns, self._unflushed = self._unflushed, set()
        for conn in conns:
            if conn.transport.is_closing():  # aborted as a slow consumer, or gone
                continue
            writes = conn.protocol.writes
            if len(writes) > 1 and all(writes):  # an empty item is websockets' EOF mark
                conn.protocol.writes = [b"".join(writes)]
            conn.send_data()

    def drop(self, conn: ServerConnection) -> None:
        """Abort a connection that does not read what it is sent."""
        self._metrics.slow_consumers += 1
        self._metrics.refusals.refused("slow_consumer", peer=peer(conn))
        conn.transport.abort()


class Output:
    """Replies to a session, fan-out to a room or to keys, and presence of a key."""

    def __init__(
        self,
        broker: Broker[ServerConnection],
        delivery: Delivery,
        directory: Directory,
        metrics: Metrics,
        send_timeout_s: float,
    ) -> None:
        self._broker = broker
        self._send_timeout_s = send_timeout_s
        self._delivery = delivery
        self._directory = directory
        self._metrics = metrics
        self.catch_ups: dict[bytes, asyncio.TimerHandle] = {}

    def reconfigure(self, send_buffer: int, send_timeout_s: float) -> None:
        self._delivery.send_buffer = send_buffer
        self._send_timeout_s = send_timeout_s

    def reply(self, session: Session, frame: RelayFrame) -> None:
        """Queue one reply without waiting (bounded like fan-out)."""
        self._delivery.send((session.conn,), encode_frame(frame), None)

    def status_texts(self, session: Session, room_ids: Iterable[bytes]) -> None:
        """After a roster (which carries no status texts): the texts of its members."""
        for frame in self._directory.status_texts(room_ids):
            self.reply(session, frame)

    async def reply_paced(self, session: Session, frame: RelayFrame) -> None:
        """Send one of many replies (sync, mailbox), waiting while the client's buffer is
        full, but no longer than ``send_timeout_s``: then drop it (SlowConsumerError)."""
        data = encode_frame(frame)
        self._metrics.bytes_out += len(data)
        try:
            async with asyncio.timeout(self._send_timeout_s):
                await session.conn.send(data, text=True)
        except TimeoutError:
            self._delivery.drop(session.conn)
            raise SlowConsumerError from None

    def error(self, session: Session, request: str | None, code: ErrorCode, message: str) -> None:
        self._metrics.errors[code.value] += 1
        session.errors += 1
        self.reply(session, Error(id=request, code=code, message=printable(message)))

    def to_room(self, room: bytes, frame: RelayFrame, skip: Session | None = None) -> int:
        """Fan ``frame`` out to ``room``'s connections (but ``skip``'s); how many got it."""
        return self._broker.to_room(room, encode_frame(frame), None if skip is None else skip.conn)

    def stored_message(self, room: bytes, frame: Message, skip: Session) -> int:
        """Fan a room message out as `to_room` does, once the store appended it (a shared
        store's append has handed it to the other relays: see `Store.append`)."""
        return self._broker.to_room_stored(room, encode_frame(frame), skip.conn)

    def to_key(self, key: bytes, frame: RelayFrame) -> int:
        """Deliver ``frame`` to every live connection of ``key``."""
        return self.to_keys((key,), frame)

    def to_keys(self, keys: Iterable[bytes], frame: RelayFrame) -> int:
        """Deliver ``frame`` to every live connection of each of ``keys``, on any relay."""
        return self._broker.to_keys(keys, encode_frame(frame))

    def announce(self, key: bytes) -> None:
        """Broadcast ``key``'s presence after it went online or offline, within its budget.

        Over budget (a reconnect loop), one catch-up is scheduled for when the budget
        allows, and it announces the state as it is then: peers see fewer transitions,
        never a stale final state.
        """
        loop = asyncio.get_running_loop()
        wait = self._directory.presence_due(key, loop.time())
        if wait is None:
            self.presence(key)
            return
        self._metrics.presence_deferred += 1
        if key not in self.catch_ups:
            self.catch_ups[key] = loop.call_later(wait, self._catch_up, key)

    def _catch_up(self, key: bytes) -> None:
        del self.catch_ups[key]
        user = self._directory.users.get(key)
        if user is not None and user.presence_pending:  # else a status frame or eviction won
            self.announce(key)

    def presence(self, key: bytes) -> None:
        """Tell everyone who shares a room with ``key`` about its presence, now."""
        user = self._directory.users[key]
        frame = Presence(
            key=key,
            status=user.status,
            text=user.text,
            last_seen=user.last_seen if user.status == OFFLINE else None,
        )
        self._broker.presence(key, frame.status, frame.text, frame.last_seen)
        self._broker.to_keys(self._directory.peers(key), encode_frame(frame))

    def renamed(self, key: bytes) -> None:
        """Tell ``key``'s own connections and everyone who shares a room with it its name."""
        user = self._directory.users[key]
        frame = Renamed(key=key, name=user.name, name_statement=user.name_statement)
        self._broker.to_keys(self._directory.peers(key) | {key}, encode_frame(frame))

    def close(self) -> None:
        """Cancel the scheduled catch-ups (the relay is stopping)."""
        for handle in self.catch_ups.values():
            handle.cancel()
        self.catch_ups.clear()
