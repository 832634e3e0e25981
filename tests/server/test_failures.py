"""When the relay itself fails: a store error is `unavailable`, a bug is `internal`; both
leave the directory as it was and the connection up."""

import logging

import pytest
from e2echat_server import Relay, RelayConfig
from e2echat_server.store import Envelope, MemberRecord, MemoryStore

from e2echat.protocol import (
    CreateRoom,
    DirectSend,
    ErrorCode,
    JoinRoom,
    ListRooms,
    OpenAccess,
    RoomList,
    RoomReply,
    Send,
)
from tests.server.wire import Identity, login


class BrokenStore(MemoryStore):
    """Accepts users and rooms; every other write fails, as a full disk would."""

    async def add_member(self, member: MemberRecord) -> None:
        raise OSError("disk full")

    async def append(self, room: bytes, message: Envelope, keep: int) -> None:
        raise OSError("disk full")

    async def mailbox_put(self, to: bytes, entry: Envelope) -> None:
        raise OSError("disk full")


async def test_store_failures_are_unavailable_and_undone(caplog: pytest.LogCaptureFixture) -> None:
    async with Relay(RelayConfig(port=0, memory=True), store=BrokenStore()) as relay:
        alice, bob = (
            await login(relay.url, Identity("alice")),
            await login(relay.url, Identity("bob")),
        )
        room = (
            await alice.request(CreateRoom(name="lobby", access=OpenAccess()), RoomReply)
        ).room.id
        refusal = await bob.error(JoinRoom(name="lobby", id="j"))
        assert (refusal.code, refusal.id) == (ErrorCode.UNAVAILABLE, "j")
        assert list(relay.directory.rooms[room].members) == [alice.identity.key]  # type: ignore[union-attr]
        assert (await alice.error(Send(room=room, body=b"x"))).code is ErrorCode.UNAVAILABLE
        direct = DirectSend(to=bob.identity.key, body=b"x")  # type: ignore[union-attr]
        assert (await alice.error(direct)).code is ErrorCode.UNAVAILABLE
        assert relay.directory.users[bob.identity.key].mailbox_count == 0  # type: ignore[union-attr]
        assert (await alice.request(ListRooms(), RoomList)).rooms[0].member_count == 1
    assert any(r.getMessage() == "store_failed" for r in caplog.records)


async def test_a_relay_bug_is_internal_and_the_session_survives(
    relay: Relay, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    alice = await login(relay.url, Identity("alice"))

    async def broken(*args: object) -> None:
        raise RuntimeError("bug")

    handlers: dict[type, object] = relay._handlers  # type: ignore[assignment]
    monkeypatch.setitem(handlers, ListRooms, broken)
    caplog.set_level(logging.ERROR, logger="e2echat_server")
    refusal = await alice.error(ListRooms(id="l"))
    assert (refusal.code, refusal.id) == (ErrorCode.INTERNAL, "l")
    assert "request failed" in caplog.text
    monkeypatch.undo()
    assert (await alice.request(ListRooms(), RoomList)).rooms == []
