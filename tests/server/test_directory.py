"""The pure room and membership rules: every refusal raises and changes nothing."""

from collections.abc import Callable
from typing import Any

import pytest
from e2echat_server.change import Change, ChangeState
from e2echat_server.directory import (
    STATUS_BURST,
    STATUS_RATE,
    Directory,
    DirectoryLimits,
    Room,
    token_matches,
)
from e2echat_server.store import MemberRecord, MemoryStore, RoomRecord, Snapshot, UserRecord
from nacl.signing import SigningKey

from e2echat.crypto import Identity, sign_name
from e2echat.protocol import (
    CreateRoom,
    ErrorCode,
    JoinRoom,
    OpenAccess,
    Presence,
    ProtocolError,
    RoomInfo,
    RoomReply,
    RosterEntry,
    SecretAccess,
    SignedPrekey,
    decode_relay_frame,
    encode_frame,
)
from e2echat.protocol.constants import MAX_LIST_ITEMS
from e2echat.protocol.roomlog import EMPTY_HEAD, Kind, LogHead, Role, encode_entry, entry_hash
from tests.server.wire import verifier_for

A, B, C = b"a" * 32, b"b" * 32, b"c" * 32
PREKEY = SignedPrekey(id=1, key=b"p" * 32, sig=b"s" * 64)
TOKEN = b"t" * 32


def directory(max_members: int = 3, max_rooms: int = 2, mailbox: int = 2) -> Directory:
    d = Directory(DirectoryLimits(max_members, max_rooms, mailbox))
    for key, name in ((A, "alice"), (B, "bob"), (C, "carol")):
        _, change = d.authenticate(key, name, PREKEY)
        committed(change)
    return d


def listed(info: RoomInfo) -> RoomInfo:
    """A room as its member reads it from the wire (the relay lists members encoded)."""
    reply = decode_relay_frame(encode_frame(RoomReply(room=info)))
    assert isinstance(reply, RoomReply)
    return reply.room


def committed(change: Change | None) -> None:
    assert change is not None
    change.commit()


def create(d: Directory, key: bytes, name: str, room_id: bytes, **fields: Any) -> Room:
    room, change = d.create_room(
        key, CreateRoom(name=name, access=OpenAccess(), **fields), room_id, 0
    )
    committed(change)
    return room


def join(d: Directory, key: bytes, name: str, token: bytes | None = None) -> Room:
    room, change = d.join(key, JoinRoom(name=name, token=token), 1)
    committed(change)
    return room


def snapshot_of(d: Directory) -> tuple[object, ...]:
    return (
        {k: (r.record, dict(r.members), r.seq) for k, r in d.rooms.items()},
        dict(d.by_name),
        {k: set(v) for k, v in d.rooms_of.items() if v},
    )


def refused(d: Directory, code: ErrorCode, action: object) -> None:
    before = snapshot_of(d)
    with pytest.raises(ProtocolError) as info:
        action()  # type: ignore[operator]
    assert info.value.code is code
    assert snapshot_of(d) == before


def test_create_and_its_refusals() -> None:
    d = directory(max_rooms=1)
    room, _ = d.create_room(A, CreateRoom(name="lobby", access=OpenAccess()), b"1" * 16, 10)
    assert (room.members, room.record.max_members, room.record.access_kind) == ({A: 10}, 3, "open")
    refused(
        d,
        ErrorCode.NAME_TAKEN,
        lambda: d.create_room(B, CreateRoom(name="lobby", access=OpenAccess()), b"2" * 16, 0),
    )
    refused(
        d,
        ErrorCode.QUOTA_EXCEEDED,
        lambda: d.create_room(A, CreateRoom(name="other", access=OpenAccess()), b"2" * 16, 0),
    )
    refused(
        d,
        ErrorCode.BAD_FRAME,
        lambda: d.create_room(
            B, CreateRoom(name="big", access=OpenAccess(), max_members=4), b"2" * 16, 0
        ),
    )


def test_join_checks_the_secret_the_size_and_the_quota() -> None:
    d = directory(max_members=2, max_rooms=1)
    access = SecretAccess(verifier=verifier_for(TOKEN), salt=b"s" * 16)
    committed(d.create_room(A, CreateRoom(name="den", access=access), b"1" * 16, 0)[1])
    refused(d, ErrorCode.NO_SUCH_ROOM, lambda: d.join(B, JoinRoom(name="nowhere"), 1))
    refused(d, ErrorCode.FORBIDDEN, lambda: d.join(B, JoinRoom(name="den"), 1))
    refused(d, ErrorCode.FORBIDDEN, lambda: d.join(B, JoinRoom(name="den", token=b"x" * 32), 1))
    room = join(d, B, "den", TOKEN)
    assert room.members == {A: 0, B: 1}
    assert d.join(B, JoinRoom(name="den"), 2) == (room, None)  # a member needs no token again
    refused(d, ErrorCode.ROOM_FULL, lambda: d.join(C, JoinRoom(name="den", token=TOKEN), 1))
    create(d, C, "mine", b"2" * 16)
    refused(d, ErrorCode.QUOTA_EXCEEDED, lambda: d.join(A, JoinRoom(name="mine"), 1))


def test_membership_peers_and_dropping_a_room() -> None:
    d = directory()
    create(d, A, "lobby", b"1" * 16)
    join(d, B, "lobby")
    assert d.peers(A) == {B}
    assert d.peers(C) == set()
    refused(d, ErrorCode.NOT_MEMBER, lambda: d.member_room(C, b"1" * 16))
    refused(d, ErrorCode.NO_SUCH_ROOM, lambda: d.member_room(A, b"9" * 16))
    refused(d, ErrorCode.NOT_MEMBER, lambda: d.leave(C, b"1" * 16))
    committed(d.leave(B, b"1" * 16)[1])
    room, change = d.leave(A, b"1" * 16)  # the last member: the room goes, its name is free
    assert room.members == {}
    assert d.peers(A) == set()
    refused(d, ErrorCode.NO_SUCH_ROOM, lambda: d.lookup("lobby"))
    change.commit()
    assert d.rooms == {}


def test_sequence_numbers_and_timestamps_never_go_back() -> None:
    d = directory()
    room = create(d, A, "lobby", b"1" * 16)
    assert d.next_message(room, 500) == (1, 500)
    assert d.next_message(room, 400) == (2, 500)


def test_mailbox_is_bounded_and_only_for_known_keys() -> None:
    d = directory(mailbox=2)
    entries = [d.post_direct(B, A, b"x", 5)[0], d.post_direct(B, A, b"y", 6)[0]]
    assert [(e.seq, e.ts, e.sender, e.body) for e in entries] == [(1, 5, A, b"x"), (2, 6, A, b"y")]
    refused(d, ErrorCode.UNAVAILABLE, lambda: d.post_direct(B, A, b"z", 7))
    refused(d, ErrorCode.FORBIDDEN, lambda: d.post_direct(b"z" * 32, A, b"z", 7))
    d.mailbox_acked(B, 1)
    assert d.users[B].mailbox_count == 1


def test_authenticate_reports_changes_only() -> None:
    d = directory()
    assert d.authenticate(A, "alice", PREKEY)[1] is None
    user, change = d.authenticate(A, "alicia", PREKEY)
    assert change is not None
    assert (user.name, change.operation) == ("alicia", "put_user")


def test_token_check() -> None:
    assert token_matches(TOKEN, verifier_for(TOKEN))
    assert not token_matches(b"u" * 32, verifier_for(TOKEN))


def test_snapshot_rebuilds_the_directory() -> None:
    room = RoomRecord(b"1" * 16, "lobby", "hi", 5, False, "open", None, None, 0)
    snapshot = Snapshot(
        users=[UserRecord(A, "alice", 1, b"p" * 32, b"s" * 64, 9)],
        rooms=[room],
        members=[MemberRecord(room.id, A, 3), MemberRecord(room.id, B, 4)],  # B unknown: skipped
        room_seqs={room.id: 42},
        mailbox_seqs={A: 7},
        mailbox_counts={A: 2},
    )
    d = Directory.from_snapshot(snapshot, DirectoryLimits(5, 5, 5), now=0)
    rebuilt = d.lookup("lobby")
    assert (rebuilt.seq, rebuilt.members) == (42, {A: 3})
    assert (d.users[A].mailbox_seq, d.users[A].mailbox_count, d.users[A].last_seen) == (7, 2, 9)
    assert d.listed() == []
    info = listed(d.room_info(rebuilt))
    assert (info.seq, [m.name for m in info.members], info.members[0].status) == (
        42,
        ["alice"],
        "offline",
    )
    assert d.summary(rebuilt).member_count == 1


def test_the_room_list_is_capped_at_what_a_rooms_frame_may_carry_biggest_first() -> None:
    d = directory(max_rooms=MAX_LIST_ITEMS + 2)
    for i in range(MAX_LIST_ITEMS + 1):
        create(d, A, f"r{i}", i.to_bytes(16, "big"))
    create(d, A, "hidden", b"h" * 16, listed=False)
    join(d, B, "r7")
    listed = d.listed()
    assert len(listed) == MAX_LIST_ITEMS
    assert listed[0].record.name == "r7"
    assert all(room.record.listed for room in listed)


def test_status_changes_have_a_budget_and_repeats_are_not_changes() -> None:
    d = directory()
    assert d.set_status(A, "away", "lunch", 0.0)
    assert not d.set_status(A, "away", "lunch", 0.0)  # the same again: nothing to broadcast
    for i in range(STATUS_BURST - 1):
        assert d.set_status(A, "busy" if i % 2 else "online", None, 0.0)
    before = snapshot_of(d), (d.users[A].status, d.users[A].text)
    with pytest.raises(ProtocolError) as refused:
        d.set_status(A, "away", None, 0.0)
    assert refused.value.code is ErrorCode.RATE_LIMITED
    assert (snapshot_of(d), (d.users[A].status, d.users[A].text)) == before
    assert d.set_status(A, "away", None, 1 / STATUS_RATE)  # the budget refills
    assert d.set_status(B, "away", None, 0.0)  # every user has their own


def test_the_status_texts_after_a_roster_name_each_member_with_one_once() -> None:
    d = directory()
    create(d, A, "one", b"1" * 16)
    create(d, A, "two", b"2" * 16)
    for name in ("one", "two"):
        join(d, B, name)
    join(d, C, "two")
    assert d.set_status(B, "away", "lunch", 0.0)
    assert d.set_status(C, "busy", None, 0.0)  # a status without a text: in the roster
    texts = d.status_texts([b"1" * 16, b"2" * 16, b"?" * 16])
    assert texts == [Presence(key=B, status="away", text="lunch")]
    # more users with a text than the room has members: the room is walked instead
    assert d.set_status(A, "online", "here", 0.0)
    assert d.set_status(C, "busy", "meeting", 0.0)  # C is not in room one
    assert d.status_texts([b"1" * 16]) == [
        Presence(key=A, status="online", text="here"),
        Presence(key=B, status="away", text="lunch"),
    ]
    d.went_offline(B, 5)  # going offline clears the text
    assert d.status_texts([b"1" * 16]) == [Presence(key=A, status="online", text="here")]
    assert [p.key for p in d.status_texts([b"2" * 16])] == [A, C]


def test_idle_users_are_forgotten_oldest_first_unless_something_keeps_them() -> None:
    d = directory(max_rooms=1)
    for key, ended in ((A, 10), (B, 20), (C, 30)):
        d.release(key, ended)
    create(d, B, "lobby", b"1" * 16)  # B: a room
    committed(d.post_direct(C, A, b"x", 0)[1])  # C: mail waiting
    assert d.forget(cutoff=9, limit=10) == []  # nobody idle long enough
    assert d.forget(cutoff=30, limit=1) == [A]  # the batch limit counts examined users
    assert A not in d.users
    assert A not in d.rooms_of
    assert d.has_idle_before(30)
    assert d.forget(cutoff=30, limit=10) == []  # B and C are kept...
    assert not d.has_idle_before(10**9)  # ...and leave the idle list until they reconnect
    assert set(d.users) == {B, C}
    d.authenticate(A, "alice", PREKEY)  # a forgotten key is simply new again
    assert d.users[A].mailbox_seq == 0


def test_a_user_with_a_session_is_never_idle() -> None:
    d = directory()
    d.authenticate(A, "alice", PREKEY)  # a second session
    d.release(A, 5)
    assert not d.has_idle_before(10**9)
    d.release(A, 7)
    assert list(d.idle.items()) == [(A, 7)]
    d.authenticate(A, "alice", PREKEY)  # back before the sweep: no longer a candidate
    assert A not in d.idle


def test_a_loaded_user_is_idle_since_last_seen_or_start_up() -> None:
    snapshot = Snapshot(
        users=[
            UserRecord(A, "alice", 1, b"p" * 32, b"s" * 64, last_seen=50),
            UserRecord(B, "bob", 1, b"p" * 32, b"s" * 64, last_seen=None),
            UserRecord(C, "carol", 1, b"p" * 32, b"s" * 64, last_seen=5),
        ],
        rooms=[],
        members=[],
        room_seqs={},
        mailbox_seqs={},
        mailbox_counts={},
    )
    d = Directory.from_snapshot(snapshot, DirectoryLimits(5, 5, 5), now=100)
    assert list(d.idle.items()) == [(C, 5), (A, 50), (B, 100)]
    assert d.forget(cutoff=60, limit=10) == [C, A]


def test_online_offline_changes_share_the_presence_budget_and_owe_a_catch_up() -> None:
    d = directory()
    for _ in range(STATUS_BURST - 1):
        assert d.presence_due(A, 0.0) is None
    assert d.set_status(A, "away", None, 0.0)  # the last token
    assert d.presence_due(A, 0.0) == 1 / STATUS_RATE  # over budget: not now, in 2 s
    assert d.users[A].presence_pending
    with pytest.raises(ProtocolError):
        d.set_status(A, "busy", None, 0.5)  # the same budget
    assert d.presence_due(A, 1.0) == 1 / STATUS_RATE / 2  # asked again: still owed
    assert d.presence_due(A, 1 / STATUS_RATE) is None  # refilled: the catch-up goes out
    assert not d.users[A].presence_pending
    assert d.presence_due(B, 0.0) is None  # every user has their own


def test_a_status_broadcast_settles_an_owed_catch_up() -> None:
    d = directory()
    for _ in range(STATUS_BURST):
        d.presence_due(A, 0.0)
    assert d.presence_due(A, 0.0) is not None
    assert d.set_status(A, "away", None, 1 / STATUS_RATE)
    assert not d.users[A].presence_pending


def users_of(d: Directory) -> dict[bytes, tuple[object, ...]]:
    return {
        k: (u.name, u.prekey, u.mailbox_seq, u.mailbox_count, u.stored) for k, u in d.users.items()
    }


def test_every_change_undone_leaves_the_directory_as_it_was() -> None:
    d = directory()
    create(d, A, "lobby", b"1" * 16)
    join(d, B, "lobby")
    other = SignedPrekey(id=2, key=b"q" * 32, sig=b"s" * 64)
    actions: list[Callable[[], Change | None]] = [
        lambda: d.create_room(C, CreateRoom(name="new", access=OpenAccess()), b"2" * 16, 0)[1],
        lambda: d.join(C, JoinRoom(name="lobby"), 5)[1],
        lambda: d.leave(B, b"1" * 16)[1],
        lambda: d.post_direct(C, A, b"x", 0)[1],
        lambda: d.set_prekey(A, other),
        lambda: d.authenticate(A, "alicia", PREKEY)[1],
    ]
    for action in actions:
        before = snapshot_of(d), users_of(d)
        change = action()
        assert change is not None
        assert (snapshot_of(d), users_of(d)) != before
        change.undo()
        assert change.state is ChangeState.UNDONE
        if change.operation == "mailbox_put":  # the seq stays used: only the count returns
            d.users[C].mailbox_seq -= 1
        if change.operation == "put_user":  # a second session stays counted
            d.release(A, 0)
        assert (snapshot_of(d), users_of(d)) == before, change
    # The last member leaving, undone, brings back the room, its name and its members.
    join(d, C, "lobby")
    for key in (B, C):
        committed(d.leave(key, b"1" * 16)[1])
    before = snapshot_of(d)
    _, change = d.leave(A, b"1" * 16)
    change.undo()
    assert snapshot_of(d) == before


def test_a_change_settles_once() -> None:
    d = directory()
    change = d.set_prekey(A, PREKEY)
    change.commit()
    with pytest.raises(RuntimeError):
        change.undo()
    with pytest.raises(RuntimeError):
        change.commit()


def test_a_new_user_whose_write_failed_is_written_at_its_next_hello() -> None:
    d = Directory(DirectoryLimits(3, 3, 3))
    _, change = d.authenticate(A, "alice", PREKEY)
    assert change is not None
    change.undo()
    d.release(A, 0)
    _, again = d.authenticate(A, "alice", PREKEY)  # same name and prekey, still unsaved
    assert again is not None
    again.commit()
    d.release(A, 0)
    assert d.authenticate(A, "alice", PREKEY)[1] is None


async def test_each_change_persists_what_it_changed() -> None:
    store = MemoryStore()
    d = Directory(DirectoryLimits(3, 3, 3))
    for key, name in ((A, "alice"), (B, "bob")):
        change = d.authenticate(key, name, PREKEY)[1]
        assert change is not None
        await change.persist(store)
    room, change = d.create_room(A, CreateRoom(name="lobby", access=OpenAccess()), b"1" * 16, 3)
    await change.persist(store)
    _, joined = d.join(B, JoinRoom(name="lobby"), 4)
    assert joined is not None
    await joined.persist(store)
    await d.post_direct(B, A, b"x", 5)[1].persist(store)
    await d.went_offline(A, 9).persist(store)
    loaded = Directory.from_snapshot(await store.load(), d.limits, 0)
    assert loaded.rooms[room.record.id].members == {A: 3, B: 4}
    assert (loaded.users[A].last_seen, loaded.users[B].mailbox_count) == (9, 1)
    await d.leave(B, room.record.id)[1].persist(store)
    await d.leave(A, room.record.id)[1].persist(store)
    keys, forget = d.forgetting(10**9, 10)
    assert keys == []  # nobody idle: both still have sessions
    await forget.persist(store)
    assert (await store.load()).rooms == []


def test_members_are_listed_as_they_are_now_whatever_changed_since_the_last_listing() -> None:
    """Each member's entry is encoded once and kept: every change of what is listed of it
    (name, statement, prekey, presence, here or on another relay) and every join or leave
    must show in the next listing, in join order, byte for byte as encoding them gives."""
    d = directory(max_members=5)
    room = create(d, A, "lobby", b"1" * 16)
    join(d, B, "lobby")

    def assert_current() -> None:
        fresh = [d.member(key, joined) for key, joined in room.members.items()]
        expected = encode_frame(RoomReply(room=d._room_info(room, fresh)))
        assert encode_frame(RoomReply(room=d.room_info(room))) == expected
        assert [m.key for m in listed(d.room_info(room)).members] == list(room.members)

    assert_current()
    signer = Identity.generate()  # the directory leaves checking statements to its caller
    committed(d.rename(B, "bobby", sign_name(signer, "bobby", 1)))
    assert_current()
    d.went_online(A)
    assert_current()
    assert d.set_status(A, "busy", "away a while", 0.0)
    assert_current()
    committed(d.set_prekey(B, SignedPrekey(id=2, key=b"q" * 32, sig=b"r" * 64)))
    assert_current()
    d.went_offline(A, 5)
    join(d, C, "lobby")
    assert_current()
    undone = d.rename(C, "carl", sign_name(signer, "carl", 1))
    assert_current()  # listed while its write is on its way, then the write fails
    undone.undo()
    assert_current()
    d.follow_presence(C, "away", None, None)
    assert_current()
    d.follow_user(UserRecord(B, "robert", 3, b"k" * 32, b"g" * 64, None, None), 0)
    assert_current()
    _, change = d.leave(B, room.record.id)
    committed(change)
    assert_current()
    join(d, B, "lobby")  # back, listed last as it joined last
    assert_current()
    assert [m.name for m in listed(d.room_info(room)).members] == ["alice", "carol", "robert"]
    assert isinstance(listed(d.room_info(room)).members[0], RosterEntry)


def test_a_copy_of_the_log_only_grows_and_an_announcement_outlives_an_older_read() -> None:
    owner = SigningKey.generate()
    author = bytes(owner.verify_key)
    d = directory()
    _, change = d.authenticate(author, "owen", PREKEY)
    committed(change)
    room = create(d, author, "den", b"1" * 16)
    room_id = room.record.id
    entries, head = [], EMPTY_HEAD
    for kind in (Kind.CREATE, Kind.DESCRIBE, Kind.DESCRIBE):
        entry = encode_entry(
            lambda message: owner.sign(message).signature,
            kind=kind,
            room_id=room_id,
            seq=head.length,
            prev=head.head,
            author=author,
            created=1,
            subject=author,
            role=Role.OWNER,
            description=f"take {head.length}",
        )
        entries.append(entry)
        head = LogHead(head.length + 1, entry_hash(entry))
    assert room.log_stale  # never read
    d.load_log(room_id, 0, entries[:1])
    assert not room.log_stale
    state, _ = d.check_log_append(author, room_id, entries[1])
    d.log_appended(room_id, state)
    d.load_log(room_id, 0, entries[:1])  # a read answered after this relay's own append
    assert room.log is not None
    assert room.log.length == 2
    d.log_grew(room_id, 3)  # another relay appended entry 2, announced during a read...
    d.load_log(room_id, 2, [])  # ...which Redis had answered before that append
    assert room.log_stale  # so the next decision reads again
    d.load_log(room_id, 1, entries[1:])
    assert not room.log_stale
    assert room.log.length == 3
