"""The address book: trust, verification, petnames and names, all per key.

An identity is a key. The first time a key is seen it is remembered (trust on first use
of the *key*); a key never seen before is a new person whatever name it carries, so no
name can move trust from one key to another. Verification is the user's statement
about one key and survives every rename. Names only label keys: a relay-announced name
is a claim that can be replaced, a signed name statement replaces it for good (until a
newer one), and a petname, the user's own name for a key, is shown before either.
Normative text: docs/crypto.md section 9.6.
"""

from collections.abc import Container, Iterable

import msgspec

from e2echat.crypto.errors import CryptoError, MalformedError, SignatureError
from e2echat.crypto.events import NameChanged, StatementRejected, SuccessorAccepted
from e2echat.crypto.lookalike import NamedKey, Resemblance, resemblances
from e2echat.crypto.primitives import KEY_SIZE
from e2echat.crypto.records import CONTACTS, ContactRecord, Records, Txn
from e2echat.crypto.statements import open_name, open_successor
from e2echat.protocol.errors import ProtocolError
from e2echat.protocol.names import validate_user_name


class Contacts:
    """Per-key trust state over the crypto core's records (space ``contact``)."""

    def __init__(self, records: Records) -> None:
        self._records = records

    def get(self, key: bytes) -> ContactRecord | None:
        """What we know of ``key``, or None if it was never seen."""
        return self._records.get(CONTACTS, key, ContactRecord)

    def display_name(self, key: bytes) -> str | None:
        """The petname of ``key`` if the user gave one, else the name it goes by."""
        contact = self.get(key)
        if contact is None:
            return None
        return contact.petname if contact.petname is not None else contact.name

    def see(self, txn: Txn, key: bytes, name: str) -> None:
        """The relay shows ``key`` under ``name``: remember the key on first sight.

        The relay's name is a claim: it labels a key that is neither verified nor
        named by a signed statement, and changes nothing else.
        """
        contact = txn.get(CONTACTS, key, ContactRecord)
        if contact is None:
            txn.put(CONTACTS, key, ContactRecord(name))
        elif contact.name != name and contact.name_issued is None and not contact.verified:
            txn.put(CONTACTS, key, msgspec.structs.replace(contact, name=name))

    def mark_verified(self, key: bytes) -> None:
        """The user compared safety numbers with ``key``: it is verified, by key."""
        self._update(key, verified=True)

    def unverify(self, key: bytes) -> None:
        """Withdraw the verification of ``key``."""
        self._update(key, verified=False)

    def set_petname(self, key: bytes, petname: str | None) -> None:
        """Give ``key`` the user's own name (None removes it); shown instead of its name."""
        if petname is not None:
            try:
                validate_user_name(petname)
            except ProtocolError as exc:
                raise CryptoError(f"not a valid petname: {exc.message}") from None
        self._update(key, petname=petname)

    def apply_name(self, key: bytes, statement: bytes) -> NameChanged | StatementRejected | None:
        """Check ``key``'s signed name statement and adopt it if newer (None: nothing new)."""
        try:
            signed = open_name(key, statement)
        except (MalformedError, SignatureError) as exc:
            return StatementRejected(key, str(exc))
        txn = self._records.begin()
        contact = txn.get(CONTACTS, key, ContactRecord)
        if contact is not None and (contact.name_issued or -1) >= signed.issued:
            return None  # an older statement (a replay) or the one we hold
        previous = None if contact is None else contact.name
        updated = (
            ContactRecord(signed.name, signed.issued)
            if contact is None
            else msgspec.structs.replace(contact, name=signed.name, name_issued=signed.issued)
        )
        txn.put(CONTACTS, key, updated)
        txn.commit()
        return None if previous == signed.name else NameChanged(key, previous, signed.name)

    def name_successor(self, me: bytes, name: str, new: bytes) -> None:
        """We (``me``, going by ``name``) name ``new`` our successor: remembered, so that
        we never name another, which every member would refuse (one successor per key).
        Naming the same one again is allowed; another raises ``CryptoError``."""
        txn = self._records.begin()
        own = txn.get(CONTACTS, me, ContactRecord)
        if own is not None and own.successor is not None and own.successor != new:
            raise CryptoError(
                "this key already named another successor, and members accept one only"
            )
        txn.put(
            CONTACTS,
            me,
            ContactRecord(name, successor=new)
            if own is None
            else msgspec.structs.replace(own, successor=new),
        )
        txn.commit()

    def accept_successor(self, statement: bytes) -> SuccessorAccepted | StatementRejected:
        """Check a successor statement and link the keys; carry verification over.

        Only a verified old key passes its verification (and petname) on; an old key
        names one successor only, so a stolen old key cannot move trust twice.
        """
        try:
            old, new, _issued = open_successor(statement)
        except (MalformedError, SignatureError) as exc:
            return StatementRejected(b"", str(exc))
        txn = self._records.begin()
        before = txn.get(CONTACTS, old, ContactRecord)
        after = txn.get(CONTACTS, new, ContactRecord)
        if before is not None and before.successor is not None and before.successor != new:
            return StatementRejected(old, "this key already named another successor")
        if before is None and after is None:
            return SuccessorAccepted(old, new, carried=False)  # strangers to us both
        carried = before is not None and before.verified
        petname = None if before is None or not carried else before.petname
        if after is None:
            assert before is not None
            after = ContactRecord(before.name)
        after = msgspec.structs.replace(
            after,
            predecessor=old,
            verified=after.verified or carried,
            petname=after.petname if after.petname is not None else petname,
        )
        txn.put(CONTACTS, new, after)
        if before is not None:
            txn.put(CONTACTS, old, msgspec.structs.replace(before, successor=new))
        txn.commit()
        return SuccessorAccepted(old, new, carried)

    def relied_on(self) -> dict[bytes, ContactRecord]:
        """The verified contacts and those with a petname, by key: the names a user relies
        on (kept up to date by every write, so a roster change reads no other contact)."""
        return self._records.matching(CONTACTS, ContactRecord, _relied_on)

    def resemblances(
        self, shown: Iterable[NamedKey], only: Container[bytes] | None = None
    ) -> dict[bytes, tuple[Resemblance, ...]]:
        """Which of ``shown`` (keys with the names they go by), or of those of them in
        ``only``, resemble another key.

        References are the shown keys themselves, every verified contact and every
        contact with a petname: the names a user relies on. A key with a petname is
        shown by it, so it is never flagged itself. Only names sharing a skeleton match,
        so a key's flags depend on the shown keys whose names share one of its skeletons
        alone (and on the contacts).
        """
        known = [(named, self.get(named.key)) for named in shown]
        references = [
            NamedKey(named.key, named.name, contact is not None and contact.verified)
            for named, contact in known
        ]
        references += [
            NamedKey(key, contact.name, contact.verified)
            for key, contact in self.relied_on().items()
        ]
        subjects = [
            named
            for named, contact in known
            if (only is None or named.key in only) and (contact is None or contact.petname is None)
        ]
        return resemblances(subjects, references)

    def _update(self, key: bytes, **changes: object) -> None:
        if len(key) != KEY_SIZE:
            raise CryptoError("a key is 32 bytes")
        txn = self._records.begin()
        contact = txn.get(CONTACTS, key, ContactRecord)
        if contact is None:
            raise CryptoError("that key was never seen: nothing to record")
        txn.put(CONTACTS, key, msgspec.structs.replace(contact, **changes))
        txn.commit()


def _relied_on(contact: ContactRecord) -> bool:
    return contact.verified or contact.petname is not None
