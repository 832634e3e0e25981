"""A room the relay's operator deletes: its members are told why and forget it, those
away at their next connection, and a bot that rejoins lost rooms does not create it."""

import base64
import json
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner
from e2echat_server import Relay
from e2echat_server.cli import app

import e2echat
from e2echat.protocol import RoomDeletion
from tests.client.conftest import CHEAP_KDF, FAST_POLICY, MakeClient, collect, validated
from tests.client.proxy import EvilProxy, evil_proxy
from tests.client.test_bot_ops import client, watching
from tests.redis_server import RedisServer
from tests.server.conftest import require_redis_server
from tests.server.test_cluster_process import node
from tests.server.test_process import relay_process


async def test_a_live_member_is_told_and_forgets_the_room_without_rejoining(
    tmp_path: Path, relay: Relay, make_client: MakeClient
) -> None:
    alice = await make_client("alice")
    room = await alice.create("lobby")
    bob = e2echat.Client(  # rejoin=True would create a lost room again: not a deleted one
        relay.url,
        identity=e2echat.Identity.generate(),
        name="bob",
        store=tmp_path / "bob.sqlite3",
        policy=FAST_POLICY,
        password_limits=CHEAP_KDF,
        rejoin=True,
    )
    async with bob:
        await bob.join("lobby")
        await room.send("hello")
        events = bob.events()
        await relay.delete_room(room.id, "Spam.")
        (deleted,) = await collect(events, 1, lambda e: isinstance(e, e2echat.RoomLeft))
        assert isinstance(deleted, e2echat.RoomDeleted)
        assert not isinstance(deleted, e2echat.RoomLost)
        assert (deleted.room.name, deleted.reason) == ("lobby", "Spam.")
        assert bob.rooms == []
        # A barrier: the relay has handled everything bob sent before this reply.
        assert [r.name for r in await bob.list_rooms()] == []
        assert "lobby" not in relay.directory.by_name


@asynccontextmanager
async def relay_with_admin(store: str) -> AsyncIterator[tuple[str, list[str]]]:
    """A relay process (SQLite, or over its own redis-server) and the flags that find its
    admin socket (in a short directory: a socket's path has at most 108 bytes)."""
    with tempfile.TemporaryDirectory(prefix="e2e-") as scratch:
        data = Path(scratch)
        if store == "sqlite":
            async with relay_process("--data-dir", str(data), "--create-db") as (_, url):
                yield url, ["--data-dir", str(data)]
            return
        redis = RedisServer(require_redis_server(os.environ), data / "redis")
        redis.start()
        try:
            async with node(redis, admin_socket=str(data / "admin.sock")) as (_, url):
                yield url, ["--admin-socket", str(data / "admin.sock")]
        finally:
            redis.stop()


def operator(admin: list[str], *args: str) -> str:
    """``e2echat-server FLAGS admin ARGS``, which must succeed; its output."""
    result = CliRunner().invoke(app, [*admin, "admin", *args])
    assert result.exit_code == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("store", ["sqlite", "redis"])
async def test_a_bot_away_when_its_room_is_deleted_is_told_and_does_not_create_it(
    tmp_path: Path, store: str
) -> None:
    identity = e2echat.Identity.generate()
    async with (
        relay_with_admin(store) as (url, admin),
        watching("e2echat") as log,
        client(url, tmp_path, "alice", e2echat.Identity.generate()) as alice,
    ):
        await alice.room("lobby", create=True)
        async with client(url, tmp_path, "bot", identity, rejoin=True) as bot:
            await bot.join("lobby")
        assert "members: 2" in operator(admin, "delete", "lobby", "--reason", "Spam.")
        bot = client(url, tmp_path, "bot", identity, rejoin=True)
        events = bot.events()
        async with bot:
            (gone,) = await collect(events, 1, lambda e: isinstance(e, e2echat.RoomLeft))
            assert isinstance(gone, e2echat.RoomDeleted)  # not a RoomLost
            assert (gone.room.name, gone.reason) == ("lobby", "Spam.")
            # A barrier: the relay answered everything the bot sent at connect.
            assert [r.name for r in await bot.list_rooms()] == []
            assert bot.rooms == []
        assert "lobby" not in operator(admin, "rooms")
    assert not [line for line in log.lines() if "lost" in line or "rejoin" in line]


# A relay that lies ---------------------------------------------------------------------------


@pytest.fixture
async def proxy(relay: Relay) -> AsyncIterator[EvilProxy]:
    async with evil_proxy(relay.url) as running:
        yield running


async def _bob_behind(
    make_client: MakeClient, proxy: EvilProxy
) -> tuple[e2echat.Room, e2echat.Client, e2echat.Room]:
    """alice's room ``den`` and bob, behind the proxy, in it."""
    alice = await make_client("alice")
    alice_events = alice.events()
    room = await alice.create("den")
    bob = await make_client("bob", proxy.url)
    bob_room = await bob.join("den")
    await collect(alice_events, 1, lambda e: validated(e, "bob"))
    return room, bob, bob_room


async def test_a_malformed_deletion_notice_is_refused_and_changes_nothing(
    make_client: MakeClient, proxy: EvilProxy
) -> None:
    room, bob, bob_room = await _bob_behind(make_client, proxy)
    events, inbox = bob.events(), bob.messages()
    den = base64.b64encode(bob_room.id).decode()
    for notice in [
        {"room": den, "reason": "Spam.\u001b[2J", "ts": 1},  # a control character
        {"room": den, "reason": "Spam."},  # no ts
        {"room": den, "reason": "Spam.", "ts": 1, "name": "den"},  # a field too many
        {"room": den[:-4] + "==", "reason": "Spam.", "ts": 1},  # not 16 bytes
    ]:
        await proxy.inject_raw(json.dumps({"type": "room_deletion", **notice}))
    await room.send("still here")  # a barrier: every injected frame came before it
    assert [m.text for m in await collect(inbox, 1)] == ["still here"]
    refused = await collect(events, 4, lambda e: isinstance(e, e2echat.Notice))
    assert all("The relay sent a frame this client refuses" in e.text for e in refused)  # type: ignore[attr-defined]
    assert [r.name for r in bob.rooms] == ["den"]
    assert [m.text for m in await bob_room.history()] == ["still here"]
    assert proxy.accepted == 1


async def test_a_forged_deletion_notice_does_what_room_deleted_does_and_says_so(
    make_client: MakeClient, proxy: EvilProxy
) -> None:
    """The relay can always stop serving a room; a notice it makes up tells the user that
    the relay says so, as the live frame does, and nothing more."""
    room, bob, bob_room = await _bob_behind(make_client, proxy)
    events, inbox = bob.events(), bob.messages()
    await proxy.inject(RoomDeletion(room=b"\x07" * 16, reason="Not yours.", ts=1))
    await room.send("a barrier")
    await collect(inbox, 1)
    assert [r.name for r in bob.rooms] == ["den"]  # a room bob does not hold: nothing
    await proxy.inject(RoomDeletion(room=bob_room.id, reason="Made up.", ts=1))
    (gone,) = await collect(events, 1, lambda e: isinstance(e, e2echat.RoomLeft))
    assert isinstance(gone, e2echat.RoomDeleted)
    assert (gone.room.name, gone.reason) == ("den", "Made up.")
    assert bob.rooms == []
