"""A room's membership log over relays sharing one Redis: each relay keeps the log it
read in memory, and an entry appended through another relay must not leave it stale."""

import asyncio
from pathlib import Path

import pytest
from e2echat_server import Relay, bus
from e2echat_server.redis_broker import RedisBroker
from e2echat_server.store import RedisStore

from e2echat.protocol import Error, ErrorCode, JoinRoom, LogAppend, Ok, RoomReply
from e2echat.protocol.roomlog import Kind, LogHead
from tests.server.test_cluster import relays
from tests.server.test_roomlog import NEW_TOKEN, TOKEN, after, pushed_at, secret_room, statement
from tests.server.wire import TIMEOUT, Identity, WireClient, login, verifier_for


async def vault_over(one: Relay, two: Relay) -> tuple[WireClient, WireClient, bytes, LogHead]:
    """alice, on relay two, owns the vault; bob, on relay one (which reads its log then),
    is its member. The two clients, the room and its log's head."""
    alice = await login(two.url, Identity("alice"))
    bob = await login(one.url, Identity("bob"))
    room, head = await secret_room(alice, bob)
    return alice, bob, room, head


def removal(
    author: WireClient,
    room: bytes,
    head: LogHead,
    kind: Kind,
    subject: bytes,
    epoch: int,
    token: bytes,
) -> bytes:
    """A kick or ban of ``subject`` at ``head``, to ``epoch`` and the secret ``token``."""
    return statement(author, room, head, kind, subject, epoch=epoch, verifier=verifier_for(token))


def broker_of(relay: Relay) -> RedisBroker:
    broker = relay.engine.broker
    assert isinstance(broker, RedisBroker)
    return broker


async def joined(
    relay: Relay, identity: Identity, room: bytes, head: LogHead
) -> tuple[WireClient, LogHead]:
    """``identity`` logs in to ``relay``, joins the vault with its secret and appends its
    join entry at ``head``; the log's head after it."""
    client = await login(relay.url, identity)
    await client.request(JoinRoom(name="vault", token=TOKEN), RoomReply)
    join = statement(client, room, head, Kind.JOIN)
    await client.request(LogAppend(room=room, entry=join), Ok)
    return client, after(head, join)


async def join_refused(client: WireClient, token: bytes) -> Error:
    """The answer to ``client``'s join of the vault with ``token``: a refusal."""
    await client.send(JoinRoom(name="vault", token=token, id="join"))
    answer = await client.next_of((RoomReply, Error))  # type: ignore[arg-type]
    assert isinstance(answer, Error), answer  # not admitted
    assert answer.code == ErrorCode.FORBIDDEN
    return answer


class LateBus:
    """A relay's bus, its notices held back (still on their way) until it waits for its
    own barrier (`catch_up`) or the test releases them, then passed on in order."""

    def __init__(self, broker: RedisBroker) -> None:
        self._receive = broker._receive
        self._node = broker.node
        self._held: list[bytes] | None = []

    def __call__(self, data: bytes) -> None:
        if self._held is None:
            self._receive(data)
            return
        self._held.append(data)
        publication = bus.decode(data)
        if publication.origin == self._node and isinstance(publication.notice, bus.Barrier):
            self.release()

    def release(self) -> None:
        held, self._held = self._held or [], None
        for data in held:
            self._receive(data)


class HeldRead:
    """A relay's next read of a membership log, held once Redis has answered it until the
    test releases it: what another relay appends meanwhile comes in between the read and
    the decision made on it."""

    def __init__(self, store: RedisStore) -> None:
        self._read = store.log_entries
        self.answered = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, room: bytes, after: int, limit: int) -> list[bytes]:
        entries = await self._read(room, after, limit)
        if not self.answered.is_set():
            self.answered.set()
            async with asyncio.timeout(TIMEOUT):
                await self.release.wait()
        return entries


async def test_an_append_after_one_through_another_relay_is_taken(
    redis_url: str, tmp_path: Path
) -> None:
    async with relays(redis_url, tmp_path) as (one, two):
        alice = await login(one.url, Identity("alice"))  # relay one reads the log here
        bob = await login(two.url, Identity("bob"))
        room, head = await secret_room(alice, bob)  # bob's join entry goes through two
        carol = await login(one.url, Identity("carol"))
        await carol.request(JoinRoom(name="vault", token=TOKEN), RoomReply)
        join = statement(carol, room, head, Kind.JOIN)
        await carol.request(LogAppend(room=room, entry=join), Ok)  # was log_conflict, always
        await pushed_at(bob, head.length)  # and every member is told
        leave = statement(bob, room, after(head, join), Kind.LEAVE)  # and back through two
        await bob.request(LogAppend(room=room, entry=leave), Ok)


async def test_a_kick_through_another_relay_closes_the_old_secret_everywhere(
    redis_url: str, tmp_path: Path
) -> None:
    async with relays(redis_url, tmp_path) as (one, two):
        alice, bob, room, head = await vault_over(one, two)
        carol_id = Identity("carol")
        carol, head = await joined(one, carol_id, room, head)
        kick = statement(
            alice, room, head, Kind.REMOVE, carol_id.key, epoch=1, verifier=verifier_for(NEW_TOKEN)
        )
        await alice.request(LogAppend(room=room, entry=kick), Ok)
        # bob, on relay one, is pushed the kick after relay one heard of it (one bus, in order)
        await pushed_at(bob, head.length)
        error = await carol.error(JoinRoom(name="vault", token=TOKEN))
        assert error.code == ErrorCode.FORBIDDEN  # the old secret opens nothing on relay one
        ban = statement(
            alice,
            room,
            after(head, kick),
            Kind.BAN,
            carol_id.key,
            epoch=2,
            verifier=verifier_for(TOKEN),
        )
        await alice.request(LogAppend(room=room, entry=ban), Ok)
        await pushed_at(bob, head.length + 1)
        error = await carol.error(JoinRoom(name="vault", token=TOKEN))
        assert error.code == ErrorCode.FORBIDDEN
        assert "banned" in error.message


async def test_a_kick_announced_while_a_relay_reads_the_log_still_closes_the_old_secret(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with relays(redis_url, tmp_path) as (one, two):
        alice, _, room, head = await vault_over(one, two)
        dave_id = Identity("dave")
        _, head = await joined(two, dave_id, room, head)
        await one.engine.broker.catch_up()  # relay one knows its copy lacks dave's join
        store = one.engine.store
        assert isinstance(store, RedisStore)
        held = HeldRead(store)
        monkeypatch.setattr(store, "log_entries", held)
        carol = await login(one.url, Identity("carol"))
        refusal = asyncio.create_task(join_refused(carol, TOKEN))
        async with asyncio.timeout(TIMEOUT):
            await held.answered.wait()  # relay one has read the log up to dave's join
        kick = removal(alice, room, head, Kind.REMOVE, dave_id.key, 1, NEW_TOKEN)
        await alice.request(LogAppend(room=room, entry=kick), Ok)
        await one.engine.broker.catch_up()  # relay one has heard of the kick, mid-read
        held.release.set()
        await refusal  # was admitted with the old secret


async def test_a_join_through_a_relay_that_has_not_heard_of_a_kick_or_ban_is_refused(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with relays(redis_url, tmp_path) as (one, two):
        alice, bob, room, head = await vault_over(one, two)
        erin_id = Identity("erin")
        erin = await login(one.url, erin_id)
        late: list[bytes] = []  # relay one's notices from here on: still on their way
        monkeypatch.setattr(broker_of(one), "_receive", late.append)
        assert bob.identity is not None
        kick = removal(alice, room, head, Kind.REMOVE, bob.identity.key, 1, NEW_TOKEN)
        await alice.request(LogAppend(room=room, entry=kick), Ok)
        error = await join_refused(erin, TOKEN)  # the old secret opens nothing, at once
        assert "secret" in error.message
        frank = await login(one.url, Identity("frank"))
        await frank.request(JoinRoom(name="vault", token=NEW_TOKEN), RoomReply)  # the new one
        head = after(head, kick)
        ban = removal(alice, room, head, Kind.BAN, erin_id.key, 2, TOKEN)
        await alice.request(LogAppend(room=room, entry=ban), Ok)
        error = await join_refused(erin, TOKEN)  # the secret now
        assert "banned" in error.message
        assert late  # no announcement had reached relay one


async def test_a_ban_through_a_relay_that_has_not_heard_of_the_join_still_removes_the_member(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with relays(redis_url, tmp_path) as (one, two):
        alice, _, room, head = await vault_over(one, two)
        late = LateBus(broker_of(two))
        monkeypatch.setattr(broker_of(two), "_receive", late)
        erin_id = Identity("erin")
        erin = await login(one.url, erin_id)
        await erin.request(JoinRoom(name="vault", token=TOKEN), RoomReply)  # two not told yet
        ban = removal(alice, room, head, Kind.BAN, erin_id.key, 1, NEW_TOKEN)
        await alice.request(LogAppend(room=room, entry=ban), Ok)
        late.release()
        await two.engine.broker.catch_up()
        await one.engine.broker.catch_up()
        for node in (one, two):  # nothing of the room is routed to erin any more
            assert erin_id.key not in node.directory.rooms[room].members
