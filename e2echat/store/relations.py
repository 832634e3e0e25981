"""What edits, deletes and reactions do to a stored message: pure rules, no I/O.

Each message that relations named has one ``Annotations`` record (sealed in the store):
its edits, the reactions to it, and whether its sender deleted it. ``annotate`` is the
only way to change one, and follows docs/crypto.md section 8.3: only a message's signer
edits or deletes it (checked again here, whoever calls), the version shown is the edit
with the greatest ``(ts, id)``, a reaction is a last-writer-wins register per
``(reactor, emoji)``, and a delete is final. Input that breaks a rule raises
``RelationError`` with the reason, so the caller changes nothing.

A relation can arrive before the message it names (that message waits for its key,
or a sync delivers it later): it is kept in the record all the same, and applies once
the message is stored. What can be checked without the message is checked now (the
signer rule holds from the id alone); that an edit names a text is checked when the
message is shown.
"""

from dataclasses import dataclass

import msgspec

from e2echat.crypto.payload import Delete, Edit, Reaction, id_sender

MAX_REACTIONS_PER_MEMBER = 20
"""Distinct emoji one member may keep on one message (each is stored)."""
MAX_HELD_PER_ROOM = 1000
"""Records of messages not stored yet (named by edits or reactions) kept per room; the
oldest goes first, so ids that never arrive cannot grow the store without bound."""


class RelationError(Exception):
    """A relation that changes nothing; the message says why (safe to show or log)."""


class Version(msgspec.Struct, array_like=True, frozen=True):
    """One edit of a message: the edit's own id and time, and its text."""

    ts: int
    id: bytes
    body: str
    mentions: tuple[bytes, ...]

    def __repr__(self) -> str:
        return f"Version(ts={self.ts}, body=<{len(self.body)} chars>)"


class ReactionState(msgspec.Struct, array_like=True, frozen=True):
    """The latest word of ``reactor`` on ``emoji`` (kept when removed, to order late adds)."""

    reactor: bytes
    emoji: str
    add: bool
    ts: int
    id: bytes


class Annotations(msgspec.Struct, frozen=True):
    """Everything relations did to one message.

    ``edits`` is sorted oldest first by ``(ts, id)``; after a delete both lists are
    empty: the record keeps only the fact, so that a late copy is never shown.
    """

    edits: tuple[Version, ...] = ()
    reactions: tuple[ReactionState, ...] = ()
    deleted: bool = False

    def __repr__(self) -> str:
        return (
            f"Annotations(edits={len(self.edits)}, reactions={len(self.reactions)},"
            f" deleted={self.deleted})"
        )

    @property
    def latest(self) -> Version | None:
        """The version to show instead of the original, if it was edited."""
        return self.edits[-1] if self.edits else None

    def counts(self) -> list[tuple[str, tuple[bytes, ...]]]:
        """``(emoji, reactors)`` for each emoji someone holds, in order of first use."""
        held: dict[str, list[bytes]] = {}
        for state in sorted(self.reactions, key=lambda r: (r.ts, r.id)):
            if state.add:
                held.setdefault(state.emoji, []).append(state.reactor)
        return [(emoji, tuple(reactors)) for emoji, reactors in held.items()]


NONE = Annotations()


@dataclass(frozen=True, slots=True)
class Target:
    """What the store knows of the message a relation names."""

    sender: bytes
    is_text: bool


Relation = Edit | Delete | Reaction


def annotate(
    current: Annotations,
    target: Target | None,
    relation: Relation,
    signer: bytes,
    relation_id: bytes,
) -> Annotations:
    """The annotations after ``relation`` (message ``relation_id``, signed by ``signer``).

    ``target`` is None when the named message is not stored (yet): the relation is kept
    for it. Raises ``RelationError``.
    """
    if current.deleted:
        raise RelationError("the message was deleted")
    if isinstance(relation, Delete):
        if id_sender(relation.target) != signer:
            raise RelationError("only its sender may delete a message")
        return Annotations(deleted=True)
    if isinstance(relation, Edit):
        return _edit(current, target, relation, signer, relation_id)
    return _react(current, relation, signer, relation_id)


def _edit(
    current: Annotations, target: Target | None, edit: Edit, signer: bytes, edit_id: bytes
) -> Annotations:
    if id_sender(edit.target) != signer or (target is not None and target.sender != signer):
        raise RelationError("only its sender may edit a message")
    if target is not None and not target.is_text:
        raise RelationError("only a text message can be edited")
    if any(version.id == edit_id for version in current.edits):
        raise RelationError("that edit is already applied")
    version = Version(edit.ts, edit_id, edit.body, tuple(edit.mentions))
    edits = sorted((*current.edits, version), key=lambda v: (v.ts, v.id))
    return msgspec.structs.replace(current, edits=tuple(edits))


def _react(
    current: Annotations, reaction: Reaction, signer: bytes, reaction_id: bytes
) -> Annotations:
    new = ReactionState(signer, reaction.emoji, reaction.add, reaction.ts, reaction_id)
    others, mine = [], []
    for state in current.reactions:
        if state.reactor != signer:
            others.append(state)
        elif state.emoji != reaction.emoji:
            mine.append(state)
        elif (state.ts, state.id) >= (new.ts, new.id):
            raise RelationError("a newer reaction of that member is applied")
    if new.add and sum(state.add for state in mine) >= MAX_REACTIONS_PER_MEMBER:
        raise RelationError(f"a member may hold at most {MAX_REACTIONS_PER_MEMBER} reactions")
    # Removals are kept to order late adds, but only the newest ones: storage stays bounded.
    removed = sorted((s for s in mine if not s.add), key=lambda s: (s.ts, s.id))
    held = [s for s in mine if s.add]
    kept = held + removed[-MAX_REACTIONS_PER_MEMBER:]
    return msgspec.structs.replace(current, reactions=(*others, *kept, new))


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Annotations)


def encode_annotations(annotations: Annotations) -> bytes:
    """The msgpack bytes of ``annotations`` (the store seals them)."""
    return _encoder.encode(annotations)


def decode_annotations(data: bytes) -> Annotations:
    """Decode what ``encode_annotations`` wrote."""
    return _decoder.decode(data)
