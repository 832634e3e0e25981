"""A deliberate key move (``e2echat identity rotate``) through a real relay: the old key
names its successor in every room, signed by both keys; only those who verified the old
key carry verification over; a relay or a member can neither forge nor move one."""

from collections.abc import AsyncIterator

import msgspec
import pytest
from e2echat_server import Relay

import e2echat
from e2echat.crypto.statements import sign_successor
from e2echat.protocol import Message, RelayFrame
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
    await bob.announce_successor(e2echat.Identity.generate())  # a second, other key
    await bob.get_room("lobby").send("after")  # type: ignore[union-attr]
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


async def test_the_new_key_enters_every_room_of_the_old_one_without_asking(
    make_client: MakeClient,
) -> None:
    """No invite, password or peer asked again: open, invite, password and direct rooms
    all follow, and where the old key owns the room the new one is its admin."""
    alice, bob = await make_client("alice"), await make_client("bob")
    club = await bob.create("club", secret=True)
    await alice.join("club", invite=club.invite())
    await alice.create("pw", "a long room password")
    await bob.join("pw", "a long room password")
    await alice.create("lobby")
    await bob.join("lobby")
    alice_events = alice.events()
    await bob.direct(alice.key)
    await collect(alice_events, 1, lambda e: isinstance(e, e2echat.DirectStarted))
    new = e2echat.Identity.generate()
    await bob.announce_successor(new)
    moved = await make_client("bob", identity=new)
    alice_events = alice.events()
    followed = await moved.join_rooms_of(bob)
    rooms = {old.name: room for old, room in followed}
    assert all(isinstance(room, e2echat.Room) for room in rooms.values()), rooms
    assert sorted((r.name, r.access) for r in moved.rooms if r.peer is None) == [
        ("club", "invite"),
        ("lobby", "open"),
        ("pw", "password"),
    ]
    assert bob.get_room("club").roles[new.public_key] == "admin"  # type: ignore[union-attr]
    assert alice.get_room("pw").roles[new.public_key] == "member"  # type: ignore[union-attr]
    direct = moved.get_direct(alice.key)
    assert direct is not None
    # alice's client takes the new key in (proofs checked, the direct accepted) ...
    await collect(alice_events, 3, lambda e: validated_key(e, new.public_key))
    # ... and each side reads the other in the secret rooms
    inbox, alice_inbox = moved.messages(), alice.messages()
    for name in ("club", "pw"):
        alice_room = alice.get_room(name)
        assert alice_room is not None
        await alice_room.send(f"hello in {name}")
        await rooms[name].send(f"back in {name}")  # type: ignore[union-attr]
    got = sorted(m.text for m in await collect(inbox, 2))
    assert got == ["hello in club", "hello in pw"]
    got = sorted(m.text for m in await collect(alice_inbox, 2))
    assert got == ["back in club", "back in pw"]


async def test_a_room_the_new_key_cannot_enter_does_not_stop_the_others(
    make_client: MakeClient,
) -> None:
    alice, bob = await make_client("alice"), await make_client("bob")
    await alice.create("pw", "a long room password")
    await bob.join("pw", "a long room password")
    await alice.create("lobby")
    await bob.join("lobby")
    new = e2echat.Identity.generate()
    await bob.announce_successor(new)
    moved = await make_client("bob", identity=new)
    pw = alice.get_room("pw")
    assert pw is not None
    alice_events = alice.events()
    await moved.join("pw", "a long room password")
    await collect(alice_events, 1, lambda e: validated_key(e, new.public_key))
    await pw.ban(member_of(pw, new.public_key))
    followed = dict((old.name, room) for old, room in await moved.join_rooms_of(bob))
    assert isinstance(followed["pw"], e2echat.E2EChatError)
    assert isinstance(followed["lobby"], e2echat.Room)
    assert [room.name for room in moved.rooms] == ["lobby"]
    with pytest.raises(e2echat.InvalidInput):
        await bob.join_rooms_of(bob)
