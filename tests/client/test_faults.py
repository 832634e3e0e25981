"""Delivery under faults, with real relay processes killed with SIGKILL and restarted on
the same data directory, and members whose clocks are off: every message reaches every
reader exactly once, in the relay's order, with its text, and nothing is left
undecryptable.

"Nothing more arrives" is shown with a barrier: a last message sent after everything
else must be the next one each reader gets.
"""

import asyncio
import functools
import sys
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest

import e2echat
from tests.client.conftest import MakeClient, collect
from tests.client.test_relay_restart import _free_port, relay_process

CATCH_UP_TIMEOUT = 60.0
BARRIER = "barrier: nothing after this"


class Relay:
    """A relay process on one port and data directory, killed and restarted at will."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = _free_port()
        self.data = tmp_path / "relay-data"
        self.log = tmp_path / "relay.log"
        self.url = f"ws://127.0.0.1:{self.port}/"
        self.kills = 0
        self._stack = AsyncExitStack()
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self._process = await self._stack.enter_async_context(
            relay_process(self.data, self.port, self.log)
        )

    async def kill_and_restart(self) -> None:
        """SIGKILL (no shutdown code runs), then a new process on the same data."""
        assert self._process is not None
        self._process.kill()
        await self._process.wait()
        self.kills += 1
        await self._stack.aclose()
        self._stack = AsyncExitStack()
        await self.start()

    async def stop(self) -> None:
        await self._stack.aclose()


@asynccontextmanager
async def running_relay(tmp_path: Path) -> AsyncIterator[Relay]:
    relay = Relay(tmp_path)
    await relay.start()
    try:
        yield relay
    finally:
        await relay.stop()


class Reader:
    """A member that records every message and every ``Undecryptable`` it is given."""

    def __init__(self, client: e2echat.Client) -> None:
        self.client = client
        self.inbox = client.messages()
        self.undecryptable: list[e2echat.Undecryptable[e2echat.Room]] = []
        self._watch = asyncio.create_task(self._watch_events(client.events()))

    async def _watch_events(self, events: AsyncIterator[e2echat.Event]) -> None:
        async for event in events:
            if isinstance(event, e2echat.Undecryptable):
                self.undecryptable.append(event)

    async def everything(self, count: int) -> list[e2echat.Message[e2echat.Room]]:
        """The next ``count`` messages, then the barrier as the very next one."""
        got = await collect(self.inbox, count, seconds=CATCH_UP_TIMEOUT)
        (barrier,) = await collect(self.inbox, 1)
        assert barrier.text == BARRIER, f"{barrier.text!r} arrived after all were delivered"
        return got

    def stop(self) -> None:
        self._watch.cancel()


async def validated_by_all(
    clients: list[e2echat.Client], subscriptions: list[AsyncIterator[e2echat.Event]]
) -> None:
    """Wait until each client validated every other member of the room."""
    for client, events in zip(clients, subscriptions, strict=True):
        others = {c.name for c in clients if c is not client}
        seen: set[str] = set()
        async with asyncio.timeout(20):
            async for event in events:
                if isinstance(event, e2echat.MemberValidated):
                    seen.add(event.member.name)
                    if others <= seen:
                        break


def assert_exactly_once_in_order(
    got: list[e2echat.Message[e2echat.Room]], expected: dict[str, list[str]], reader: Reader
) -> None:
    seqs = [m.seq for m in got]
    assert seqs == sorted(set(seqs)), "not in relay order, or a message came twice"
    for writer, texts in expected.items():
        assert [m.text for m in got if m.sender.name == writer] == texts
    assert len(got) == sum(len(texts) for texts in expected.values())
    delivered = {m.seq for m in got}
    left = [e for e in reader.undecryptable if e.seq not in delivered]
    assert left == [], f"left undecryptable: {[(e.seq, e.reason) for e in left]}"


async def test_relay_crash_loop_loses_and_doubles_nothing(
    make_client: MakeClient, tmp_path: Path
) -> None:
    writers_count, per_writer, kill_every = 3, 20, 20
    async with running_relay(tmp_path) as relay:
        writers = [await make_client(f"writer{i}", relay.url) for i in range(writers_count)]
        readers = [await make_client(f"reader{i}", relay.url) for i in range(2)]
        everyone = writers + readers
        subscriptions = [c.events() for c in everyone]
        await writers[0].create("loop")
        for client in everyone[1:]:
            await client.join("loop")
        await validated_by_all(everyone, subscriptions)
        rooms = [w.get_room("loop") for w in writers]
        watching = [Reader(r) for r in readers]
        expected: dict[str, list[str]] = {w.name or "": [] for w in writers}
        sent = 0
        for i in range(per_writer):
            for writer, room in zip(writers, rooms, strict=True):
                assert room is not None
                text = f"{writer.name} says {i}"
                expected[writer.name or ""].append(text)
                await room.send(text)  # queued while the relay is down, sent on reconnect
                sent += 1
                if sent % kill_every == 0:
                    await relay.kill_and_restart()
        assert relay.kills == writers_count * per_writer // kill_every
        for writer in writers:
            assert await writer.flush(CATCH_UP_TIMEOUT) == 0
        assert rooms[0] is not None
        await rooms[0].send(BARRIER)
        for reader in watching:
            got = await reader.everything(sent)
            assert_exactly_once_in_order(got, expected, reader)
            reader.stop()


async def test_ten_thousand_missed_in_the_bench_one_thousand_here(
    make_client: MakeClient, tmp_path: Path
) -> None:
    missed = 1000
    async with running_relay(tmp_path) as relay:
        writer = await make_client("writer", relay.url)
        reader_identity = e2echat.Identity.generate()
        room = await writer.create("absence")
        events = writer.events()
        away = await make_client("reader", relay.url, identity=reader_identity)
        await away.join("absence")
        await collect(events, 1, lambda e: isinstance(e, e2echat.MemberValidated))
        await away.close()
        texts = [f"missed {i}" for i in range(missed)]
        for first in range(0, missed, 100):
            await asyncio.gather(*(room.send(t) for t in texts[first : first + 100]))
        await room.send(BARRIER)
        await relay.kill_and_restart()  # the backlog comes from the relay's disk
        back = Reader(await make_client("reader", relay.url, identity=reader_identity))
        got = await back.everything(missed)
        assert [m.text for m in got] == texts
        assert_exactly_once_in_order(got, {"writer": texts}, back)
        back.stop()


ROOT = Path(__file__).resolve().parents[2]


class Peer:
    """A ``tests.client.peer`` process: read its report lines, SIGKILL it, start it again."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.client.peer",
            *self.args,
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )

    async def until(self, word: str) -> list[list[str]]:
        """Report lines up to and with the first that starts with ``word``."""
        assert self.process is not None
        assert self.process.stdout is not None
        lines: list[list[str]] = []
        async with asyncio.timeout(CATCH_UP_TIMEOUT):
            while True:
                raw = await self.process.stdout.readline()
                assert raw, f"the peer exited before saying {word!r}"
                lines.append(raw.decode().rstrip("\n").split(" ", 2))
                if lines[-1][0] == word:
                    return lines

    async def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        await self.process.wait()

    async def kill_if_running(self) -> None:
        if self.process is not None and self.process.returncode is None:
            await self.kill()

    async def stop(self) -> None:
        """Close its stdin: it disconnects and exits."""
        if self.process is not None and self.process.returncode is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            async with asyncio.timeout(CATCH_UP_TIMEOUT):
                await self.process.wait()


PeerFactory = Callable[..., Peer]


@pytest.fixture
async def peer() -> AsyncIterator[PeerFactory]:
    """Makes ``Peer``s, and kills any still running when the test ends: one that failed
    or hit the timeout would otherwise leave its process behind."""
    made: list[Peer] = []

    def make(*args: str) -> Peer:
        made.append(Peer(*args))
        return made[-1]

    yield make
    for each in made:
        await each.kill_if_running()


async def peer_member(
    make_client: MakeClient, tmp_path: Path, name: str, url: str
) -> tuple[Path, Path]:
    """A member that joined the room ``faults`` and left it to a peer process: its store
    and key file."""
    identity = e2echat.Identity.generate()
    key = tmp_path / f"{name}.key"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a test key, in clear on purpose
        identity.save(key, None, allow_unencrypted=True)
    member = await make_client(name, url, identity=identity)
    await member.join("faults")
    await member.close()
    return tmp_path / f"{name}-{identity.public_key.hex()[:8]}.sqlite3", key


async def test_a_writer_killed_mid_send_resumes_from_its_store(
    make_client: MakeClient, tmp_path: Path, peer: PeerFactory
) -> None:
    count = 40
    async with running_relay(tmp_path) as relay:
        owner = await make_client("owner", relay.url)
        room = await owner.create("faults")
        events = owner.events()
        store, key = await peer_member(make_client, tmp_path, "writer", relay.url)
        reader = Reader(await make_client("reader", relay.url))
        await reader.client.join("faults")
        await collect(events, 2, lambda e: isinstance(e, e2echat.MemberValidated))
        writer = peer("write", relay.url, str(store), str(key), "faults", str(count))
        await writer.start()
        lines = await writer.until("sent")
        assert lines[0] == ["resume", "0"]
        await writer.until("sent")  # under way: queued, sent, being confirmed
        await writer.kill()
        await writer.start()  # the same store: queued messages go out once, then the rest
        (resume, *_) = await writer.until("done")
        assert resume[0] == "resume"
        assert 0 < int(resume[1]) <= count
        await room.send(BARRIER)
        got = await reader.everything(count)
        assert_exactly_once_in_order(got, {"writer": [f"writer {i}" for i in range(count)]}, reader)
        await writer.stop()
        reader.stop()


async def test_a_reader_killed_and_restarted_gets_everything_once(
    make_client: MakeClient, tmp_path: Path, peer: PeerFactory
) -> None:
    count = 60
    async with running_relay(tmp_path) as relay:
        writer = await make_client("writer", relay.url)
        room = await writer.create("faults")
        events = writer.events()
        store, key = await peer_member(make_client, tmp_path, "reader", relay.url)
        await collect(events, 1, lambda e: isinstance(e, e2echat.MemberValidated))
        reader = peer("read", relay.url, str(store), str(key), "faults", BARRIER)
        await reader.start()
        await reader.until("ready")
        texts = [f"numbered {i}" for i in range(count)]
        for text in texts[: count // 2]:
            await room.send(text)
        seen = [int(line[1]) for line in await reader.until("got")]
        await reader.kill()  # mid-stream: some messages stored, some not yet received
        for text in texts[count // 2 :]:
            await room.send(text)  # sent while it is dead
        await reader.start()
        await room.send(BARRIER)
        lines = await reader.until("end")
        got = [int(line[1]) for line in lines if line[0] == "got"]
        history = [(int(line[1]), line[2]) for line in lines if line[0] == "history"]
        assert [text for _, text in history] == [*texts, BARRIER]
        assert [seq for seq, _ in history] == sorted({seq for seq, _ in history})
        assert not set(seen) & set(got), "a message was delivered again after the restart"
        assert got == sorted(got)
        stuck = {int(line[1]) for line in lines if line[0] == "undecryptable"}
        assert stuck <= {seq for seq, _ in history}
        await reader.stop()


MINUTE = 60_000
DAY = 24 * 60 * MINUTE
FRESHNESS = ("direct envelope is dated in the future", "direct envelope is too old")


def refused_for_freshness(reason: str) -> bool:
    """Whether a message is reported as waiting for a share refused for its date."""
    return "not arrived" not in reason and any(
        reason.startswith(f"its key share was refused: {why}") for why in FRESHNESS
    )


def assert_skew_reported(lines: list[list[str]], offset: int) -> None:
    (skewed,) = [line for line in lines if line[0] == "skewed"]
    assert abs(int(skewed[1]) - offset) < MINUTE


async def test_senders_with_skewed_clocks_are_reported_then_read_once_set_right(
    make_client: MakeClient, tmp_path: Path, peer: PeerFactory
) -> None:
    """Writers whose clocks are 20 minutes ahead and 8 days behind learn it at connect;
    the reader reports each of their messages with the freshness reason (never "not
    arrived"); once each runs again with its clock set right, every message follows,
    once, in order."""
    count = 15
    offsets = {"ahead": 20 * MINUTE, "behind": -8 * DAY}
    why = {"ahead": "dated in the future", "behind": "too old"}
    async with running_relay(tmp_path) as relay:
        owner = await make_client("owner", relay.url)
        room = await owner.create("faults")
        events = owner.events()
        members = {
            name: await peer_member(make_client, tmp_path, name, relay.url) for name in offsets
        }
        reader = Reader(await make_client("reader", relay.url))
        reports = reader.client.events()
        await reader.client.join("faults")
        await collect(events, 3, lambda e: isinstance(e, e2echat.MemberValidated))
        args = {
            name: ("write", relay.url, str(store), str(key), "faults", str(count))
            for name, (store, key) in members.items()
        }
        writers = {
            name: peer(*args[name], "--clock-offset", str(offsets[name])) for name in offsets
        }
        for name, writer in writers.items():
            await writer.start()
            assert_skew_reported(await writer.until("skewed"), offsets[name])
            await writer.until("done")
        reported: dict[int, str] = {}
        async with asyncio.timeout(CATCH_UP_TIMEOUT):
            async for event in reports:
                if isinstance(event, e2echat.Undecryptable):
                    assert event.sender is not None
                    assert event.waiting
                    assert refused_for_freshness(event.reason), event.reason
                    assert why[event.sender.name] in event.reason
                    reported[event.seq] = event.reason
                    if len(reported) == 2 * count:
                        break
        got: list[e2echat.Message[e2echat.Room]] = []
        for name, writer in writers.items():
            await writer.kill()
            await collect(reports, 1, functools.partial(offline, name=name))
            writers[name] = peer(*args[name])  # the same store, the clock set right
            await writers[name].start()
            lines = await writers[name].until("done")
            assert lines[0] == ["resume", str(count)]
            assert "skewed" not in [line[0] for line in lines]
            # its messages follow (it answers the key requests at once): all of them
            # before the next writer runs again
            got += await collect(reader.inbox, count, seconds=CATCH_UP_TIMEOUT)
        await room.send(BARRIER)
        (barrier,) = await collect(reader.inbox, 1)
        assert barrier.text == BARRIER
        assert {m.seq for m in got} == set(reported)
        expected = {name: [f"{name} {i}" for i in range(count)] for name in offsets}
        assert_exactly_once_in_order(got, expected, reader)
        for writer in writers.values():
            await writer.stop()
        reader.stop()


def offline(event: e2echat.Event, name: str) -> bool:
    """Whether ``event`` says the member called ``name`` went offline."""
    return (
        isinstance(event, e2echat.PresenceChanged)
        and event.member.name == name
        and event.member.status == "offline"
    )


async def test_a_reader_with_a_clock_days_ahead_is_told_why_then_reads_everything_once(
    make_client: MakeClient, tmp_path: Path, peer: PeerFactory
) -> None:
    """A reader 8 days ahead learns it at connect and reports each message with the
    freshness reason; run again with its clock set right, it gets each one once, in
    order, and nothing after the barrier."""
    count, offset = 20, 8 * DAY
    async with running_relay(tmp_path) as relay:
        writer = await make_client("writer", relay.url)
        room = await writer.create("faults")
        events = writer.events()
        store, key = await peer_member(make_client, tmp_path, "reader", relay.url)
        await collect(events, 1, lambda e: isinstance(e, e2echat.MemberValidated))
        args = ("read", relay.url, str(store), str(key), "faults", BARRIER)
        reader = peer(*args, "--clock-offset", str(offset))
        await reader.start()
        assert_skew_reported(await reader.until("skewed"), offset)
        texts = [f"numbered {i}" for i in range(count)]
        for text in texts:
            await room.send(text)
        reported: dict[int, str] = {}
        while len(reported) < count:
            (*before, (_, seq, reason)) = await reader.until("undecryptable")
            assert "got" not in [line[0] for line in before]
            assert refused_for_freshness(reason), reason
            reported[int(seq)] = reason
        await reader.kill()
        reader = peer(*args)  # the same store, the clock set right
        await reader.start()
        got: list[tuple[int, str]] = []
        while len(got) < count:
            (*before, (_, seq, text)) = await reader.until("got")
            assert "skewed" not in [line[0] for line in before]
            got.append((int(seq), text))
        await room.send(BARRIER)
        lines = await reader.until("end")
        assert lines[0][0] == "got"
        assert lines[0][2] == BARRIER
        assert [text for _, text in got] == texts
        assert [seq for seq, _ in got] == sorted(reported)
        history = [line[2] for line in lines if line[0] == "history"]
        assert history == [*texts, BARRIER]
        await reader.stop()
