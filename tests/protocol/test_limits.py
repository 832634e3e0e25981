"""Each limit accepts a value at the limit and rejects one past it."""

import base64
import json
from typing import Any

import pytest

from e2echat.protocol import (
    MAX_BODY,
    MAX_FRAME,
    MAX_SYNC_LIMIT,
    ErrorCode,
    ProtocolError,
    decode_client_frame,
)
from e2echat.protocol.constants import (
    MAX_DESCRIPTION_CHARS,
    MAX_MEMBERS_CAP,
    MAX_NAME_CHARS,
    MAX_PREKEY_ID,
    MAX_REQUEST_ID_CHARS,
    MAX_SEQ,
    MAX_STATUS_TEXT_CHARS,
)

KEY = base64.b64encode(bytes(32)).decode()
SIG = base64.b64encode(bytes(64)).decode()
ROOM = base64.b64encode(bytes(16)).decode()


def _frame(**fields: Any) -> str:
    return json.dumps(fields)


def _hello(name: str = "alice", prekey_id: int = 1) -> str:
    prekey = {"id": prekey_id, "key": KEY, "sig": SIG}
    return _frame(type="hello", key=KEY, name=name, prekey=prekey, sig=SIG)


def _send(body_len: int) -> str:
    return _frame(type="send", room=ROOM, body=base64.b64encode(bytes(body_len)).decode())


def _create(**extra: Any) -> str:
    return _frame(type="create_room", name="lobby", access={"kind": "open"}, **extra)


CASES: list[tuple[str, str, str]] = [
    ("body", _send(MAX_BODY), _send(MAX_BODY + 1)),
    ("user name", _hello("a" * MAX_NAME_CHARS), _hello("a" * (MAX_NAME_CHARS + 1))),
    ("room name", _frame(type="lookup", name="a" * 32), _frame(type="lookup", name="a" * 33)),
    (
        "description",
        _create(description="d" * MAX_DESCRIPTION_CHARS),
        _create(description="d" * (MAX_DESCRIPTION_CHARS + 1)),
    ),
    ("max members", _create(max_members=MAX_MEMBERS_CAP), _create(max_members=MAX_MEMBERS_CAP + 1)),
    (
        "request id",
        _frame(type="list_rooms", id="i" * MAX_REQUEST_ID_CHARS),
        _frame(type="list_rooms", id="i" * (MAX_REQUEST_ID_CHARS + 1)),
    ),
    (
        "status text",
        _frame(type="status", status="busy", text="t" * MAX_STATUS_TEXT_CHARS),
        _frame(type="status", status="busy", text="t" * (MAX_STATUS_TEXT_CHARS + 1)),
    ),
    (
        "sync limit",
        _frame(type="sync", room=ROOM, after=0, limit=MAX_SYNC_LIMIT),
        _frame(type="sync", room=ROOM, after=0, limit=MAX_SYNC_LIMIT + 1),
    ),
    ("seq", _frame(type="ack", mailbox=MAX_SEQ), _frame(type="ack", mailbox=MAX_SEQ + 1)),
    ("prekey id", _hello(prekey_id=MAX_PREKEY_ID), _hello(prekey_id=MAX_PREKEY_ID + 1)),
]


@pytest.mark.parametrize(("what", "at_limit", "past_limit"), CASES, ids=[c[0] for c in CASES])
def test_limit(what: str, at_limit: str, past_limit: str) -> None:
    decode_client_frame(at_limit)
    with pytest.raises(ProtocolError):
        decode_client_frame(past_limit)


def test_over_long_body_is_too_large() -> None:
    with pytest.raises(ProtocolError) as info:
        decode_client_frame(_send(MAX_BODY + 1))
    assert info.value.code is ErrorCode.TOO_LARGE


def test_frame_size_limit() -> None:
    padding = MAX_FRAME - len(_frame(type="list_rooms", id=""))
    at_limit = _frame(type="list_rooms", id="").replace('""', '"' + "" + '"')
    # A frame of exactly MAX_FRAME bytes passes the size gate (and then fails on content).
    exact = at_limit + " " * padding
    assert len(exact) == MAX_FRAME
    with pytest.raises(ProtocolError) as info:
        decode_client_frame(exact)
    assert info.value.code is ErrorCode.BAD_FRAME
    with pytest.raises(ProtocolError) as info:
        decode_client_frame(exact + " ")
    assert info.value.code is ErrorCode.TOO_LARGE


def test_relay_may_configure_a_smaller_frame_limit() -> None:
    frame = _send(100)
    decode_client_frame(frame, max_frame=len(frame))
    with pytest.raises(ProtocolError):
        decode_client_frame(frame, max_frame=len(frame) - 1)


@pytest.mark.parametrize(("size", "ok"), [(32, True), (31, False), (33, False)])
def test_keys_are_exactly_32_bytes(size: int, ok: bool) -> None:
    frame = _frame(type="direct", to=base64.b64encode(bytes(size)).decode(), body="AQ==")
    if ok:
        decode_client_frame(frame)
    else:
        with pytest.raises(ProtocolError):
            decode_client_frame(frame)
