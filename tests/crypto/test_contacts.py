"""Trust by key: verification, petnames, signed names, successors and look-alikes."""

import pytest

from e2echat.crypto import (
    CryptoError,
    Identity,
    MemoryStore,
    NameChanged,
    NamedKey,
    Resemblance,
    StatementRejected,
    SuccessorAccepted,
    is_mixed_script,
    name_skeletons,
    open_name,
    open_successor,
    sign_name,
    sign_successor,
)
from e2echat.crypto.contacts import Contacts
from e2echat.crypto.errors import MalformedError, SignatureError
from e2echat.crypto.lookalike import resemblances
from e2echat.crypto.records import Records

from .harness import NOW, ROOM, Party, Relay

CYRILLIC_A = "\u0430"


@pytest.fixture
def book() -> Contacts:
    return Contacts(Records(MemoryStore()))


def seen(book: Contacts, key: bytes, name: str) -> None:
    txn = book._records.begin()
    book.see(txn, key, name)
    txn.commit()


def test_a_key_is_remembered_on_first_sight_and_verified_by_key(book: Contacts) -> None:
    alice = Identity.generate().public_key
    with pytest.raises(CryptoError, match="never seen"):
        book.mark_verified(alice)
    seen(book, alice, "alice")
    book.mark_verified(alice)
    contact = book.get(alice)
    assert contact is not None
    assert contact.verified
    book.unverify(alice)
    assert not book.get(alice).verified  # type: ignore[union-attr]


def test_relay_names_label_unverified_keys_only(book: Contacts) -> None:
    """A relay may relabel a stranger, but not the key the user verified."""
    key = Identity.generate().public_key
    seen(book, key, "bob")
    seen(book, key, "robert")
    assert book.display_name(key) == "robert"
    book.mark_verified(key)
    seen(book, key, "mallory")
    assert book.display_name(key) == "robert"
    assert book.get(key).verified  # type: ignore[union-attr]


def test_a_signed_rename_keeps_verification(book: Contacts) -> None:
    bob = Identity.generate()
    seen(book, bob.public_key, "bob")
    book.mark_verified(bob.public_key)
    changed = book.apply_name(bob.public_key, sign_name(bob, "robert", NOW))
    assert changed == NameChanged(bob.public_key, "bob", "robert")
    contact = book.get(bob.public_key)
    assert contact is not None
    assert contact.verified
    assert contact.name == "robert"
    # a replayed older statement, and the same one again, change nothing
    assert book.apply_name(bob.public_key, sign_name(bob, "bob", NOW - 1)) is None
    assert book.apply_name(bob.public_key, sign_name(bob, "robert", NOW)) is None
    seen(book, bob.public_key, "bobby")  # an unsigned claim cannot undo a signed name
    assert book.display_name(bob.public_key) == "robert"


def test_a_name_statement_of_another_key_is_rejected(book: Contacts) -> None:
    bob, mallory = Identity.generate(), Identity.generate()
    rejected = book.apply_name(bob.public_key, sign_name(mallory, "bob", NOW))
    assert isinstance(rejected, StatementRejected)
    assert book.get(bob.public_key) is None


def test_petnames_are_shown_instead_and_validated(book: Contacts) -> None:
    key = Identity.generate().public_key
    seen(book, key, "alice")
    book.set_petname(key, "Alice from work")
    assert book.display_name(key) == "Alice from work"
    with pytest.raises(CryptoError, match="petname"):
        book.set_petname(key, "bad\x1b[31m")
    book.set_petname(key, None)
    assert book.display_name(key) == "alice"


def test_a_successor_of_a_verified_key_is_verified(book: Contacts) -> None:
    old, new = Identity.generate(), Identity.generate()
    seen(book, old.public_key, "alice")
    book.mark_verified(old.public_key)
    book.set_petname(old.public_key, "Mum")
    accepted = book.accept_successor(sign_successor(old, new, NOW))
    assert accepted == SuccessorAccepted(old.public_key, new.public_key, carried=True)
    after = book.get(new.public_key)
    assert after is not None
    assert (after.verified, after.petname, after.predecessor) == (True, "Mum", old.public_key)
    assert book.get(old.public_key).successor == new.public_key  # type: ignore[union-attr]
    # the old key cannot name a second successor and move the trust again
    third = Identity.generate()
    rejected = book.accept_successor(sign_successor(old, third, NOW + 1))
    assert isinstance(rejected, StatementRejected)
    assert book.get(third.public_key) is None


def test_a_successor_of_an_unverified_key_stays_unverified(book: Contacts) -> None:
    old, new = Identity.generate(), Identity.generate()
    seen(book, old.public_key, "alice")
    accepted = book.accept_successor(sign_successor(old, new, NOW))
    assert accepted == SuccessorAccepted(old.public_key, new.public_key, carried=False)
    after = book.get(new.public_key)
    assert after is not None
    assert not after.verified
    assert after.predecessor == old.public_key


def test_a_forged_successor_statement_moves_nothing(book: Contacts) -> None:
    old, new, mallory = Identity.generate(), Identity.generate(), Identity.generate()
    seen(book, old.public_key, "alice")
    book.mark_verified(old.public_key)
    good = bytearray(sign_successor(old, new, NOW))
    forged = bytes(good[:1]) + old.public_key + mallory.public_key + bytes(good[65:])
    assert isinstance(book.accept_successor(forged), StatementRejected)
    # signed by the old key only: the claimed new key never consented
    unwilling = bytearray(sign_successor(old, mallory, NOW))
    unwilling[-64:] = bytes(64)
    assert isinstance(book.accept_successor(bytes(unwilling)), StatementRejected)
    assert book.get(mallory.public_key) is None


def test_statement_layouts_are_strict() -> None:
    bob = Identity.generate()
    statement = sign_name(bob, "bob", NOW)
    assert open_name(bob.public_key, statement) == (bob.public_key, "bob", NOW)
    with pytest.raises(SignatureError):
        open_name(bob.public_key, statement[:-1] + b"c")
    with pytest.raises(MalformedError):
        open_name(bob.public_key, b"\x02" + statement[1:])
    with pytest.raises(MalformedError):
        sign_name(bob, "bad\nname", NOW)
    with pytest.raises(MalformedError):
        open_successor(sign_successor(bob, Identity.generate(), NOW)[:-1])
    with pytest.raises(MalformedError):
        sign_successor(bob, bob, NOW)


@pytest.mark.parametrize(
    ("lookalike", "why"),
    [
        (f"{CYRILLIC_A}lice", "Cyrillic a"),
        ("\uff41\uff4c\uff49\uff43\uff45", "full-width letters"),
        ("a1ice", "digit one for l"),
        ("aIice", "capital I for l"),
        ("Alice", "case"),
        ("ALICE", "capitals, whose I is no l"),
        ("aLiCe", "mixed case"),
        ("\uff21\uff2c\uff29\uff23\uff25", "full-width capitals"),
        ("\U0001d400\U0001d40b\U0001d408\U0001d402\U0001d404", "mathematical bold capitals"),
        ("\U0001d51e\U0001d529\U0001d526\U0001d520\U0001d522", "mathematical fraktur"),
    ],
)
def test_confusable_names_share_a_skeleton(lookalike: str, why: str) -> None:
    assert set(name_skeletons(lookalike)) & set(name_skeletons("alice")), why


@pytest.mark.parametrize(
    ("name", "lookalike"), [("lan", "Ian"), ("lan", "IAN"), ("ian", "Ian"), ("all", "AIL")]
)
def test_a_capital_i_still_passes_for_an_l(name: str, lookalike: str) -> None:
    assert set(name_skeletons(lookalike)) & set(name_skeletons(name))


def test_distinct_names_have_distinct_skeletons() -> None:
    names = ["alice", "alicia", "bob", "rob", "carol", "\u0431\u043e\u0440\u0438\u0441"]
    names += ["al", "all", "ail", "ian", "lan"]  # a small i is no l, whatever its case
    skeletons = [set(name_skeletons(n)) for n in names]
    assert len(set().union(*skeletons)) == sum(len(s) for s in skeletons)


def test_mixed_scripts_are_detected() -> None:
    assert is_mixed_script(f"{CYRILLIC_A}lice")
    assert not is_mixed_script("alice")
    assert not is_mixed_script("\u0431\u043e\u0440\u0438\u0441")  # all Cyrillic
    assert not is_mixed_script("j\u00fcrgen")


def test_resemblances_name_the_verified_key_first() -> None:
    real, namesake, lookalike, bob = (bytes([n]) * 32 for n in range(4))
    shown = [
        NamedKey(real, "alice", True),
        NamedKey(namesake, "alice"),
        NamedKey(lookalike, f"{CYRILLIC_A}lice"),
        NamedKey(bob, "bob"),
    ]
    found = resemblances(shown, shown)
    assert bob not in found
    assert found[namesake] == (
        Resemblance(real, same_name=True, other_verified=True),
        Resemblance(lookalike, same_name=False, other_verified=False),
    )
    assert found[lookalike][0] == Resemblance(real, same_name=False, other_verified=True)
    assert [r.other for r in found[real]] == [namesake, lookalike]


FULL_WIDTH_ALICE = "\uff21\uff2c\uff29\uff23\uff25"


def test_names_differing_in_case_or_width_are_flagged() -> None:
    alice, upper, mixed, wide, bob = (bytes([n]) * 32 for n in range(5))
    shown = [NamedKey(alice, "alice"), NamedKey(upper, "ALICE"), NamedKey(mixed, "aLiCe")]
    shown += [NamedKey(wide, FULL_WIDTH_ALICE), NamedKey(bob, "bob")]
    found = resemblances(shown, shown)
    assert found[upper][0] == Resemblance(alice, same_name=True, other_verified=False)
    assert found[mixed][0] == Resemblance(alice, same_name=True, other_verified=False)
    assert found[wide][0] == Resemblance(alice, same_name=False, other_verified=False)
    assert [r.other for r in found[alice]] == sorted([upper, mixed, wide])
    assert bob not in found


def test_a_capital_i_looks_like_an_l_and_an_i_which_do_not_look_alike() -> None:
    capital, small_l, small_i = (bytes([n]) * 32 for n in range(3))
    shown = [NamedKey(capital, "Ian"), NamedKey(small_l, "lan"), NamedKey(small_i, "ian")]
    found = resemblances(shown, shown)
    assert found[capital] == (
        Resemblance(small_i, same_name=True, other_verified=False),
        Resemblance(small_l, same_name=False, other_verified=False),
    )
    assert found[small_l] == (Resemblance(capital, same_name=False, other_verified=False),)
    assert found[small_i] == (Resemblance(capital, same_name=True, other_verified=False),)


def test_a_key_known_by_two_names_is_one_resemblance() -> None:
    """A shown key that is also a contact under another name, both resembled."""
    ian, impostor = bytes(32), b"\x01" * 32
    references = [NamedKey(ian, "lan"), NamedKey(ian, "Ian", True), NamedKey(impostor, "IAN")]
    found = resemblances([NamedKey(impostor, "IAN")], references)
    assert found == {impostor: (Resemblance(ian, same_name=True, other_verified=True),)}


@pytest.mark.parametrize(
    ("contact", "stranger", "same_name"),
    [
        ("alice", "ALICE", True),
        ("alice", FULL_WIDTH_ALICE, False),
        ("ALICE", "alice", True),
        ("lan", "Ian", False),
        ("Ian", "lan", False),
    ],
)
def test_a_stranger_is_flagged_against_a_verified_contact_by_the_same_rule(
    book: Contacts, contact: str, stranger: str, same_name: bool
) -> None:
    known, other = bytes(32), b"\x01" * 32
    seen(book, known, contact)
    book.mark_verified(known)
    flags = book.resemblances([NamedKey(other, stranger)])
    assert flags == {other: (Resemblance(known, same_name, other_verified=True),)}


@pytest.mark.parametrize(("contact", "stranger"), [("alice", "bob"), ("al", "all"), ("lan", "ian")])
def test_a_stranger_of_another_name_is_not_flagged(
    book: Contacts, contact: str, stranger: str
) -> None:
    known, other = bytes(32), b"\x01" * 32
    seen(book, known, contact)
    book.mark_verified(known)
    assert book.resemblances([NamedKey(other, stranger)]) == {}


def test_a_room_flags_the_namesake_of_a_verified_contact_absent_from_it() -> None:
    """Carol calls herself alice in a room the real (verified) alice is not in."""
    bob, alice, carol = Party("bob"), Party("alice"), Party("carol")
    carol.name = "alice"
    relay = Relay(bob, alice)
    relay.join(bob)
    relay.join(alice)
    bob.session.contacts.mark_verified(alice.key)
    relay.leave(alice)
    relay.add(carol)
    relay.join(carol)
    contacts = bob.session.contacts
    flags = contacts.resemblances([NamedKey(carol.key, "alice")])
    assert flags == {carol.key: (Resemblance(alice.key, True, True),)}
    contacts.set_petname(alice.key, "Alice B.")
    # a petnamed contact's own name still must not be borrowed
    assert contacts.resemblances([NamedKey(carol.key, "alice")])[carol.key][0].other == alice.key
    assert contacts.resemblances([NamedKey(alice.key, "alice")]) == {}
    assert bob.session.validated_members(ROOM) == [carol.key]
