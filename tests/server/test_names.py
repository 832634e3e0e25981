"""Names and identities on the relay: signed renames announced to every room, and one
live connection per identity (the newest replaces the one before)."""

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

from e2echat_server import Relay

from e2echat.protocol import (
    CloseCode,
    CreateRoom,
    ErrorCode,
    JoinRoom,
    MemberJoined,
    Ok,
    OpenAccess,
    Presence,
    Renamed,
    RoomReply,
    SetName,
    SetStatus,
)
from tests.server.test_process import relay_process
from tests.server.wire import Identity, WireClient, closed_with, login

Connect = Callable[[str], Awaitable[WireClient]]
Restart = Callable[[], Awaitable[str]]


async def two_in_a_room(relay: Relay, alice_id: Identity) -> tuple[WireClient, WireClient]:
    alice = await login(relay.url, alice_id)
    bob = await login(relay.url, Identity("bob"))
    await alice.request(CreateRoom(id="1", name="lobby", access=OpenAccess()), RoomReply)
    await bob.request(JoinRoom(id="2", name="lobby"), RoomReply)
    await alice.next_of(MemberJoined)
    return alice, bob


async def test_a_rename_reaches_every_room_with_its_statement(relay: Relay) -> None:
    alice_id = Identity("alice", signs_name=True)
    alice, bob = await two_in_a_room(relay, alice_id)
    statement = alice_id.name_statement("robert", issued=2)
    await alice.request(SetName(id="3", name="robert", name_statement=statement), Ok)
    seen = await bob.next_of(Renamed)
    assert (seen.key, seen.name, seen.name_statement) == (alice_id.key, "robert", statement)
    assert (await alice.next_of(Renamed)).name == "robert"  # our other places learn it too
    # at the next sync: whoever lists the members later gets the name and its statement
    carol = await login(relay.url, Identity("carol"))
    joined = await carol.request(JoinRoom(id="4", name="lobby"), RoomReply)
    listed = {m.key: m for m in joined.room.members}
    assert (listed[alice_id.key].name, listed[alice_id.key].name_statement) == (
        "robert",
        statement,
    )
    await bob.close()
    again = await login(relay.url, bob.identity)  # type: ignore[arg-type]
    assert again.welcome is not None
    (room,) = again.welcome.rooms
    assert [m.name_statement for m in room.members if m.key == alice_id.key] == [statement]


async def test_a_rename_by_a_new_hello_is_announced(relay: Relay) -> None:
    alice_id = Identity("alice", signs_name=True)
    alice, bob = await two_in_a_room(relay, alice_id)
    await alice.close()
    alice_id.name = "ally"
    await login(relay.url, alice_id)
    renamed = await bob.next_of(Renamed)
    assert (renamed.name, renamed.name_statement) == ("ally", alice_id.name_statement("ally"))


async def test_a_statement_signed_by_another_key_is_refused(relay: Relay) -> None:
    alice_id = Identity("alice")
    alice, bob = await two_in_a_room(relay, alice_id)
    forged = Identity("mallory").name_statement("robert")
    refused = await alice.error(SetName(id="5", name="robert", name_statement=forged))
    assert (refused.code, refused.id) == (ErrorCode.AUTH_FAILED, "5")
    assert relay.directory.users[alice_id.key].name == "alice"
    await bob.quiet()


async def test_a_second_connection_of_a_key_replaces_the_first(relay: Relay) -> None:
    alice_id = Identity("alice")
    first, bob = await two_in_a_room(relay, alice_id)
    second = await login(relay.url, alice_id)
    await closed_with(first.conn, CloseCode.REPLACED)
    assert "replaced" in (first.conn.close_reason or "")
    await bob.request(SetStatus(id="6", status="away"), Ok)
    assert (await second.next_of(Presence)).status == "away"  # the new one gets traffic
    await bob.quiet()  # alice never looked offline (nor came online again)
    assert not any(isinstance(frame, Presence) for frame in bob._stash)
    assert relay.directory.users[alice_id.key].status == "online"


async def signed_rename_then_listed(url_before: str, restart: Restart) -> None:
    """Alice renames with a signed statement; after ``restart`` (relay killed and started
    again, returning its new URL) a member list still carries the statement."""
    alice_id = Identity("alice", signs_name=True)
    alice = await login(url_before, alice_id)
    await alice.request(CreateRoom(id="1", name="lobby", access=OpenAccess()), RoomReply)
    statement = alice_id.name_statement("robert", issued=2)
    await alice.request(SetName(id="2", name="robert", name_statement=statement), Ok)
    url = await restart()
    bob = await login(url, Identity("bob"))
    joined = await bob.request(JoinRoom(id="3", name="lobby"), RoomReply)
    listed = {m.key: m for m in joined.room.members}[alice_id.key]
    assert (listed.name, listed.name_statement) == ("robert", statement)


async def test_a_signed_name_survives_a_relay_killed_and_restarted(tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        process, url = await stack.enter_async_context(relay_process("--data-dir", str(tmp_path)))

        async def restart() -> str:
            process.kill()  # SIGKILL: what was acknowledged is on disk, nothing else ran
            await process.wait()
            _, again = await stack.enter_async_context(relay_process("--data-dir", str(tmp_path)))
            return again

        await signed_rename_then_listed(url, restart)
