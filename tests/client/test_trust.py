"""Issue scenarios through a real relay: an identity is a key, a name is a label.

Namesakes and look-alikes are flagged and never trusted, renames are signed and reach
every room (live and at the next connect), mentions pick keys, and one identity has one
live connection.
"""

import dataclasses
from pathlib import Path

import pytest
from e2echat_server import Relay

import e2echat
from tests.client.conftest import FAST_POLICY, MakeClient, collect

CYRILLIC_A = "\u0430"


def joined(event: e2echat.Event, key: bytes) -> bool:
    return isinstance(event, e2echat.MemberJoined) and event.member.key == key


async def admit(owner: e2echat.Client, joiner: e2echat.Client, room: str) -> None:
    """``joiner`` joins ``room`` and ``owner`` has seen it join (its roster lists it)."""
    events = owner.events()
    await joiner.join(room)
    await collect(events, 1, lambda e: joined(e, joiner.key))


def member_of(room: e2echat.Room, key: bytes) -> e2echat.Member:
    (found,) = [m for m in room.member_list if m.key == key]
    return found


async def test_a_namesake_of_a_verified_member_is_flagged_not_trusted(
    make_client: MakeClient,
) -> None:
    """Bob verified alice; Carol comes as "alice" into the open room."""
    alice, bob = await make_client("alice"), await make_client("bob")
    room = await bob.create("lobby")
    await admit(bob, alice, "lobby")
    await bob.mark_verified(member_of(room, alice.key))
    carol = await make_client("alice", identity=e2echat.Identity.generate())
    await admit(bob, carol, "lobby")
    real, namesake = member_of(room, alice.key), member_of(room, carol.key)
    assert real.verified
    assert not namesake.verified
    assert namesake.lookalikes[0].key == alice.key
    assert namesake.lookalikes[0].verified
    assert namesake.warning == f"not the alice you verified (same name as alice#{real.tag})"
    assert real.lookalikes[0].key == carol.key  # the real one is told apart by tag too
    # an open room: Carol gets what anyone admitted gets, the real alice keeps receiving
    got_alice, got_carol = alice.messages(), carol.messages()
    with pytest.raises(e2echat.AmbiguousMention, match=f"@alice#{real.tag}"):
        await room.send("@alice are you there?")
    sent = await room.send(f"@alice#{real.tag} are you there?")
    with pytest.raises(e2echat.AmbiguousMention):  # an edit is resolved as a send is
        await sent.edit("@alice still there?")
    (to_alice,) = await collect(got_alice, 1)
    (to_carol,) = await collect(got_carol, 1)
    assert to_alice.mentions_me
    assert not to_carol.mentions_me  # highlighting is by key, not by name
    await room.send("for you", mentions=[namesake])
    (second,) = await collect(got_carol, 1)
    assert second.mentions_me


def test_a_verified_key_is_never_called_not_the_one_you_verified() -> None:
    """A new key that carried the verification over (``identity rotate``) shares its
    name with the old, verified key: its warning says so, but not that it is "not the
    bob you verified", beside its own ✔."""
    old = e2echat.Lookalike(b"o" * 32, "bob", "76e2 4aa8", same_name=True, verified=True)
    new = e2echat.Member(
        b"n" * 32, "bob", "online", None, "4067 4cf2", True, True, False, lookalikes=(old,)
    )
    assert new.warning == "same name as bob#76e2"
    impostor = dataclasses.replace(new, verified=False)
    assert impostor.warning == "not the bob you verified (same name as bob#76e2)"


async def test_look_alike_names_are_flagged(make_client: MakeClient) -> None:
    bob, alice = await make_client("bob"), await make_client("alice")
    room = await bob.create("lobby")
    await admit(bob, alice, "lobby")
    spoof = await make_client(f"{CYRILLIC_A}lice")
    await admit(bob, spoof, "lobby")
    flagged = member_of(room, spoof.key)
    assert flagged.mixed_script
    assert [(x.key, x.same_name) for x in flagged.lookalikes] == [(alice.key, False)]
    assert flagged.warning == f"looks like alice#{member_of(room, alice.key).tag}"
    assert member_of(room, bob.key).warning is None


async def test_a_rename_reaches_every_room_keeps_trust_and_is_remembered(
    make_client: MakeClient, relay: Relay, tmp_path: Path
) -> None:
    bob, alice = await make_client("bob"), await make_client("alice")
    rooms = [await bob.create(name) for name in ("one", "two")]
    for room in rooms:
        await admit(bob, alice, room.name)
    await bob.mark_verified(member_of(rooms[0], alice.key))
    events = bob.events()
    await alice.rename("ally")
    (renamed,) = await collect(events, 1, lambda e: isinstance(e, e2echat.MemberRenamed))
    assert isinstance(renamed, e2echat.MemberRenamed)
    assert (renamed.member.name, renamed.previous) == ("ally", "alice")
    for room in rooms:
        shown = member_of(room, alice.key)
        assert (shown.name, shown.verified) == ("ally", True)
    # remembered: the next client of that key connects as "ally" without being told
    store = tmp_path / f"alice-{alice.key.hex()[:8]}.sqlite3"  # as make_client names it
    identity = alice._identity
    await alice.close()
    again = e2echat.Client(relay.url, identity=identity, store=store, policy=FAST_POLICY)
    async with again:
        assert again.name == "ally"
        listed = await rooms[1].members()
        assert [m.name for m in listed if m.key == alice.key] == ["ally"]


async def test_a_rename_while_offline_is_learned_at_the_next_connect(
    make_client: MakeClient,
) -> None:
    bob, alice = await make_client("bob"), await make_client("alice")
    room = await bob.create("lobby")
    await admit(bob, alice, "lobby")
    await bob.mark_verified(member_of(room, alice.key))
    await bob.close()
    await alice.rename("ally")
    bob_again = await make_client("bob")
    room_again = bob_again.get_room("lobby")
    assert room_again is not None
    seen = member_of(room_again, alice.key)
    assert (seen.name, seen.verified) == ("ally", True)


async def test_petnames_are_shown_and_follow_the_key(make_client: MakeClient) -> None:
    bob, alice = await make_client("bob"), await make_client("alice")
    room = await bob.create("lobby")
    await admit(bob, alice, "lobby")
    await bob.set_petname(member_of(room, alice.key), "Alice from work")
    shown = member_of(room, alice.key)
    assert (shown.display_name, shown.name) == ("Alice from work", "alice")
    events = bob.events()
    await alice.rename("mallory")
    await collect(events, 1, lambda e: isinstance(e, e2echat.MemberRenamed))
    assert member_of(room, alice.key).display_name == "Alice from work"
    with pytest.raises(e2echat.InvalidName):
        await bob.set_petname(shown, "bad\x1b[2J")


def _second_client(first: e2echat.Client, relay: Relay, tmp_path: Path) -> e2echat.Client:
    """A client of ``first``'s identity on a store of its own: it takes the connection."""
    return e2echat.Client(
        relay.url,
        identity=first._identity,
        name="alice",
        store=tmp_path / "second-store.sqlite3",
        policy=FAST_POLICY,
    )


async def test_a_second_connection_of_one_identity_replaces_the_first(
    make_client: MakeClient, relay: Relay, tmp_path: Path
) -> None:
    """The same key from a second store: the first client is told exactly what happened
    and does not take the connection back on its own."""
    first = await make_client("alice")
    await first.create("lobby")
    events = first.events()
    second = _second_client(first, relay, tmp_path)
    async with second:
        (replaced,) = await collect(events, 1, lambda e: isinstance(e, e2echat.ConnectionReplaced))
        assert isinstance(replaced, e2echat.ConnectionReplaced)
        assert "another place" in replaced.reason
        (closed,) = await collect(events, 1, lambda e: isinstance(e, e2echat.ConnectionChanged))
        assert closed == e2echat.ConnectionChanged(e2echat.ConnectionState.CLOSED, replaced.reason)
        await second.list_rooms()  # a round trip: the first did not take the key back
        assert first.state is e2echat.ConnectionState.CLOSED
        assert second.state is e2echat.ConnectionState.CONNECTED


async def test_a_verified_contacts_rename_reflags_the_rooms_it_is_not_in(
    make_client: MakeClient,
) -> None:
    """Bob verified alice in one room; in another, without her, mallory goes by "alice"
    and is flagged against her. When alice signs a new name, that flag goes at once (it
    stayed, naming her old name, until the room's next full refresh)."""
    alice, bob = await make_client("alice"), await make_client("bob")
    one = await bob.create("one")
    await admit(bob, alice, "one")
    await bob.mark_verified(member_of(one, alice.key))
    mallory = await make_client("alice", identity=e2echat.Identity.generate())
    two = await bob.create("two")
    await admit(bob, mallory, "two")
    assert [x.key for x in member_of(two, mallory.key).lookalikes] == [alice.key]
    events = bob.events()
    await alice.rename("alicia")
    await collect(events, 1, lambda e: isinstance(e, e2echat.MemberRenamed))
    assert member_of(two, mallory.key).lookalikes == ()
    assert member_of(two, mallory.key).warning is None


async def test_a_request_after_a_replacement_says_why_it_cannot_be_made(
    make_client: MakeClient, relay: Relay, tmp_path: Path
) -> None:
    """A replaced client is closed for good: what it asks the relay then says so, not
    that it is reconnecting."""
    first = await make_client("alice")
    room = await first.create("lobby")
    events = first.events()
    second = _second_client(first, relay, tmp_path)
    async with second:
        await collect(events, 1, lambda e: isinstance(e, e2echat.ConnectionReplaced))
        await collect(events, 1, lambda e: isinstance(e, e2echat.ConnectionChanged))
        with pytest.raises(e2echat.ConnectError) as refused:
            await room.members()
        assert "(reconnecting)" not in str(refused.value)
        assert "another place" in str(refused.value)
