"""A bot's life with its relay: a slow start, close codes, TLS, backlog, a relay that
lost its data."""

import asyncio
import dataclasses
import logging
import ssl
import typing
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trustme
from e2echat_server import Relay, RelayConfig
from e2echat_server.store import MemoryStore, RoomDeletionRecord, UserRecord

import e2echat
from e2echat.client.backoff import Backoff
from e2echat.client.models import FileInfo, Lookalike, Quote
from e2echat.protocol import CloseCode
from tests.client.conftest import CHEAP_KDF, FAST_POLICY, collect, relay_config
from tests.redis_server import free_port

FAST_BACKOFF = Backoff(initial=0.05, maximum=0.2)


class LogWaiter(logging.Handler):
    """Records of one logger, and a wait for the first that says something."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self._changed.set()

    def lines(self) -> list[str]:
        return [record.getMessage() for record in self.records]

    async def wait(self, predicate: Callable[[logging.LogRecord], bool]) -> logging.LogRecord:
        async with asyncio.timeout(10):
            while True:
                found = [r for r in self.records if predicate(r)]
                if found:
                    return found[0]
                self._changed.clear()
                await self._changed.wait()


@asynccontextmanager
async def watching(name: str) -> AsyncIterator[LogWaiter]:
    logger = logging.getLogger(name)
    waiter = LogWaiter()
    level = logger.level
    logger.addHandler(waiter)
    logger.setLevel(logging.DEBUG)
    try:
        yield waiter
    finally:
        logger.removeHandler(waiter)
        logger.setLevel(level)


def client(
    url: str, tmp_path: Path, name: str, identity: e2echat.Identity, **options: Any
) -> e2echat.Client:
    options.setdefault("backoff", FAST_BACKOFF)
    return e2echat.Client(
        url,
        identity=identity,
        name=name,
        store=tmp_path / f"{name}.sqlite3",
        policy=FAST_POLICY,
        password_limits=CHEAP_KDF,
        send_rate=1000.0,
        send_burst=1000,
        **options,
    )


# The first connection ---------------------------------------------------------------------


async def test_the_first_connect_waits_for_a_relay_that_starts_late(tmp_path: Path) -> None:
    port = free_port()
    bot = client(f"ws://127.0.0.1:{port}/", tmp_path, "bot", e2echat.Identity.generate())
    async with watching("e2echat") as log:
        connecting = asyncio.create_task(bot.connect())
        await log.wait(lambda r: "cannot reach the relay" in r.getMessage())  # a try failed
        config = msgspec.structs.replace(relay_config(tmp_path), port=port)
        async with Relay(config):
            await connecting
            assert bot.state is e2echat.ConnectionState.CONNECTED
            await bot.close()
    retry = next(line for line in log.lines() if "cannot reach" in line)
    assert f"trying ws://127.0.0.1:{port}/ in" in retry


async def test_a_first_connect_that_moves_on_names_the_url_that_failed(tmp_path: Path) -> None:
    dead = f"ws://127.0.0.1:{free_port()}/"
    async with Relay(relay_config(tmp_path)) as relay, watching("e2echat") as log:
        bot = client([dead, relay.url], tmp_path, "bot", e2echat.Identity.generate())
        await bot.connect()
        await bot.close()
        retry = next(line for line in log.lines() if "cannot reach" in line)
        assert retry.startswith(f"{dead}: cannot reach the relay: ")
        assert f"; trying {relay.url} in" in retry


class StoreDownOnce(MemoryStore):
    """A store whose first write of a user fails, as a Redis restarting would."""

    failed = False

    async def put_user(self, user: UserRecord) -> None:
        if not self.failed:
            self.failed = True
            raise OSError("the store is restarting")
        await super().put_user(user)


async def test_a_relay_that_cannot_save_us_at_connect_is_tried_again(tmp_path: Path) -> None:
    store = StoreDownOnce()
    async with Relay(relay_config(tmp_path), store=store) as relay, watching("e2echat") as log:
        bot = client(relay.url, tmp_path, "bot", e2echat.Identity.generate())
        await bot.connect()  # not an AuthError: the identity was never refused
        assert bot.state is e2echat.ConnectionState.CONNECTED
        await bot.close()
    assert store.failed
    assert any("the relay cannot serve us now" in line for line in log.lines())


async def test_the_first_connect_gives_up_after_its_timeout(tmp_path: Path) -> None:
    url = f"ws://127.0.0.1:{free_port()}/"
    bot = client(url, tmp_path, "bot", e2echat.Identity.generate(), connect_timeout=1.0)
    async with watching("e2echat") as log:
        loop = asyncio.get_running_loop()
        began = loop.time()
        with pytest.raises(e2echat.ConnectError, match="cannot reach the relay"):
            await bot.connect()
        assert loop.time() - began >= 1.0
    # it did retry: every failed try logs "cannot reach" (with "trying" while time is
    # left, the last one with "closed"); how many tries fit in the timeout is the
    # machine's load, not the client's (a second "trying" line is not sure to come)
    assert sum("cannot reach the relay" in line for line in log.lines()) >= 2
    assert bot.state is e2echat.ConnectionState.CLOSED


# Close codes ------------------------------------------------------------------------------


def _closes(log: LogWaiter) -> list[int]:
    return [r.__dict__["fields"]["close"] for r in log.records if r.getMessage() == "session"]


async def test_close_codes_on_both_sides(tmp_path: Path) -> None:
    identity = e2echat.Identity.generate()
    async with watching("e2echat_server.access") as access, Relay(relay_config(tmp_path)) as relay:
        async with client(relay.url, tmp_path, "bot", identity):
            pass
        await access.wait(lambda r: r.getMessage() == "session")
        assert _closes(access) == [1000]  # a normal close: not a relay bug

        with pytest.raises(RuntimeError, match="the program failed"):
            async with client(relay.url, tmp_path, "bot", identity):
                raise RuntimeError("the program failed")
        await access.wait(lambda r: len(_closes(access)) == 2)
        assert _closes(access) == [1000, 1001]  # the program is going away

        bot = client(relay.url, tmp_path, "bot", identity)
        await bot.connect()
        await bot.close(going_away=True)
        await access.wait(lambda r: len(_closes(access)) == 3)
        assert _closes(access)[2] == 1001

        bot = client(relay.url, tmp_path, "bot", identity)
        await bot.connect()
        events = bot.events()
    # the relay stopped: it said 1001, and the bot says why it reconnects
    (changed,) = await collect(
        events,
        1,
        lambda e: (
            isinstance(e, e2echat.ConnectionChanged)
            and e.state is e2echat.ConnectionState.RECONNECTING
        ),
    )
    assert isinstance(changed, e2echat.ConnectionChanged)
    assert "1001, going away" in (changed.detail or "")
    await bot.close()
    assert _closes(access)[3] == 1001  # the relay's own close, as its access log shows it


def reconnecting(event: e2echat.Event) -> bool:
    return (
        isinstance(event, e2echat.ConnectionChanged)
        and event.state is e2echat.ConnectionState.RECONNECTING
    )


async def test_a_ban_is_reported_as_the_relay_closing_the_connection(tmp_path: Path) -> None:
    identity = e2echat.Identity.generate()
    async with Relay(relay_config(tmp_path)) as relay:
        bot = client(relay.url, tmp_path, "bot", identity)
        await bot.connect()
        events = bot.events()
        await relay.ban(identity.public_key)
        (changed,) = await collect(events, 1, reconnecting)
        await bot.close()
    assert isinstance(changed, e2echat.ConnectionChanged)
    # the relay was reached: it closed the connection, and says why
    assert changed.detail == (
        "the relay closed the connection (4401, This key is banned from this relay.)"
    )


class StoreLostOnce(MemoryStore):
    """A store whose next read fails once ``lose`` is set, as one whose Redis went away."""

    lose = False

    async def deletions(self, key: bytes, now: int) -> list[RoomDeletionRecord]:
        if self.lose:
            self.lose = False
            raise OSError("Redis went away")
        return await super().deletions(key, now)


async def test_a_relay_whose_store_failed_closes_1013_and_the_bot_comes_back(
    tmp_path: Path,
) -> None:
    identity, store = e2echat.Identity.generate(), StoreLostOnce()
    async with Relay(relay_config(tmp_path), store=store) as relay:
        bot = client(relay.url, tmp_path, "bot", identity)
        await bot.connect()
        events = bot.events()
        store.lose = True  # the next welcome is followed by the store failing
        session = relay.sessions.live(identity.public_key)
        assert session is not None
        await session.conn.close(CloseCode.POLICY, "Closed by the test.")
        changed = await collect(events, 4, lambda e: isinstance(e, e2echat.ConnectionChanged))
        await bot.close()
    changes = [c for c in changed if isinstance(c, e2echat.ConnectionChanged)]
    assert [c.state for c in changes] == [
        e2echat.ConnectionState.RECONNECTING,
        e2echat.ConnectionState.CONNECTED,  # welcomed, then the relay failed
        e2echat.ConnectionState.RECONNECTING,
        e2echat.ConnectionState.CONNECTED,  # and it came back on its own
    ]
    assert changes[2].detail == (
        "the relay closed the connection (1013, The relay's store failed; reconnect shortly.)"
    )


async def test_a_failover_logs_the_url_that_ended_and_the_one_dialled(tmp_path: Path) -> None:
    identity = e2echat.Identity.generate()
    async with Relay(relay_config(tmp_path / "b")) as other, watching("e2echat") as log:
        first = Relay(relay_config(tmp_path / "a"))
        await first.start()
        bot = client([first.url, other.url], tmp_path, "bot", identity)
        try:
            await bot.connect()
            events = bot.events()
            gone, next_url = first.url, other.url
            await first.close()
            await collect(events, 1, reconnecting)
        finally:
            await bot.close()
    line = next(line for line in log.lines() if line.startswith("reconnecting"))
    assert line == (
        f"reconnecting to {next_url} after {gone}: the relay closed the connection"
        " (1001, going away: the relay is restarting or stopping)"
    )


# TLS ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    directory = tmp_path_factory.mktemp("tls")
    chain, key, ca_file = directory / "chain.pem", directory / "key.pem", directory / "ca.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(chain))
    cert.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    return chain, key, ca_file


async def test_tls_with_a_ca_file_or_a_context(
    tmp_path: Path, tls_files: tuple[Path, Path, Path]
) -> None:
    chain, key, ca_file = tls_files
    config = RelayConfig(port=0, memory=True, tls_cert=chain, tls_key=key, data_dir=tmp_path / "r")
    identity = e2echat.Identity.generate()
    async with Relay(config) as relay:
        assert relay.url.startswith("wss://")
        async with client(relay.url, tmp_path, "a", identity, ssl=ca_file) as alice:
            await alice.room("tls", create=True)
        context = ssl.create_default_context(cafile=str(ca_file))
        async with client(relay.url, tmp_path, "a", identity, ssl=context) as alice:
            assert alice.get_room("tls") is not None

        untrusted = client(relay.url, tmp_path, "b", identity, connect_timeout=0)
        with pytest.raises(e2echat.ConnectError, match=r"certificate verify failed.*ssl="):
            await untrusted.connect()

        plain = "ws://" + relay.url.removeprefix("wss://")
        wrong = client(plain, tmp_path, "c", identity, connect_timeout=0)
        with pytest.raises(e2echat.ConnectError, match=f"answers in TLS: use {relay.url}"):
            await wrong.connect()


def test_a_ca_file_that_is_not_one_is_refused_before_any_io(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("not a certificate")
    for bad in (tmp_path / "missing.pem", tmp_path / "ca.pem"):
        with pytest.raises(e2echat.InvalidInput, match="as a CA file"):
            client("wss://127.0.0.1:9/", tmp_path, "x", e2echat.Identity.generate(), ssl=bad)


# Backlog ------------------------------------------------------------------------------------


async def test_backlog_is_marked_and_can_be_skipped(tmp_path: Path) -> None:
    identity = e2echat.Identity.generate()
    async with AsyncExitStack() as stack, Relay(relay_config(tmp_path)) as relay:
        alice = await stack.enter_async_context(
            client(relay.url, tmp_path, "alice", e2echat.Identity.generate())
        )
        room = await alice.room("dice", create=True)
        async with client(relay.url, tmp_path, "bot", identity) as bot:
            inbox = bot.messages()
            await bot.room("dice")
            await room.send("!roll live")
            (live,) = await collect(inbox, 1)
            assert live.live
        await room.send("!roll while the bot was away")

        async with client(relay.url, tmp_path, "bot", identity) as bot:
            inbox = bot.messages()
            await room.send("!roll after the restart")
            old, new = await collect(inbox, 2)
            assert [(m.text, m.live) for m in (old, new)] == [
                ("!roll while the bot was away", False),
                ("!roll after the restart", True),
            ]
        await room.send("!roll while the bot was away again")

        async with client(relay.url, tmp_path, "bot", identity, skip_backlog=True) as bot:
            inbox = bot.messages()
            await room.send("!roll after the second restart")
            (first,) = await collect(inbox, 1)
            assert (first.text, first.live) == ("!roll after the second restart", True)
            dice = bot.get_room("dice")
            assert dice is not None
            history = [m.text for m in await dice.history()]
            assert "!roll while the bot was away again" in history  # kept, not handled


# A relay that lost its data -----------------------------------------------------------------


async def test_rooms_a_relay_lost_are_rejoined(tmp_path: Path) -> None:
    port = free_port()
    config = msgspec.structs.replace(relay_config(tmp_path), port=port)
    identity = e2echat.Identity.generate()
    async with AsyncExitStack() as stack, watching("e2echat") as log:
        relay = await stack.enter_async_context(Relay(config))
        bot = await stack.enter_async_context(
            client(relay.url, tmp_path, "bot", identity, rejoin=True)
        )
        await bot.room("lobby", create=True)
        await bot.room("ops", create=True, password="correct horse")
        await bot.room("vault", create=True, access="invite")
        invite = bot.get_room("vault").invite()  # type: ignore[union-attr]
        events = bot.events()
        await relay.close()  # its memory store is gone with it
        async with Relay(config) as relay:  # a new relay on the same port knows nothing
            lost_and_back = await collect(
                events, 6, lambda e: isinstance(e, e2echat.RoomLost | e2echat.RoomJoined)
            )
            assert sorted(type(e).__name__ for e in lost_and_back) == 3 * ["RoomJoined"] + 3 * [
                "RoomLost"
            ]
            assert sorted(room.name for room in bot.rooms) == ["lobby", "ops", "vault"]
            async with client(relay.url, tmp_path, "alice", e2echat.Identity.generate()) as alice:
                inbox = bot.messages()
                ops = await alice.room("ops", password="correct horse")  # the same password
                vault = await alice.join("vault", invite=invite)  # and the same invite
                await ops.send("hello ops")
                await vault.send("hello vault")
                got = await collect(inbox, 2)
                assert sorted(m.text for m in got) == ["hello ops", "hello vault"]  # type: ignore[union-attr]
    lines = log.lines()
    for name in ("lobby", "ops", "vault"):
        assert f"room {name!r} was lost: the relay no longer lists us there; rejoining" in lines
        assert f"room {name!r} rejoined (created again, as it was)" in lines


async def test_without_rejoin_a_lost_room_stays_lost(tmp_path: Path) -> None:
    port = free_port()
    config = msgspec.structs.replace(relay_config(tmp_path), port=port)
    async with AsyncExitStack() as stack, watching("e2echat") as log:
        relay = await stack.enter_async_context(Relay(config))
        bot = await stack.enter_async_context(
            client(relay.url, tmp_path, "bot", e2echat.Identity.generate())
        )
        await bot.room("lobby", create=True)
        events = bot.events()
        await relay.close()
        async with Relay(config):
            (lost,) = await collect(events, 1, lambda e: isinstance(e, e2echat.RoomLost))
            assert isinstance(lost, e2echat.RoomLeft)  # a handler of RoomLeft sees it too
            assert bot.rooms == []
    assert "room 'lobby' was lost: the relay no longer lists us there" in log.lines()


# Warnings and reprs -------------------------------------------------------------------------


def test_run_warns_of_a_clear_key_at_the_callers_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("E2ECHAT_HOME", str(tmp_path))
    monkeypatch.delenv("E2ECHAT_PASSPHRASE", raising=False)
    monkeypatch.delenv("E2ECHAT_PASSPHRASE_FILE", raising=False)

    async def setup(chat: e2echat.Client) -> None:
        raise AssertionError("never connected")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(SystemExit):
            e2echat.run(
                setup,
                "ws://127.0.0.1:9/",
                name="clear",
                allow_unencrypted=True,
                log_level=None,
                connect_timeout=0,
            )
    clear = [w for w in caught if w.category is e2echat.UnencryptedKeyWarning]
    assert [w.filename for w in clear] == [__file__]


def _public_values() -> list[type]:
    found: list[type] = [e2echat.Message, e2echat.Member, Quote, FileInfo, Lookalike]
    pending = [e2echat.Event]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending += cls.__subclasses__()
    return found


@pytest.mark.parametrize("value", _public_values(), ids=lambda cls: cls.__name__)
def test_no_repr_shows_raw_bytes(value: type) -> None:
    hints = typing.get_type_hints(value)
    shown = [f.name for f in dataclasses.fields(value) if f.repr]
    assert not [name for name in shown if "bytes" in str(hints[name])], value
