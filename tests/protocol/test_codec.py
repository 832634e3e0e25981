"""Decoding is validation: every valid frame round-trips, everything else is a ProtocolError."""

import json
from typing import Any, get_args

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from e2echat.protocol import (
    MAX_BODY,
    MAX_FRAME,
    ClientFrame,
    Error,
    ErrorCode,
    ProtocolError,
    RelayFrame,
    Welcome,
    decode_client_frame,
    decode_relay_frame,
    encode_frame,
)
from tests.protocol.strategies import client_frames, relay_frames

KEY = "A" * 43 + "="
SIG = "A" * 86 + "=="
PREKEY = {"id": 7, "key": KEY, "sig": SIG}
ROOM = "AAAAAAAAAAAAAAAAAAAAAA=="
STATEMENT = (  # "robert", signed by the key of seed 00..1f
    "AQAAAZrIMdOgdCysXIxikNPIwQFDNBRRmobGMhBg/1ju8vNI48SeKHASRgEaOQrHMX1gCoWheWZSVl+SufjQjRghgckFp4CTAHJvYmVydA=="
)
MEMBER = {"key": KEY, "name": "bob", "status": "online", "prekey": PREKEY, "joined": 1}
ROOM_INFO = {
    "id": ROOM,
    "name": "lobby",
    "description": "",
    "max_members": 1000,
    "listed": True,
    "access_kind": "open",
    "salt": None,
    "members": [MEMBER],
    "seq": 3,
}
SUMMARY = {k: v for k, v in ROOM_INFO.items() if k not in {"members", "seq"}} | {"member_count": 1}

CLIENT_EXAMPLES: dict[str, dict[str, Any]] = {
    "hello": {"key": KEY, "name": "alice", "prekey": PREKEY, "sig": SIG},
    "create_room": {"id": "1", "name": "lobby", "access": {"kind": "open"}},
    "join_room": {"name": "lobby", "token": KEY},
    "leave_room": {"room": ROOM},
    "members": {"room": ROOM},
    "list_rooms": {},
    "lookup": {"name": "lobby"},
    "prekey": {"prekey": PREKEY},
    "prekey_lookup": {"key": KEY, "id": "p1"},
    "send": {"room": ROOM, "body": "AQID"},
    "direct": {"to": KEY, "body": "AQID"},
    "directs": {"id": "b1", "items": [{"to": KEY, "body": "AQID"}]},
    "ack": {"mailbox": 4},
    "retract": {"room": ROOM, "seq": 3},
    "signal": {"room": ROOM, "body": "AQID"},
    "sync": {"room": ROOM, "after": 0, "limit": 100},
    "status": {"status": "away", "text": "lunch"},
    "blob_upload": {"room": ROOM, "size": 1024},
    "blob_download": {"room": ROOM, "blob": ROOM},
    "blob_delete": {"blob": ROOM},
    "set_name": {"name": "robert", "name_statement": STATEMENT},
    "log_append": {"room": ROOM, "entry": "AQID"},
    "log": {"room": ROOM, "after": 2},
}
RELAY_EXAMPLES: dict[str, dict[str, Any]] = {
    "challenge": {
        "v": 1,
        "relay": "relay",
        "nonce": KEY,
        "limits": {
            "max_frame": MAX_FRAME,
            "max_body": MAX_BODY,
            "max_members": 1000,
            "history": 10000,
            "mailbox": 10000,
            "history_age": 2592000,
        },
    },
    "welcome": {
        "user": {"key": KEY, "name": "alice"},
        "rooms": [ROOM_INFO],
        "mailbox": 0,
        "ts": 1764295200123,
    },
    "room": {"room": ROOM_INFO, "id": "1"},
    "member_joined": {"room": ROOM, "member": MEMBER},
    "member_left": {"room": ROOM, "key": KEY},
    "room_deleted": {"room": ROOM, "reason": "Spam."},
    "room_deletion": {"room": ROOM, "reason": "Spam.", "ts": 1764295200123},
    "members": {"room": ROOM, "members": [MEMBER]},
    "rooms": {"rooms": [SUMMARY]},
    "summary": {"room": SUMMARY},
    "prekey_found": {"key": KEY, "prekey": PREKEY, "id": "p1"},
    "message": {"room": ROOM, "seq": 1, "ts": 2, "from": KEY, "body": "AQID"},
    "direct": {"from": KEY, "seq": 1, "ts": 2, "body": "AQID"},
    "sent_directs": {"id": "b1", "seqs": [1, 7], "ts": 2},
    "signal": {"room": ROOM, "from": KEY, "body": "AQID"},
    "sent": {"room": ROOM, "seq": 1, "ts": 2},
    "synced": {"room": ROOM, "seq": 1},
    "presence": {"key": KEY, "status": "offline", "last_seen": 5},
    "blob_ticket": {"blob": ROOM, "token": KEY, "size": 1024, "offset": 0},
    "renamed": {"key": KEY, "name": "robert", "name_statement": STATEMENT},
    "log": {"room": ROOM, "start": 2, "entries": ["AQID"]},
    "ok": {"id": "x"},
    "error": {"code": "forbidden", "message": "Wrong password."},
}


def _tags(union: Any) -> set[str]:
    return {cls.__struct_config__.tag for cls in get_args(union)}


def test_examples_cover_every_frame_type() -> None:
    assert set(CLIENT_EXAMPLES) == _tags(ClientFrame)
    assert set(RELAY_EXAMPLES) == _tags(RelayFrame)


@pytest.mark.parametrize(("tag", "fields"), CLIENT_EXAMPLES.items())
def test_client_example_round_trips(tag: str, fields: dict[str, Any]) -> None:
    raw = json.dumps({"type": tag, **fields})
    frame = decode_client_frame(raw)
    assert frame.__struct_config__.tag == tag
    assert decode_client_frame(encode_frame(frame)) == frame


@pytest.mark.parametrize(("tag", "fields"), RELAY_EXAMPLES.items())
def test_relay_example_round_trips(tag: str, fields: dict[str, Any]) -> None:
    raw = json.dumps({"type": tag, **fields})
    frame = decode_relay_frame(raw)
    assert frame.__struct_config__.tag == tag
    assert decode_relay_frame(encode_frame(frame)) == frame


def test_partial_room_round_trips_and_defaults_to_full() -> None:
    """``RoomInfo.partial`` (protocol.md section 4) is additive: encodings without it
    decode as full rooms, and a partial one survives a round trip."""
    full = decode_relay_frame(json.dumps({"type": "welcome", **RELAY_EXAMPLES["welcome"]}))
    assert isinstance(full, Welcome)
    assert not full.rooms[0].partial
    partial = ROOM_INFO | {"members": [], "partial": True}
    raw = json.dumps({"type": "welcome", **RELAY_EXAMPLES["welcome"], "rooms": [partial]})
    frame = decode_relay_frame(raw)
    assert isinstance(frame, Welcome)
    assert (frame.rooms[0].partial, frame.rooms[0].members) == (True, [])
    assert json.loads(encode_frame(frame))["rooms"][0]["partial"] is True
    assert decode_relay_frame(encode_frame(frame)) == frame


def test_from_is_the_wire_name_of_sender() -> None:
    frame = decode_relay_frame(json.dumps({"type": "message", **RELAY_EXAMPLES["message"]}))
    assert json.loads(encode_frame(frame))["from"] == KEY


@settings(max_examples=150)
@given(client_frames)
def test_every_valid_client_frame_round_trips(frame: Any) -> None:
    assert decode_client_frame(encode_frame(frame)) == frame


@settings(max_examples=150)
@given(relay_frames)
def test_every_valid_relay_frame_round_trips(frame: Any) -> None:
    assert decode_relay_frame(encode_frame(frame)) == frame


def _only_protocol_errors(data: bytes | str) -> None:
    errors: list[ProtocolError] = []
    for decode in (decode_client_frame, decode_relay_frame):
        try:
            decode(data)
        except ProtocolError as exc:
            errors.append(exc)
    for error in errors:
        assert error.code in {ErrorCode.BAD_FRAME, ErrorCode.TOO_LARGE}
        # The relay must always be able to send the sentence back in an `error` frame.
        reply = Error(code=error.code, message=error.message)
        assert decode_relay_frame(encode_frame(reply)) == reply


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_only_raise_protocol_error(data: bytes) -> None:
    _only_protocol_errors(data)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300)
@given(_json, st.sampled_from(sorted(_tags(ClientFrame) | _tags(RelayFrame) | {"nope"})))
def test_arbitrary_json_only_raises_protocol_error(value: Any, tag: str) -> None:
    _only_protocol_errors(json.dumps(value))
    if isinstance(value, dict):
        _only_protocol_errors(json.dumps({**value, "type": tag}))


@settings(max_examples=200)
@given(client_frames, st.data())
def test_mutated_valid_frames_only_raise_protocol_error(frame: Any, data: st.DataObject) -> None:
    obj = json.loads(encode_frame(frame))
    key = data.draw(st.sampled_from(sorted(obj)))
    obj[key] = data.draw(_json)
    _only_protocol_errors(json.dumps(obj))


def test_unknown_type_is_rejected() -> None:
    with pytest.raises(ProtocolError) as info:
        decode_client_frame(b'{"type": "teleport"}')
    assert info.value.code is ErrorCode.BAD_FRAME


def test_error_sentence_is_printable_even_for_hostile_field_names() -> None:
    hostile = "\x1b[2J\u202e" + "k" * 1000
    with pytest.raises(ProtocolError) as info:
        decode_client_frame(json.dumps({"type": "list_rooms", hostile: 1}))
    assert info.value.message.isprintable()
    assert "\\u001b" in info.value.message
    assert len(info.value.message) <= 500


def test_relay_frames_may_exceed_the_client_frame_limit() -> None:
    members = [MEMBER] * 1000
    raw = json.dumps({"type": "members", "room": ROOM, "members": members})
    assert len(raw) > MAX_FRAME
    assert len(decode_relay_frame(raw).members) == 1000  # type: ignore[union-attr]


def test_unknown_field_is_rejected() -> None:
    with pytest.raises(ProtocolError, match="unknown field"):
        decode_client_frame(b'{"type": "list_rooms", "admin": true}')


def test_relay_frame_is_not_a_client_frame() -> None:
    raw = json.dumps({"type": "welcome", **RELAY_EXAMPLES["welcome"]})
    with pytest.raises(ProtocolError):
        decode_client_frame(raw)


def test_wrong_type_is_rejected() -> None:
    with pytest.raises(ProtocolError, match="mailbox"):
        decode_client_frame(b'{"type": "ack", "mailbox": "4"}')


def test_error_does_not_echo_the_frame() -> None:
    secret = "c2VjcmV0LXBheWxvYWQtYnl0ZXM="
    with pytest.raises(ProtocolError) as info:
        decode_client_frame(json.dumps({"type": "send", "room": "short", "body": secret}))
    assert secret not in str(info.value)
    assert "secret" not in repr(info.value)


def test_protocol_error_is_printable() -> None:
    err = ProtocolError(ErrorCode.FORBIDDEN, "Wrong password.")
    assert repr(err) == "ProtocolError('forbidden', 'Wrong password.')"
    assert isinstance(msgspec.json.encode({"code": err.code}), bytes)


@pytest.mark.parametrize(
    "change",
    [
        {"reason": "Spam.\x1b[2J"},  # a control character
        {"reason": "Spam.\u202e"},  # a bidi override
        {"reason": "x" * 501},
        {"room": "AAAAAAAAAAAAAAAAAAAA"},  # 15 bytes
        {"ts": -1},
        {"ts": True},
        {"ts": 1.0},
        {"ts": None},
        {"name": "lobby"},  # no such field
    ],
)
def test_a_room_deletion_notice_is_decoded_strictly(change: dict[str, Any]) -> None:
    fields = RELAY_EXAMPLES["room_deletion"] | change
    with pytest.raises(ProtocolError) as info:
        decode_relay_frame(json.dumps({"type": "room_deletion", **fields}))
    assert info.value.code is ErrorCode.BAD_FRAME
    missing = {k: v for k, v in RELAY_EXAMPLES["room_deletion"].items() if k != "ts"}
    with pytest.raises(ProtocolError):
        decode_relay_frame(json.dumps({"type": "room_deletion", **missing}))
