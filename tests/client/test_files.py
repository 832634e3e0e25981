"""Encrypted files between library clients through a real relay."""

import os
from pathlib import Path

import pytest
from e2echat_server import Relay

import e2echat
from e2echat.crypto.files import CHUNK_SIZE
from tests.client.conftest import MakeClient, collect, validated


async def _pair(make_client: MakeClient) -> tuple[e2echat.Client, e2echat.Client, e2echat.Room]:
    alice, bob = await make_client("alice"), await make_client("bob")
    room = await alice.create("files")
    events = alice.events()
    await bob.join("files")
    await collect(events, 1, lambda e: validated(e, "bob"))
    return alice, bob, room


async def test_a_file_goes_from_one_member_to_another(
    make_client: MakeClient, relay: Relay, tmp_path: Path
) -> None:
    _alice, bob, room = await _pair(make_client)
    source = tmp_path / "report.pdf"
    source.write_bytes(os.urandom(3 * CHUNK_SIZE + 123))
    inbox = bob.messages()
    seen: list[tuple[int, int]] = []
    sent = await room.send_file(
        source, caption="the report", progress=lambda done, total: seen.append((done, total))
    )
    assert sent.file is not None
    assert sent.text == "the report"
    assert seen[-1][0] == seen[-1][1]
    got = (await collect(inbox, 1))[0]
    assert got.file is not None
    assert (got.file.name, got.file.size, got.file.media_type) == (
        "report.pdf",
        source.stat().st_size,
        "application/pdf",
    )
    assert got.text == "the report"
    assert "report" not in repr(got)
    assert got.file.key.hex() not in repr(got)
    saved = await got.download(tmp_path / "bob")
    assert saved == tmp_path / "bob" / "report.pdf"
    assert saved.read_bytes() == source.read_bytes()
    assert saved.stat().st_mode & 0o077 == 0
    # Never over an existing file; and the history keeps the file after a restart.
    again = await got.download(tmp_path / "bob")
    assert again.name == "report (1).pdf"
    assert again.read_bytes() == source.read_bytes()
    (stored,) = [m for m in await bob.get_room("files").history() if m.file]  # type: ignore[union-attr]
    assert stored.file == got.file
    # Nothing the relay keeps holds the file's name or its bytes.
    blobs = relay.blobs.blobs.root
    for path in blobs.iterdir():
        data = path.read_bytes()
        assert b"report" not in data
        assert source.read_bytes()[:64] not in data


async def test_an_empty_file_and_a_hostile_name(make_client: MakeClient, tmp_path: Path) -> None:
    _alice, bob, room = await _pair(make_client)
    hostile = tmp_path / "..\x1b[31mevil"
    hostile.write_bytes(b"")
    inbox = bob.messages()
    await room.send_file(hostile)
    got = (await collect(inbox, 1))[0]
    assert got.file is not None
    assert "\x1b" not in got.file.name
    saved = await got.download(tmp_path / "bob")
    assert saved.parent == tmp_path / "bob"
    assert "\x1b" not in saved.name
    assert not saved.name.startswith(".")
    assert saved.read_bytes() == b""


async def test_a_file_that_cannot_be_read_sends_nothing(
    make_client: MakeClient, tmp_path: Path
) -> None:
    _alice, _bob, room = await _pair(make_client)
    with pytest.raises(e2echat.TransferError, match="Cannot read"):
        await room.send_file(tmp_path / "missing.txt")
    with pytest.raises(e2echat.TransferError, match="not a regular file"):
        await room.send_file(tmp_path)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(e2echat.TransferError, match="not a regular file"):
        await room.send_file(fifo)
    assert [m for m in await room.history() if m.file] == []


async def test_a_tampered_blob_is_refused_and_leaves_nothing(
    make_client: MakeClient, relay: Relay, tmp_path: Path
) -> None:
    _alice, bob, room = await _pair(make_client)
    source = tmp_path / "data.bin"
    source.write_bytes(os.urandom(2 * CHUNK_SIZE))
    inbox = bob.messages()
    await room.send_file(source)
    got = (await collect(inbox, 1))[0]
    assert got.file is not None
    blob = relay.blobs.blobs.root / f"{got.file.blob.hex()}.blob"
    data = bytearray(blob.read_bytes())
    data[CHUNK_SIZE + 100] ^= 1
    blob.write_bytes(bytes(data))
    target = tmp_path / "bob"
    with pytest.raises(e2echat.TransferError, match="does not check"):
        await got.download(target)
    assert list(target.iterdir()) == []


async def test_quota_and_size_refusals_are_transfer_errors(
    make_client: MakeClient, relay: Relay, tmp_path: Path
) -> None:
    _alice, _bob, room = await _pair(make_client)
    relay.blobs.blobs.limits = type(relay.blobs.blobs.limits)(max_size=1000, quota=1000)
    source = tmp_path / "big.bin"
    source.write_bytes(b"x" * 2000)
    with pytest.raises(e2echat.TransferError) as refused:
        await room.send_file(source)
    assert refused.value.code == "too_large"
    assert [m for m in await room.history() if m.file] == []


async def test_a_non_member_cannot_fetch_a_rooms_file(
    make_client: MakeClient, tmp_path: Path
) -> None:
    _alice, bob, room = await _pair(make_client)
    source = tmp_path / "secret.txt"
    source.write_bytes(b"for members only")
    inbox = bob.messages()
    await room.send_file(source)
    got = (await collect(inbox, 1))[0]
    await bob.get_room("files").leave()  # type: ignore[union-attr]
    with pytest.raises(e2echat.E2EChatError):
        await got.download(tmp_path / "bob")
