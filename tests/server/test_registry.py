"""The live-connection index: online/offline transitions and room membership of connections."""

from e2echat_server.registry import Registry

ROOM = b"r" * 16


def test_first_and_last_connection_of_a_key() -> None:
    registry: Registry[str] = Registry()
    assert registry.attach(b"k", "c1") is True
    assert registry.attach(b"k", "c2") is False
    registry.enter("c1", [ROOM])
    registry.enter("c2", [ROOM])
    assert registry.in_room(ROOM) == {"c1", "c2"}
    assert registry.detach(b"k", "c1", [ROOM]) is False
    assert registry.detach(b"k", "c1", [ROOM]) is False  # unknown now: no change
    assert registry.in_room(ROOM) == {"c2"}
    assert registry.detach(b"k", "c2", [ROOM]) is True
    assert not registry.online(b"k")
    assert registry.in_room(ROOM) == frozenset()


def test_join_and_leave_move_every_connection_of_the_key() -> None:
    registry: Registry[str] = Registry()
    registry.attach(b"k", "c1")
    registry.attach(b"k", "c2")
    registry.join(ROOM, b"k")
    assert registry.in_room(ROOM) == {"c1", "c2"}
    registry.leave(ROOM, b"k")
    assert registry.in_room(ROOM) == frozenset()
    registry.join(ROOM, b"nobody")
    assert registry.in_room(ROOM) == frozenset()
    assert registry.of(b"nobody") == frozenset()
