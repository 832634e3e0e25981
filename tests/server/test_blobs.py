"""The relay's blob store on disk: reserve, append, complete, resume, quotas, restarts."""

import os
import time
from pathlib import Path

import pytest
from e2echat_server.blobs import BlobLimits, BlobStore

from e2echat.protocol import ProtocolError

ROOM, OTHER_ROOM = b"r" * 16, b"s" * 16
ALICE, BOB = b"a" * 32, b"b" * 32
LIMITS = BlobLimits(max_size=1000, quota=1500)


def blob_id(n: int) -> bytes:
    return bytes([n]) * 16


def store(root: Path) -> BlobStore:
    return BlobStore(root / "blobs", LIMITS)


def test_upload_in_pieces_then_read_from_any_offset(tmp_path: Path) -> None:
    blobs = store(tmp_path)
    blobs.begin(blob_id(1), ROOM, ALICE, 10, now=5)
    assert blobs.append(blob_id(1), b"01234") == 5
    assert blobs.offset(blob_id(1)) == 5
    with pytest.raises(ProtocolError) as short:
        blobs.complete(blob_id(1))
    assert short.value.code == "bad_frame"
    blobs.append(blob_id(1), b"56789")
    blobs.complete(blob_id(1))
    assert b"".join(blobs.read(blob_id(1), 0, 3)) == b"0123456789"
    assert b"".join(blobs.read(blob_id(1), 7, 3)) == b"789"
    meta = blobs.meta(blob_id(1))
    assert meta is not None
    assert (meta.room, meta.owner, meta.size, meta.complete) == (ROOM, ALICE, 10, True)


def test_an_incomplete_blob_cannot_be_read(tmp_path: Path) -> None:
    blobs = store(tmp_path)
    blobs.begin(blob_id(1), ROOM, ALICE, 10, now=5)
    with pytest.raises(ProtocolError) as missing:
        list(blobs.read(blob_id(1), 0, 3))
    assert missing.value.code == "no_such_blob"


def test_bytes_past_the_declared_size_are_refused_and_not_written(tmp_path: Path) -> None:
    blobs = store(tmp_path)
    blobs.begin(blob_id(1), ROOM, ALICE, 4, now=5)
    with pytest.raises(ProtocolError) as long:
        blobs.append(blob_id(1), b"12345")
    assert long.value.code == "too_large"
    assert blobs.offset(blob_id(1)) == 0


def test_a_piece_in_flight_does_not_bring_back_a_deleted_upload(tmp_path: Path) -> None:
    blobs = store(tmp_path)
    blobs.begin(blob_id(1), ROOM, ALICE, 10, now=5)
    meta = blobs.upload(blob_id(1))  # what the endpoint holds for the whole transfer
    blobs.append(blob_id(1), b"0123", meta)
    assert blobs.delete(blob_id(1))
    with pytest.raises(ProtocolError) as gone:
        blobs.append(blob_id(1), b"4567", meta)
    assert gone.value.code == "no_such_blob"
    assert list(blobs.root.iterdir()) == []


def test_size_and_quota_limits(tmp_path: Path) -> None:
    blobs = store(tmp_path)
    with pytest.raises(ProtocolError) as big:
        blobs.begin(blob_id(1), ROOM, ALICE, 1001, now=5)
    assert big.value.code == "too_large"
    blobs.begin(blob_id(1), ROOM, ALICE, 1000, now=5)  # in progress counts at full size
    with pytest.raises(ProtocolError) as quota:
        blobs.begin(blob_id(2), ROOM, ALICE, 501, now=5)
    assert quota.value.code == "quota_exceeded"
    assert blobs.meta(blob_id(2)) is None
    blobs.begin(blob_id(3), ROOM, BOB, 1000, now=5)  # quotas are per uploader
    assert blobs.used(ALICE) == blobs.used(BOB) == 1000
    blobs.delete(blob_id(1))
    blobs.begin(blob_id(2), ROOM, ALICE, 501, now=5)


def test_a_restart_keeps_complete_and_partial_uploads_and_drops_orphans(tmp_path: Path) -> None:
    blobs = store(tmp_path)
    blobs.begin(blob_id(1), ROOM, ALICE, 3, now=5)
    blobs.append(blob_id(1), b"abc")
    blobs.complete(blob_id(1))
    blobs.begin(blob_id(2), ROOM, ALICE, 3, now=5)
    blobs.append(blob_id(2), b"a")
    orphan = blobs.root / f"{blob_id(9).hex()}.part"
    orphan.write_bytes(b"orphan")
    fresh = blobs.root / f"{blob_id(7).hex()}.part"  # another node may be mid-begin
    fresh.write_bytes(b"")
    broken = blobs.root / f"{blob_id(8).hex()}.meta"
    broken.write_bytes(b"not json")
    for old in (orphan, broken):
        os.utime(old, (time.time() - 7200, time.time() - 7200))
    again = store(tmp_path)
    assert b"".join(again.read(blob_id(1), 0, 10)) == b"abc"
    assert again.offset(blob_id(2)) == 1
    assert again.meta(blob_id(9)) is None
    assert not (again.root / f"{blob_id(9).hex()}.part").exists()
    assert not broken.exists() or again.meta(blob_id(8)) is None
    assert fresh.exists()


def test_two_stores_sharing_a_folder_see_each_others_blobs(tmp_path: Path) -> None:
    one, two = store(tmp_path), store(tmp_path)
    one.begin(blob_id(1), ROOM, ALICE, 600, now=5)
    one.append(blob_id(1), b"h" * 600)
    one.complete(blob_id(1))
    assert b"".join(two.read(blob_id(1), 0, 1000)) == b"h" * 600
    assert two.used(ALICE) == 600
    with pytest.raises(ProtocolError) as quota:
        two.begin(blob_id(2), ROOM, ALICE, 901, now=5)
    assert quota.value.code == "quota_exceeded"
    two.delete(blob_id(1))
    assert one.meta(blob_id(1)) is None
    assert one.used(ALICE) == 0


def test_delete_by_room_and_by_age(tmp_path: Path) -> None:
    blobs = store(tmp_path)
    blobs.begin(blob_id(1), ROOM, ALICE, 1, now=100)
    blobs.begin(blob_id(2), OTHER_ROOM, ALICE, 1, now=100)
    blobs.begin(blob_id(3), OTHER_ROOM, ALICE, 1, now=300)
    assert blobs.delete_where(lambda meta: meta.room == ROOM) == 1
    assert blobs.delete_where(lambda meta: meta.created < 200) == 1
    assert [b for b in (1, 2, 3) if blobs.meta(blob_id(b))] == [3]
    assert sorted(p.name for p in blobs.root.iterdir()) == [
        f"{blob_id(3).hex()}.meta",
        f"{blob_id(3).hex()}.part",
    ]
    assert not blobs.delete(blob_id(1))


def test_files_are_private(tmp_path: Path) -> None:
    blobs = store(tmp_path)
    blobs.begin(blob_id(1), ROOM, ALICE, 1, now=1)
    assert blobs.root.stat().st_mode & 0o777 == 0o700
    assert (blobs.root / f"{blob_id(1).hex()}.part").stat().st_mode & 0o077 == 0
