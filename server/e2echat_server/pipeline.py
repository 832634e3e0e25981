"""The send pipeline: room messages decided at once, written durably in order, then fanned out.

Sends are pipelined: a connection reads its next frame while the previous message's
write is in flight, so consecutive messages share a transaction. Writes complete in the
order they were submitted, and the queue is drained strictly from the front, so fan-out
stays in seq order in every room and `sent` replies in frame order. Any other request
of the connection first waits for its pending sends (`drain`), so replies never overtake.
"""

import asyncio
import time
from collections import deque

from websockets.asyncio.server import ServerConnection

from e2echat.protocol import ErrorCode, Message, ProtocolError, Send, Sent
from e2echat_server.clock import now_ms
from e2echat_server.directory import Directory
from e2echat_server.engine import UNSAVED, Engine
from e2echat_server.output import Output
from e2echat_server.session import Session
from e2echat_server.store import Envelope

MAX_INFLIGHT = 64  # pipelined sends per connection before its reading pauses


def room_message(room: bytes, envelope: Envelope) -> Message:
    """The `message` frame of a stored room message."""
    return Message(
        room=room, seq=envelope.seq, ts=envelope.ts, sender=envelope.sender, body=envelope.body
    )


def check_body(body: bytes, max_body: int) -> None:
    if len(body) > max_body:
        raise ProtocolError(ErrorCode.TOO_LARGE, f"A body may be at most {max_body} bytes.")


class SendPipeline:
    """Room messages whose durable write is in flight, oldest first."""

    def __init__(
        self,
        directory: Directory,
        engine: Engine[ServerConnection],
        output: Output,
        max_body: int,
        history_count: int,
    ) -> None:
        self._directory = directory
        self._engine = engine
        self._output = output
        self._max_body = max_body
        self._history_count = history_count
        self._inflight: deque[
            tuple[asyncio.Future[Envelope | None], Session, Send, Envelope, float]
        ] = deque()

    def begin(self, session: Session, frame: Send) -> None:
        """Decide a `send` now (or raise) and start its durable write; `_finish` completes it."""
        check_body(frame.body, self._max_body)
        room = self._directory.member_room(session.key, frame.room)
        seq, ts = self._directory.next_message(room, now_ms())
        envelope = Envelope(seq, ts, session.key, frame.body)
        # A future (SqliteStore) is used as is; a coroutine store's write becomes a task.
        write = asyncio.ensure_future(
            self._engine.store.append(frame.room, envelope, self._history_count)
        )
        self._inflight.append((write, session, frame, envelope, time.perf_counter()))
        session.inflight += 1
        if len(self._inflight) == 1:  # the front: only it needs to call back
            write.add_done_callback(self._finish)

    def _finish(self, _: object) -> None:
        """Fan out and acknowledge every completed send at the front of the pipeline, then
        wait on the new front: one callback per batch a commit completes, not one per
        message (each costs a loop callback of its own)."""
        inflight = self._inflight
        metrics, output, finished = self._engine.metrics, self._output, time.perf_counter()
        while inflight and inflight[0][0].done():
            write, session, frame, envelope, started = inflight.popleft()
            session.inflight -= 1
            metrics.observe_store("append", finished - started)
            error = None if write.cancelled() else write.exception()
            if write.cancelled() or error is not None:
                self._engine.store_failed(
                    "append", "CancelledError" if error is None else type(error).__name__
                )
                output.error(session, frame.id, ErrorCode.UNAVAILABLE, UNSAVED)
            else:
                stored = write.result()
                if stored is not None:  # a shared store numbered it
                    envelope = stored
                    room = self._directory.rooms.get(frame.room)
                    if room is not None:
                        self._directory.numbered(room, stored.seq, stored.ts)
                message = room_message(frame.room, envelope)
                metrics.messages_in += 1
                metrics.messages_out += output.stored_message(frame.room, message, session)
                output.reply(
                    session, Sent(id=frame.id, room=frame.room, seq=envelope.seq, ts=envelope.ts)
                )
            if not session.inflight and session.drained is not None:
                if not session.drained.done():  # a bounded wait may have given up on it
                    session.drained.set_result(None)
                session.drained = None
        if inflight:
            inflight[0][0].add_done_callback(self._finish)

    async def drain(self, session: Session) -> None:
        """Wait until this connection's pipelined sends are acknowledged (to keep order)."""
        if session.inflight:
            if session.drained is None:
                session.drained = asyncio.get_running_loop().create_future()
            await session.drained
