"""The relay's membership log: ordered appends, the authority rules, acting on removals."""

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from e2echat_server import Relay, RelayConfig
from e2echat_server.handlers import JOIN_ATTEMPTS
from e2echat_server.store import LogMovedError, MemberRecord, MemoryStore

from e2echat.protocol import (
    CreateRoom,
    ErrorCode,
    JoinRoom,
    LogAppend,
    LogEntries,
    LogRequest,
    MemberLeft,
    MembersList,
    MembersRequest,
    Ok,
    RoomReply,
    SecretAccess,
    Send,
    Sent,
)
from e2echat.protocol.roomlog import (
    EMPTY_HEAD,
    Kind,
    LogHead,
    Role,
    encode_entry,
    entry_hash,
    parse_entry,
)
from tests.server.wire import Identity, WireClient, login, verifier_for

Connect = Callable[[str], Awaitable[WireClient]]
TOKEN, NEW_TOKEN = b"k" * 32, b"n" * 32


def statement(
    client: WireClient,
    room: bytes,
    head: LogHead,
    kind: Kind,
    subject: bytes | None = None,
    **fields: object,
) -> bytes:
    assert client.identity is not None
    signing = client.identity.signing
    return encode_entry(
        lambda message: signing.sign(message).signature,
        kind=kind,
        room_id=room,
        seq=head.length,
        prev=head.head,
        author=client.identity.key,
        created=1,
        subject=subject or client.identity.key,
        **fields,  # type: ignore[arg-type]
    )


async def pushed_at(client: WireClient, start: int) -> LogEntries:
    """The pushed log entries starting at ``start`` (earlier pushes skipped)."""
    while True:
        frame = await client.next_of(LogEntries)
        if frame.start == start:
            return frame


def after(head: LogHead, entry: bytes) -> LogHead:
    return LogHead(head.length + 1, entry_hash(entry))


async def secret_room(alice: WireClient, bob: WireClient) -> tuple[bytes, LogHead]:
    """alice creates a secret room and its log; bob joins and appends his join."""
    access = SecretAccess(verifier=verifier_for(TOKEN))
    room = (await alice.request(CreateRoom(name="vault", access=access), RoomReply)).room.id
    create = statement(
        alice, room, EMPTY_HEAD, Kind.CREATE, role=Role.OWNER, verifier=verifier_for(TOKEN)
    )
    await alice.request(LogAppend(room=room, entry=create), Ok)
    head = after(EMPTY_HEAD, create)
    await bob.request(JoinRoom(name="vault", token=TOKEN), RoomReply)
    join = statement(bob, room, head, Kind.JOIN)
    await bob.request(LogAppend(room=room, entry=join), Ok)
    return room, after(head, join)


async def test_appends_are_ordered_and_served(relay: Relay, connect: Connect) -> None:
    alice, bob = await connect("alice"), await connect("bob")
    room, head = await secret_room(alice, bob)
    pushed = await pushed_at(alice, 1)
    assert entry_hash(pushed.entries[0]) == head.head
    await bob.send(LogRequest(room=room, after=0, id="read"))
    served = await bob.next_of(LogEntries)
    while served.id != "read":  # skip the pushes of new entries
        served = await bob.next_of(LogEntries)
    assert served.start == 0
    assert len(served.entries) == 2
    assert entry_hash(served.entries[1]) == head.head
    # a second entry signed against the same (now stale) head is a conflict
    stale = statement(alice, room, LogHead(1, entry_hash(served.entries[0])), Kind.DESCRIBE)
    error = await alice.error(LogAppend(room=room, entry=stale))
    assert error.code == ErrorCode.LOG_CONFLICT


async def test_authority_and_authorship_are_enforced(relay: Relay, connect: Connect) -> None:
    alice, bob = await connect("alice"), await connect("bob")
    room, head = await secret_room(alice, bob)
    kick = statement(
        bob, room, head, Kind.REMOVE, alice.identity.key, epoch=1, verifier=verifier_for(NEW_TOKEN)
    )  # type: ignore[union-attr]
    error = await bob.error(LogAppend(room=room, entry=kick))
    assert error.code == ErrorCode.FORBIDDEN
    assert "higher role" in error.message or "only an admin" in error.message
    forged = statement(alice, room, head, Kind.DESCRIBE, description="x")
    error = await bob.error(LogAppend(room=room, entry=forged))
    assert error.code == ErrorCode.FORBIDDEN  # bob cannot append alice's statements
    members = await alice.request(MembersRequest(room=room), MembersList)
    assert len(members.members) == 2


async def test_an_authorised_kick_stops_routing_and_the_old_token(
    relay: Relay, connect: Connect
) -> None:
    alice, bob = await connect("alice"), await connect("bob")
    room, head = await secret_room(alice, bob)
    assert bob.identity is not None
    kick = statement(
        alice, room, head, Kind.REMOVE, bob.identity.key, epoch=1, verifier=verifier_for(NEW_TOKEN)
    )
    await alice.request(LogAppend(room=room, entry=kick), Ok)
    removal = await pushed_at(bob, 2)  # the removed member is told why
    assert removal.entries == [kick]
    left = await alice.next_of(MemberLeft)
    assert left.key == bob.identity.key
    await alice.request(Send(room=room, body=b"x" * 500), Sent)
    error = await bob.error(MembersRequest(room=room))
    assert error.code == ErrorCode.NOT_MEMBER
    error = await bob.error(JoinRoom(name="vault", token=TOKEN))
    assert error.code == ErrorCode.FORBIDDEN  # the old secret no longer opens the room
    await bob.request(JoinRoom(name="vault", token=NEW_TOKEN), RoomReply)


async def test_a_banned_key_cannot_join_even_with_the_secret(
    relay: Relay, connect: Connect
) -> None:
    alice, bob = await connect("alice"), await connect("bob")
    room, head = await secret_room(alice, bob)
    assert bob.identity is not None
    ban = statement(
        alice, room, head, Kind.BAN, bob.identity.key, epoch=1, verifier=verifier_for(NEW_TOKEN)
    )
    await alice.request(LogAppend(room=room, entry=ban), Ok)
    error = await bob.error(JoinRoom(name="vault", token=NEW_TOKEN))
    assert error.code == ErrorCode.FORBIDDEN
    assert "banned" in error.message


class GrowingStore(MemoryStore):
    """A store another relay appends to: before each of the next adds of a member it
    stores one of ``landing`` (members joining at once, through it or this relay)."""

    def __init__(self) -> None:
        super().__init__()
        self.landing: list[tuple[bytes, bytes]] = []  # (room, entry), in order
        self.tries = 0

    async def add_member(self, member: MemberRecord, log_length: int) -> None:
        self.tries += 1
        if self.landing:
            room, entry = self.landing.pop(0)
            assert await self.log_append(room, parse_entry(entry).seq, entry)
        await super().add_member(member, log_length)


class MovedStore(MemoryStore):
    """A store that says the room's log moved on every add of a member, with nothing new
    in it: the relay believes it only a few times."""

    def __init__(self) -> None:
        super().__init__()
        self.tries = 0

    async def add_member(self, member: MemberRecord, log_length: int) -> None:
        if len(await self.log_entries(member.room, 0, 10)) < 2:  # the owner and the first
            return await super().add_member(member, log_length)
        self.tries += 1
        raise LogMovedError("the room's membership log has another length")


@contextlib.asynccontextmanager
async def vault_on(store: MemoryStore) -> AsyncIterator[tuple[Relay, WireClient, bytes, LogHead]]:
    """A relay on ``store`` with alice's vault, bob its member: the relay, alice, the
    room and its log's head."""
    async with Relay(RelayConfig(port=0, memory=True), store=store) as relay:
        alice, bob = (
            await login(relay.url, Identity("alice")),
            await login(relay.url, Identity("bob")),
        )
        room, head = await secret_room(alice, bob)
        yield relay, alice, room, head


async def test_a_join_while_the_log_keeps_growing_is_decided_again_until_it_fits() -> None:
    """Many joining at once: each entry that lands while a join is stored makes the join
    decided again, as long as the log grows (it once gave up after three tries)."""
    store = GrowingStore()
    async with vault_on(store) as (relay, alice, room, head):
        for n in range(JOIN_ATTEMPTS + 2):
            entry = statement(alice, room, head, Kind.DESCRIBE, description=f"take {n}")
            store.landing.append((room, entry))
            head = after(head, entry)
        store.tries = 0
        carol = await login(relay.url, Identity("carol"))
        await carol.request(JoinRoom(name="vault", token=TOKEN), RoomReply)
        assert (store.tries, store.landing) == (JOIN_ATTEMPTS + 3, [])
        join = statement(carol, room, head, Kind.JOIN)  # decided on the log with them all
        await carol.request(LogAppend(room=room, entry=join), Ok)


async def test_a_store_that_says_the_log_moved_for_nothing_is_believed_three_times() -> None:
    store = MovedStore()
    async with vault_on(store) as (relay, _, room, _):
        carol = await login(relay.url, Identity("carol"))
        refusal = await carol.error(JoinRoom(name="vault", token=TOKEN, id="j"))
        assert (refusal.code, store.tries) == (ErrorCode.UNAVAILABLE, JOIN_ATTEMPTS)
        assert carol.identity is not None
        assert carol.identity.key not in relay.directory.rooms[room].members
