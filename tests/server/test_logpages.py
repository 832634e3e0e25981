"""Log pages from memory: byte for byte the reply the store's entries give, only where
the held prefix covers the whole page, and within their memory bound."""

import msgspec
from e2echat_server.logpages import LogPages

from e2echat.protocol import LogEntries, encode_frame

ROOM, OTHER = b"r" * 16, b"o" * 16
ENTRIES = [bytes([i]) * (100 + i) for i in range(10)]


def reply(start: int, entries: list[bytes]) -> bytes:
    return encode_frame(LogEntries(room=ROOM, start=start, entries=entries, id="l"))


def test_a_held_page_is_the_reply_the_store_gives_and_a_partial_one_is_not_held() -> None:
    pages = LogPages()
    assert pages.page(ROOM, 0, 4, "l") is None
    pages.add(ROOM, 0, ENTRIES[:6])
    page = pages.page(ROOM, 2, 4, "l")
    assert page is not None
    assert encode_frame(page) == reply(2, ENTRIES[2:6])
    assert pages.page(ROOM, 3, 4, "l") is None  # a tail: the store may hold more
    pages.add(ROOM, 8, ENTRIES[8:])  # not next to the prefix: not kept
    assert pages.page(ROOM, 6, 4, "l") is None
    pages.add(ROOM, 4, ENTRIES[4:9])  # overlaps the prefix: its new part is kept
    page = pages.page(ROOM, 5, 4, "l")
    assert page is not None
    assert encode_frame(page) == reply(5, ENTRIES[5:9])


def test_past_the_bound_the_room_read_least_recently_is_dropped() -> None:
    size = sum(len(msgspec.json.encode(e)) for e in ENTRIES[:4])
    pages = LogPages(max_bytes=size + size // 2)
    pages.add(ROOM, 0, ENTRIES[:4])
    pages.add(OTHER, 0, ENTRIES[:4])  # over the bound: ROOM goes
    assert pages.page(ROOM, 0, 4, "l") is None
    assert pages.page(OTHER, 0, 4, "l") is not None
