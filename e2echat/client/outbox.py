"""The outbox: messages and directs queued durably, sent in order, resent until confirmed.

It owns the outbox and directs rows of the store, the ids of our ``send`` frames
(``o<id>``) and ``direct`` frames (``d<id>``), and which of them are on their way on
this connection. A message is encrypted once and its body kept, so a resend after a
lost reply carries the same bytes (receivers drop the copy quietly).

Directs (key shares, proofs, key requests) are as durable as messages: every one the
crypto core produces is stored in the transaction that produced it, and each flush sends
the unconfirmed directs before any message. A connection carries frames in order and
the relay handles one connection's frames in order, so a message is never stored at the
relay before the shares it needs (docs/protocol.md, "Directs").

Against a relay that announces ``directs`` (docs/protocol.md, "Batched directs"), runs
of directs to keys we share a room with go out as ``directs`` frames (``b<n>``) of at
most the announced count and frame size; a refused batch is sent again as single
directs, whose per-recipient answers the outbox already handles. Directs of many steps
that wait for the link's pacer are rebatched (``rebatch``, asked by the connection's
writer): a member validating a join a frame slot shares with every joiner of that slot
in one frame. Directs may overtake other frames there, never each other, so a message
still follows its shares.
"""

from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass

import msgspec

from e2echat.client import events as ev
from e2echat.client.roomstate import RoomState
from e2echat.crypto.errors import CryptoError
from e2echat.crypto.events import OutgoingDirect
from e2echat.crypto.payload import decode_sent
from e2echat.crypto.session import CryptoSession
from e2echat.protocol import (
    ClientFrame,
    DirectItem,
    DirectSend,
    DirectsSend,
    Error,
    ErrorCode,
    Send,
)
from e2echat.store import OutboxItem, Store

OUTBOX_ID = "o"
DIRECT_ID = "d"
BATCH_ID = "b"
MAX_OUTBOX_DIGITS = 18
"""Outbox ids have at most this many digits (SQLite integers are 64-bit)."""
NOT_IN_ROOM = "we are no longer in the room"
"""Why a queued message of a room we are not in is given up."""
_DROP_ON = frozenset(
    {ErrorCode.NOT_MEMBER, ErrorCode.NO_SUCH_ROOM, ErrorCode.TOO_LARGE, ErrorCode.BAD_FRAME}
)
"""Refusals a resend cannot cure: the message is dropped with a ``SendFailed``."""
_DROP_DIRECT_ON = frozenset({ErrorCode.FORBIDDEN, ErrorCode.TOO_LARGE, ErrorCode.BAD_FRAME})
"""Refusals of a direct a resend cannot cure (an unknown recipient, a bad body); a full
mailbox or a rate limit is retried."""


def outbox_id(request_id: str | None, prefix: str = OUTBOX_ID) -> int | None:
    """The id in one of our send ids (``o<id>``, or ``d<id>`` for directs), or None for
    any other id.

    The relay echoes ids back, so they are untrusted input: only ASCII digits of a
    size SQLite can hold are an outbox id.
    """
    if request_id is None or not request_id.startswith(prefix):
        return None
    digits = request_id[len(prefix) :]
    if not (digits.isascii() and digits.isdigit() and len(digits) <= MAX_OUTBOX_DIGITS):
        return None
    return int(digits)


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """What the relay's challenge allows a ``directs`` frame: items and bytes."""

    max_items: int
    max_frame: int


class Outbox:
    """Queued messages of one store. Runs on the engine's thread, like the engine."""

    def __init__(
        self, store: Store, session: CryptoSession, shares_room: Callable[[bytes], bool]
    ) -> None:
        self._store = store
        self._session = session
        self._shares_room = shares_room  # whether a key is in a room we are in
        self._inflight: set[int] = set()
        self._directs_inflight: set[int] = set()
        self.batch_limits: BatchLimits | None = None  # None: the relay has no ``directs``
        self._batches: dict[int, list[int]] = {}  # batch number -> its direct ids
        self._next_batch = 0
        self._single: set[int] = set()  # directs of a refused batch: sent alone from now

    def enqueue(self, room_id: bytes, payload: bytes) -> int:
        """Queue an encoded payload for ``room_id``; its outbox id."""
        return self._store.enqueue(room_id, payload)

    def items(self, room_id: bytes | None = None) -> list[OutboxItem]:
        """Every queued message (of ``room_id`` only, if given), oldest first."""
        return self._store.outbox(room_id)

    def queue_directs(
        self, directs: Iterable[OutgoingDirect], connected: bool
    ) -> list[ClientFrame]:
        """Keep directs until the relay confirms them (call inside the transaction that
        produced them); the frames to send now if ``connected``, else none (the next
        ``flush`` sends them)."""
        queued = [
            (self._store.queue_direct(direct.recipient, direct.body), direct.recipient, direct.body)
            for direct in directs
        ]
        return self._direct_frames(queued) if connected else []

    def _direct_frames(self, directs: list[tuple[int, bytes, bytes]]) -> list[ClientFrame]:
        """Frames for ``(id, recipient, body)`` directs, in order: batched where the relay
        allows it and the recipient shares a room with us, single otherwise."""
        frames: list[ClientFrame] = []
        run: list[tuple[int, bytes, bytes]] = []
        for item_id, recipient, body in directs:
            self._directs_inflight.add(item_id)
            if (
                self.batch_limits is None
                or item_id in self._single
                or not self._shares_room(recipient)
            ):
                frames += self._batches_of(run)
                run = []
                frames.append(_single(item_id, recipient, body))
            else:
                run.append((item_id, recipient, body))
        return frames + self._batches_of(run)

    def _batches_of(self, run: list[tuple[int, bytes, bytes]]) -> list[ClientFrame]:
        """Frames for a run of batchable directs: ``directs`` frames each within the
        limits and naming each recipient once (the relay refuses a frame that names one
        twice, and a run of several steps' directs, or a flush after a reconnect, may
        hold two for one key), and a chunk of one as a plain ``direct``."""
        limits = self.batch_limits
        if limits is None:
            return []
        chunks: list[list[tuple[int, bytes, bytes]]] = []
        size = 0
        named: set[bytes] = set()
        for direct in run:
            item_size = _item_size(direct[2])
            if (
                not chunks
                or len(chunks[-1]) == limits.max_items
                or size + item_size > limits.max_frame
                or direct[1] in named
            ):
                chunks.append([])
                size = _FRAME_OVERHEAD
                named = set()
            chunks[-1].append(direct)
            named.add(direct[1])
            size += item_size
        return [self._batch(chunk) for chunk in chunks]

    def _batch(self, chunk: list[tuple[int, bytes, bytes]]) -> ClientFrame:
        if len(chunk) == 1:
            return _single(*chunk[0])
        self._next_batch += 1
        self._batches[self._next_batch] = [item_id for item_id, _, _ in chunk]
        items = [DirectItem(to=recipient, body=body) for _, recipient, body in chunk]
        return DirectsSend(items=items, id=f"{BATCH_ID}{self._next_batch}")

    def rebatch(self, frames: Sequence[ClientFrame]) -> list[ClientFrame]:
        """Directs frames of this connection still waiting to be written, as few frames
        as the limits allow, their directs in the same order (the shell's writer asks
        while the pacer holds them: directs made by many steps within one frame slot
        then cost one frame). Their directs stay on their way under the new frames' ids.
        Frames that are not all ours and on their way (another connection's) are left
        as they are."""
        directs: list[tuple[int, bytes, bytes]] = []
        batches: list[int] = []
        for frame in frames:
            if isinstance(frame, DirectSend):
                item_id = outbox_id(frame.id, DIRECT_ID)
                if item_id is None or item_id not in self._directs_inflight:
                    return list(frames)
                directs.append((item_id, frame.to, frame.body))
            elif isinstance(frame, DirectsSend):
                batch = outbox_id(frame.id, BATCH_ID)
                ids = self._batches.get(batch) if batch is not None else None
                if batch is None or ids is None or len(ids) != len(frame.items):
                    return list(frames)
                batches.append(batch)
                directs += [(i, d.to, d.body) for i, d in zip(ids, frame.items, strict=True)]
            else:
                return list(frames)
        rebatched = self._direct_frames(directs)
        for batch in batches:  # only once the new frames stand: the old ids then go
            del self._batches[batch]
        return rebatched

    def flush(
        self, rooms: Mapping[bytes, RoomState], now: int, settling: Container[bytes] = ()
    ) -> tuple[list[ClientFrame], list[ev.Event]]:
        """Frames for every queued direct, then every queued message, not already on its
        way, oldest first (a message's key shares before it), and a ``SendFailed`` for
        each message that could not be encrypted or whose room we are not in. Messages
        of the rooms ``settling`` (held here, the relay's word on them awaited) wait."""
        frames = self._direct_frames(
            [
                (d.id, d.recipient, d.body)
                for d in self._store.directs()
                if d.id not in self._directs_inflight
            ]
        )
        failures: list[ev.Event] = []
        for item in self._store.outbox():
            if item.id in self._inflight:
                continue
            state = rooms.get(item.room_id)
            if state is None:
                if item.room_id not in settling:
                    self._store.remove_outbox(item.id)
                    failures.append(ev.SendFailed(item.room_id, item.id, NOT_IN_ROOM))
                continue
            if state.holds(now):
                continue
            body = item.body
            if body is None:
                try:
                    with self._store.transaction():
                        outgoing = self._session.encrypt(
                            item.room_id, decode_sent(item.payload), now
                        )
                        self._store.set_outbox_body(item.id, outgoing.body)
                        frames += self.queue_directs(outgoing.directs, connected=True)
                except CryptoError as exc:
                    self._store.remove_outbox(item.id)
                    reason = f"it could not be encrypted ({exc})"
                    failures.append(ev.SendFailed(item.room_id, item.id, reason))
                    continue
                body = outgoing.body
            frames.append(Send(room=item.room_id, body=body, id=f"{OUTBOX_ID}{item.id}"))
            self._inflight.add(item.id)
        return frames, failures

    def abandon(self, room_id: bytes, reason: str) -> list[ev.SendFailed[bytes]]:
        """A ``SendFailed`` for everything queued for ``room_id``, which we are leaving
        (the store forgets the room's outbox with the room)."""
        items = self._store.outbox(room_id)
        self._inflight.difference_update(item.id for item in items)
        return [ev.SendFailed(room_id, item.id, reason) for item in items]

    def confirm(self, item_id: int, room_id: bytes | None) -> OutboxItem | None:
        """The relay stored message ``item_id`` in ``room_id``: dequeue and return it
        (None, and nothing dequeued, if it is not ours or not for that room)."""
        self._inflight.discard(item_id)
        item = self._store.outbox_item(item_id)
        if item is None or item.room_id != room_id:
            return None
        self._store.remove_outbox(item_id)
        return item

    def refused(self, item_id: int, frame: Error) -> ev.SendFailed[bytes] | None:
        """The relay refused a send: it is retried later, or dropped with a
        ``SendFailed`` if no retry can succeed (None too for an id not in the outbox)."""
        self._inflight.discard(item_id)
        if frame.code not in _DROP_ON:
            return None
        item = self._store.outbox_item(item_id)
        if item is None:
            return None
        self._store.remove_outbox(item_id)
        return ev.SendFailed(item.room_id, item_id, frame.message)

    def direct_confirmed(self, item_id: int) -> None:
        """The relay stored direct ``item_id`` in its recipient's mailbox."""
        self._directs_inflight.discard(item_id)
        self._single.discard(item_id)
        self._store.remove_direct(item_id)

    def direct_refused(self, item_id: int, frame: Error) -> ev.Notice | None:
        """The relay refused a direct: retried on the next flush, or dropped with a
        notice if no retry can succeed."""
        self._directs_inflight.discard(item_id)
        if frame.code not in _DROP_DIRECT_ON:
            return None
        self._single.discard(item_id)
        self._store.remove_direct(item_id)
        return ev.Notice(f"A key message could not be sent: {frame.message}")

    def batch_confirmed(self, batch: int) -> None:
        """The relay stored every envelope of batch ``batch`` (unknown numbers: ignored)."""
        for item_id in self._batches.pop(batch, []):
            self.direct_confirmed(item_id)

    def batch_refused(self, batch: int) -> bool:
        """The relay refused batch ``batch``: its directs go again, each alone, on the
        next flush (whose single answers say which recipient it was). Whether it was ours."""
        ids = self._batches.pop(batch, None)
        if ids is None:
            return False
        self._directs_inflight.difference_update(ids)
        self._single.update(ids)
        return True

    def disconnected(self) -> None:
        """The connection is gone: everything not confirmed goes out again."""
        self._inflight.clear()
        self._directs_inflight.clear()
        self._batches.clear()


_FRAME_OVERHEAD = len(msgspec.json.encode(DirectsSend(items=[], id=f"{BATCH_ID}{10**18}")))
"""Bytes of a ``directs`` frame around its items (with the longest id we make)."""


def _single(item_id: int, recipient: bytes, body: bytes) -> DirectSend:
    return DirectSend(to=recipient, body=body, id=f"{DIRECT_ID}{item_id}")


def _item_size(body: bytes) -> int:
    """Bytes one item adds to a ``directs`` frame: its JSON with a comma."""
    return len(msgspec.json.encode(DirectItem(to=bytes(32), body=body))) + 1
