"""The bot author's surface: no footguns at registration, on files, in errors and reprs."""

import asyncio
import functools
import logging
import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
from e2echat_server import Relay

import e2echat
from e2echat.client import kdfcost
from e2echat.client.handlers import HandlerRunner
from e2echat.client.pubsub import Hub
from e2echat.crypto.identity import INTERACTIVE, MODERATE
from e2echat.protocol import RelayFrame, Sent
from tests.client.conftest import MakeClient, collect
from tests.client.proxy import evil_proxy

CHEAP = kdfcost.FAST


def _client(tmp_path: Path, name: str = "bot") -> e2echat.Client:
    return e2echat.Client(
        "ws://127.0.0.1:9/",
        identity=e2echat.Identity.generate(),
        name=name,
        store=tmp_path / f"{name}.sqlite3",
        connect_timeout=0,
    )


# Handlers ---------------------------------------------------------------------------


def test_a_plain_def_handler_is_refused_at_registration(tmp_path: Path) -> None:
    chat = _client(tmp_path)

    def sync_handler(msg: e2echat.Message) -> None:
        pass

    with pytest.raises(TypeError, match="sync_handler must be an async function"):
        chat.on_message(sync_handler)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="async function"):
        chat.on_event(lambda event: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match="async function"):
        chat.on(e2echat.MemberJoined)(sync_handler)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Message or an Event class"):
        chat.on(int)  # type: ignore[type-var]
    assert chat._handlers == []


def test_async_callables_of_every_shape_are_accepted(tmp_path: Path) -> None:
    chat = _client(tmp_path)

    async def handler(msg: e2echat.Message, prefix: str) -> None:
        pass

    class Callback:
        async def __call__(self, msg: e2echat.Message) -> None:
            pass

        async def method(self, msg: e2echat.Message) -> None:
            pass

    chat.on_message(functools.partial(handler, prefix="> "))
    chat.on_message(Callback())
    chat.on_message(Callback().method)
    assert len(chat._handlers) == 3


async def test_typed_handlers_get_only_their_kind(make_client: MakeClient) -> None:
    alice = await make_client("alice")
    joined: asyncio.Queue[e2echat.MemberJoined] = asyncio.Queue()
    others: list[e2echat.Event] = []

    @alice.on(e2echat.MemberJoined)
    async def greet(event: e2echat.MemberJoined) -> None:
        await joined.put(event)

    @alice.on(e2echat.Event)
    async def everything(event: e2echat.Event) -> None:
        others.append(event)

    await alice.room("lobby", create=True)
    bob = await make_client("bob")
    await bob.room("lobby")
    event = await asyncio.wait_for(joined.get(), 10)
    assert isinstance(event, e2echat.MemberJoined)
    assert event.member.name == "bob"
    assert any(not isinstance(e, e2echat.MemberJoined) for e in others)


@dataclass(frozen=True)
class _Room:
    id: bytes


@dataclass(frozen=True)
class _Item:
    room: _Room
    n: int


async def test_concurrent_handlers_keep_each_rooms_order() -> None:
    hub: Hub[_Item] = Hub()
    seen: dict[bytes, list[int]] = {b"a": [], b"b": []}
    b_done, a_done = asyncio.Event(), asyncio.Event()

    async def handle(item: _Item) -> None:
        if item.room.id == b"a" and item.n == 0:
            # a slow answer in room a: room b must go on meanwhile
            await asyncio.wait_for(b_done.wait(), 10)
        seen[item.room.id].append(item.n)
        if len(seen[item.room.id]) == 3:
            (a_done if item.room.id == b"a" else b_done).set()

    runner = HandlerRunner(handle, hub.subscribe(), None, concurrent=True, lane_limit=100)
    runner.start()
    for n in range(3):
        hub.publish(_Item(_Room(b"a"), n))
    for n in range(3):
        hub.publish(_Item(_Room(b"b"), n))
    await asyncio.wait_for(a_done.wait(), 10)
    assert seen == {b"a": [0, 1, 2], b"b": [0, 1, 2]}
    await runner.stop(None)


async def test_sequential_handlers_take_one_item_at_a_time() -> None:
    hub: Hub[_Item] = Hub()
    running = 0
    peak = 0
    done = asyncio.Event()

    async def handle(item: _Item) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0)
        running -= 1
        if item.n == 3:
            done.set()

    runner = HandlerRunner(handle, hub.subscribe(), None, concurrent=False, lane_limit=100)
    runner.start()
    for n in range(4):
        hub.publish(_Item(_Room(bytes([n])), n))
    await asyncio.wait_for(done.wait(), 10)
    assert peak == 1
    await runner.stop(None)


# Identity files -----------------------------------------------------------------------


def test_save_refuses_to_replace_an_identity(tmp_path: Path) -> None:
    path = tmp_path / "identity.key"
    first, second = e2echat.Identity.generate(), e2echat.Identity.generate()
    first.save(path, "pw", limits=CHEAP)
    with pytest.raises(e2echat.IdentityExists, match="overwrite=True"):
        second.save(path, "pw", limits=CHEAP)
    with pytest.raises(e2echat.IdentityExists):
        second.save(path, None, allow_unencrypted=True)
    assert e2echat.Identity.load(path, "pw").public_key == first.public_key
    second.save(path, "pw", limits=CHEAP, overwrite=True)
    assert e2echat.Identity.load(path, "pw").public_key == second.public_key
    assert [p.name for p in tmp_path.iterdir()] == ["identity.key"]  # no temporary left


def test_load_or_create_makes_one_identity_and_keeps_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("E2ECHAT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("E2ECHAT_PASSPHRASE_FILE", raising=False)
    monkeypatch.delenv("E2ECHAT_PASSPHRASE", raising=False)
    with pytest.raises(e2echat.PassphraseRequired, match="allow_unencrypted"):
        e2echat.Identity.load_or_create()
    assert not (tmp_path / "home").exists()
    monkeypatch.setenv("E2ECHAT_PASSPHRASE", "a long passphrase")
    kdfcost.enable_fast_kdf_for_tests()
    try:
        made = e2echat.Identity.load_or_create()
        again = e2echat.Identity.load_or_create()
    finally:
        kdfcost.disable_fast_kdf()
    assert made.public_key == again.public_key
    assert e2echat.default_identity_path().exists()


def test_passphrase_from_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "id.key"
    identity = e2echat.Identity.generate()
    identity.save(path, "from a file", limits=CHEAP)
    secret = tmp_path / "passphrase"
    secret.write_text("from a file\n")
    monkeypatch.delenv("E2ECHAT_PASSPHRASE", raising=False)
    monkeypatch.setenv("E2ECHAT_PASSPHRASE_FILE", str(secret))
    assert e2echat.Identity.load(path).public_key == identity.public_key
    monkeypatch.setenv("E2ECHAT_PASSPHRASE", "from a file")
    with pytest.raises(e2echat.PassphraseRequired, match="not both"):
        e2echat.Identity.load(path)
    monkeypatch.delenv("E2ECHAT_PASSPHRASE")
    secret.write_text("\n")
    with pytest.raises(e2echat.PassphraseRequired, match="is empty"):
        e2echat.Identity.load(path)
    monkeypatch.setenv("E2ECHAT_PASSPHRASE_FILE", str(tmp_path / "missing"))
    with pytest.raises(e2echat.PassphraseRequired, match="cannot read"):
        e2echat.Identity.load(path)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_key_and_store_files_are_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_client: MakeClient
) -> None:
    old_umask = os.umask(0o022)
    try:
        monkeypatch.setenv("E2ECHAT_HOME", str(tmp_path / "deep" / "home"))
        identity = e2echat.Identity.generate()
        identity.save(e2echat.default_identity_path(), "pw", limits=CHEAP)
        assert _mode(e2echat.default_identity_path()) == 0o600
        assert _mode(tmp_path / "deep" / "home") == 0o700
        assert _mode(tmp_path / "deep") == 0o700
        relay_url = (await make_client("probe")).url
        async with e2echat.Client(relay_url, identity=identity, name="private") as chat:
            await chat.room("files", create=True)
            store = e2echat.default_store_path(identity)
            companions = [store, *store.parent.glob(store.name + "-*")]
            assert len(companions) >= 2  # the WAL is open
            assert {_mode(p) for p in companions} == {0o600}
            assert _mode(store.parent) == 0o700
    finally:
        os.umask(old_umask)


def test_a_loose_existing_home_is_tightened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    monkeypatch.setenv("E2ECHAT_HOME", str(home))
    e2echat.Identity.generate().save(e2echat.default_identity_path(), "pw", limits=CHEAP)
    assert _mode(home) == 0o700


def test_unencrypted_key_warning_points_at_the_callers_line(tmp_path: Path) -> None:
    identity = e2echat.Identity.generate()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        identity.save(tmp_path / "a.key", None, allow_unencrypted=True)
        e2echat.Identity.load_or_create(tmp_path / "b.key", allow_unencrypted=True)
    assert [w.category for w in caught] == [e2echat.UnencryptedKeyWarning] * 2
    assert {w.filename for w in caught} == {__file__}


def test_the_fast_key_derivation_is_for_tests_only(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (kdfcost.identity_limits(), kdfcost.password_limits()) == (MODERATE, INTERACTIVE)
    client = e2echat.Client("ws://127.0.0.1:1/", identity=e2echat.Identity.generate(), name="x")
    assert client._password_limits is None  # the real cost, chosen when a password is used
    monkeypatch.delenv("PYTEST_CURRENT_TEST")
    with pytest.raises(RuntimeError, match="only be enabled while pytest runs a test"):
        kdfcost.enable_fast_kdf_for_tests()
    assert kdfcost.identity_limits() == MODERATE
    monkeypatch.setenv("PYTEST_CURRENT_TEST", "x")
    kdfcost.enable_fast_kdf_for_tests()
    try:
        assert kdfcost.identity_limits() == kdfcost.password_limits() == CHEAP
        monkeypatch.delenv("PYTEST_CURRENT_TEST")  # e.g. a thread still running after the test
        assert kdfcost.identity_limits() == MODERATE
    finally:
        kdfcost.disable_fast_kdf()


# Errors and reprs ---------------------------------------------------------------------


async def test_each_refusal_has_its_own_class(make_client: MakeClient, tmp_path: Path) -> None:
    with pytest.raises(e2echat.InvalidName):
        e2echat.Client("ws://x/", identity=e2echat.Identity.generate(), name="bad\u202ename")
    alice = await make_client("alice")
    with pytest.raises(e2echat.InvalidName):
        await alice.room("bad name!")
    with pytest.raises(e2echat.NoSuchRoom) as no_room:
        await alice.room("nowhere")
    assert no_room.value.code == "no_such_room"
    room = await alice.room("here", create=True)
    with pytest.raises(e2echat.EmptyMessage):
        await room.send("")
    with pytest.raises(e2echat.MessageTooLong, match="too long"):
        await room.send("x" * 100_000)
    with pytest.raises(e2echat.BadStatus):
        await alice.set_status("sleeping")
    with pytest.raises(e2echat.BadStatus):
        await alice.set_status("away", "x" * 10_000)
    with pytest.raises(e2echat.NameTaken):
        await alice.create("here")
    with pytest.raises(e2echat.InvalidRoomOption):
        await alice.room("there", create=True, access="secret")  # type: ignore[arg-type]
    with pytest.raises(e2echat.WrongAccess):
        room.invite()
    with pytest.raises(e2echat.AlreadyConnected):
        await alice.connect()
    for error in (e2echat.EmptyMessage, e2echat.InvalidName, e2echat.BadStatus):
        assert issubclass(error, e2echat.InvalidInput)
        assert issubclass(error, ValueError)
        assert issubclass(error, e2echat.E2EChatError)


async def test_a_text_over_its_limit_is_refused_naming_the_limit_before_any_io(
    make_client: MakeClient, tmp_path: Path
) -> None:
    """A description or status text longer than the protocol allows (it counts
    characters) is refused with that limit, not the frame decoder's wording, and before
    any I/O: an unopened client says so instead of NotConnected."""
    unopened = e2echat.Client("ws://127.0.0.1:9/", identity=e2echat.Identity.generate())
    with pytest.raises(e2echat.BadStatus, match=r"^A status text has at most 64 characters;"):
        await unopened.set_status("away", "x" * 65)
    too_long = "é" * 201
    with pytest.raises(e2echat.InvalidRoomOption, match=r"^A room description has at most 200"):
        await unopened.create("long", description=too_long)
    alice = await make_client("alice")
    with pytest.raises(e2echat.InvalidRoomOption, match="at most 200 characters; this one has 201"):
        await alice.room("long", create=True, description=too_long)
    with pytest.raises(e2echat.NoSuchRoom):  # neither call made the room
        await alice.join("long")
    await alice.set_status("away", "x" * 64)  # the limit itself is allowed
    room = await alice.create("long", description="d" * 200)
    assert room.description == "d" * 200


async def test_a_store_in_use_is_its_own_error(make_client: MakeClient, tmp_path: Path) -> None:
    alice = await make_client("alice")
    twin = e2echat.Client(
        alice.url, identity=alice._identity, name="alice", store=alice._store_path
    )
    with pytest.raises(e2echat.StoreInUse, match="in use by another e2echat client"):
        await twin.connect()
    assert issubclass(e2echat.StoreInUse, e2echat.StoreError)


async def test_reprs_show_fingerprints_not_keys(make_client: MakeClient) -> None:
    alice = await make_client("alice")
    bob = await make_client("bob")
    await alice.room("reprs", create=True)
    events = alice.events()
    await bob.room("reprs")
    (joined,) = await collect(events, 1, lambda e: isinstance(e, e2echat.MemberJoined))
    text = repr(joined) + repr(alice._identity) + repr(bob.get_room("reprs"))
    for key in (alice.key, bob.key):
        assert key.hex() not in text
        assert repr(key) not in text
    assert e2echat.Identity.load is not None
    assert bob._identity.fingerprint in repr(joined)
    assert alice._identity.fingerprint in repr(alice._identity)


async def test_the_clients_key_is_read_only_and_the_one_members_see(
    make_client: MakeClient,
) -> None:
    alice, bob = await make_client("alice"), await make_client("bob")
    await alice.room("keys", create=True)
    room = await bob.room("keys")
    assert alice.key == alice._identity.public_key
    assert (type(alice.key), len(alice.key)) == (bytes, 32)
    members = {member.name: member for member in await room.members()}
    assert (members["alice"].key, members["bob"].key) == (alice.key, bob.key)
    assert members["bob"].is_me
    with pytest.raises(AttributeError):
        alice.key = bob.key  # type: ignore[misc]
    assert alice.key == alice._identity.public_key


# Rooms in one call ------------------------------------------------------------------------


async def test_room_joins_or_creates(make_client: MakeClient) -> None:
    alice = await make_client("alice")
    bob = await make_client("bob")
    mine = await alice.room("ops", create=True, password="s3cret")
    assert mine.secret
    assert await alice.room("ops") is mine  # already in it: no I/O
    theirs = await bob.room("ops", create=True, password="s3cret")
    assert theirs.id == mine.id
    with pytest.raises(e2echat.InvalidRoomOption):
        await bob.room("ops2", create=True, access="password")
    invite_room = await alice.room("hideout", create=True, access="invite")
    with pytest.raises(e2echat.SecretRequired, match="invite only"):
        await bob.room("hideout", create=True)
    joined = await bob.room("hideout", invite=invite_room.invite())
    assert joined.id == invite_room.id


# Flush and close ------------------------------------------------------------------------


async def test_flush_waits_for_the_outbox_and_close_counts_what_is_left(
    make_client: MakeClient, relay: Relay, caplog: pytest.LogCaptureFixture
) -> None:
    async with evil_proxy(relay.url) as proxy:
        alice = await make_client("alice", proxy.url)
        room = await alice.room("news", create=True)
        assert await alice.flush() == 0
        lost = asyncio.Event()

        def lose_send_replies(frame: RelayFrame) -> list[RelayFrame]:
            if isinstance(frame, Sent) and (frame.id or "").startswith("o"):
                lost.set()
                return []
            return [frame]

        proxy.rewrite = lose_send_replies
        sending = asyncio.create_task(room.send("unconfirmed"))
        await asyncio.wait_for(lost.wait(), 10)
        sending.cancel()  # the message stays queued: the relay never confirmed it
        assert await alice.flush(timeout=0.05) == 1
        proxy.rewrite = lambda frame: [frame]
        await proxy.close_all()  # reconnect: the outbox goes out again, confirmed this time
        assert await alice.flush() == 0

        proxy.rewrite = lose_send_replies
        lost.clear()
        sending = asyncio.create_task(room.send("left behind"))
        await asyncio.wait_for(lost.wait(), 10)
        with caplog.at_level(logging.WARNING, "e2echat"):
            assert await alice.close() == 1
        assert "closed with 1 message still queued" in caplog.text
        assert (await sending).seq == 0  # returned queued


# e2echat.run -------------------------------------------------------------------------------


def test_run_turns_a_refusal_at_start_into_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("E2ECHAT_HOME", str(tmp_path))
    monkeypatch.setenv("E2ECHAT_PASSPHRASE", "pw")
    monkeypatch.delenv("E2ECHAT_PASSPHRASE_FILE", raising=False)
    e2echat.Identity.generate().save(e2echat.bot_identity_path("x"), "pw", limits=CHEAP)

    async def setup(chat: e2echat.Client) -> None:
        raise AssertionError("never connected")

    with pytest.raises(SystemExit) as exited:
        e2echat.run(setup, "ws://127.0.0.1:9/", name="x", log_level=None, connect_timeout=0)
    assert str(exited.value.code).startswith("e2echat: cannot reach the relay")


def test_run_refuses_what_it_cannot_run() -> None:
    async def main() -> None:
        pass

    with pytest.raises(TypeError, match="needs the relay URL"):
        e2echat.run(lambda chat: main(), log_level=None)
    with pytest.raises(TypeError, match="takes no client options"):
        e2echat.run(main(), "ws://x/", log_level=None)
    with pytest.raises(TypeError, match="async setup function or a coroutine"):
        e2echat.run(42, log_level=None)  # type: ignore[arg-type]
    e2echat.run(main(), log_level=None)


def test_bot_identities_are_one_per_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("E2ECHAT_HOME", str(tmp_path))
    assert e2echat.bot_identity_path("roll-bot") == tmp_path / "bots" / "roll-bot.key"
    assert e2echat.bot_identity_path("../x y").parent == tmp_path / "bots"


async def test_connection_changes_are_logged_at_info(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, "e2echat"):
        alice = await make_client("alice")
        await alice.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "e2echat"]
    assert f"connected {alice.url}" in lines
    assert f"closed {alice.url}" in lines


async def test_member_arguments_take_a_member_or_its_key_and_refuse_the_rest(
    make_client: MakeClient,
) -> None:
    alice, bob = await make_client("alice"), await make_client("bob")
    room = await alice.room("mods", create=True, password="s3cret")
    events = alice.events()
    await bob.room("mods", password="s3cret")
    await collect(events, 1, lambda e: isinstance(e, e2echat.MemberValidated))
    log = await room.changes()
    assert room.role(bob.key) == "member"
    for bad in ("bob", b"short", 7):
        for action in (room.kick, room.ban, room.unban, alice.mark_verified, alice.unverify):
            with pytest.raises(e2echat.InvalidInput, match="a 32-byte public key"):
                await action(bad)  # type: ignore[arg-type]
        with pytest.raises(e2echat.InvalidInput, match="a 32-byte public key"):
            await room.set_role(bad, "admin")  # type: ignore[arg-type]
        with pytest.raises(e2echat.InvalidInput, match="a 32-byte public key"):
            await alice.set_petname(bad, "B.")  # type: ignore[arg-type]
        with pytest.raises(e2echat.InvalidInput, match="a 32-byte public key"):
            room.role(bad)  # type: ignore[arg-type]
        with pytest.raises(e2echat.InvalidInput, match="a 32-byte public key"):
            alice.safety_number(bad)  # type: ignore[arg-type]
    assert await room.changes() == log
    await room.set_role(bob.key, "admin")
    assert room.role(bob.key) == "admin"
    assert alice.safety_number(bob.key) == alice.safety_number(
        next(m for m in room.member_list if m.name == "bob")
    )


async def test_an_empty_password_and_a_negative_limit_are_invalid_input(
    make_client: MakeClient,
) -> None:
    alice = await make_client("alice")
    room = await alice.room("vault", create=True, password="s3cret")
    await room.send("one")
    for attempt in (
        lambda: alice.create("other", password=""),
        lambda: alice.join("vault", password=""),
        lambda: room.change_password(""),
        lambda: room.history(-1),
    ):
        with pytest.raises(e2echat.InvalidInput):
            await attempt()
    assert room.epoch == 0
    assert alice.get_room("other") is None
    assert [m.text for m in await room.history(0)] == []


async def test_a_text_that_is_not_a_string_and_a_mention_that_is_not_a_member_are_refused(
    make_client: MakeClient,
) -> None:
    alice, bob = await make_client("alice"), await make_client("bob")
    room = await alice.room("texts", create=True)
    await bob.room("texts")
    sent = await room.send("fine")
    for attempt in (
        lambda: room.send(123),  # type: ignore[arg-type]
        lambda: room.send(b"bytes"),  # type: ignore[arg-type]
        lambda: room.send("hi", mentions=["bob"]),  # type: ignore[list-item]
        lambda: sent.edit(None),  # type: ignore[arg-type]
    ):
        with pytest.raises(e2echat.InvalidInput):
            await attempt()
    assert await room.pending() == []
    assert [m.text for m in await room.history()] == ["fine"]
    mentioned = await room.send("hi", mentions=[bob.key])
    assert [m.name for m in mentioned.mentions] == ["bob"]
