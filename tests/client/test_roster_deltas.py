"""A join or a leave changes a room's roster snapshot by delta: exactly as a full refresh
would leave it (entries, order, look-alike flags both ways), without rebuilding it."""

import dataclasses
import functools

import msgspec
from hypothesis import example, given, settings
from hypothesis import strategies as st

from e2echat.client.engine import Engine
from e2echat.client.roomstate import RoomState
from e2echat.protocol import MemberJoined, MemberLeft, RosterEntry
from tests.client.test_engine import ROOM_ID, Clock, connect, make_engine, relay_member, room_info

NAMES = ["alice", "Alice", "a1ice", "\u0430lice", "bob", "b0b", "BOB", "carol", "dave"]
NAMES += ["ALICE", "\uff21\uff2c\uff29\uff23\uff25", "Ian", "lan", "ian"]
"""Names that are the same up to case, or look alike (1/l, 0/o, a Cyrillic a), or not;
and names of two skeletons (a capital I is an l as written, an i once folded), so "Ian"
looks like "lan" and "ian", which do not look alike."""
IAN, LAN, SMALL_IAN = (NAMES.index(n) for n in ["Ian", "lan", "ian"])
POOL = 8


@functools.cache
def pool() -> tuple[Engine, ...]:
    """Identities that join and leave the room (their signed prekeys are real)."""
    clock = Clock()
    return tuple(make_engine(f"p{i}", clock) for i in range(POOL))


def as_member(engine: Engine, name: str) -> RosterEntry:
    return msgspec.structs.replace(relay_member(engine), name=name)


def owner() -> Engine:
    me = make_engine("alice", Clock())
    me.enter_room(room_info(me), "open", None)
    connect(me)
    return me


def assert_as_refreshed(me: Engine) -> None:
    state = me.rooms[ROOM_ID]
    full = dataclasses.replace(state)  # refresh replaces every snapshot field it sets
    me.view.refresh(full)
    assert state.member_list == full.member_list
    assert state.lookalikes == full.lookalikes
    assert state.listed_order == full.listed_order
    assert state.listed_names == full.listed_names
    assert state.namesakes == full.namesakes


def flags(state: RoomState, key: bytes) -> list[tuple[bytes, bool, bool]]:
    (entry,) = [m for m in state.member_list if m.key == key]
    return [(x.key, x.same_name, x.verified) for x in entry.lookalikes]


def test_a_joiner_makes_an_existing_member_a_look_alike_and_a_leave_undoes_it() -> None:
    me = owner()
    a, b = pool()[:2]
    me.receive(MemberJoined(room=ROOM_ID, member=as_member(a, "a1ice")))
    state = me.rooms[ROOM_ID]
    assert flags(state, a.me) == [(me.me, False, False)]  # looks like us
    me.set_verified(a.me, True)
    me.receive(MemberJoined(room=ROOM_ID, member=as_member(b, "A1ice")))
    assert flags(state, b.me) == [(a.me, True, True), (me.me, False, False)]
    assert flags(state, a.me) == [(b.me, True, False), (me.me, False, False)]  # the other way
    assert_as_refreshed(me)
    me.receive(MemberLeft(room=ROOM_ID, key=a.me))
    assert flags(state, b.me) == [(a.me, True, True), (me.me, False, False)]  # still verified
    me.set_verified(a.me, False)
    me.receive(MemberLeft(room=ROOM_ID, key=b.me))
    assert flags(state, me.me) == []
    assert [m.key for m in state.member_list] == [me.me]


def test_a_joiner_in_capitals_is_flagged_and_a_capital_i_still_looks_like_an_l() -> None:
    me = owner()
    a, b, c = pool()[:3]
    me.receive(MemberJoined(room=ROOM_ID, member=as_member(a, "ALICE")))
    state = me.rooms[ROOM_ID]
    assert flags(state, a.me) == [(me.me, True, False)]
    assert flags(state, me.me) == [(a.me, True, False)]
    me.receive(MemberJoined(room=ROOM_ID, member=as_member(b, "lan")))
    me.receive(MemberJoined(room=ROOM_ID, member=as_member(c, "Ian")))
    assert flags(state, b.me) == [(c.me, False, False)]
    assert flags(state, c.me) == [(b.me, False, False)]
    assert_as_refreshed(me)


def test_a_contact_back_under_another_name_moves_the_flags_against_it() -> None:
    """A petnamed key is flagged against while away, under the name it went by."""
    me = owner()
    a = pool()[0]
    me.receive(MemberJoined(room=ROOM_ID, member=as_member(a, "alice")))
    me.set_petname(a.me, "Alice B.")
    me.receive(MemberLeft(room=ROOM_ID, key=a.me))
    state = me.rooms[ROOM_ID]
    (mine,) = state.member_list
    assert [x.name for x in mine.lookalikes] == ["alice"]
    me.receive(MemberJoined(room=ROOM_ID, member=as_member(a, "Alice")))
    (mine,) = [m for m in state.member_list if m.is_me]
    assert [x.name for x in mine.lookalikes] == ["Alice"]
    me.receive(MemberLeft(room=ROOM_ID, key=a.me))
    me.receive(MemberJoined(room=ROOM_ID, member=as_member(a, "bob")))
    assert flags(state, me.me) == []
    assert_as_refreshed(me)


Op = tuple[str, int, int]
ops = st.lists(
    st.tuples(
        st.sampled_from(["join", "join", "join", "leave", "verify", "unverify", "petname"]),
        st.integers(0, POOL - 1),
        st.integers(0, len(NAMES) - 1) | st.sampled_from([IAN, LAN, SMALL_IAN]),
    ),
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(ops)
@example([("join", 1, 1), ("petname", 1, 0), ("join", 1, 0)])  # renamed: flags name it anew
@example([("join", 0, 0), ("petname", 0, 0), ("leave", 0, 0), ("join", 0, 1)])  # a contact
@example([("join", 1, SMALL_IAN), ("join", 2, IAN), ("join", 3, LAN)])  # "Ian" keeps "ian"
@example([("join", 1, SMALL_IAN), ("join", 2, IAN), ("join", 3, LAN), ("leave", 3, 0)])
@example([("join", 1, SMALL_IAN), ("join", 2, IAN), ("join", 3, LAN), ("join", 3, 4)])
def test_any_joins_and_leaves_leave_the_roster_as_a_full_refresh_would(steps: list[Op]) -> None:
    me = owner()
    for op, who, name in steps:
        engine = pool()[who]
        listed = engine.me in me.rooms[ROOM_ID].members
        if op == "join":  # a join, or a listed member announced again (maybe renamed)
            me.receive(MemberJoined(room=ROOM_ID, member=as_member(engine, NAMES[name])))
        elif op == "leave":
            me.receive(MemberLeft(room=ROOM_ID, key=engine.me))
        elif me.session.contacts.get(engine.me) is not None:  # keys seen, in the room or not
            if op == "petname":
                me.set_petname(engine.me, NAMES[name] if listed else None)
            else:
                me.set_verified(engine.me, op == "verify")
        assert_as_refreshed(me)
