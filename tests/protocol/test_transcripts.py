"""The signed transcripts are byte-exact, domain-separated and unambiguous."""

from e2echat.protocol import hello_transcript, length_prefixed, prekey_transcript


def test_prekey_transcript_bytes() -> None:
    expected = (
        b"\x00\x00\x00\x11e2echat/v1/prekey"
        + b"\x00\x00\x00\x04\x00\x00\x00\x07"
        + b"\x00\x00\x00\x20"
        + bytes(range(32))
    )
    assert prekey_transcript(7, bytes(range(32))) == expected


def test_hello_transcript_bytes() -> None:
    got = hello_transcript("r", b"n" * 32, b"k" * 32, "bob", 1, b"p" * 32, b"s" * 64)
    expected = length_prefixed(
        b"e2echat/v1/hello",
        b"r",
        b"n" * 32,
        b"k" * 32,
        b"bob",
        b"\x00\x00\x00\x01",
        b"p" * 32,
        b"s" * 64,
    )
    assert got == expected
    assert got.startswith(b"\x00\x00\x00\x10e2echat/v1/hello\x00\x00\x00\x01r")


def test_length_prefix_prevents_shifting_bytes_between_fields() -> None:
    a = hello_transcript("ab", b"n" * 32, b"k" * 32, "c", 1, b"p" * 32, b"s" * 64)
    b = hello_transcript("a", b"n" * 32, b"k" * 32, "bc", 1, b"p" * 32, b"s" * 64)
    assert a != b


def test_domains_differ() -> None:
    assert not hello_transcript("r", b"", b"", "n", 0, b"", b"").startswith(
        prekey_transcript(0, b"")[:20]
    )
