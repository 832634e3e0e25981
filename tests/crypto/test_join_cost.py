"""A join into a secret room costs each member the same store writes whatever the
room's size: the joiner's rows, not the room's roster, log roles or chain holders."""

import hashlib

from e2echat.crypto import AnnouncedMember, CryptoSession, Identity, MemoryStore, RoomSecret
from e2echat.crypto.roomlog import Kind, encode_entry, entry_hash

from .harness import NOW, ROOM


class MeteredStore(MemoryStore):
    """A ``MemoryStore`` that counts the rows and bytes written to it."""

    def __init__(self) -> None:
        super().__init__()
        self.rows = 0
        self.bytes = 0

    def apply(self, writes):  # type: ignore[no-untyped-def]
        self.rows += len(writes)
        self.bytes += sum(len(w.value or b"") for w in writes)
        super().apply(writes)


class Owner:
    """A secret room's owner that validates joins: the relay's ``member_joined``, then
    the joiner's tagged ``join`` entry (the owner shares its chain with it)."""

    def __init__(self) -> None:
        self.store = MeteredStore()
        self.identity = Identity(hashlib.sha256(b"owner").digest())
        self.session = CryptoSession(self.identity, self.store)
        self.secret = RoomSecret.generate()
        me = AnnouncedMember(self.identity.public_key, "owner", self.session.current_prekey(NOW))
        self.session.enter_room(ROOM, [me], NOW, secret=self.secret)
        self.log = [self.session.create_log(ROOM, NOW).entry]
        self.session.apply_log(ROOM, self.log, NOW)
        self.joined = 0

    def join(self) -> None:
        identity = Identity(hashlib.sha256(b"joiner %d" % self.joined).digest())
        prekey = CryptoSession(identity, MemoryStore()).current_prekey(NOW)
        name = f"j{self.joined:04d}"
        self.joined += 1
        self.session.member_joined(ROOM, AnnouncedMember(identity.public_key, name, prekey), NOW)
        entry = encode_entry(
            identity.sign,
            join_key=self.secret.join_key,
            kind=Kind.JOIN,
            room_id=ROOM,
            seq=len(self.log),
            prev=entry_hash(self.log[-1]),
            author=identity.public_key,
            created=NOW,
            subject=identity.public_key,
        )
        self.log.append(entry)
        outcome = self.session.apply_log(ROOM, [entry], NOW)
        assert len(outcome.directs) == 1  # validated: our chain goes to the joiner

    def cost_of_a_join(self) -> tuple[int, int]:
        rows, size = self.store.rows, self.store.bytes
        self.join()
        return self.store.rows - rows, self.store.bytes - size


def test_a_join_writes_as_much_into_a_room_of_40_as_into_a_room_of_10() -> None:
    owner = Owner()
    for _ in range(9):
        owner.join()
    small = owner.cost_of_a_join()
    for _ in range(30):
        owner.join()
    assert owner.cost_of_a_join() == small
    assert len(owner.session.validated_members(ROOM)) == 41
