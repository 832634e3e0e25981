"""A deliberate key move (``e2echat identity rotate``) through a real relay: the old key
names its successor in every room, signed by both keys; only those who verified the old
key carry verification over; a relay or a member can neither forge nor move one."""

from collections.abc import AsyncIterator

import msgspec
import pytest
from e2echat_server import Relay

import e2echat
from e2echat.crypto.statements import sign_successor
from e2echat.protocol import LogEntries, Message, RelayFrame
from tests.client.conftest import MakeClient, collect
from tests.client.proxy import EvilProxy, evil_proxy
from tests.client.test_trust import admit, member_of


def announced(event: e2echat.Event) -> bool:
    return isinstance(event, e2echat.SuccessorAnnounced)


@pytest.fixture
async def proxy(relay: Relay) -> AsyncIterator[EvilProxy]:
    async with evil_proxy(relay.url) as running:
        yield running


async def test_verification_moves_to_the_successor_only_for_who_verified(
    make_client: MakeClient,
) -> None:
    alice, bob, carol = [await make_client(n) for n in ("alice", "bob", "carol")]
    lobby = await bob.create("lobby")
    await admit(bob, alice, "lobby")
    await admit(bob, carol, "lobby")
    alice_room = alice.get_room("lobby")
    carol_room = carol.get_room("lobby")
    assert alice_room is not None
    assert carol_room is not None
    await alice.mark_verified(member_of(alice_room, bob.key))
    await alice.set_petname(member_of(alice_room, bob.key), "Bobby")
    alice_events, carol_events = alice.events(), carol.events()
    new = e2echat.Identity.generate()
    await bob.announce_successor(new)
    (to_alice,) = await collect(alice_events, 1, announced)
    (to_carol,) = await collect(carol_events, 1, announced)
    assert isinstance(to_alice, e2echat.SuccessorAnnounced)
    assert isinstance(to_carol, e2echat.SuccessorAnnounced)
    assert (to_alice.member.key, to_alice.successor, to_alice.carried) == (
        bob.key,
        new.public_key,
        True,
    )
    assert (to_carol.successor, to_carol.carried) == (new.public_key, False)
    # the new key comes into the room: verified (and petnamed) for alice only
    moved = await make_client("bob", identity=new)
    await admit(bob, moved, "lobby")
    await alice_room.members()
    await carol_room.members()
    for_alice, for_carol = (
        member_of(alice_room, new.public_key),
        member_of(carol_room, new.public_key),
    )
    assert for_alice.verified
    assert for_alice.display_name == "Bobby"
    assert for_alice.predecessor is not None
    assert (for_alice.predecessor.key, for_alice.predecessor.verified) == (bob.key, True)
    assert not for_carol.verified
    assert for_carol.predecessor is not None
    assert for_carol.predecessor.key == bob.key
    assert lobby.member_list  # the old key is still a member until it leaves
    with pytest.raises(e2echat.InvalidInput):
        await bob.announce_successor(bob._identity)  # type: ignore[arg-type]


async def test_a_member_cannot_pass_on_another_keys_successor_statement(
    make_client: MakeClient,
) -> None:
    """Mallory got bob's statement naming her key; sent as hers it is refused, and a
    second successor of one old key (a stolen key moving trust again) is refused too."""
    alice, bob, mallory = [await make_client(n) for n in ("alice", "bob", "mallory")]
    await bob.create("lobby")
    await admit(bob, alice, "lobby")
    await admit(bob, mallory, "lobby")
    room = alice.get_room("lobby")
    assert room is not None
    await alice.mark_verified(member_of(room, bob.key))
    stolen = sign_successor(bob._identity, mallory._identity, 1)  # type: ignore[arg-type]
    events, inbox = alice.events(), alice.messages()
    driver = mallory._driver
    mallory_room = mallory.get_room("lobby")
    assert mallory_room is not None
    _item, out = await driver.call(driver.engine.announce_successor, mallory_room.id, stolen)
    driver.dispatch(out)
    await mallory_room.send("barrier")
    await collect(inbox, 1, lambda m: m.text == "barrier")
    contacts = alice._driver.engine.session.contacts
    assert contacts.get(bob.key).successor is None  # type: ignore[union-attr]
    assert not member_of(room, mallory.key).verified
    first = e2echat.Identity.generate()
    await bob.announce_successor(first)
    await collect(events, 1, announced)
    # a second, other key, sent past the client's own refusal (a stolen key's thief)
    second = sign_successor(bob._identity, e2echat.Identity.generate(), 2)  # type: ignore[arg-type]
    bob_room = bob.get_room("lobby")
    assert bob_room is not None
    _item, out = await bob._driver.call(bob._driver.engine.announce_successor, bob_room.id, second)
    bob._driver.dispatch(out)
    await bob_room.send("after")
    await collect(inbox, 1, lambda m: m.text == "after")
    assert contacts.get(bob.key).successor == first.public_key  # type: ignore[union-attr]


async def test_a_rewriting_relay_moves_no_trust(make_client: MakeClient, proxy: EvilProxy) -> None:
    """The statement travels end to end encrypted and signed: a relay that alters the
    message carrying it gets it rejected, and nothing is carried over."""
    bob = await make_client("bob")
    alice = await make_client("alice", proxy.url)
    await bob.create("lobby")
    await admit(bob, alice, "lobby")
    room = alice.get_room("lobby")
    assert room is not None
    await alice.mark_verified(member_of(room, bob.key))
    events = alice.events()

    def flip(frame: RelayFrame) -> list[RelayFrame]:
        if isinstance(frame, Message):
            body = bytearray(frame.body)
            body[-20] ^= 1
            return [msgspec.structs.replace(frame, body=bytes(body))]
        return [frame]

    proxy.rewrite = flip
    new = e2echat.Identity.generate()
    await bob.announce_successor(new)
    (event,) = await collect(events, 1, lambda e: isinstance(e, e2echat.Undecryptable))
    assert isinstance(event, e2echat.Undecryptable)
    proxy.rewrite = lambda frame: [frame]
    moved = await make_client("bob", identity=new)
    await admit(bob, moved, "lobby")
    await room.members()
    assert not member_of(room, new.public_key).verified
    assert member_of(room, new.public_key).predecessor is None


def validated_key(event: e2echat.Event, key: bytes) -> bool:
    return isinstance(event, e2echat.MemberValidated) and event.member.key == key


def entered(followed: list[e2echat.FollowedRoom]) -> dict[str, e2echat.Room]:
    """The new key's rooms by the old rooms' names; fails on any problem."""
    assert [(f.old.name, f.problem) for f in followed if f.problem] == []
    return {f.old.name: f.room for f in followed if f.room is not None}


async def test_the_new_key_enters_every_room_of_the_old_one_without_asking(
    make_client: MakeClient,
) -> None:
    """No invite, password or peer asked again: open, invite, password and direct rooms
    all follow, and where the old key owns the room (open or secret) the new one is its
    admin; a second call changes nothing."""
    alice, bob = await make_client("alice"), await make_client("bob")
    club = await bob.create("club", secret=True)
    await alice.join("club", invite=club.invite())
    await alice.create("pw", "a long room password")
    await bob.join("pw", "a long room password")
    await bob.create("lobby")
    await alice.join("lobby")
    alice_events = alice.events()
    old_direct = await bob.direct(alice.key)
    await collect(alice_events, 1, lambda e: isinstance(e, e2echat.DirectStarted))
    new = e2echat.Identity.generate()
    await bob.announce_successor(new)
    moved = await make_client("bob", identity=new)
    alice_events, alice_validated = alice.events(), alice.events()
    followed = await moved.join_rooms_of(bob)
    rooms = entered(followed)
    assert len(rooms) == 4
    assert sorted((r.name, r.access) for r in moved.rooms if r.peer is None) == [
        ("club", "invite"),
        ("lobby", "open"),
        ("pw", "password"),
    ]
    for name, role in (("club", "admin"), ("lobby", "admin"), ("pw", "member")):
        assert bob.get_room(name).roles[new.public_key] == role  # type: ignore[union-attr]
    # alice's client takes the new key in: proofs checked, and the new direct accepted
    (started,) = await collect(alice_events, 1, lambda e: isinstance(e, e2echat.DirectStarted))
    assert isinstance(started, e2echat.DirectStarted)
    assert started.peer.key == new.public_key
    await collect(alice_validated, 4, lambda e: validated_key(e, new.public_key))
    # each side reads the other in the secret rooms and the new direct
    new_direct = rooms[old_direct.name]
    assert new_direct.peer == alice.key
    inbox, alice_inbox = moved.messages(), alice.messages()
    for name, alice_room in (("club", alice.get_room("club")), ("pw", alice.get_room("pw"))):
        assert alice_room is not None
        await alice_room.send(f"hello in {name}")
        await rooms[name].send(f"back in {name}")
    await started.room.send("hello in private")
    await new_direct.send("back in private")
    got = sorted(m.text for m in await collect(inbox, 3))
    assert got == ["hello in club", "hello in private", "hello in pw"]
    got = sorted(m.text for m in await collect(alice_inbox, 3))
    assert got == ["back in club", "back in private", "back in pw"]
    again = entered(await moved.join_rooms_of(bob))  # nothing left to do, and no error
    assert [room.id for room in again.values()] == [room.id for room in rooms.values()]


async def test_rooms_the_new_key_cannot_or_should_not_enter_do_not_stop_the_others(
    make_client: MakeClient,
) -> None:
    """A room that bans the new key is reported, and a direct conversation the peer
    left is not started again (it would pull the peer back in)."""
    alice, bob, carol = [await make_client(n) for n in ("alice", "bob", "carol")]
    await alice.create("pw", "a long room password")
    await bob.join("pw", "a long room password")
    await alice.create("lobby")
    await bob.join("lobby")
    carol_events = carol.events()
    await bob.direct(carol.key)
    (started,) = await collect(carol_events, 1, lambda e: isinstance(e, e2echat.DirectStarted))
    assert isinstance(started, e2echat.DirectStarted)
    await started.room.leave()
    new = e2echat.Identity.generate()
    await bob.announce_successor(new)
    moved = await make_client("bob", identity=new)
    pw = alice.get_room("pw")
    assert pw is not None
    alice_events = alice.events()
    await moved.join("pw", "a long room password")
    await collect(alice_events, 1, lambda e: validated_key(e, new.public_key))
    await pw.ban(member_of(pw, new.public_key))
    direct = bob.get_direct(carol.key)
    assert direct is not None
    await direct.members()  # bob's client has seen carol leave
    followed = {f.old.name: f for f in await moved.join_rooms_of(bob)}
    assert isinstance(followed["pw"].problem, e2echat.E2EChatError)
    assert followed["pw"].room is None
    assert followed["lobby"].room is not None
    assert followed["lobby"].problem is None
    assert isinstance(followed[direct.name].problem, e2echat.NotAMember)
    assert moved.get_direct(carol.key) is None
    assert [room.name for room in moved.rooms] == ["lobby"]
    with pytest.raises(e2echat.InvalidInput):
        await bob.join_rooms_of(bob)


async def test_the_old_key_catches_up_with_the_join_before_it_names_the_admin(
    make_client: MakeClient, proxy: EvilProxy
) -> None:
    """A relay that withholds the new key's join from the old key's client: the old key
    fetches the log itself, so the new key still becomes the admin of its room."""
    bob = await make_client("bob", proxy.url)
    await bob.create("club", secret=True)
    new = e2echat.Identity.generate()
    await bob.announce_successor(new)
    moved = await make_client("bob", identity=new)

    withheld: list[LogEntries] = []

    def withhold_the_join(frame: RelayFrame) -> list[RelayFrame]:
        if isinstance(frame, LogEntries) and frame.id is None and not withheld:
            withheld.append(frame)  # the push of the new key's join entry
            return []
        return [frame]

    proxy.rewrite = withhold_the_join
    (followed,) = await moved.join_rooms_of(bob)
    assert followed.problem is None
    assert len(withheld) == 1
    assert bob.get_room("club").roles[new.public_key] == "admin"  # type: ignore[union-attr]


async def test_a_key_that_named_its_successor_cannot_name_another(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Members accept one successor per key, so a second, other one is refused where it
    is made, also after a restart, and nothing goes out for it."""
    alice, bob = await make_client("alice"), await make_client("bob")
    await bob.create("lobby")
    await admit(bob, alice, "lobby")
    events = alice.events()
    new = e2echat.Identity.generate()
    await bob.announce_successor(new)
    await collect(events, 1, announced)
    await bob.close()
    bob = await make_client("bob")  # the same identity and store
    with pytest.raises(e2echat.InvalidInput, match="already named another successor"):
        await bob.announce_successor(e2echat.Identity.generate())
    await bob.announce_successor(new)  # the same one again: the barrier
    (again,) = await collect(events, 1, announced)
    assert again.successor == new.public_key  # type: ignore[attr-defined]
    assert "successor statement was rejected" not in caplog.text
