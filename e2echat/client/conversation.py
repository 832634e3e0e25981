"""Replies, edits, deletes, reactions, read state and search over the stored history.

The engine hands every decrypted text and relation here. This part owns what they do
to the store (message ids, sealed annotations, erased deletes, read counts) and to the
in-memory search index, and builds the public ``Message`` values with their quote,
reactions and "(edited)" state. It does no I/O beyond the store, like the engine.

Who may do what is decided from signed statements only: the crypto core already
refused an edit or delete whose target names another signer, and ``annotate`` checks
the rest (docs/crypto.md section 8.3), so nothing here trusts the relay.
"""

from dataclasses import replace

from e2echat.client import events as ev
from e2echat.client.models import FileInfo, Message, Quote, Reaction, Version
from e2echat.client.projection import Projection, sent_at
from e2echat.client.roomstate import RoomState
from e2echat.crypto.errors import CryptoError
from e2echat.crypto.payload import (
    Delete,
    Edit,
    File,
    Text,
    Unsupported,
    decode_payload,
    id_sender,
)
from e2echat.crypto.payload import Reaction as ReactionPayload
from e2echat.store import HistoryItem, ReadState, Store
from e2echat.store.relations import Annotations, RelationError, Target, annotate
from e2echat.store.search import SearchIndex

Relation = Edit | Delete | ReactionPayload
EXCERPT_CHARS = 80
INDEX_STEP = 250
"""Messages indexed per worker step while the index is built in the background: every
other call of the engine (a launch's first page of history) waits for the step under
way, and 5,000 a step made that wait about 0.4 s at 10,000 stored."""


def excerpt(text: str) -> str:
    """The first line of ``text``, at most ``EXCERPT_CHARS`` characters."""
    line = text.strip().split("\n", 1)[0]
    return line if len(line) <= EXCERPT_CHARS else line[: EXCERPT_CHARS - 1] + "…"


class Conversation:
    """The stored conversation of every room of one store."""

    def __init__(self, me: bytes, store: Store, view: Projection) -> None:
        self._me = me
        self._store = store
        self._view = view
        self._index = SearchIndex()
        self._cursor: tuple[bytes, int] | None = (b"", -1)
        """Where the index build stands in (room, seq) order; None once it is done."""

    # Building messages -----------------------------------------------------------------

    def message(self, item: HistoryItem) -> Message[bytes] | None:
        """The public value of a stored message (None for a row that is not readable)."""
        if item.deleted:
            return self._built(item, None, Annotations())
        try:
            payload = decode_payload(item.payload)
        except CryptoError:
            return None
        if not isinstance(payload, Text | File | Unsupported):
            return None
        return self._built(item, payload, self._annotations(item.room_id, item.msg_id))

    def _built(
        self,
        item: HistoryItem,
        payload: Text | File | Unsupported | None,
        annotations: Annotations,
    ) -> Message[bytes]:
        """The public value of ``item`` with its payload (None: deleted) as it stands
        after ``annotations``."""
        room_id = item.room_id
        text, file, reply_to, unsupported = "", None, None, None
        keys: tuple[bytes, ...] = ()
        if isinstance(payload, Unsupported):
            unsupported = payload.kind
        elif isinstance(payload, File):
            text = payload.caption
            file = FileInfo(
                payload.name, payload.size, payload.type, payload.blob, payload.key, payload.hash
            )
        elif isinstance(payload, Text):
            latest = annotations.latest
            text, keys = (
                (payload.body, payload.mentions)
                if latest is None
                else (latest.body, latest.mentions)
            )
            if payload.reply_to is not None:
                reply_to = self.quote(room_id, payload.reply_to)
        return Message(
            text=text,
            sender=self._view.member(item.sender, room_id),
            room=room_id,
            mentions=tuple(self._view.member(key, room_id) for key in keys),
            mentions_me=self._me in keys,
            seq=item.seq,
            sent_at=sent_at(item.ts),
            own=item.sender == self._me,
            file=file,
            id=item.msg_id,
            reply_to=reply_to,
            edited=isinstance(payload, Text) and annotations.latest is not None,
            deleted=payload is None,
            reactions=() if unsupported else self._reactions(room_id, annotations),
            unsupported=unsupported,
        )

    def _annotations(self, room_id: bytes, msg_id: bytes) -> Annotations:
        return self._store.annotations(room_id, msg_id) if msg_id else Annotations()

    def _reactions(self, room_id: bytes, annotations: Annotations) -> tuple[Reaction, ...]:
        return tuple(
            Reaction(emoji, tuple(self._view.member(key, room_id) for key in keys))
            for emoji, keys in annotations.counts()
        )

    def quote(self, room_id: bytes, msg_id: bytes) -> Quote:
        """What a reply to ``msg_id`` shows of the original."""
        item = self._store.history_item(room_id, msg_id)
        if item is None:
            return Quote(msg_id, available=False)
        sender = self._view.member(item.sender, room_id)
        if item.deleted:
            return Quote(msg_id, True, sender, "", item.seq, deleted=True)
        original = self.message(item)
        text = "" if original is None else original.text
        return Quote(msg_id, True, sender, excerpt(text), item.seq)

    def versions(self, room_id: bytes, msg_id: bytes) -> list[Version]:
        """Every version of a stored text message, the original first."""
        item = self._store.history_item(room_id, msg_id)
        if item is None or item.deleted:
            return []
        payload = decode_payload(item.payload)
        if not isinstance(payload, Text):
            return []
        edits = self._store.annotations(room_id, msg_id).edits
        return [Version(payload.body, sent_at(item.ts))] + [
            Version(edit.body, sent_at(edit.ts)) for edit in edits
        ]

    # Receiving -------------------------------------------------------------------------

    def store_message(
        self, state: RoomState, item: HistoryItem, payload: Text | Unsupported | File
    ) -> Message[bytes] | None:
        """Store a text (or unsupported) message; its public value, or None if that seq
        was stored before or its sender deleted it before it got here."""
        annotations = self._annotations(state.id, item.msg_id)
        if annotations.deleted:
            item = replace(item, deleted=True)
        mentions_me = isinstance(payload, Text) and self._me in payload.mentions
        if not self._store.add_history(item, mentions_me=mentions_me):
            return None
        if item.sender != self._me and not item.deleted and item.seq > state.read.read_seq:
            state.read = replace(
                state.read,
                unread=state.read.unread + 1,
                mentions=state.read.mentions + mentions_me,
            )
        if item.deleted:
            return None
        if isinstance(payload, Text):
            self._index.add(state.id, item.seq, item.ts, payload.body)
        return self._built(item, payload, annotations)

    def relate(
        self, state: RoomState, relation: Relation, signer: bytes, relation_id: bytes
    ) -> tuple[list[ev.Event], HistoryItem | None]:
        """Apply an edit, delete or reaction; the events it causes, and the message a
        delete erased (as it was). A relation that breaks a rule changes nothing; one
        of a message not stored yet is held for it (docs/crypto.md section 8.3)."""
        room_id, target_id = state.id, relation.target
        item = self._store.history_item(room_id, target_id)
        target = None
        if item is not None:
            shown = not item.deleted and _is_text(item)
            target = Target(item.sender, is_text=shown)
        current = self._store.annotations(room_id, target_id)
        try:
            updated = annotate(current, target, relation, signer, relation_id)
        except RelationError:
            return [], None
        self._store.set_annotations(room_id, target_id, updated)
        if isinstance(relation, Delete):
            erased = self._store.erase_message(room_id, target_id)
            if erased is None:
                return [ev.MessageDeleted(room_id, target_id, 0)], None
            if erased.sender != self._me and erased.seq > state.read.read_seq:
                state.read = self._store.read_state(room_id)
            self._index.discard(room_id, erased.seq)
            return [ev.MessageDeleted(room_id, target_id, erased.seq)], erased
        if item is None:
            return [], None  # held: the message shows it once it is stored
        message = self.message(item)
        if message is None:
            return [], None
        if isinstance(relation, Edit):
            self._index.add(room_id, item.seq, item.ts, message.text)
            return [ev.MessageEdited(room_id, message)], None
        member = self._view.member(signer, room_id)
        events: list[ev.Event] = [
            ev.ReactionsChanged(room_id, message, member, relation.emoji, relation.add)
        ]
        return events, None

    def check_relation(self, room_id: bytes, relation: Relation) -> None:
        """Raise ``RelationError`` unless we may send ``relation`` now (the receivers'
        rules, applied before anything is queued)."""
        if isinstance(relation, Edit | Delete) and id_sender(relation.target) != self._me:
            raise RelationError(f"only its sender may {type(relation).__name__.lower()} a message")
        item = self._store.history_item(room_id, relation.target)
        target = None if item is None else Target(item.sender, not item.deleted and _is_text(item))
        if target is None and not isinstance(relation, Delete):
            raise RelationError("that message is not here")
        annotate(self._store.annotations(room_id, relation.target), target, relation, self._me, b"")

    # Read state ------------------------------------------------------------------------

    def mark_read(self, state: RoomState, seq: int | None) -> ReadState:
        """Move the room's read marker to ``seq`` (its newest message if None)."""
        if seq is None:
            newest = self._store.history(state.id, 1)
            seq = newest[-1].seq if newest else 0
        state.read = self._store.mark_read(state.id, seq)
        return state.read

    # Search ----------------------------------------------------------------------------

    def index_step(self) -> bool:
        """Index the next ``INDEX_STEP`` stored messages; True once all are indexed.

        Messages stored meanwhile are indexed as they arrive, so the build and the live
        updates may meet in any order (``SearchIndex.add`` replaces)."""
        if self._cursor is None:
            return True
        page = self._store.history_page(self._cursor, INDEX_STEP)
        for item in page:
            message = self.message(item)
            if message is not None and not message.unsupported:
                self._index.add(item.room_id, item.seq, item.ts, message.text)
        if len(page) < INDEX_STEP:
            self._cursor = None
        else:
            self._cursor = (page[-1].room_id, page[-1].seq)
        return self._cursor is None

    def search(self, query: str, room_id: bytes | None, limit: int) -> list[Message[bytes]]:
        """The newest ``limit`` messages holding every word of ``query``."""
        while not self.index_step():
            pass
        found = []
        for found_room, seq in self._index.search(query, room_id, limit):
            item = self._store.history_at(found_room, seq)
            message = None if item is None else self.message(item)
            if message is not None:
                found.append(message)
        return found

    def forget_room(self, room_id: bytes) -> None:
        self._index.discard_room(room_id)


def announced_blob(item: HistoryItem) -> bytes | None:
    """The relay blob a stored file message announces (None for any other message)."""
    try:
        payload = decode_payload(item.payload)
    except CryptoError:
        return None
    return payload.blob if isinstance(payload, File) else None


def _is_text(item: HistoryItem) -> bool:
    try:
        return isinstance(decode_payload(item.payload), Text)
    except CryptoError:
        return False
