"""The in-memory search index (e2echat.store.search)."""

from e2echat.store.search import SearchIndex, words

ROOM_A, ROOM_B = b"a" * 16, b"b" * 16


def index() -> SearchIndex:
    idx = SearchIndex()
    idx.add(ROOM_A, 1, 100, "Deploy the relay on Friday")
    idx.add(ROOM_A, 2, 200, "friday is fine; DEPLOYING now")
    idx.add(
        ROOM_B, 1, 150, "\uff26\uff52\uff49\uff44\uff41\uff59 lunch?"
    )  # full-width: NFKC folds it
    return idx


def test_words_are_normalised() -> None:
    assert words("\uff26\uff52\uff49\uff44\uff41\uff59, DEPLOY-now \u00df") == [
        "friday",
        "deploy",
        "now",
        "ss",
    ]


def test_all_words_match_the_last_as_a_prefix_newest_first() -> None:
    idx = index()
    assert idx.search("friday") == [(ROOM_A, 2), (ROOM_B, 1), (ROOM_A, 1)]
    assert idx.search("friday deploy") == [(ROOM_A, 2), (ROOM_A, 1)]
    assert idx.search("fri", room_id=ROOM_B) == [(ROOM_B, 1)]
    assert idx.search("relay friday") == [(ROOM_A, 1)]
    assert idx.search("relay lunch") == []
    assert idx.search("   ") == []
    assert idx.search("friday", room_id=b"c" * 16) == []
    assert idx.search("friday", limit=1) == [(ROOM_A, 2)]


def test_edits_reindex_and_deletes_remove() -> None:
    idx = index()
    idx.add(ROOM_A, 1, 100, "postponed to Monday")
    assert idx.search("relay") == []
    assert idx.search("monday") == [(ROOM_A, 1)]
    idx.discard(ROOM_A, 2)
    assert idx.search("friday") == [(ROOM_B, 1)]
    idx.discard_room(ROOM_B)
    assert idx.search("friday") == []
    assert len(idx) == 1
    idx.discard(b"z" * 16, 1)  # unknown: nothing


def test_repr_shows_no_words() -> None:
    assert "friday" not in repr(index()).lower()
