"""A tiny in-memory relay for driving several ``CryptoSession``s in tests.

It routes what sessions return (directs, bodies) the way the real relay would, so tests
read like conversations and can also drop, reorder, replay or tamper with deliveries.
"""

import hashlib

from hypothesis import HealthCheck, settings

from e2echat.crypto import (
    DEFAULT_POLICY,
    AnnouncedMember,
    CryptoSession,
    Decrypted,
    Identity,
    LogStatement,
    MemoryStore,
    Outcome,
    OutgoingDirect,
    Policy,
    RoomSecret,
    Text,
)

NOW = 1_800_000_000_000
ROOM = bytes(range(16))
RELAY = "ws://relay.test"


class Party:
    """One user: identity, store and session."""

    def __init__(self, name: str, policy: Policy = DEFAULT_POLICY, now: int = NOW) -> None:
        self.name = name
        self.identity = Identity(hashlib.sha256(name.encode()).digest())
        self.store = MemoryStore()
        self.session = CryptoSession(self.identity, self.store, policy=policy)
        self.prekey = self.session.current_prekey(now)
        self.received: list[Decrypted] = []
        self.outcomes: list[Outcome] = []

    @property
    def key(self) -> bytes:
        return self.identity.public_key

    @property
    def member(self) -> AnnouncedMember:
        return AnnouncedMember(self.key, self.name, self.prekey)

    def __repr__(self) -> str:
        return f"Party({self.name})"


class Relay:
    """Routes directs between parties and fans room bodies out to members."""

    def __init__(self, *parties: Party) -> None:
        self.parties = {party.key: party for party in parties}
        self.members: list[Party] = []
        self.log: list[bytes] = []

    def add(self, party: Party) -> None:
        self.parties[party.key] = party

    def record(self, party: Party, outcome: Outcome, now: int = NOW) -> Outcome:
        """Keep a party's results and route the directs it produced."""
        party.outcomes.append(outcome)
        party.received.extend(outcome.messages)
        self.route(party, outcome.directs, now)
        return outcome

    def route(self, sender: Party, directs: list[OutgoingDirect], now: int = NOW) -> None:
        for direct in directs:
            recipient = self.parties[direct.recipient]
            opened = recipient.session.receive_direct(sender.key, direct.body, now)
            self.record(recipient, opened, now)

    def join(self, party: Party, secret: RoomSecret | None = None, now: int = NOW) -> None:
        """``party`` joins: the others hear ``member_joined``, it gets the full list."""
        for other in self.members:
            self.record(other, other.session.member_joined(ROOM, party.member, now), now)
        self.members.append(party)
        listing = [member.member for member in self.members]
        self.record(party, party.session.enter_room(ROOM, listing, now, secret=secret), now)

    def leave(self, party: Party, now: int = NOW) -> None:
        self.members.remove(party)
        party.session.leave_room(ROOM)
        for other in self.members:
            self.record(other, other.session.member_left(ROOM, party.key, now), now)

    def send(self, sender: Party, text: str, now: int = NOW) -> bytes:
        """Encrypt, deliver the shares, return the body (not yet delivered)."""
        outgoing = sender.session.encrypt(ROOM, Text(text, (), now), now)
        self.route(sender, outgoing.directs, now)
        return outgoing.body

    def deliver(
        self, sender: Party, body: bytes, to: Party, seq: int = 0, now: int = NOW
    ) -> Outcome:
        return self.record(to, to.session.receive(ROOM, sender.key, body, now, seq), now)

    def broadcast(self, sender: Party, text: str, now: int = NOW) -> bytes:
        body = self.send(sender, text, now)
        for member in self.members:
            if member is not sender:
                self.deliver(sender, body, member, now=now)
        return body

    def append(self, author: Party, statement: LogStatement, now: int = NOW) -> None:
        """Order ``statement`` at the head of the log, give it to every member, then
        route the directs it came with (as the client sends them after the append)."""
        self.log.append(statement.entry)
        for member in self.members:
            self.record(member, member.session.apply_log(ROOM, [statement.entry], now), now)
        self.route(author, statement.directs, now)

    def sync_log(self, party: Party, now: int = NOW) -> Outcome:
        """Give ``party`` the whole log (a joiner fetching it, or a reconnect)."""
        return self.record(party, party.session.apply_log(ROOM, list(self.log), now), now)


def texts(party: Party) -> list[str]:
    """The bodies a party has decrypted, in order."""
    return [message.payload.body for message in party.received]


FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
"""Hypothesis settings of the crypto tests: few examples, no deadline (shared CI cores)."""
