"""Full-text search over stored messages: an in-memory inverted index, never on disk.

The history is sealed at rest, and an index on disk would be a second copy of the
plaintext (even hashed words leak by frequency), so the index lives in memory only and
is built from the sealed history when the client starts (docs/benchmarks.md measures
both the build and the queries over 100,000 messages). A message is found by all the
words of the query, the last one also as a prefix (search as you type); words are
NFKC-normalised and case-folded. An edit re-indexes a message under its newest version,
a delete removes it; results are the newest first.
"""

import bisect
import re
import unicodedata
from array import array

_WORD = re.compile(r"\w+")
MAX_RESULTS = 50


def words(text: str) -> list[str]:
    """The normalised words of ``text`` (what the index and a query are made of)."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


class SearchIndex:
    """Word -> messages, for every room of one store. Not thread-safe (one owner)."""

    def __init__(self) -> None:
        self._postings: dict[str, array[int]] = {}
        self._vocabulary: list[str] = []  # sorted, for prefixes; rebuilt when stale
        self._stale = False
        self._rooms: dict[bytes, int] = {}
        self._room_ids: list[bytes] = []
        self._current: dict[tuple[int, int], int] = {}  # (room, seq) -> live document
        self._room_of = array("I")
        self._seq_of = array("q")
        self._ts_of = array("q")
        self._alive = bytearray()

    def __len__(self) -> int:
        return len(self._current)

    def __repr__(self) -> str:
        return f"SearchIndex(messages={len(self)}, words={len(self._postings)})"

    def add(self, room_id: bytes, seq: int, ts: int, text: str) -> None:
        """Index message ``seq`` of ``room_id`` under ``text`` (replacing an older text)."""
        room = self._rooms.setdefault(room_id, len(self._room_ids))
        if room == len(self._room_ids):
            self._room_ids.append(room_id)
        self.discard(room_id, seq)
        doc = len(self._alive)
        self._room_of.append(room)
        self._seq_of.append(seq)
        self._ts_of.append(ts)
        self._alive.append(1)
        self._current[room, seq] = doc
        for word in set(words(text)):
            postings = self._postings.get(word)
            if postings is None:
                self._postings[word] = postings = array("I")
                self._stale = True
            postings.append(doc)

    def discard(self, room_id: bytes, seq: int) -> None:
        """Forget a message (deleted, or its room left); nothing if it is not indexed."""
        room = self._rooms.get(room_id)
        doc = None if room is None else self._current.pop((room, seq), None)
        if doc is not None:
            self._alive[doc] = 0

    def discard_room(self, room_id: bytes) -> None:
        """Forget every message of a room."""
        room = self._rooms.get(room_id)
        if room is None:
            return
        for key in [key for key in self._current if key[0] == room]:
            self._alive[self._current.pop(key)] = 0

    def search(
        self, query: str, room_id: bytes | None = None, limit: int = MAX_RESULTS
    ) -> list[tuple[bytes, int]]:
        """``(room_id, seq)`` of the newest ``limit`` messages holding every query word."""
        terms = words(query)
        if not terms:
            return []
        room = None
        if room_id is not None:
            room = self._rooms.get(room_id)
            if room is None:
                return []
        lists: list[array[int] | set[int]] = [
            self._postings.get(term, array("I")) for term in terms[:-1]
        ]
        lists.append(self._prefixed(terms[-1]))
        lists.sort(key=len)
        found = set(lists[0])
        for postings in lists[1:]:
            if not found:
                break
            found.intersection_update(postings)
        alive, room_of, ts_of = self._alive, self._room_of, self._ts_of
        hits = [doc for doc in found if alive[doc] and (room is None or room_of[doc] == room)]
        hits.sort(key=lambda doc: (ts_of[doc], doc), reverse=True)
        return [(self._room_ids[room_of[doc]], self._seq_of[doc]) for doc in hits[:limit]]

    def _prefixed(self, prefix: str) -> "array[int] | set[int]":
        """Every document with a word starting with ``prefix``."""
        if self._stale:
            self._vocabulary = sorted(self._postings)
            self._stale = False
        vocabulary = self._vocabulary
        start = bisect.bisect_left(vocabulary, prefix)
        matches = []
        for word in vocabulary[start:]:
            if not word.startswith(prefix):
                break
            matches.append(self._postings[word])
        if len(matches) == 1:
            return matches[0]
        merged: set[int] = set()
        for postings in matches:
            merged.update(postings)
        return merged
