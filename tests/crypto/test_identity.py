"""Identity keys: generation, encrypted and plain files, and every way loading can fail."""

import os
import pickle
import stat
from pathlib import Path

import pytest

from e2echat.crypto import (
    MODERATE,
    Identity,
    KdfLimits,
    KeyFileError,
    PassphraseError,
    UnencryptedKeyWarning,
    read_public_key,
)
from e2echat.crypto.identity import ENCRYPTED_SIZE, PLAIN_SIZE
from e2echat.crypto.primitives import verify

CHEAP = KdfLimits(opslimit=1, memlimit=8192)


@pytest.fixture
def identity() -> Identity:
    return Identity(bytes(range(32)))


def test_generate_gives_distinct_working_keys() -> None:
    first, second = Identity.generate(), Identity.generate()
    assert first.public_key != second.public_key
    verify(first.public_key, b"hello", first.sign(b"hello"))


def test_encrypted_round_trip_with_cheap_limits(identity: Identity, tmp_path: Path) -> None:
    path = tmp_path / "id.key"
    identity.save(path, "correct horse", limits=CHEAP)
    assert len(path.read_bytes()) == ENCRYPTED_SIZE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = Identity.load(path, "correct horse")
    assert loaded.public_key == identity.public_key
    assert read_public_key(path) == identity.public_key


def test_real_moderate_limits_round_trip(identity: Identity, tmp_path: Path) -> None:
    path = tmp_path / "id.key"
    identity.save(path, "pass phrase", limits=MODERATE)
    assert Identity.load(path, "pass phrase").public_key == identity.public_key


def test_wrong_passphrase_is_clear_and_leaves_file(identity: Identity, tmp_path: Path) -> None:
    path = tmp_path / "id.key"
    identity.save(path, "right", limits=CHEAP)
    before = path.read_bytes()
    with pytest.raises(PassphraseError, match="wrong passphrase"):
        Identity.load(path, "wrong")
    with pytest.raises(PassphraseError, match="passphrase is needed"):
        Identity.load(path)
    assert path.read_bytes() == before


@pytest.mark.parametrize("position", [0, 17, 18, 25, 60, 70, ENCRYPTED_SIZE - 1])
def test_any_corruption_is_detected(identity: Identity, tmp_path: Path, position: int) -> None:
    path = tmp_path / "id.key"
    identity.save(path, "pw", limits=CHEAP)
    data = bytearray(path.read_bytes())
    data[position] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises((KeyFileError, PassphraseError)):
        Identity.load(path, "pw")
    assert path.read_bytes() == bytes(data)


def test_truncated_missing_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot read"):
        Identity.load(tmp_path / "absent")
    (tmp_path / "short").write_bytes(b"e2e")
    with pytest.raises(KeyFileError, match="truncated"):
        Identity.load(tmp_path / "short")
    (tmp_path / "other").write_bytes(b"x" * 100)
    with pytest.raises(KeyFileError, match="not an e2echat identity file"):
        Identity.load(tmp_path / "other")


def test_unencrypted_only_by_choice_with_warning(identity: Identity, tmp_path: Path) -> None:
    path = tmp_path / "bot.key"
    with pytest.warns(UnencryptedKeyWarning, match="WITHOUT encryption"):
        identity.save_unencrypted(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(path.read_bytes()) == PLAIN_SIZE
    assert Identity.load(path).public_key == identity.public_key
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x80
    path.write_bytes(bytes(data))
    with pytest.raises(KeyFileError, match="corrupt"):
        Identity.load(path)


def test_save_refuses_empty_passphrase_and_bad_limits(identity: Identity, tmp_path: Path) -> None:
    with pytest.raises(PassphraseError):
        identity.save(tmp_path / "a", "")
    with pytest.raises(KeyFileError):
        identity.save(tmp_path / "b", "pw", limits=KdfLimits(0, 1))
    assert list(tmp_path.iterdir()) == []


def test_secret_never_in_repr_or_pickle(identity: Identity) -> None:
    seed_hex = bytes(range(32)).hex()
    assert seed_hex not in repr(identity)
    assert "redacted" in repr(identity)
    with pytest.raises(TypeError):
        pickle.dumps(identity)


def test_save_makes_the_rename_durable(
    identity: Identity, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the rename, the directory is fsynced too: a crash cannot lose the new file."""
    synced: list[bool] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    identity.save(tmp_path / "id.key", "pass", limits=CHEAP)
    assert synced == [False, True]
