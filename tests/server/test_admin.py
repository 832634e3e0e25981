"""The admin socket: each command against a running relay over a real Unix socket."""

import asyncio
import datetime
import json
import re
import socket
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from e2echat_server import Relay, RelayConfig
from e2echat_server.admin import KICKED_REASON, AdminError, AdminSocket, request
from e2echat_server.cli import app

from e2echat.protocol import (
    CloseCode,
    CreateRoom,
    ErrorCode,
    JoinRoom,
    OpenAccess,
    RoomDeleted,
    RoomDeletion,
    RoomReply,
    Send,
    Sent,
)
from e2echat.protocol import Sync as SyncRequest
from tests.server.test_access import refused
from tests.server.test_process import relay_process
from tests.server.wire import Identity, closed_with, login


@pytest.fixture
async def admin(tmp_path: Path) -> AsyncIterator[tuple[Relay, Path]]:
    async with Relay(RelayConfig(port=0, data_dir=tmp_path, create_db=True)) as relay:
        path = tmp_path / "admin.sock"
        async with AdminSocket(relay, path):
            yield relay, path


async def deleted_at(relay: Relay, key: bytes, room: bytes) -> int:
    """When ``room`` was deleted, by the notice the store keeps for ``key``."""
    (kept,) = [d for d in await relay.store.deletions(key, 0) if d.room == room]
    return kept.ts


async def ask(path: Path, command: str, *args: str) -> Any:
    return await asyncio.to_thread(request, path, command, list(args))


async def test_the_socket_is_for_its_owner_only(admin: tuple[Relay, Path]) -> None:
    _, path = admin
    mode = path.stat().st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600


async def test_users_rooms_connections_and_stats(admin: tuple[Relay, Path]) -> None:
    relay, path = admin
    alice, bob = Identity("alice"), Identity("bob")
    a = await login(relay.url, alice)
    await (await login(relay.url, bob)).close()
    room = (await a.request(CreateRoom(name="lobby", access=OpenAccess()), RoomReply)).room.id
    await a.request(Send(room=room, body=b"secret words"), Sent)
    users = await ask(path, "users")
    assert [(u["key"], u["name"], u["rooms"]) for u in users] == [
        (alice.key.hex(), "alice", 1),
        (bob.key.hex(), "bob", 0),
    ]
    (lobby,) = await ask(path, "rooms")
    assert (lobby["name"], lobby["members"], lobby["messages"]) == ("lobby", 1, 1)
    (conn,) = await ask(path, "connections")
    assert (conn["key"], conn["peer"]) == (alice.key.hex(), "127.0.0.1")
    stats = await ask(path, "stats")
    assert (stats["users"], stats["rooms"], stats["messages_in"]) == (2, 1, 1)
    assert b"secret words".hex() not in json.dumps([users, lobby, conn, stats])
    await a.close()


async def test_kick_closes_the_connection_and_it_may_return(admin: tuple[Relay, Path]) -> None:
    relay, path = admin
    alice = Identity("alice")
    client = await login(relay.url, alice)
    assert await ask(path, "kick", alice.key.hex()[:10]) == {
        "key": alice.key.hex(),
        "kicked": True,
    }
    await closed_with(client.conn, CloseCode.POLICY)
    assert client.conn.close_reason == KICKED_REASON
    await (await login(relay.url, alice)).close()


async def test_ban_and_unban(admin: tuple[Relay, Path]) -> None:
    relay, path = admin
    eve = Identity("eve")
    client = await login(relay.url, eve)
    assert (await ask(path, "ban", eve.key.hex()))["changed"]
    await closed_with(client.conn, CloseCode.AUTH_FAILED)
    assert "banned" in (await refused(relay.url, eve)).message
    assert not (await ask(path, "ban", eve.key.hex()))["changed"]
    assert (await ask(path, "unban", eve.key.hex()[:8]))["changed"]
    await (await login(relay.url, eve)).close()


@pytest.mark.parametrize(
    ("command", "args", "error"),
    [
        ("shutdown", [], "Unknown command"),
        ("kick", [], "1 argument"),
        ("kick", ["abc"], "at least 8 hex digits"),
        ("kick", ["00000000"], "^No key the relay knows starts with 00000000[.]$"),
        ("users", ["x"], "0 argument"),
    ],
)
async def test_bad_requests_are_refused_with_a_reason(
    admin: tuple[Relay, Path], command: str, args: list[str], error: str
) -> None:
    with pytest.raises(AdminError, match=error):
        await ask(admin[1], command, *args)


async def test_a_line_that_is_not_a_request_gets_a_reason(admin: tuple[Relay, Path]) -> None:
    reader, writer = await asyncio.open_unix_connection(admin[1])
    writer.write(b"[1, 2\n")
    answer = json.loads(await reader.readline())
    writer.close()
    assert answer["ok"] is False
    assert "one JSON line" in answer["error"]


def admin_cli(data_dir: Path, *args: str) -> tuple[int, str, str]:
    """``e2echat-server --data-dir DIR admin ARGS`` in this process (the relay is another)."""
    result = CliRunner().invoke(app, ["--data-dir", str(data_dir), "admin", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("flags", "kind"), [(["--memory"], "a memory"), (["--redis", "redis://127.0.0.1/0"], "a Redis")]
)
def test_the_admin_command_asks_a_relay_without_a_default_socket_for_one(
    flags: list[str], kind: str
) -> None:
    result = CliRunner().invoke(app, [*flags, "admin", "stats"])
    assert result.exit_code == 2
    assert result.stderr == (
        f"e2echat-server: {kind} relay has no admin socket unless given: name the one it"
        " was started with (--admin-socket PATH).\n"
    )


async def test_the_admin_command_talks_to_a_relay_process(tmp_path: Path) -> None:
    data = ("--data-dir", str(tmp_path), "--create-db")
    async with relay_process(*data) as (_, url):
        alice = Identity("alice")
        client = await login(url, alice)
        socket = tmp_path / "admin.sock"
        assert stat.S_IMODE(socket.stat().st_mode) == 0o600

        rc, out, _ = admin_cli(tmp_path, "users")
        assert rc == 0
        assert out.splitlines()[0].split() == [
            "key", "name", "online", "rooms", "mailbox", "last_seen"
        ]  # fmt: skip
        assert f"{alice.key.hex()}  alice  true" in out
        rc, out, _ = admin_cli(tmp_path, "stats", "--json")
        assert (rc, json.loads(out)["users"]) == (0, 1)
        admin_cli(tmp_path, "token", "--expires-in", "3600")
        rc, out, _ = admin_cli(tmp_path, "tokens")
        (listed,) = json.loads(admin_cli(tmp_path, "tokens", "--json")[1])
        expires = datetime.datetime.fromtimestamp(listed["expires"] // 1000, datetime.UTC)
        created = datetime.datetime.fromtimestamp(listed["created"] // 1000, datetime.UTC)
        shown = f"{expires:%Y-%m-%dT%H:%M:%SZ}  {created:%Y-%m-%dT%H:%M:%SZ}  true"
        assert shown in out  # times in UTC, not milliseconds since the epoch
        rc, _, err = admin_cli(tmp_path, "kick")
        assert (rc, err.strip()) == (2, "e2echat-server: kick needs an argument.")
        rc, out, _ = admin_cli(tmp_path, "ban", alice.key.hex())
        assert (rc, "changed: true" in out) == (0, True)
        await closed_with(client.conn, CloseCode.AUTH_FAILED)
    rc, _, err = admin_cli(tmp_path, "stats")
    assert (rc, "no relay answers" in err) == (1, True)  # the relay is gone


async def test_a_socket_in_use_is_not_taken_over_and_a_stale_one_is(
    admin: tuple[Relay, Path],
) -> None:
    relay, path = admin
    with pytest.raises(OSError, match="in use by another relay"):
        await AdminSocket(relay, path).start()
    assert (await ask(path, "stats"))["users"] == 0  # the first one still serves
    stale = path.with_name("stale.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(stale))
    listener.close()  # the file stays, nobody listens: a relay killed with SIGKILL
    async with AdminSocket(relay, stale):
        assert (await ask(stale, "stats"))["rooms"] == 0


async def test_delete_tells_live_members_drops_history_and_frees_the_name(
    admin: tuple[Relay, Path], tmp_path: Path
) -> None:
    relay, path = admin
    alice, bob, carol = Identity("alice"), Identity("bob"), Identity("carol")
    a = await login(relay.url, alice)
    room = (await a.request(CreateRoom(name="lobby", access=OpenAccess()), RoomReply)).room.id
    b = await login(relay.url, bob)
    await b.request(JoinRoom(name="lobby"), RoomReply)
    await a.request(Send(room=room, body=b"before"), Sent)
    await b.close()  # bob is offline when it goes

    answer = await ask(path, "delete", "lobby", "Spam.")
    assert answer == {"id": room.hex(), "name": "lobby", "members": 2}
    deleted = await a.next_of(RoomDeleted)
    assert (deleted.room, deleted.reason) == (room, "Spam.")
    error = await a.error(SyncRequest(room=room, after=0))
    assert error.code == ErrorCode.NO_SUCH_ROOM
    assert relay.directory.rooms_of[alice.key] == set()

    b = await login(relay.url, bob)
    assert b.welcome is not None
    assert b.welcome.rooms == []  # offline members: gone too, and told so after welcome
    notice = await b.expect(RoomDeletion)
    assert (notice.room, notice.reason) == (room, "Spam.")
    assert notice.ts == await deleted_at(relay, bob.key, room)
    c = await login(relay.url, carol)
    new = (await c.request(CreateRoom(name="lobby", access=OpenAccess()), RoomReply)).room
    assert new.id != room
    assert await relay.store.history(room, 0, 0, 10) == []
    assert await relay.store.log_entries(room, 0, 10) == []
    for client in (a, b, c):
        await client.close()
    assert (await ask(path, "rooms"))[0]["id"] == new.id.hex()


async def test_delete_outlives_a_restart(tmp_path: Path) -> None:
    config = RelayConfig(port=0, data_dir=tmp_path, create_db=True)
    alice = Identity("alice")
    async with Relay(config) as relay:
        a = await login(relay.url, alice)
        room = (await a.request(CreateRoom(name="lobby", access=OpenAccess()), RoomReply)).room.id
        await a.request(Send(room=room, body=b"gone"), Sent)
        await a.close()
        assert await relay.delete_room(room, "Closed.") == 1
    async with Relay(config) as relay:
        assert relay.directory.rooms == {}
        assert await relay.store.history(room, 0, 0, 10) == []
        for _ in range(2):  # told at every connection: nothing is acknowledged
            a = await login(relay.url, alice)
            notice = await a.expect(RoomDeletion)  # before the reply to anything sent
            assert (notice.room, notice.reason) == (room, "Closed.")
            await a.close()


async def test_a_deletion_notice_is_kept_for_the_time_a_relay_keeps_an_idle_user(
    tmp_path: Path,
) -> None:
    config = RelayConfig(port=0, data_dir=tmp_path, create_db=True, forget_after_s=3600)
    async with Relay(config) as relay:
        alice = Identity("alice")
        a = await login(relay.url, alice)
        room = (await a.request(CreateRoom(name="lobby", access=OpenAccess()), RoomReply)).room.id
        await a.close()
        await relay.delete_room(room, "Closed.")
        (kept,) = await relay.store.deletions(alice.key, 0)
        assert kept.expires == kept.ts + 3600 * 1000
        assert await relay.store.deletions(alice.key, kept.expires) == []
        a = await login(relay.url, alice)
        await a.expect(RoomDeletion)
        await a.close()


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["nowhere", ""], "no room named 'nowhere'"),
        (["lobby"], "2 argument"),
        (["lobby", "bad\x1b[31m"], "reason is not accepted"),
        (["lobby", "x" * 501], "over 500 characters"),
    ],
)
async def test_delete_refuses_what_it_cannot_do_and_changes_nothing(
    admin: tuple[Relay, Path], args: list[str], error: str
) -> None:
    relay, path = admin
    a = await login(relay.url, Identity("alice"))
    await a.request(CreateRoom(name="lobby", access=OpenAccess()), RoomReply)
    with pytest.raises(AdminError, match=re.escape(error)):
        await ask(path, "delete", *args)
    assert [r.record.name for r in relay.directory.rooms.values()] == ["lobby"]
    await a.close()


async def test_the_admin_command_deletes_a_room_with_a_reason(tmp_path: Path) -> None:
    async with relay_process("--data-dir", str(tmp_path), "--create-db") as (_, url):
        a = await login(url, Identity("alice"))
        room = (await a.request(CreateRoom(name="lobby", access=OpenAccess()), RoomReply)).room
        rc, out, _ = admin_cli(tmp_path, "delete", room.id.hex(), "--reason", "Moved to #ops.")
        assert (rc, "members: 1" in out) == (0, True)
        assert (await a.next_of(RoomDeleted)).reason == "Moved to #ops."
        rc, _, err = admin_cli(tmp_path, "delete", "lobby")
        assert (rc, "no room named 'lobby'" in err) == (1, True)
        rc, _, err = admin_cli(tmp_path, "delete")
        assert (rc, err.strip()) == (2, "e2echat-server: delete needs an argument.")
        await a.close()


async def test_a_store_that_fails_is_an_answer_not_a_dropped_connection(
    admin: tuple[Relay, Path], tmp_path: Path
) -> None:
    relay, path = admin
    (tmp_path / "banned-keys.new").mkdir()  # the ban list cannot be written
    (tmp_path / "registration-tokens.json.new").mkdir()
    for command, args in [("ban", ["ab" * 32]), ("token", ["1", "0"])]:
        with pytest.raises(AdminError, match="could not save"):
            await ask(path, command, *args)
    assert relay.banned == frozenset()
    assert await ask(path, "tokens") == []
