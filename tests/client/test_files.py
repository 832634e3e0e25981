"""Encrypted files between library clients through a real relay."""

import asyncio
import dataclasses
import gc
import os
import threading
from pathlib import Path

import pytest
from e2echat_server import Relay
from e2echat_server.blobs import BlobStore

import e2echat
from e2echat.client import fileops
from e2echat.crypto.files import CHUNK_SIZE, blob_size
from tests.client.conftest import EVENT_TIMEOUT, MakeClient, collect, validated


async def _pair(make_client: MakeClient) -> tuple[e2echat.Client, e2echat.Client, e2echat.Room]:
    alice, bob = await make_client("alice"), await make_client("bob")
    room = await alice.create("files")
    events = alice.events()
    await bob.join("files")
    await collect(events, 1, lambda e: validated(e, "bob"))
    return alice, bob, room


async def _delivered(
    make_client: MakeClient, source: Path, data: bytes
) -> tuple[e2echat.Room, e2echat.Message[e2echat.Room]]:
    """Alice sends ``data`` as ``source`` in a new room; the room and what bob received."""
    _alice, bob, room = await _pair(make_client)
    await asyncio.to_thread(source.write_bytes, data)
    inbox = bob.messages()
    await room.send_file(source)
    got = (await collect(inbox, 1))[0]
    assert got.file is not None
    return room, got


def _relay_files(relay: Relay) -> list[str]:
    return sorted(path.name for path in relay.blobs.blobs.root.iterdir())


async def test_a_file_goes_from_one_member_to_another(
    make_client: MakeClient, relay: Relay, tmp_path: Path
) -> None:
    _alice, bob, room = await _pair(make_client)
    source = tmp_path / "report.pdf"
    source.write_bytes(os.urandom(3 * CHUNK_SIZE + 123))
    inbox = bob.messages()
    seen: list[e2echat.TransferProgress] = []
    sent = await room.send_file(source, caption="the report", progress=seen.append)
    assert sent.file is not None
    assert sent.text == "the report"
    assert seen[-1].done == seen[-1].total == blob_size(source.stat().st_size)
    assert all(p.direction == "upload" for p in seen)
    assert [p.done for p in seen] == sorted(p.done for p in seen)
    assert seen[-1].eta == 0.0
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
    fetching = got.download(tmp_path / "bob")
    iterated = [p async for p in fetching]
    saved = await fetching
    assert iterated[-1].done == iterated[-1].total
    assert iterated[-1].direction == "download"
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
    _room, got = await _delivered(make_client, tmp_path / "data.bin", os.urandom(2 * CHUNK_SIZE))
    assert got.file is not None
    blob = relay.blobs.blobs.root / f"{got.file.blob.hex()}.blob"
    data = bytearray(blob.read_bytes())
    data[CHUNK_SIZE + 100] ^= 1
    blob.write_bytes(bytes(data))
    target = tmp_path / "bob"
    with pytest.raises(e2echat.TransferError, match="does not check"):
        await got.download(target)
    assert list(target.iterdir()) == []


async def test_size_and_quota_refusals_are_transfer_errors(
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
    # Within the size but over what one user may hold: refused before any byte moves.
    relay.blobs.blobs.limits = type(relay.blobs.blobs.limits)(max_size=10_000, quota=15_000)
    source.write_bytes(b"x" * 8000)
    await room.send_file(source)
    with pytest.raises(e2echat.TransferError) as over:
        await room.send_file(source)
    assert over.value.code == "quota_exceeded"
    assert len([m for m in await room.history() if m.file]) == 1
    assert len(_relay_files(relay)) == 2


async def test_a_failed_transfer_left_unawaited_warns_nothing_and_keeps_its_error(
    make_client: MakeClient, relay: Relay, tmp_path: Path
) -> None:
    """An app that starts an upload and never awaits it got asyncio's "Task exception was
    never retrieved" once the refused transfer was collected; the error stays readable
    with ``exception()`` and is raised by ``await``."""
    _alice, _bob, room = await _pair(make_client)
    relay.blobs.blobs.limits = type(relay.blobs.blobs.limits)(max_size=1000, quota=1000)
    source = tmp_path / "big.bin"
    source.write_bytes(b"x" * 2000)
    loop = asyncio.get_running_loop()
    reported: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        ignored = room.send_file(source)
        await asyncio.wait([ignored._task], timeout=EVENT_TIMEOUT)  # type: ignore[attr-defined]
        assert ignored.done()
        del ignored
        gc.collect()
        kept = room.send_file(source)
        await asyncio.wait([kept._task], timeout=EVENT_TIMEOUT)  # type: ignore[attr-defined]
        error = kept.exception()
        assert isinstance(error, e2echat.TransferError)
        assert error.code == "too_large"
        with pytest.raises(e2echat.TransferError) as awaited:
            await kept
        assert awaited.value is error
    finally:
        loop.set_exception_handler(None)
    assert [context.get("message") for context in reported] == []
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


async def test_a_cancelled_upload_sends_nothing_and_leaves_nothing_on_the_relay(
    make_client: MakeClient, relay: Relay, tmp_path: Path
) -> None:
    _alice, _bob, room = await _pair(make_client)
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(64 * CHUNK_SIZE))  # 16 pieces of 256 KiB

    def stop_halfway(progress: e2echat.TransferProgress) -> None:
        if progress.done > 0:
            sending.cancel()

    sending = room.send_file(source, progress=stop_halfway)
    with pytest.raises(asyncio.CancelledError):
        await sending
    assert sending.progress is not None
    assert 0 < sending.progress.done < sending.progress.total
    assert [m for m in await room.history() if m.file] == []
    assert _relay_files(relay) == []


async def test_a_cancelled_download_leaves_no_file(
    make_client: MakeClient, relay: Relay, tmp_path: Path
) -> None:
    source = tmp_path / "big.bin"
    _room, got = await _delivered(make_client, source, os.urandom(64 * CHUNK_SIZE))
    target = tmp_path / "bob"
    fetching = got.download(target)
    async for progress in fetching:
        if progress.done > 0:
            fetching.cancel()
    with pytest.raises(asyncio.CancelledError):
        await fetching
    assert list(target.iterdir()) == []
    # The blob is untouched: a new download gets the whole file.
    assert (await got.download(target)).read_bytes() == source.read_bytes()


async def test_deleting_a_file_message_deletes_its_blob(
    make_client: MakeClient, relay: Relay, tmp_path: Path
) -> None:
    _alice, bob, room = await _pair(make_client)
    source = tmp_path / "photo.png"
    source.write_bytes(os.urandom(1000))
    inbox = bob.messages()
    sent = await room.send_file(source)
    got = (await collect(inbox, 1))[0]
    assert len(_relay_files(relay)) == 2  # the blob and its metadata
    events = bob.events()
    await sent.delete()
    await collect(events, 1, lambda e: isinstance(e, e2echat.MessageDeleted))
    await room.members()  # a barrier: the relay answered everything alice sent before
    assert _relay_files(relay) == []
    with pytest.raises(e2echat.TransferError) as gone:
        await got.download(tmp_path / "bob")
    assert gone.value.code == "no_such_blob"
    assert not (tmp_path / "bob").exists() or list((tmp_path / "bob").iterdir()) == []


async def test_a_truncated_blob_or_a_wrong_hash_is_refused_and_leaves_nothing(
    make_client: MakeClient, relay: Relay, tmp_path: Path
) -> None:
    _room, got = await _delivered(make_client, tmp_path / "data.bin", os.urandom(3 * CHUNK_SIZE))
    assert got.file is not None
    target = tmp_path / "bob"
    wrong = dataclasses.replace(got, file=dataclasses.replace(got.file, hash=bytes(32)))
    with pytest.raises(e2echat.TransferError, match="does not check"):
        await wrong.download(target)
    assert list(target.iterdir()) == []
    blob = relay.blobs.blobs.root / f"{got.file.blob.hex()}.blob"
    blob.write_bytes(blob.read_bytes()[: 2 * CHUNK_SIZE])
    with pytest.raises(e2echat.TransferError):
        await got.download(target)
    assert list(target.iterdir()) == []


async def test_another_rooms_blob_cannot_be_fetched_by_its_id(
    make_client: MakeClient, tmp_path: Path
) -> None:
    _room, got = await _delivered(make_client, tmp_path / "secret.txt", b"for this room only")
    carol = await make_client("carol")
    elsewhere = await carol.create("elsewhere")
    forged = dataclasses.replace(got, room=elsewhere)
    with pytest.raises(e2echat.TransferError) as refused:
        await forged.download(tmp_path / "carol")
    assert refused.value.code == "no_such_blob"


async def test_a_file_that_shrinks_while_it_is_sent_is_an_error_and_sends_nothing(
    make_client: MakeClient, relay: Relay, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _alice, _bob, room = await _pair(make_client)
    source = tmp_path / "log.txt"
    source.write_bytes(os.urandom(3 * CHUNK_SIZE))
    monkeypatch.setattr(fileops, "READ_SIZE", CHUNK_SIZE)
    real = fileops.FileEncryptor

    class Truncating(real):  # type: ignore[misc,valid-type]
        def update(self, data: bytes) -> bytes:
            os.truncate(source, CHUNK_SIZE)  # someone cuts the file after the first read
            return super().update(data)

    monkeypatch.setattr(fileops, "FileEncryptor", Truncating)
    with pytest.raises(e2echat.TransferError, match="changed while"):
        await room.send_file(source)
    assert [m for m in await room.history() if m.file] == []
    assert _relay_files(relay) == []


def test_sealing_stops_when_asked(tmp_path: Path) -> None:
    source = tmp_path / "any.bin"
    source.write_bytes(b"x" * 10)
    stop = threading.Event()
    stop.set()
    with pytest.raises(fileops.SealStopped):
        fileops.seal_file(source, stop)


async def test_a_send_cancelled_while_encrypting_stops_the_thread_and_sends_nothing(
    make_client: MakeClient, relay: Relay, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _alice, _bob, room = await _pair(make_client)
    source = tmp_path / "slow.bin"
    source.write_bytes(os.urandom(64 * CHUNK_SIZE))
    monkeypatch.setattr(fileops, "READ_SIZE", CHUNK_SIZE)
    started = threading.Event()
    stops: list[threading.Event] = []
    pieces: list[int] = []
    real, real_seal = fileops.FileEncryptor, fileops.seal_file

    def seal_file(path: Path, stop: threading.Event | None = None) -> fileops.SealedFile:
        assert stop is not None
        stops.append(stop)
        return real_seal(path, stop)

    class Held(real):  # type: ignore[misc,valid-type]
        def update(self, data: bytes) -> bytes:
            pieces.append(len(data))
            started.set()
            stops[0].wait(10)  # the first piece waits until the send is cancelled
            return super().update(data)

    monkeypatch.setattr(fileops, "seal_file", seal_file)
    monkeypatch.setattr(fileops, "FileEncryptor", Held)
    sending = room.send_file(source)
    await asyncio.to_thread(started.wait, 10)
    sending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sending
    assert len(pieces) == 1  # the thread saw the flag at the next piece and stopped
    assert [m for m in await room.history() if m.file] == []
    assert _relay_files(relay) == []


async def test_a_cancel_does_not_wait_for_a_stalled_relay(
    make_client: MakeClient, relay: Relay, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _alice, _bob, room = await _pair(make_client)
    release = threading.Event()  # the relay stores one piece, then stops reading
    store_piece = BlobStore.append

    def stalled(self: BlobStore, blob: bytes, data: bytes, meta: object = None) -> int:
        length = store_piece(self, blob, data, meta)  # type: ignore[arg-type]
        release.wait(30)
        return length

    monkeypatch.setattr(BlobStore, "append", stalled)
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(128 * CHUNK_SIZE))  # 8 MiB: more than the buffers hold
    reached: asyncio.Event = asyncio.Event()
    sending = room.send_file(
        source, progress=lambda p: reached.set() if p.done > 4 * 2**20 else None
    )
    try:
        async with asyncio.timeout(10):
            await reached.wait()  # the client has filled the buffers of the stalled relay
        sending.cancel()
        with pytest.raises(asyncio.CancelledError):
            async with asyncio.timeout(2):  # not the seconds of a closing handshake
                await sending
        assert _relay_files(relay) == []
    finally:
        release.set()
