"""When the relay itself fails: a store error is `unavailable`, a bug is `internal`; both
leave the directory as it was and the connection up."""

import logging

import pytest
from e2echat_server import Relay, RelayConfig
from e2echat_server.engine import Engine, LocalBroker
from e2echat_server.metrics import Metrics
from e2echat_server.store import Envelope, MemberRecord, MemoryStore

from e2echat.protocol import (
    Challenge,
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
from tests.server.wire import Identity, WireClient, closed_with, login, open_raw


class BrokenStore(MemoryStore):
    """Accepts users and rooms; every other write fails, as a full disk would."""

    async def add_member(self, member: MemberRecord, log_length: int) -> None:
        raise OSError("disk full")

    async def append(self, room: bytes, message: Envelope, keep: int) -> None:
        raise OSError("disk full")

    async def mailbox_put(self, to: bytes, entry: Envelope) -> None:
        raise OSError("disk full")


async def lobby_of_alice(relay: Relay) -> tuple[WireClient, WireClient, bytes]:
    """alice and bob logged in, and the open room alice created (BrokenStore takes it)."""
    alice, bob = await login(relay.url, Identity("alice")), await login(relay.url, Identity("bob"))
    reply = await alice.request(CreateRoom(name="lobby", access=OpenAccess()), RoomReply)
    return alice, bob, reply.room.id


async def test_store_failures_are_unavailable_and_undone(caplog: pytest.LogCaptureFixture) -> None:
    async with Relay(RelayConfig(port=0, memory=True), store=BrokenStore()) as relay:
        alice, bob, room = await lobby_of_alice(relay)
        refusal = await bob.error(JoinRoom(name="lobby", id="j"))
        assert (refusal.code, refusal.id) == (ErrorCode.UNAVAILABLE, "j")
        assert list(relay.directory.rooms[room].members) == [alice.identity.key]  # type: ignore[union-attr]
        assert (await alice.error(Send(room=room, body=b"x"))).code is ErrorCode.UNAVAILABLE
        direct = DirectSend(to=bob.identity.key, body=b"x")  # type: ignore[union-attr]
        assert (await alice.error(direct)).code is ErrorCode.UNAVAILABLE
        assert relay.directory.users[bob.identity.key].mailbox_count == 0  # type: ignore[union-attr]
        assert (await alice.request(ListRooms(), RoomList)).rooms[0].member_count == 1
    assert any(r.getMessage() == "store_failed" for r in caplog.records)


async def test_a_failing_store_is_logged_once_per_operation_per_window(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A store that is down fails every request: the log gets a line per operation and
    window, not one per request (which would bury it, and fill a disk already full)."""
    caplog.set_level(logging.ERROR, logger="e2echat_server")
    async with Relay(RelayConfig(port=0, memory=True), store=BrokenStore()) as relay:
        alice, bob, room = await lobby_of_alice(relay)
        for _ in range(5):
            assert (await alice.error(Send(room=room, body=b"x"))).code is ErrorCode.UNAVAILABLE
            assert (await bob.error(JoinRoom(name="lobby"))).code is ErrorCode.UNAVAILABLE
    failed = [r.fields for r in caplog.records if r.getMessage() == "store_failed"]  # type: ignore[attr-defined]
    assert sorted(f["op"] for f in failed) == ["add_member", "append"]
    assert {f["error"] for f in failed} == {"OSError"}


def test_a_new_kind_of_store_failure_is_logged_while_the_first_is_throttled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="e2echat_server")
    engine = Engine(MemoryStore(), LocalBroker(lambda conns, data, skip: 0), Metrics())
    for error in ("OSError", "OSError", "TimeoutError", "OSError"):
        engine.store_failed("append", error)
    failed = [r.fields for r in caplog.records if r.getMessage() == "store_failed"]  # type: ignore[attr-defined]
    assert [f["error"] for f in failed] == ["OSError", "TimeoutError"]


async def test_a_relay_bug_is_internal_and_the_session_survives(
    relay: Relay, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    alice = await login(relay.url, Identity("alice"))

    async def broken(*args: object) -> None:
        raise RuntimeError("bug while holding b'ciphertext-abc'")

    handlers: dict[type, object] = relay.sessions.handlers.table  # type: ignore[assignment]
    monkeypatch.setitem(handlers, ListRooms, broken)
    caplog.set_level(logging.ERROR, logger="e2echat_server")
    refusal = await alice.error(ListRooms(id="l"))
    assert (refusal.code, refusal.id) == (ErrorCode.INTERNAL, "l")
    (logged,) = [r for r in caplog.records if r.getMessage() == "request_failed"]
    fields = logged.fields  # type: ignore[attr-defined]
    assert (fields["type"], fields["error"]) == ("ListRooms", "RuntimeError")
    assert "test_failures.py" in fields["at"]
    assert "ciphertext-abc" not in caplog.text  # an exception's message may quote a body
    assert logged.exc_info is None
    monkeypatch.undo()
    assert (await alice.request(ListRooms(), RoomList)).rooms == []


async def test_a_relay_bug_in_a_session_closes_it_1011_and_logs_no_data(
    relay: Relay, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("bug while holding b'prekey-abc'")

    monkeypatch.setattr(relay.directory, "authenticate", broken)
    caplog.set_level(logging.ERROR)
    victim, identity = await open_raw(relay.url), Identity("victim")
    await victim.send(identity.hello(await victim.expect(Challenge)))
    await closed_with(victim.conn, 1011)
    (logged,) = [r for r in caplog.records if r.getMessage() == "session_failed"]
    assert logged.fields["error"] == "RuntimeError"  # type: ignore[attr-defined]
    assert "prekey-abc" not in caplog.text
    monkeypatch.undo()
    assert (await (await login(relay.url, identity)).request(ListRooms(), RoomList)).rooms == []
