"""The projection of the engine's state onto the public model: ``Member`` and ``Message``.

It owns what only the public view needs: presence (ours and that of the people we share
a room with) and the rosters' ``member_list`` snapshots, and it turns the relay's
member data plus our crypto state (trust, validation) into ``Member`` values.
"""

import bisect
import functools
from datetime import UTC, datetime

from e2echat.client.models import FileInfo, Lookalike, Member, Message, Predecessor
from e2echat.client.roomstate import RoomState
from e2echat.crypto.lookalike import NamedKey, Resemblance, is_mixed_script, name_skeletons
from e2echat.crypto.payload import File, Text
from e2echat.crypto.safety import fingerprint
from e2echat.crypto.session import CryptoSession
from e2echat.protocol import Presence, RosterEntry

_fingerprint = functools.lru_cache(maxsize=4096)(fingerprint)
"""``fingerprint``, remembered: every message shows its sender's."""
_mixed_script = functools.lru_cache(maxsize=4096)(is_mixed_script)
"""``is_mixed_script``, remembered: every message shows its sender's name."""


def _against(flags: tuple[Resemblance, ...], key: bytes) -> bool:
    """Whether one of ``flags`` names ``key``."""
    return any(flag.other == key for flag in flags)


def sent_at(ts: int) -> datetime:
    """A relay or payload timestamp (ms) as an aware UTC datetime."""
    return datetime.fromtimestamp(ts / 1000, UTC)


class Projection:
    """Builds public values from the rooms' state; refreshes the roster snapshots."""

    def __init__(
        self, me: bytes, name: str, session: CryptoSession, rooms: dict[bytes, RoomState]
    ) -> None:
        self.me = me
        self.name = name
        self.connected = False
        self._session = session
        self._rooms = rooms
        self._presence: dict[bytes, tuple[str, str | None]] = {}

    def member(self, key: bytes, room_id: bytes | None) -> Member:
        """The public view of a member, from the relay's data and our crypto state."""
        state = self._rooms.get(room_id) if room_id is not None else None
        relay_member = state.members.get(key) if state is not None else None
        if relay_member is None:
            relay_member = next(
                (s.members[key] for s in self._rooms.values() if key in s.members), None
            )
        name = self._name_of(key, relay_member)
        if key == self.me:
            # Our own presence is what we know, not what the relay listed before it flipped.
            own = self._presence.get(key, ("online", None))
            status, text = own if self.connected else ("offline", None)
        else:
            status, text = self._presence.get(
                key, (relay_member.status if relay_member is not None else "offline", None)
            )
        contact = self._session.contacts.get(key)
        verified = contact is not None and contact.verified
        validated = key == self.me or (
            room_id is not None and self._session.is_validated(room_id, key)
        )
        flags = state.lookalikes.get(key, ()) if state is not None else ()
        return Member(
            key,
            name,
            status,
            text,
            _fingerprint(key),
            verified,
            validated,
            key == self.me,
            petname=contact.petname if contact is not None else None,
            lookalikes=tuple(
                Lookalike(
                    r.other,
                    self._name_of(r.other, None),
                    _fingerprint(r.other),
                    r.same_name,
                    r.other_verified,
                )
                for r in flags
            ),
            mixed_script=_mixed_script(name),
            predecessor=self._predecessor(contact.predecessor if contact is not None else None),
        )

    def _predecessor(self, old: bytes | None) -> Predecessor | None:
        if old is None:
            return None
        record = self._session.contacts.get(old)
        verified = record is not None and record.verified
        return Predecessor(old, self._name_of(old, None), _fingerprint(old), verified)

    def _name_of(self, key: bytes, relay_member: RosterEntry | None) -> str:
        """The name ``key`` goes by: ours as we set it; else the one its key signed, else
        the relay's; else the last one we saw it under."""
        if key == self.me:
            return self.name
        contact = self._session.contacts.get(key)
        if contact is not None and (contact.name_issued is not None or relay_member is None):
            return contact.name
        if relay_member is not None:
            return relay_member.name
        return key.hex()[:8]

    def message(
        self, room_id: bytes, sender: bytes, seq: int, ts: int, payload: Text | File
    ) -> Message[bytes]:
        """A room message as the public model has it (bound to its ``Room`` later)."""
        keys: tuple[bytes, ...]
        if isinstance(payload, File):
            text, keys = payload.caption, ()
            file = FileInfo(
                payload.name, payload.size, payload.type, payload.blob, payload.key, payload.hash
            )
        else:
            text, keys, file = payload.body, payload.mentions, None
        mentions = tuple(self.member(key, room_id) for key in keys)
        return Message(
            text=text,
            sender=self.member(sender, room_id),
            room=room_id,
            mentions=mentions,
            mentions_me=self.me in keys,
            seq=seq,
            sent_at=sent_at(ts),
            own=sender == self.me,
            file=file,
        )

    # Rosters ---------------------------------------------------------------------------

    def refresh(self, state: RoomState) -> None:
        """Replace the room's ``member_list`` snapshot (and its look-alike flags)."""
        names = {key: self._name_of(key, member) for key, member in state.members.items()}
        state.listed_names = names
        state.namesakes = {}
        for key, name in names.items():
            for skeleton in name_skeletons(name):
                state.namesakes.setdefault(skeleton, set()).add(key)
        state.lookalikes = self._session.contacts.resemblances(
            NamedKey(key, name) for key, name in names.items()
        )
        state.listed_order = sorted((name.casefold(), key) for key, name in names.items())
        state.member_list = tuple(self.member(key, state.id) for _, key in state.listed_order)

    def member_added(self, state: RoomState, key: bytes) -> None:
        """``key`` joined (or was listed again): a delta on the snapshot, as ``refresh``
        would leave it. Its entry goes in at its place and only its namesakes (names
        sharing a skeleton with it, the only ones that can resemble it) are flagged
        anew, so a join into a room of n members builds one entry, not n."""
        if len(state.members) != len(state.listed_names) + (key not in state.listed_names):
            self.refresh(state)  # the snapshot lags the roster by more than this member
            return
        entries = list(state.member_list)
        changed: set[bytes] = set()
        flagging: set[bytes] = set()
        if key in state.listed_names:
            del entries[self._place(state, key)]
            changed = self._unlist(state, key)
        elif key in self._session.contacts.relied_on():
            # absent, it was a reference under its contact's name, which this join may
            # have changed: the entries flagged against it are flagged anew
            flagging = {k for k, found in state.lookalikes.items() if _against(found, key)}
        name = self._name_of(key, state.members[key])
        state.listed_names[key] = name
        for skeleton in name_skeletons(name):
            state.namesakes.setdefault(skeleton, set()).add(key)
        namesakes = self._namesakes(state, name) | flagging
        changed |= self._reflag(state, namesakes)
        # maybe renamed: the entries whose flags name it show its new name
        changed |= {k for k in namesakes if _against(state.lookalikes.get(k, ()), key)}
        place = bisect.bisect_left(state.listed_order, (name.casefold(), key))
        state.listed_order.insert(place, (name.casefold(), key))
        entries.insert(place, self.member(key, state.id))
        self._rebuild(state, entries, changed - {key})

    def member_removed(self, state: RoomState, key: bytes) -> None:
        """``key`` left: its entry goes, and only its namesakes are flagged anew."""
        if key not in state.listed_names:
            return
        entries = list(state.member_list)
        del entries[self._place(state, key)]
        changed = self._unlist(state, key)
        self._rebuild(state, entries, changed)

    def refresh_member(self, state: RoomState, key: bytes) -> None:
        """Replace ``key``'s entry alone: its presence or validation changed, which moves
        neither its place (the name) nor any look-alike flag, so a room of n members does
        not rebuild n entries for it."""
        if key in state.listed_names:
            self._rebuild(state, list(state.member_list), {key})

    def _unlist(self, state: RoomState, key: bytes) -> set[bytes]:
        """Take ``key`` out of the sort keys, names and namesakes (its entry is the
        caller's to drop); the keys whose flags changed with it."""
        name = state.listed_names.pop(key)
        del state.listed_order[self._place(state, key, name)]
        for skeleton in name_skeletons(name):
            sharing = state.namesakes[skeleton]
            sharing.discard(key)
            if not sharing:
                del state.namesakes[skeleton]
        state.lookalikes.pop(key, None)
        return self._reflag(state, self._namesakes(state, name))

    def _place(self, state: RoomState, key: bytes, name: str | None = None) -> int:
        """Where ``key``'s entry is in ``member_list``."""
        folded = (state.listed_names[key] if name is None else name).casefold()
        return bisect.bisect_left(state.listed_order, (folded, key))

    def _namesakes(self, state: RoomState, name: str) -> set[bytes]:
        """The listed keys whose names share a skeleton with ``name``."""
        return set().union(*(state.namesakes.get(s, ()) for s in name_skeletons(name)))

    def _reflag(self, state: RoomState, namesakes: set[bytes]) -> set[bytes]:
        """Flag ``namesakes`` (the listed keys whose names share a skeleton with a name
        that came or went) anew; the keys whose flags changed. Resemblance needs a shared
        skeleton, so the others' flags cannot change. A name has several skeletons, so
        a namesake may resemble keys that share none with that name: each is flagged
        against the keys sharing one of its own skeletons."""
        references = set().union(
            *(self._namesakes(state, state.listed_names[key]) for key in namesakes)
        )
        flags = self._session.contacts.resemblances(
            (NamedKey(key, state.listed_names[key]) for key in references), only=namesakes
        )
        changed = set()
        for key in namesakes:
            found = flags.get(key)
            if found != state.lookalikes.get(key):
                changed.add(key)
                if found is None:
                    del state.lookalikes[key]
                else:
                    state.lookalikes[key] = found
        return changed

    def _rebuild(self, state: RoomState, entries: list[Member], keys: set[bytes]) -> None:
        """Replace the entries of ``keys`` in ``entries`` and publish them as the snapshot."""
        for key in keys:
            entries[self._place(state, key)] = self.member(key, state.id)
        state.member_list = tuple(entries)

    def refresh_all(self) -> None:
        """Refresh every room's snapshot (trust or presence that shows everywhere)."""
        for state in self._rooms.values():
            self.refresh(state)

    def refresh_key(self, key: bytes) -> None:
        """Refresh the snapshots of the rooms ``key`` is in."""
        for state in self._rooms.values():
            if key in state.members:
                self.refresh(state)

    # Presence --------------------------------------------------------------------------

    def welcome(self) -> tuple[str, str | None] | None:
        """A new connection: forget others' presence (the relay lists it afresh); our own
        status, if we set one, is returned to be set again at the relay."""
        self.connected = True
        own = self._presence.get(self.me)
        self._presence = {} if own is None else {self.me: own}
        return own

    def presence(self, frame: Presence) -> tuple[Member | None, bool]:
        """Someone's presence: their member view (None if we share no room) and whether
        it changed (the relay sends each listed member's text again after every member
        list: the same again changes nothing, and nothing is shown anew)."""
        room_id = next((r for r, s in self._rooms.items() if frame.key in s.members), None)
        if room_id is None:
            return None, False  # not someone we share a room with: nothing to show or keep
        said = (frame.status, frame.text)
        if self._presence.get(frame.key) == said:
            return self.member(frame.key, room_id), False
        self._presence[frame.key] = said
        for state in self._rooms.values():
            if frame.key in state.members:
                self.refresh_member(state, frame.key)
        return self.member(frame.key, room_id), True

    def set_own_status(self, status: str, text: str | None) -> None:
        """The relay accepted our new status: show it on our own member entries."""
        self._presence[self.me] = (status, text)
        self.refresh_all()
