"""The room plaintext payload: every kind, strict decoding, unsupported future kinds."""

import base64

import pytest

from e2echat.crypto import (
    Delete,
    Edit,
    PayloadError,
    Reaction,
    Read,
    Text,
    Typing,
    Unsupported,
    check_emoji,
    decode_payload,
    encode_payload,
    is_one_emoji,
    message_id,
)
from e2echat.crypto.payload import check_signer, decode_sent, id_sender

ALICE, BOB = b"\x0a" * 32, b"\x0b" * 32
TARGET = message_id(ALICE, b"\xcc" * 16, 7)
B64 = base64.b64encode(TARGET).decode()


def test_round_trip_and_wire_shape() -> None:
    payload = Text("hi @bob", (bytes(32),), 1234)
    data = encode_payload(payload)
    assert data.startswith(b'{"t":"text","body":"hi @bob","mentions":["')
    assert b"reply_to" not in data  # a plain text's bytes are those of v1
    assert decode_payload(data) == payload


@pytest.mark.parametrize(
    "payload",
    [
        Text("re", (), 1, reply_to=TARGET),
        Edit(TARGET, "fixed", (BOB,), 2),
        Delete(TARGET, 3),
        Reaction(TARGET, "👍", True, 4),
        Reaction(TARGET, "👨\u200d👩\u200d👧\u200d👦", False, 5),
        Reaction(TARGET, "🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f", True, 6),
        Typing(True, 7),
        Read(TARGET, 8),
    ],
)
def test_every_kind_round_trips(payload: object) -> None:
    assert decode_payload(encode_payload(payload)) == payload  # type: ignore[arg-type]


def test_message_id_names_its_signer() -> None:
    assert len(TARGET) == 52
    assert ALICE + b"\xcc" * 16 + (7).to_bytes(4, "big") == TARGET
    assert id_sender(TARGET) == ALICE


@pytest.mark.parametrize(
    "data",
    [
        b'{"t":"text","body":"x","mentions":[],"ts":1,"extra":1}',
        b'{"t":"text","body":"x","mentions":["AAAA"],"ts":1}',
        b'{"t":"text","body":"x","mentions":[],"ts":-1}',
        b'{"t":"text","body":1,"mentions":[],"ts":1}',
        b'{"t":"text","body":"x","ts":1}',
        b'{"t":"text","body":"x","mentions":[],"ts":1,"reply_to":"AAAA"}',
        b'{"t":"edit","body":"x","mentions":[],"ts":1}',
        b'{"t":"delete","target":"AAAA","ts":1}',
        b'{"t":"typing","typing":1,"ts":1}',
        b'{"t":"read","ts":1}',
        b'{"t":"react","target":"' + B64.encode() + b'","emoji":"\xf0\x9f\x91\x8d","ts":1}',
        b"\xff",
        b"[]",
        b'{"ts":1}',
        b'{"t":"Poll","ts":1}',  # not a kind name: upper case
        b'{"t":"poll"}',  # every kind has ts
        b'{"t":"' + b"p" * 33 + b'","ts":1}',
    ],
)
def test_strict_decoding(data: bytes) -> None:
    with pytest.raises(PayloadError):
        decode_payload(data)


@pytest.mark.parametrize(
    "emoji",
    ["", "a b", "x" * 17, "\u202e", "\x1b[31m", "ok\n", "\u2028", "\U0001f44d" * 17, "\u00a0"],
)
def test_reactions_are_bounded_and_printable(emoji: str) -> None:
    with pytest.raises(PayloadError):
        check_emoji(emoji)
    with pytest.raises(PayloadError):
        Reaction(TARGET, emoji, True, 1)
    data = encode_payload(Reaction(TARGET, "👍", True, 1)).replace(
        "👍".encode(), emoji.encode().replace(b"\\", b"\\\\").replace(b"\n", b"\\n")
    )
    with pytest.raises(PayloadError):
        decode_payload(data)


ONE_EMOJI = [
    "👍",
    "❤️",  # with the emoji variation selector
    "👍🏽",  # a skin tone
    "🏽",
    "1️⃣",  # a keycap
    "#⃣",
    "🇫🇷",  # a flag
    "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",  # a subdivision flag
    "👨\u200d👩\u200d👧",  # a ZWJ sequence
    "🏳️\u200d🌈",
    "‼️",  # emoji outside the So category
    "〰",
    "★",
    "©",
]
NOT_ONE_EMOJI = ["xyz", "a", "1", "+1", "→", "👍👍", "🇫🇷🇩🇪", "😀a", "\u200d👍", "👍\u200d"]
NOT_ONE_EMOJI += ["👍\u200d\u200d👍", "🏴\U000e007f", "🏴\U000e0067\U000e0062", "1⃣⃣", "x️"]


@pytest.mark.parametrize("emoji", ONE_EMOJI)
def test_one_emoji_is_what_a_sender_reacts_with(emoji: str) -> None:
    check_emoji(emoji)
    assert is_one_emoji(emoji)


@pytest.mark.parametrize("emoji", NOT_ONE_EMOJI)
def test_a_word_or_several_emoji_are_not_one_yet_receivers_take_them(emoji: str) -> None:
    assert not is_one_emoji(emoji)
    check_emoji(emoji)  # the wire rule: another client's reaction is never lost
    assert decode_payload(encode_payload(Reaction(TARGET, emoji, True, 1))).emoji == emoji  # type: ignore[union-attr]


def test_unknown_kinds_decode_as_unsupported() -> None:
    assert decode_payload(b'{"t":"poll","question":"?","ts":9}') == Unsupported("poll", 9)
    with pytest.raises(PayloadError):
        decode_sent(b'{"t":"poll","question":"?","ts":9}')


def test_only_the_signer_may_edit_or_delete() -> None:
    check_signer(Edit(TARGET, "x", (), 1), ALICE)
    check_signer(Delete(TARGET, 1), ALICE)
    for payload in (Edit(TARGET, "x", (), 1), Delete(TARGET, 1)):
        with pytest.raises(PayloadError, match="another sender"):
            check_signer(payload, BOB)
    check_signer(Reaction(TARGET, "👍", True, 1), BOB)
    check_signer(Read(TARGET, 1), BOB)


def test_repr_hides_the_text() -> None:
    assert "secret words" not in repr(Text("secret words", (), 0))
    assert "secret words" not in repr(Edit(TARGET, "secret words", (), 0))


FILE = dict(
    blob=bytes(16), key=bytes(32), hash=bytes(32), size=5, name="a.txt", type="text/plain", ts=1
)


def test_file_payload_round_trips_and_hides_its_secrets() -> None:
    from e2echat.crypto.payload import File

    sent = File(**FILE)  # type: ignore[arg-type]
    data = encode_payload(sent)
    assert decode_payload(data) == sent
    assert b"caption" not in data  # an absent caption is omitted
    assert "a.txt" not in repr(sent)
    assert "key" not in repr(sent)


@pytest.mark.parametrize(
    "change",
    [
        {"name": ""},
        {"name": "x" * 256},
        {"name": "a\x1b[31m.txt"},
        {"name": "a\u202e.txt"},
        {"type": "text"},
        {"type": "Text/Plain"},
        {"type": "text/plain; charset=utf-8"},
        {"size": -1},
        {"size": 2**40 + 1},
        {"blob": "AAAA"},
    ],
)
def test_bad_file_payloads_are_rejected(change: dict[str, object]) -> None:
    import base64
    import json

    fields = {
        k: base64.b64encode(v).decode() if isinstance(v, bytes) else v for k, v in FILE.items()
    }
    raw = json.dumps({"t": "file", **fields, **change}).encode()
    with pytest.raises(PayloadError):
        decode_payload(raw)
