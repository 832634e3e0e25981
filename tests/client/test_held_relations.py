"""Edits, reactions and deletes that reach a member before the message they name (its
key share is late) are held and applied when it arrives; read state moves are events."""

from e2echat.client.engine import Engine
from e2echat.crypto import Delete, Edit, Reaction, message_id
from e2echat.protocol import DirectDelivery, DirectSend, Message, Send, Sent
from e2echat.store.relations import MAX_HELD_PER_ROOM, NONE, annotate
from tests.client.test_engine import NOW, ROOM_ID, Clock, connect, make_engine, room_info

Frames = tuple[Message, dict[bytes, list[DirectDelivery]], bytes]


def trio() -> tuple[Engine, Engine, Engine]:
    clock = Clock()
    engines = make_engine("alice", clock), make_engine("bob", clock), make_engine("carol", clock)
    for engine in engines:
        engine.enter_room(room_info(*engines), "open", None)
        connect(engine, *engines)
    return engines


def sent(sender: Engine, out_frames: list[object], seq: int) -> Frames:
    """The room frame of what ``sender`` just queued (confirmed at ``seq``), its directs
    by recipient, and its message id."""
    directs: dict[bytes, list[DirectDelivery]] = {}
    for n, frame in enumerate(f for f in out_frames if isinstance(f, DirectSend)):
        delivery = DirectDelivery(sender=sender.me, seq=seq * 100 + n, ts=NOW, body=frame.body)
        directs.setdefault(frame.to, []).append(delivery)
    (send,) = [f for f in out_frames if isinstance(f, Send)]
    assert send.id is not None
    confirmed = sender.receive(Sent(room=ROOM_ID, seq=seq, ts=NOW, id=send.id))
    ids = [m.id for _, m in confirmed.confirmed]
    frame = Message(room=ROOM_ID, seq=seq, ts=NOW, sender=sender.me, body=send.body)
    return frame, directs, ids[0] if ids else b""


def share(frames: Frames, to: Engine) -> None:
    for delivery in frames[1].get(to.me, []):
        to.receive(delivery)


def test_a_reaction_that_came_first_shows_on_the_message_when_its_key_arrives() -> None:
    alice, bob, carol = trio()
    original = sent(alice, alice.queue(ROOM_ID, "v1")[2].frames, 1)
    share(original, carol)
    carol.receive(original[0])
    react = sent(carol, carol.relate(ROOM_ID, Reaction(original[2], "👍", True, NOW))[1].frames, 2)
    share(react, bob)
    # Bob gets Alice's message before her key share (it waits), then Carol's reaction.
    assert bob.receive(original[0]).messages == []
    assert bob.receive(react[0]).events == []
    released = [bob.receive(d) for d in original[1][bob.me]]
    (message,) = [m for out in released for m in out.messages]
    assert [(r.emoji, [m.name for m in r.members]) for r in message.reactions] == [
        ("👍", ["carol"])
    ]
    (stored,) = bob.history(ROOM_ID, 10)
    assert [r.emoji for r in stored.reactions] == ["👍"]


def test_an_edit_that_came_first_shows_when_the_message_arrives() -> None:
    alice, bob, _carol = trio()
    original = sent(alice, alice.queue(ROOM_ID, "v1")[2].frames, 1)
    edit = sent(alice, alice.relate(ROOM_ID, Edit(original[2], "v2", (), NOW + 1))[1].frames, 2)
    share(original, bob)
    assert bob.receive(edit[0]).events == []  # the edit first: held
    (message,) = bob.receive(original[0]).messages
    assert (message.text, message.edited) == ("v2", True)
    assert [v.text for v in bob.versions(ROOM_ID, original[2])] == ["v1", "v2"]


def test_a_delete_that_came_first_keeps_the_message_from_ever_showing() -> None:
    alice, bob, _carol = trio()
    original = sent(alice, alice.queue(ROOM_ID, "oops")[2].frames, 1)
    delete = sent(alice, alice.relate(ROOM_ID, Delete(original[2], NOW))[1].frames, 2)
    share(original, bob)
    bob.receive(delete[0])
    out = bob.receive(original[0])
    assert out.messages == []
    assert [m.deleted for m in bob.history(ROOM_ID, 10)] == [True]
    assert bob.read_state(ROOM_ID).unread == 0


def test_held_records_are_bounded_per_room_oldest_first() -> None:
    alice, bob, _carol = trio()
    store, room = bob.store, ROOM_ID

    def ghost(n: int) -> bytes:
        return message_id(alice.me, b"\x09" * 16, n)

    for n in range(MAX_HELD_PER_ROOM + 5):
        held = annotate(NONE, None, Reaction(ghost(n), "👍", True, n), bob.me, ghost(n))
        store.set_annotations(room, ghost(n), held)
    assert store.annotations(room, ghost(4)) == NONE  # the five oldest went
    assert store.annotations(room, ghost(5)).counts() == [("👍", (bob.me,))]
    marker = annotate(NONE, None, Delete(ghost(0), 1), alice.me, ghost(0))
    store.set_annotations(room, ghost(0), marker)
    for n in range(MAX_HELD_PER_ROOM + 5, 2 * MAX_HELD_PER_ROOM + 10):
        held = annotate(NONE, None, Reaction(ghost(n), "👍", True, n), bob.me, ghost(n))
        store.set_annotations(room, ghost(n), held)
    assert store.annotations(room, ghost(0)).deleted  # a delete's marker is never dropped


def test_read_state_moves_are_reported_once_per_batch() -> None:
    alice, bob, _carol = trio()
    first = sent(alice, alice.queue(ROOM_ID, "one")[2].frames, 1)
    second = sent(alice, alice.queue(ROOM_ID, "two @bob")[2].frames, 2)
    for frames in (first, second):
        share(frames, bob)
    out = bob.receive_all([first[0], second[0]])
    assert [m.text for m in out.messages] == ["one", "two @bob"]
    assert [(r.unread, r.mentions, r.read_seq) for r in out.read.values()] == [(2, 1, 0)]
    marked = bob.mark_read(ROOM_ID, 1)
    assert [(r.unread, r.mentions, r.read_seq) for r in marked.read.values()] == [(1, 1, 1)]
    assert bob.mark_read(ROOM_ID, 1).read == {}  # nothing moved: nothing told
    delete = sent(alice, alice.relate(ROOM_ID, Delete(second[2], NOW))[1].frames, 3)
    gone = bob.receive(delete[0])
    assert [(r.unread, r.mentions) for r in gone.read.values()] == [(0, 0)]
    sent(bob, bob.queue(ROOM_ID, "my own")[2].frames, 4)
    assert bob.read_state(ROOM_ID).unread == 0  # our own messages never count
