"""The live-connection index: online/offline transitions and room membership of connections."""

from collections.abc import Iterable

from e2echat_server.connections import Connections, among
from e2echat_server.engine import LocalBroker

ROOM = b"r" * 16


def test_first_and_last_connection_of_a_key() -> None:
    connections: Connections[str] = Connections()
    assert connections.attach(b"k", "c1") is True
    assert connections.attach(b"k", "c2") is False
    connections.enter("c1", [ROOM])
    connections.enter("c2", [ROOM])
    assert connections.in_room(ROOM) == {"c1", "c2"}
    assert connections.detach(b"k", "c1", [ROOM]) is False
    assert connections.detach(b"k", "c1", [ROOM]) is False  # unknown now: no change
    assert connections.in_room(ROOM) == {"c2"}
    assert connections.detach(b"k", "c2", [ROOM]) is True
    assert not connections.online(b"k")
    assert connections.in_room(ROOM) == frozenset()


def test_join_and_leave_move_every_connection_of_the_key() -> None:
    connections: Connections[str] = Connections()
    connections.attach(b"k", "c1")
    connections.attach(b"k", "c2")
    connections.join(ROOM, b"k")
    assert connections.in_room(ROOM) == {"c1", "c2"}
    connections.leave(ROOM, b"k")
    assert connections.in_room(ROOM) == frozenset()
    connections.join(ROOM, b"nobody")
    assert connections.in_room(ROOM) == frozenset()
    assert connections.of(b"nobody") == frozenset()


def test_the_local_broker_delivers_to_room_and_key_connections_once() -> None:
    sent: list[tuple[set[str], bytes]] = []

    def deliver(conns: Iterable[str], data: bytes, skip: str | None) -> int:
        targets = {conn for conn in conns if conn != skip}
        sent.append((targets, data))
        return len(targets)

    broker: LocalBroker[str] = LocalBroker(deliver)
    assert broker.attach(b"a", "a1") is True
    assert broker.attach(b"b", "b1") is True
    broker.enter("a1", [ROOM])
    broker.enter("b1", [])
    assert broker.to_room(ROOM, b"m") == 1  # b1 has not joined yet
    broker.joined(ROOM, b"b")
    assert broker.to_room(ROOM, b"m", skip="a1") == 1
    assert broker.to_keys([b"a", b"b", b"a"], b"p") == 2
    broker.left(ROOM, b"b")
    assert sent[-1] == ({"a1", "b1"}, b"p")
    assert broker.to_room(ROOM, b"m") == 1
    assert broker.detach(b"a", "a1", [ROOM]) is True
    assert broker.to_room(ROOM, b"m") == 0


def test_connections_of_many_keys_are_those_of_the_keys_online() -> None:
    """A set of keys larger than the keys online is walked from the online side (a
    presence change to every peer in a large room): the same connections either way."""
    connections: Connections[str] = Connections()
    connections.attach(b"a", "a1")
    connections.attach(b"a", "a2")
    connections.attach(b"b", "b1")
    peers = {b"a", b"c", b"d", b"e"}
    assert connections.of_keys(peers) == {"a1", "a2"}
    assert connections.of_keys(sorted(peers)) == {"a1", "a2"}
    assert connections.of_keys({b"b"}) == {"b1"}
    assert connections.of_keys(set()) == set()


def test_among_walks_the_smaller_side_and_finds_the_same_keys() -> None:
    """A peer set larger than what is present is walked from the present side (a dict by
    key on this relay, the keys online on other relays); a list is walked as it is."""
    present = {b"a": 1, b"b": 2}
    peers = {b"a", b"c", b"d"}
    assert sorted(among(peers, present)) == [b"a"]
    assert list(among([b"d", b"b", b"a"], present)) == [b"b", b"a"]  # in the given order
    assert list(among(set(), present)) == []
    assert list(among({b"a", b"b", b"c"}, {b"c"})) == [b"c"]
