"""Plain HTTP on the relay's port, the subprotocol gate, the access log, and TLS (trustme)."""

import asyncio
import json
import logging
import ssl
from pathlib import Path

import pytest
import trustme
from e2echat_server import Relay, RelayConfig
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin, Subprotocol

from e2echat.protocol import (
    MAX_BODY,
    CreateRoom,
    ListRooms,
    OpenAccess,
    RoomList,
    RoomReply,
    Send,
    Sent,
)
from tests.server.wire import Identity, login


async def http_get(relay: Relay, path: str) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), {k.lower(): v for k, v in headers.items()}, body


async def test_healthz(relay: Relay) -> None:
    status, headers, body = await http_get(relay, "/healthz")
    assert (status, body) == (200, b"ok\n")
    assert headers["content-type"].startswith("text/plain")


async def test_api_info_is_json_with_cors(relay: Relay) -> None:
    status, headers, body = await http_get(relay, "/api/info")
    info = json.loads(body)
    assert status == 200
    assert headers["access-control-allow-origin"] == "*"
    assert headers["content-type"] == "application/json"
    assert (info["protocol"], info["subprotocol"], info["limits"]["max_body"]) == (
        1,
        "e2echat.v1",
        MAX_BODY,
    )


async def test_metrics_count_what_happened(relay: Relay) -> None:
    alice = await login(relay.url, Identity("alice"))
    room = (await alice.request(CreateRoom(name="lobby", access=OpenAccess()), RoomReply)).room.id
    await alice.request(Send(room=room, body=b"x"), Sent)
    await alice.send_raw("not json")
    await alice.error()
    status, headers, body = await http_get(relay, "/metrics")
    text = body.decode()
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    for line in (
        "e2echat_connections 1.0",
        "e2echat_authenticated_connections 1.0",
        "e2echat_rooms 1.0",
        "e2echat_messages_in_total 1.0",
        'e2echat_errors_total{code="bad_frame"} 1.0',
        'e2echat_store_seconds_count{op="append"} 1.0',
        'e2echat_store_seconds_bucket{le="+Inf",op="append"} 1.0',
    ):
        assert line in text.splitlines(), line
    assert alice.identity.key[:8].hex() not in text  # type: ignore[union-attr]


async def test_unknown_paths_are_404_and_say_where_to_look(relay: Relay) -> None:
    status, _, body = await http_get(relay, "/nope")
    assert status == 404
    assert b"/healthz" in body


async def test_a_client_without_the_subprotocol_is_refused(relay: Relay) -> None:
    with pytest.raises(InvalidStatus) as info:
        await connect(relay.url)
    assert info.value.response.status_code == 400
    assert b"e2echat.v1" in info.value.response.body


async def test_browsers_from_other_origins_are_refused() -> None:
    config = RelayConfig(port=0, memory=True, origins=("https://chat.example",))
    async with Relay(config) as relay:
        with pytest.raises(InvalidStatus) as info:
            await connect(
                relay.url,
                subprotocols=[Subprotocol("e2echat.v1")],
                origin=Origin("https://evil.example"),
            )
        assert info.value.response.status_code == 403
        ok = await connect(
            relay.url,
            subprotocols=[Subprotocol("e2echat.v1")],
            origin=Origin("https://chat.example"),
        )
        await ok.close()
        assert (await login(relay.url, Identity("cli"))).welcome is not None  # no Origin: fine


async def test_access_log_has_http_and_session_lines(
    relay: Relay, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="e2echat_server.access")
    await http_get(relay, "/healthz")
    alice = await login(relay.url, Identity("alice"))
    await alice.request(ListRooms(), RoomList)
    await alice.close()
    await relay.close()  # waits for the session to end and be logged
    records = {
        r.getMessage(): r.__dict__["fields"] for r in caplog.records if r.name.endswith("access")
    }
    assert records["http"]["path"] == "/healthz"
    assert records["http"]["status"] == 200
    session = records["session"]
    assert session["key"] == alice.identity.key[:8].hex()  # type: ignore[union-attr]
    assert session["frames"] == 2


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, ssl.SSLContext]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    directory = tmp_path_factory.mktemp("tls")
    chain, key = directory / "chain.pem", directory / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(chain))
    cert.private_key_pem.write_to_path(str(key))
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return chain, key, client


async def test_tls(tls: tuple[Path, Path, ssl.SSLContext]) -> None:
    chain, key, client_context = tls
    async with Relay(RelayConfig(port=0, memory=True, tls_cert=chain, tls_key=key)) as relay:
        assert relay.url.startswith("wss://127.0.0.1:")
        alice = await login(relay.url, Identity("alice"), client_context)
        assert (await alice.request(ListRooms(), RoomList)).rooms == []
        with pytest.raises(ssl.SSLError):
            await login(relay.url, Identity("eve"), ssl.create_default_context())
