"""A relay rewriting the membership log: each attack fails closed and is told.

alice (the owner) and carol are on the real relay; bob is behind a rewriting proxy.
alice kicks carol, and the proxy tries to keep bob from knowing, or to bring carol
back. Whatever it does, bob says so, and nothing bob sends after the kick is readable
by carol: no share of his goes to her key, and he sends on a chain she never had.
"""

import dataclasses
import time
from collections.abc import AsyncIterator, Callable

import msgspec
import pytest
from e2echat_server import Relay

import e2echat
from e2echat.crypto.identity import Identity
from e2echat.crypto.message import parse_body
from e2echat.crypto.prekeys import new_prekey
from e2echat.protocol import (
    DirectDelivery,
    DirectSend,
    LogEntries,
    MemberJoined,
    RelayFrame,
    RosterEntry,
    Send,
    SignedPrekey,
)
from e2echat.protocol.roomlog import Kind, Role, encode_entry, parse_entry
from tests.client.conftest import MakeClient, collect, validated
from tests.client.proxy import EvilProxy, evil_proxy
from tests.client.test_rooms import changed, member, secret_room

KICK_POSITION = 3
"""create (alice), join (carol), join (bob): alice's kick of carol is entry 3."""


@dataclasses.dataclass
class Trio:
    clients: dict[str, e2echat.Client]
    rooms: dict[str, e2echat.Room]
    proxy: EvilProxy
    entries: dict[int, bytes]
    """Every log entry the relay sent bob, by position (recorded by the proxy)."""
    deliveries: list[DirectDelivery] = dataclasses.field(default_factory=list)
    """Every direct envelope the relay delivered to bob (recorded by the proxy)."""
    at_kick: int = 0
    """How many frames bob had sent when carol was kicked."""

    @property
    def carol(self) -> bytes:
        return self.clients["carol"].key

    def rewrite(self, change: Callable[[RelayFrame], list[RelayFrame]]) -> None:
        """Rewrite what the relay says to bob (log entries are recorded first)."""

        def recorded(frame: RelayFrame) -> list[RelayFrame]:
            if isinstance(frame, LogEntries):
                for offset, wire in enumerate(frame.entries):
                    self.entries.setdefault(frame.start + offset, wire)
            if isinstance(frame, DirectDelivery):
                self.deliveries.append(frame)
            return change(frame)

        self.proxy.rewrite = recorded

    def bob_chains(self, *, after_kick: bool) -> set[bytes]:
        """The sender chains of bob's messages, before or after the kick."""
        sent = self.proxy.sent[self.at_kick :] if after_kick else self.proxy.sent[: self.at_kick]
        return {parse_body(f.body).header.chain_id for f in sent if isinstance(f, Send)}

    def shares_to_carol_after_kick(self) -> int:
        return len(self.proxy.directs_to(self.carol, self.at_kick))

    def carol_reads_nothing_after_kick(self) -> None:
        """No share of bob's went to carol since the kick, and what bob sent since is on
        chains she was never given (she holds only chains bob used before)."""
        assert self.shares_to_carol_after_kick() == 0
        after = self.bob_chains(after_kick=True)
        assert after
        assert not after & self.bob_chains(after_kick=False)


@pytest.fixture
async def proxy(relay: Relay) -> AsyncIterator[EvilProxy]:
    async with evil_proxy(relay.url) as running:
        yield running


@pytest.fixture
async def trio(make_client: MakeClient, proxy: EvilProxy) -> Trio:
    """alice's secret room with carol and bob (behind the proxy) in it; bob has sent a
    message that carol read, so carol holds bob's chain."""
    clients, rooms = await secret_room(make_client, "carol")
    trio = Trio(clients, rooms, proxy, {})
    trio.rewrite(lambda frame: [frame])
    earlier = [clients["alice"].events(), clients["carol"].events()]
    bob = clients["bob"] = await make_client("bob", proxy.url, proof_wait=0.5)
    rooms["bob"] = await bob.join("ops", invite=rooms["alice"].invite())
    for events in earlier:
        await collect(events, 1, lambda e: validated(e, "bob"))
    carol_inbox = clients["carol"].messages()
    await rooms["bob"].send("before the kick")
    assert [m.text for m in await collect(carol_inbox, 1)] == ["before the kick"]
    return trio


async def kick_carol(trio: Trio) -> None:
    alice_room = trio.rooms["alice"]
    carol_events = trio.clients["carol"].events()
    trio.at_kick = len(trio.proxy.sent)
    await alice_room.kick(member(alice_room, "carol"))
    await collect(carol_events, 1, lambda e: isinstance(e, e2echat.RoomLeft))


async def bob_sends_after_the_kick(trio: Trio, text: str) -> None:
    """bob's message reaches alice, and carol could read nothing of it."""
    alice_inbox = trio.clients["alice"].messages()
    await trio.rooms["bob"].send(text)
    assert [m.text for m in await collect(alice_inbox, 1, lambda m: m.text == text)] == [text]
    trio.carol_reads_nothing_after_kick()


def is_behind(withheld: bool) -> Callable[[e2echat.Event], bool]:
    return lambda e: isinstance(e, e2echat.LogBehind) and e.withheld is withheld


async def test_a_dropped_kick_is_fetched_when_a_message_names_it(trio: Trio) -> None:
    """The relay drops the push of the kick to bob: alice's next message names a longer
    log, bob fetches it, applies the kick and reads on."""
    trio.rewrite(lambda f: [] if isinstance(f, LogEntries) and f.id is None else [f])
    bob_events, bob_inbox = trio.clients["bob"].events(), trio.clients["bob"].messages()
    await kick_carol(trio)
    await trio.rooms["alice"].send("after the kick")
    (behind,) = await collect(bob_events, 1, is_behind(False))
    assert (behind.held, behind.named, behind.member.name) == (KICK_POSITION, 4, "alice")
    assert "fetching" in behind.text
    kick = (await collect(bob_events, 1, lambda e: changed(e, "kick")))[0]
    assert kick.text == "alice kicked carol"
    assert [m.text for m in await collect(bob_inbox, 1)] == ["after the kick"]
    assert trio.rooms["bob"].epoch == 1
    assert trio.carol not in trio.rooms["bob"].roles
    await bob_sends_after_the_kick(trio, "bob, after the kick")


async def test_a_hidden_rotation_holds_sends_until_the_log_comes(trio: Trio) -> None:
    """The relay withholds the kick even when bob asks for the log: bob says the relay
    withholds changes and sends nothing until they come."""
    withholding = [True]

    def withhold(frame: RelayFrame) -> list[RelayFrame]:
        if isinstance(frame, LogEntries) and withholding[0]:
            kept = [w for w in frame.entries if parse_entry(w).seq < KICK_POSITION]
            if frame.id is None and not kept:
                return []
            return [msgspec.structs.replace(frame, entries=kept)]
        return [frame]

    trio.rewrite(withhold)
    bob, bob_room = trio.clients["bob"], trio.rooms["bob"]
    bob_events, bob_inbox = bob.events(), bob.messages()
    await kick_carol(trio)
    await trio.rooms["alice"].send("after the kick")
    await collect(bob_events, 1, is_behind(False))
    (withheld,) = await collect(bob_events, 1, is_behind(True))
    assert (withheld.held, withheld.named) == (KICK_POSITION, 4)
    assert withheld.text.startswith("The relay withholds changes of this room")
    assert trio.carol in bob_room.roles  # bob cannot know yet who was removed ...
    sends_before = sum(isinstance(f, Send) for f in trio.proxy.sent)
    held = await bob_room.send("held until the log comes")  # kept in the outbox ...
    assert held.seq == 0
    await bob.list_rooms()  # a barrier: a message sent now would have gone before it
    assert sum(isinstance(f, Send) for f in trio.proxy.sent) == sends_before  # ... not sent
    withholding[0] = False  # the relay gives in; alice's next message makes bob ask again
    alice_inbox = trio.clients["alice"].messages()
    await trio.rooms["alice"].send("still after the kick")
    await collect(bob_events, 1, lambda e: changed(e, "kick"))
    got = await collect(alice_inbox, 1)
    assert [m.text for m in got] == ["held until the log comes"]
    texts = [m.text for m in await collect(bob_inbox, 2)]
    assert texts == ["after the kick", "still after the kick"]
    await bob_sends_after_the_kick(trio, "bob, later")


async def test_an_old_entry_replayed_changes_nothing_and_is_rejected_out_of_place(
    trio: Trio,
) -> None:
    bob_room = trio.rooms["bob"]
    bob_events = trio.clients["bob"].events()
    await kick_carol(trio)
    await collect(bob_events, 1, lambda e: changed(e, "kick"))
    carol_join = trio.entries[1]
    # a copy of carol's join where it was: a duplicate, nothing changes
    await trio.proxy.inject(LogEntries(room=bob_room.id, start=1, entries=[carol_join]))
    # carol's join served as the next entry
    await trio.proxy.inject(LogEntries(room=bob_room.id, start=4, entries=[carol_join]))
    (notice,) = await collect(bob_events, 1, lambda e: isinstance(e, e2echat.Notice))
    assert "log entry 4" in notice.text
    assert "the relay served entry 1 as entry 4" in notice.text
    assert trio.carol not in bob_room.roles
    assert [c.kind for c in await bob_room.changes()] == ["create", "join", "join", "kick"]
    await bob_sends_after_the_kick(trio, "bob, after the replay")


async def test_forged_and_reordered_entries_are_rejected(trio: Trio) -> None:
    alice_room, bob_room = trio.rooms["alice"], trio.rooms["bob"]
    bob_events = trio.clients["bob"].events()
    await kick_carol(trio)
    await collect(bob_events, 1, lambda e: changed(e, "kick"))
    stranger = Identity.generate()
    head = trio.entries[KICK_POSITION]
    forged = encode_entry(
        stranger.sign,
        kind=Kind.ROLE,
        room_id=bob_room.id,
        seq=4,
        prev=parse_entry(head).hash,
        author=stranger.public_key,
        created=int(time.time() * 1000),
        subject=trio.carol,
        role=Role.ADMIN,
        epoch=1,
    )
    tampered = bytearray(head)
    tampered[-1] ^= 1  # alice's kick with its signature broken
    for bad, reason in ((forged, "only an owner"), (bytes(tampered), "signature")):
        await trio.proxy.inject(LogEntries(room=bob_room.id, start=4, entries=[bad]))
        (notice,) = await collect(bob_events, 1, lambda e: isinstance(e, e2echat.Notice))
        assert "log entry 4" in notice.text
        assert reason in notice.text
    # two real changes, pushed to bob in one frame in the wrong order
    held: list[LogEntries] = []

    def swap(frame: RelayFrame) -> list[RelayFrame]:
        if isinstance(frame, LogEntries) and frame.id is None:
            held.append(frame)
            if len(held) < 2:
                return []
            first, second = held
            return [
                LogEntries(
                    room=first.room, start=first.start, entries=[*second.entries, *first.entries]
                )
            ]
        return [frame]

    trio.rewrite(swap)
    await alice_room.set_description("after the incident")
    await alice_room.set_role(member(alice_room, "bob"), "admin")
    (notice,) = await collect(bob_events, 1, lambda e: isinstance(e, e2echat.Notice))
    assert "the relay served entry 5 as entry 4" in notice.text
    trio.rewrite(lambda frame: [frame])
    await alice_room.send("both changes are in")  # names the longer log: bob fetches it
    await collect(bob_events, 2, lambda e: changed(e, "describe") or changed(e, "role"))
    kinds = [c.kind for c in await bob_room.changes()]
    assert kinds == ["create", "join", "join", "kick", "describe", "role"]
    assert bob_room.role(member(bob_room, "bob")) == "admin"
    assert trio.carol not in bob_room.roles


async def test_a_kicked_member_re_added_by_the_relay_gets_nothing(trio: Trio) -> None:
    """The relay announces carol again and replays her old key share: bob refuses it and
    shares nothing with her."""
    bob_room = trio.rooms["bob"]
    bob_events = trio.clients["bob"].events()
    bob_inbox = trio.clients["bob"].messages()
    await trio.rooms["carol"].send("carol, before the kick")
    await collect(bob_inbox, 1)
    share = [d for d in trio.deliveries if d.sender == trio.carol][-1]  # her chain, to bob
    await kick_carol(trio)
    await collect(bob_events, 1, lambda e: changed(e, "kick"))
    now = int(time.time() * 1000)
    ghost = Identity.generate()
    prekey = new_prekey(ghost, now, set()).signed
    carol = RosterEntry(
        key=trio.carol,
        name="carol",
        status="online",
        prekey=SignedPrekey(id=prekey.id, key=prekey.key, sig=prekey.sig),
        joined=now,
    )
    await trio.proxy.inject(MemberJoined(room=bob_room.id, member=carol))
    (joined,) = await collect(bob_events, 1, lambda e: isinstance(e, e2echat.MemberJoined))
    assert not joined.member.validated
    await trio.proxy.inject(share)
    (notice,) = await collect(bob_events, 1, lambda e: isinstance(e, e2echat.Notice))
    assert "from carol was rejected" in notice.text
    assert trio.carol not in bob_room.roles
    await bob_sends_after_the_kick(trio, "bob, with carol announced")


async def test_a_newcomer_shown_a_log_without_the_kick_cannot_join(
    trio: Trio, relay: Relay, make_client: MakeClient
) -> None:
    """dave has the new invite, but the relay serves him the log as it was before the
    kick: his secret does not match it, so he signs nothing and shares with nobody."""
    await kick_carol(trio)
    invite = trio.rooms["alice"].invite()
    async with evil_proxy(relay.url) as dave_proxy:

        def shorter(frame: RelayFrame) -> list[RelayFrame]:
            if isinstance(frame, LogEntries):
                kept = [w for w in frame.entries if parse_entry(w).seq < KICK_POSITION]
                return [msgspec.structs.replace(frame, entries=kept)]
            return [frame]

        dave_proxy.rewrite = shorter
        dave = await make_client("dave", dave_proxy.url)
        with pytest.raises(e2echat.NotAllowed, match="withholds"):
            await dave.join("ops", invite=invite)
        assert not [f for f in dave_proxy.sent if isinstance(f, DirectSend)]
