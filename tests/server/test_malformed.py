"""Malformed and hostile input: the relay answers, changes nothing, and nobody else notices.

Hypothesis drives random bytes, random text, random JSON, valid frames with one field
broken, and valid frames with random contents at an authenticated connection, while two
bystanders keep chatting in a room.
"""

import asyncio
import json
from typing import Any

from e2echat_server import Relay, RelayConfig
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from e2echat.protocol import (
    ClientFrame,
    CreateRoom,
    Error,
    JoinRoom,
    ListRooms,
    Message,
    OpenAccess,
    ProtocolError,
    RoomReply,
    Send,
    Sent,
    decode_client_frame,
    encode_frame,
)
from tests.protocol.strategies import frames
from tests.server.wire import Identity, WireClient, login

JSON_LEAF = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
)
JSON = st.recursive(
    JSON_LEAF,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def valid_text(frame: Any) -> str:
    return encode_frame(frame).decode()


def is_valid(data: str | bytes) -> bool:
    if isinstance(data, bytes):
        return False
    try:
        decode_client_frame(data)
    except ProtocolError:
        return False
    return True


@st.composite
def broken_frame(draw: st.DrawFn) -> str:
    """A valid frame with one field replaced (or one unknown field added)."""
    obj: dict[str, Any] = json.loads(valid_text(draw(frames(ClientFrame))))
    fields = [k for k in obj if k != "type"]
    replace = bool(fields) and draw(st.booleans())
    key = draw(st.sampled_from(fields)) if replace else draw(st.text(max_size=8))
    obj[key] = draw(JSON)
    return json.dumps(obj)


INVALID = st.one_of(
    st.binary(max_size=100),
    st.text(max_size=100),
    JSON.map(json.dumps),
    broken_frame(),
).filter(lambda data: not is_valid(data))

VALID = frames(ClientFrame).map(valid_text)

CONFIG = RelayConfig(port=0, memory=True, rate=100_000, burst=100_000)


async def bystanders(relay: Relay) -> tuple[WireClient, WireClient, bytes]:
    alice, bob = await login(relay.url, Identity("alice")), await login(relay.url, Identity("bob"))
    room = (await alice.request(CreateRoom(name="lobby", access=OpenAccess()), RoomReply)).room.id
    await bob.request(JoinRoom(name="lobby"), RoomReply)
    return alice, bob, room


def directory_state(relay: Relay) -> object:
    d = relay.directory
    return (
        {k: dict(r.members) for k, r in d.rooms.items()},
        {k: (u.name, u.prekey, u.status, u.mailbox_count) for k, u in d.users.items()},
    )


async def attack(payloads: list[str | bytes], expect_unchanged: bool) -> None:
    async with Relay(CONFIG) as relay:
        alice, bob, room = await bystanders(relay)
        mallory = await login(relay.url, Identity("mallory"))
        before = directory_state(relay)
        for i, data in enumerate(payloads):
            await mallory.send_raw(data)
            if expect_unchanged:
                assert isinstance(await mallory.next_of(Error), Error)
            sent = await alice.request(Send(room=room, body=b"hi %d" % i), Sent)
            assert (await bob.next_of(Message)).seq == sent.seq  # bystanders unaffected
        await mallory.send(ListRooms(id="probe"))  # still connected, still answered
        while getattr(await mallory.recv(), "id", None) != "probe":
            pass
        if expect_unchanged:
            assert directory_state(relay) == before


SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@SETTINGS
@given(st.lists(INVALID, min_size=1, max_size=8))
def test_invalid_input_is_answered_with_error_and_changes_nothing(payloads: list[Any]) -> None:
    asyncio.run(attack(payloads, expect_unchanged=True))


@SETTINGS
@given(st.lists(VALID, min_size=1, max_size=8))
def test_random_valid_frames_never_disturb_others(payloads: list[Any]) -> None:
    asyncio.run(attack(payloads, expect_unchanged=False))
