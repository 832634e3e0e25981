"""Files through a real relay: tickets on the chat connection, bytes on /blob."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from e2echat_server import Relay, RelayConfig
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from e2echat.crypto.files import blob_size, decrypt_file, encrypt_file
from e2echat.protocol import (
    SUBPROTOCOL,
    BlobDelete,
    BlobDownload,
    BlobTicket,
    BlobUpload,
    CreateRoom,
    Error,
    ErrorCode,
    JoinRoom,
    Ok,
    OpenAccess,
    Resume,
    Serving,
    StartDownload,
    StartUpload,
    Stored,
    decode_blob_relay_frame,
    encode_blob_frame,
)
from tests.server.wire import TIMEOUT, Identity, WireClient, login

KEY = bytes(range(32))
PLAIN = bytes(i % 251 for i in range(200_000))


async def _blob_conn(relay: Relay) -> ClientConnection:
    return await connect(
        relay.url.rstrip("/") + "/blob",
        subprotocols=[Subprotocol(SUBPROTOCOL)],
        max_size=None,
        compression=None,
    )


async def _control(conn: ClientConnection) -> object:
    return decode_blob_relay_frame(await asyncio.wait_for(conn.recv(), TIMEOUT))


async def _upload(relay: Relay, token: bytes, data: bytes, piece: int = 65_536) -> object:
    async with await _blob_conn(relay) as conn:
        await conn.send(encode_blob_frame(StartUpload(token=token)), text=True)
        resume = await _control(conn)
        assert isinstance(resume, Resume)
        for start in range(resume.offset, len(data), piece):
            await conn.send(data[start : start + piece])
        return await _control(conn)


async def _download(relay: Relay, token: bytes, offset: int = 0) -> bytes:
    async with await _blob_conn(relay) as conn:
        await conn.send(encode_blob_frame(StartDownload(token=token, offset=offset)), text=True)
        serving = await _control(conn)
        assert isinstance(serving, Serving)
        received = bytearray()
        while len(received) < serving.size - offset:
            piece = await asyncio.wait_for(conn.recv(), TIMEOUT)
            assert isinstance(piece, bytes)
            received += piece
        await asyncio.wait_for(conn.wait_closed(), TIMEOUT)
        assert conn.close_code == 1000
        return bytes(received)


async def _refused(relay: Relay, opening: bytes) -> Error:
    async with await _blob_conn(relay) as conn:
        await conn.send(opening, text=True)
        error = await _control(conn)
        await asyncio.wait_for(conn.wait_closed(), TIMEOUT)
        assert conn.close_code == 1008
    assert isinstance(error, Error)
    return error


async def _room(owner: WireClient, name: str, *joiners: WireClient) -> bytes:
    from e2echat.protocol import RoomReply

    room = (await owner.request(CreateRoom(name=name, access=OpenAccess()), RoomReply)).room.id
    for joiner in joiners:
        await joiner.request(JoinRoom(name=name), RoomReply)
    return room


@pytest.fixture
async def small_relay(tmp_path: Path) -> AsyncIterator[Relay]:
    config = RelayConfig(port=0, data_dir=tmp_path, blob_max_size=300_000, blob_quota=500_000)
    async with Relay(config) as running:
        yield running


async def test_a_member_downloads_what_another_uploaded(
    relay: Relay, connect: Callable[[str], Awaitable[WireClient]]
) -> None:
    alice, bob = await connect("alice"), await connect("bob")
    room = await _room(alice, "files", bob)
    blob, digest = encrypt_file(KEY, PLAIN)
    ticket = await alice.request(BlobUpload(id="u", room=room, size=len(blob)), BlobTicket)
    assert (ticket.size, ticket.offset) == (len(blob), 0)
    assert await _upload(relay, ticket.token, blob) == Stored(blob=ticket.blob)
    fetch = await bob.request(BlobDownload(id="d", room=room, blob=ticket.blob), BlobTicket)
    received = await _download(relay, fetch.token)
    assert decrypt_file(KEY, len(PLAIN), digest, received) == PLAIN
    again = await bob.request(BlobDownload(room=room, blob=ticket.blob), BlobTicket)
    assert await _download(relay, again.token, offset=100) == blob[100:]


async def test_only_members_of_the_blobs_room_get_it(
    relay: Relay, connect: Callable[[str], Awaitable[WireClient]]
) -> None:
    alice, mallory = await connect("alice"), await connect("mallory")
    room = await _room(alice, "files")
    other = await _room(mallory, "elsewhere")
    ticket = await alice.request(BlobUpload(room=room, size=10), BlobTicket)
    assert isinstance(await _upload(relay, ticket.token, b"x" * 10), Stored)
    refused = await mallory.error(BlobDownload(room=room, blob=ticket.blob))
    assert refused.code == ErrorCode.NOT_MEMBER
    refused = await mallory.error(BlobDownload(room=other, blob=ticket.blob))
    assert refused.code == ErrorCode.NO_SUCH_BLOB
    refused = await mallory.error(BlobUpload(room=room, size=10))
    assert refused.code == ErrorCode.NOT_MEMBER


async def test_tickets_are_single_use_and_kind_bound(
    relay: Relay, connect: Callable[[str], Awaitable[WireClient]]
) -> None:
    alice = await connect("alice")
    room = await _room(alice, "files")
    ticket = await alice.request(BlobUpload(room=room, size=3), BlobTicket)
    wrong_kind = await _refused(relay, encode_blob_frame(StartDownload(token=ticket.token)))
    assert wrong_kind.code == ErrorCode.UNAUTHENTICATED
    # The wrong use spent it too.
    used = await _refused(relay, encode_blob_frame(StartUpload(token=ticket.token)))
    assert used.code == ErrorCode.UNAUTHENTICATED
    garbage = await _refused(relay, b'{"type": "send"}')
    assert garbage.code == ErrorCode.BAD_FRAME


async def test_an_interrupted_upload_resumes_from_what_the_relay_kept(
    relay: Relay, connect: Callable[[str], Awaitable[WireClient]]
) -> None:
    alice = await connect("alice")
    room = await _room(alice, "files")
    data = bytes(range(256)) * 1000
    first = await alice.request(BlobUpload(room=room, size=len(data)), BlobTicket)
    async with await _blob_conn(relay) as conn:
        await conn.send(encode_blob_frame(StartUpload(token=first.token)), text=True)
        assert await _control(conn) == Resume(offset=0)
        await conn.send(data[:100_000])
        # A text frame mid-upload is refused once the bytes before it are stored.
        await conn.send("not bytes", text=True)
        refusal = await _control(conn)
        assert isinstance(refusal, Error)
        assert refusal.code == ErrorCode.BAD_FRAME
    resumed = await alice.request(
        BlobUpload(room=room, size=len(data), blob=first.blob), BlobTicket
    )
    assert resumed.blob == first.blob
    assert resumed.offset == 100_000
    assert await _upload(relay, resumed.token, data) == Stored(blob=first.blob)
    fetch = await alice.request(BlobDownload(room=room, blob=first.blob), BlobTicket)
    assert await _download(relay, fetch.token) == data
    done = await alice.error(BlobUpload(room=room, size=len(data), blob=first.blob))
    assert done.code == ErrorCode.NO_SUCH_BLOB


async def test_an_upload_longer_than_declared_is_refused_and_not_fetchable(
    relay: Relay, connect: Callable[[str], Awaitable[WireClient]]
) -> None:
    alice = await connect("alice")
    room = await _room(alice, "files")
    ticket = await alice.request(BlobUpload(room=room, size=10), BlobTicket)
    refusal = await _upload(relay, ticket.token, b"y" * 11, piece=11)
    assert isinstance(refusal, Error)
    assert refusal.code == ErrorCode.TOO_LARGE
    missing = await alice.error(BlobDownload(room=room, blob=ticket.blob))
    assert missing.code == ErrorCode.NO_SUCH_BLOB


async def test_size_and_quota_limits_come_from_the_config(small_relay: Relay) -> None:
    alice = await login(small_relay.url, Identity("alice"))
    room = await _room(alice, "files")
    big = await alice.error(BlobUpload(room=room, size=300_001))
    assert big.code == ErrorCode.TOO_LARGE
    await alice.request(BlobUpload(room=room, size=300_000), BlobTicket)
    over = await alice.error(BlobUpload(room=room, size=200_001))
    assert over.code == ErrorCode.QUOTA_EXCEEDED
    assert "quota" in over.message


async def test_owner_deletes_and_others_cannot(
    relay: Relay, connect: Callable[[str], Awaitable[WireClient]]
) -> None:
    alice, bob = await connect("alice"), await connect("bob")
    room = await _room(alice, "files", bob)
    ticket = await alice.request(BlobUpload(room=room, size=1), BlobTicket)
    assert isinstance(await _upload(relay, ticket.token, b"z"), Stored)
    assert (await bob.error(BlobDelete(blob=ticket.blob))).code == ErrorCode.NO_SUCH_BLOB
    await alice.request(BlobDelete(id="x", blob=ticket.blob), Ok)
    gone = await bob.error(BlobDownload(room=room, blob=ticket.blob))
    assert gone.code == ErrorCode.NO_SUCH_BLOB


async def test_blobs_survive_a_relay_restart(tmp_path: Path) -> None:
    config = RelayConfig(port=0, data_dir=tmp_path)
    blob, digest = encrypt_file(KEY, PLAIN)
    alice_id = Identity("alice")
    async with Relay(config) as relay:
        alice = await login(relay.url, alice_id)
        room = await _room(alice, "files")
        ticket = await alice.request(BlobUpload(room=room, size=blob_size(len(PLAIN))), BlobTicket)
        assert isinstance(await _upload(relay, ticket.token, blob), Stored)
        await alice.close()
    async with Relay(config) as relay:
        alice = await login(relay.url, alice_id)
        fetch = await alice.request(BlobDownload(room=room, blob=ticket.blob), BlobTicket)
        assert decrypt_file(KEY, len(PLAIN), digest, await _download(relay, fetch.token)) == PLAIN


async def test_the_sweep_drops_blobs_of_rooms_that_are_gone_and_old_ones(
    relay: Relay, connect: Callable[[str], Awaitable[WireClient]]
) -> None:
    from e2echat.protocol import LeaveRoom

    alice = await connect("alice")
    kept_room, gone_room = await _room(alice, "kept"), await _room(alice, "gone")
    kept = await alice.request(BlobUpload(room=kept_room, size=1), BlobTicket)
    gone = await alice.request(BlobUpload(room=gone_room, size=1), BlobTicket)
    for ticket in (kept, gone):
        assert isinstance(await _upload(relay, ticket.token, b"k"), Stored)
    await alice.request(LeaveRoom(id="l", room=gone_room), Ok)  # the last member: room deleted
    assert await asyncio.to_thread(relay.blobs.sweep, relay.config.history_age_s) == 1
    assert relay.blobs.blobs.meta(gone.blob) is None
    assert relay.blobs.blobs.meta(kept.blob) is not None
    assert await asyncio.to_thread(relay.blobs.sweep, 0) == 1  # older than a 0 s history
