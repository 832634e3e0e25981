"""Zero unable-to-decrypt, as a model: two engines and a relay that loses what is in flight.

The relay keeps what it confirmed (history, mailboxes) and loses every frame on its way
when a link drops, a client crashes (its engine reopened from its store file) or the
relay itself restarts. Whatever happens in between, once everyone is back the reader has
every message exactly once, in the order the relay stored them, and nothing waits.
"""

import tempfile
from collections import deque
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import e2echat
from e2echat.client.engine import Engine
from e2echat.client.output import Output
from e2echat.crypto.identity import Identity
from e2echat.crypto.policy import DAY, MINUTE, Policy
from e2echat.crypto.session import CryptoSession
from e2echat.protocol import (
    Ack,
    ClientFrame,
    DirectDelivery,
    DirectSend,
    Message,
    RelayFrame,
    Send,
    Sent,
    Sync,
    Synced,
    User,
    Welcome,
)
from e2echat.store import Store
from tests.client.test_engine import ROOM_ID, Clock, room_info

TICK_MS = 31_000
"""Each tick moves time past the pending timeout, so key requests go out if needed."""
POLICY = Policy(rotate_messages=2)
"""A new chain every other message: many shares, so many to lose."""


class Peer:
    """One client: its engine (reopened from its store after a crash) and its links."""

    def __init__(self, name: str, folder: Path, clock: Clock) -> None:
        self.name = name
        self.identity = Identity.generate()
        self.path = folder / f"{name}.sqlite3"
        self.clock = clock
        self.offset = 0
        """How far this peer's clock is off (ms)."""
        self.engine = self._open()
        self.online = False
        self.inbox: deque[RelayFrame] = deque()
        self.outgoing: deque[ClientFrame] = deque()
        self.texts: list[str] = []
        self.waiting: set[int] = set()
        """Seqs reported Undecryptable(waiting=True) and not delivered since."""

    def _open(self) -> Engine:
        store = Store(self.path, self.identity)
        session = CryptoSession(self.identity, store, policy=POLICY)
        return Engine(self.identity, self.name, store, session, self.now)

    def now(self) -> int:
        return self.clock() + self.offset

    @property
    def key(self) -> bytes:
        return self.identity.public_key

    def take(self, out: Output) -> None:
        if self.online:
            self.outgoing.extend(out.frames)
        for message in out.messages:
            self.texts.append(message.text)
            self.waiting.discard(message.seq)
        for event in out.events:
            if isinstance(event, e2echat.Undecryptable) and event.waiting:
                self.waiting.add(event.seq)

    def drop(self) -> None:
        self.online = False
        self.inbox.clear()
        self.outgoing.clear()
        self.engine.disconnected()

    def crash(self) -> None:
        self.drop()
        self.engine.store.close()
        self.engine = self._open()


class Relay:
    """Stores and confirms in order, per connection, as the real relay does."""

    def __init__(self, clock: Clock, peers: list[Peer]) -> None:
        self.clock = clock
        self.peers = peers
        self.history: list[Message] = []
        self.mailboxes: dict[bytes, list[DirectDelivery]] = {p.key: [] for p in peers}
        self.mailbox_seq = 0

    def connect(self, peer: Peer) -> None:
        engines = [p.engine for p in self.peers]
        info = room_info(*engines, seq=len(self.history))
        welcome = Welcome(
            user=User(key=peer.key, name=peer.name),
            rooms=[info],
            mailbox=len(self.mailboxes[peer.key]),
            ts=self.clock(),
        )
        peer.online = True
        peer.inbox.extend(self.mailboxes[peer.key])  # the mailbox first, then room traffic
        peer.take(peer.engine.welcome(welcome))

    def handle(self, peer: Peer, frame: ClientFrame) -> None:
        now = self.clock()
        if isinstance(frame, Send):
            message = Message(
                room=frame.room, seq=len(self.history) + 1, ts=now, sender=peer.key, body=frame.body
            )
            self.history.append(message)
            peer.inbox.append(Sent(room=frame.room, seq=message.seq, ts=now, id=frame.id))
            for other in self.peers:
                if other is not peer and other.online:
                    other.inbox.append(message)
        elif isinstance(frame, DirectSend):
            self.mailbox_seq += 1
            entry = DirectDelivery(sender=peer.key, seq=self.mailbox_seq, ts=now, body=frame.body)
            self.mailboxes[frame.to].append(entry)
            recipient = next(p for p in self.peers if p.key == frame.to)
            if recipient.online:
                recipient.inbox.append(entry)
            peer.inbox.append(Sent(seq=entry.seq, ts=now, id=frame.id))
        elif isinstance(frame, Sync):
            after = [m for m in self.history if m.seq > frame.after][: frame.limit]
            peer.inbox.extend(after)
            peer.inbox.append(Synced(room=frame.room, seq=len(self.history), id=frame.id))
        elif isinstance(frame, Ack):
            box = self.mailboxes[peer.key]
            box[:] = [entry for entry in box if entry.seq > frame.mailbox]


def pump(relay: Relay, peer: Peer, frames: int) -> None:
    """Up to ``frames`` frames each way between ``peer`` and the relay."""
    for _ in range(frames):
        if peer.outgoing:
            relay.handle(peer, peer.outgoing.popleft())
        if peer.inbox and peer.online:
            peer.take(peer.engine.receive(peer.inbox.popleft()))


def restart(*peers: Peer) -> None:
    """The relay is killed and restarted: what it confirmed is kept, links drop."""
    for peer in peers:
        if peer.online:
            peer.drop()


STEPS = st.lists(
    st.sampled_from(
        [
            "send",
            "send",
            "pump writer",
            "pump reader",
            "drop writer",
            "drop reader",
            "crash writer",
            "crash reader",
            "restart relay",
            "connect writer",
            "connect reader",
            "tick",
        ]
    ),
    max_size=60,
)
SKEWS = st.sampled_from(["writer ahead", "writer behind", "reader ahead"])
"""A writer 20 minutes ahead or 8 days behind, or a reader 8 days ahead."""


@settings(max_examples=40, deadline=None)
@given(steps=STEPS, frames=st.integers(1, 4))
def test_every_message_is_read_once_in_order_whatever_is_lost_in_flight(
    steps: list[str], frames: int
) -> None:
    texts = run(steps, frames)
    assert texts == sorted(texts, key=lambda text: int(text[1:]))  # in the order sent


@settings(max_examples=25, deadline=None)
@given(skew=SKEWS, during=STEPS, after=STEPS, frames=st.integers(1, 4))
def test_every_message_is_read_once_through_a_clock_off_then_set_right(
    skew: str, during: list[str], after: list[str], frames: int
) -> None:
    """A clock that is off holds messages up (reported, waiting; the key asked for and
    refused again); once it is set right they all follow. A message waiting for its
    key comes when its key does, so only exactly-once is asserted, not the order."""
    run(
        [
            skew,
            *during,
            "send",
            "pump writer",
            "pump reader",
            "tick",
            "tick",
            "clocks right",
            *after,
        ],
        frames,
    )


@pytest.mark.parametrize("skew", ["writer ahead", "writer behind", "reader ahead"])
def test_a_message_from_while_a_clock_was_off_follows_once_it_is_right(skew: str) -> None:
    """The share is refused, the key asked for and refused again while the clock is off
    (a reader's clock set back must not wait for the old time to come round again)."""
    talk = ["pump writer", "pump reader"] * 6
    assert run([skew, "send", *talk, "tick", *talk, "tick", *talk, "clocks right"], 2) == ["m1"]


def run(steps: list[str], frames: int) -> list[str]:
    """Play ``steps``, bring everyone back with every clock right, let every retry
    happen; check that the reader got each message exactly once and nothing waits."""
    with tempfile.TemporaryDirectory() as folder:
        clock = Clock()
        writer, reader = Peer("writer", Path(folder), clock), Peer("reader", Path(folder), clock)
        for peer in (writer, reader):
            peer.engine.enter_room(room_info(writer.engine, reader.engine), "open", None)
        relay = Relay(clock, [writer, reader])
        for peer in (writer, reader):
            relay.connect(peer)
        sent = 0
        actions: dict[str, Callable[[], None]] = {
            "pump writer": lambda: pump(relay, writer, frames),
            "pump reader": lambda: pump(relay, reader, frames),
            "drop writer": writer.drop,
            "drop reader": reader.drop,
            "crash writer": writer.crash,
            "crash reader": reader.crash,
            "restart relay": lambda: restart(writer, reader),
        }
        offsets = {
            "writer ahead": (writer, 20 * MINUTE),
            "writer behind": (writer, -8 * DAY),
            "reader ahead": (reader, 8 * DAY),
        }
        for step in steps:
            if step in offsets:
                peer, offset = offsets[step]
                peer.offset = offset
            elif step == "clocks right":
                writer.offset = reader.offset = 0
            elif step == "send":
                sent += 1
                writer.take(writer.engine.queue(ROOM_ID, f"m{sent}")[2])
            elif step.startswith("connect"):
                peer = writer if step.endswith("writer") else reader
                if not peer.online:
                    relay.connect(peer)
            elif step == "tick":
                clock.now += TICK_MS
                for peer in (writer, reader):
                    out = peer.engine.tick()
                    out.extend(peer.engine.flush_outbox())
                    peer.take(out)
            else:
                actions[step]()

        for peer in (writer, reader):  # everyone back, clocks right, time for every retry
            peer.offset = 0
            if not peer.online:
                relay.connect(peer)
        for _ in range(8):
            while any(p.inbox or p.outgoing for p in (writer, reader)):
                pump(relay, writer, 1)
                pump(relay, reader, 1)
            clock.now += POLICY.max_request_interval
            for peer in (writer, reader):
                out = peer.engine.tick()
                out.extend(peer.engine.flush_outbox())
                peer.take(out)

        assert sorted(reader.texts) == sorted(f"m{i}" for i in range(1, sent + 1))
        assert len(reader.texts) == sent  # exactly once
        assert reader.waiting == set()
        writer.engine.store.close()
        reader.engine.store.close()
        return reader.texts
