"""--proxy-protocol: a TCP load balancer's PROXY header names the client, if it is trusted."""

import asyncio
import ipaddress
import logging
import socket

import pytest
from e2echat_server import Relay, RelayConfig
from e2echat_server.config import ConfigError
from e2echat_server.proxy_header import ProxyHeader, ProxyHeaderError, parse
from hypothesis import given, settings
from hypothesis import strategies as st
from proxyprotocol.result import ProxyResultIPv4, ProxyResultIPv6, ProxyResultLocal
from proxyprotocol.v1 import ProxyProtocolV1
from proxyprotocol.v2 import ProxyProtocolV2
from websockets.exceptions import InvalidHandshake, InvalidMessage

from e2echat.protocol import CloseCode
from tests.server.wire import Identity, closed_with, login, open_raw

V1 = b"PROXY TCP4 192.0.2.7 10.0.0.1 5555 8765\r\n"


def v2(source: str, port: int = 4000) -> bytes:
    address = ipaddress.ip_address(source)
    result = (
        ProxyResultIPv4((address, port), (ipaddress.IPv4Address("10.0.0.1"), 8765))
        if isinstance(address, ipaddress.IPv4Address)
        else ProxyResultIPv6((address, port), (ipaddress.IPv6Address("::1"), 8765))
    )
    return ProxyProtocolV2().pack(result)


@settings(deadline=None)  # a loaded machine must not fail it on time alone
@given(
    address=st.ip_addresses(),
    version=st.sampled_from([1, 2]),
    cut=st.integers(min_value=0, max_value=120),
    rest=st.binary(max_size=40),
)
def test_a_header_is_found_whole_however_the_bytes_arrive(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, version: int, cut: int, rest: bytes
) -> None:
    protocol = ProxyProtocolV1() if version == 1 else ProxyProtocolV2()
    other = ipaddress.ip_address("10.0.0.1" if address.version == 4 else "::1")
    kind = ProxyResultIPv4 if address.version == 4 else ProxyResultIPv6
    header = protocol.pack(kind((address, 1234), (other, 8765)))  # type: ignore[arg-type]
    if cut < len(header):
        assert parse(header[:cut]) is None  # more bytes are needed, nothing is decided
    found = parse(header + rest)
    mapped = getattr(address, "ipv4_mapped", None)
    assert found == ProxyHeader(str(mapped or address), len(header))


def test_a_health_check_header_names_no_client() -> None:
    assert parse(ProxyProtocolV2().pack(ProxyResultLocal())) == ProxyHeader(None, 16)
    assert parse(b"PROXY UNKNOWN\r\nGET") == ProxyHeader(None, 15)


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\n",  # no header at all
        b"PROXY TCP4 999.0.2.7 10.0.0.1 5555 8765\r\n",  # not an address
        b"PROXY TCP4 " + b"1" * 200,  # a v1 line that never ends within its bound
        b"\r\n\r\n\x00\r\nQUIT\n\x99\x11\x00\x00",  # v2 signature, unknown version
    ],
)
def test_what_is_not_a_header_is_refused(data: bytes) -> None:
    with pytest.raises(ProxyHeaderError):
        parse(data)


def balancer_socket(port: int, header: bytes) -> socket.socket:
    """A connection from 127.0.0.1 (the 'balancer') that has sent ``header`` first."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(header)
    sock.setblocking(False)
    return sock


def proxied(**fields: object) -> RelayConfig:
    return RelayConfig(
        port=0, memory=True, proxy_protocol=True, trusted_proxy=("127.0.0.1",), **fields
    )  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("header", "client"),
    [(V1, "192.0.2.7"), (v2("2001:db8::9"), "2001:db8::9"), (v2("198.51.100.4"), "198.51.100.4")],
)
async def test_a_trusted_balancers_header_sets_the_client_address(
    header: bytes, client: str
) -> None:
    async with Relay(proxied()) as relay:
        alice = await login(relay.url, Identity("alice"), sock=balancer_socket(relay.port, header))
        assert dict(relay.sessions.per_ip) == {client: 1}
        (session,) = relay.sessions.connected()
        assert session.ip == client
        await alice.close()


async def test_the_limits_count_the_client_named_in_the_header() -> None:
    async with Relay(proxied(max_conn_per_ip=1)) as relay:
        first = await login(relay.url, Identity("a"), sock=balancer_socket(relay.port, V1))
        other = await login(relay.url, Identity("b"), sock=balancer_socket(relay.port, v2("::9")))
        third = await open_raw(relay.url, sock=balancer_socket(relay.port, V1))
        await closed_with(third.conn, CloseCode.POLICY)  # a second one from 192.0.2.7
        assert relay.metrics.refusals.counts["per_ip"] == 1
        await first.close()
        await other.close()


async def test_a_health_check_keeps_the_balancers_address() -> None:
    async with Relay(proxied()) as relay:
        local = ProxyProtocolV2().pack(ProxyResultLocal())
        client = await login(relay.url, Identity("a"), sock=balancer_socket(relay.port, local))
        assert dict(relay.sessions.per_ip) == {"127.0.0.1": 1}
        await client.close()


async def test_forwarding_headers_are_believed_only_from_a_trusted_source_address() -> None:
    async with Relay(proxied()) as relay:  # 192.0.2.7 (from the header) is no proxy
        spoofed = {"X-Forwarded-For": "203.0.113.1"}
        sock = balancer_socket(relay.port, V1)
        client = await login(relay.url, Identity("a"), headers=spoofed, sock=sock)
        assert dict(relay.sessions.per_ip) == {"192.0.2.7": 1}
        await client.close()


async def test_a_trusted_peer_without_a_header_is_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="e2echat_server")
    async with Relay(proxied()) as relay:
        with pytest.raises((InvalidMessage, OSError)):
            await login(relay.url, Identity("a"))  # a plain WebSocket handshake
        assert relay.metrics.refusals.counts["proxy_header"] == 1
        refused = [r for r in caplog.records if r.getMessage() == "refused"]
        assert [r.fields["reason"] for r in refused] == ["proxy_header"]  # type: ignore[attr-defined]
        assert relay.sessions.per_ip == {}


async def test_an_untrusted_peer_is_not_read_for_a_header() -> None:
    config = RelayConfig(port=0, memory=True, proxy_protocol=True, trusted_proxy=("10.0.0.0/8",))
    async with Relay(config) as relay:
        with pytest.raises(InvalidHandshake):  # its header is an invalid HTTP request
            await login(relay.url, Identity("a"), sock=balancer_socket(relay.port, V1))
        client = await login(relay.url, Identity("a"))  # a direct client is served as is
        assert dict(relay.sessions.per_ip) == {"127.0.0.1": 1}
        await client.close()


async def test_a_header_in_pieces_is_waited_for() -> None:
    async with Relay(proxied()) as relay:
        sock = socket.create_connection(("127.0.0.1", relay.port))
        header = v2("203.0.113.9")
        sock.sendall(header[:10])  # two writes: the relay may read them apart
        await asyncio.to_thread(sock.sendall, header[10:])
        sock.setblocking(False)
        client = await login(relay.url, Identity("a"), sock=sock)
        assert dict(relay.sessions.per_ip) == {"203.0.113.9": 1}
        await client.close()


def test_the_flag_needs_trusted_proxies_and_no_relay_tls() -> None:
    with pytest.raises(ConfigError, match=r"proxy_protocol.*trusted_proxy"):
        RelayConfig(proxy_protocol=True)
    with pytest.raises(ConfigError, match=r"proxy_protocol.*tls_cert"):
        RelayConfig(
            proxy_protocol=True,
            trusted_proxy=("127.0.0.1",),
            tls_cert="c.pem",  # type: ignore[arg-type]
            tls_key="k.pem",  # type: ignore[arg-type]
        )


# Known answers written out by hand from the PROXY protocol specification (haproxy.org,
# proxy-protocol.txt, sections 2.1 and 2.2), independent of the library that parses them.
V2_TCP4 = bytes.fromhex(
    "0d0a0d0a000d0a515549540a"  # the v2 signature
    "21"  # version 2, command PROXY
    "11"  # AF_INET, STREAM
    "000c"  # 12 bytes of addresses follow
    "cb007109"  # source 203.0.113.9
    "0a000001"  # destination 10.0.0.1
    "0fa0"  # source port 4000
    "223d"  # destination port 8765
)
V2_LOCAL = bytes.fromhex("0d0a0d0a000d0a515549540a20000000")  # LOCAL, UNSPEC


@pytest.mark.parametrize(
    ("header", "found"),
    [
        (V1, ProxyHeader("192.0.2.7", 41)),
        (b"PROXY TCP6 2001:db8::1 ::1 5555 8765\r\n", ProxyHeader("2001:db8::1", 38)),
        (V2_TCP4, ProxyHeader("203.0.113.9", 28)),
        (V2_LOCAL, ProxyHeader(None, 16)),
    ],
)
def test_headers_written_from_the_specification_are_read(header: bytes, found: ProxyHeader) -> None:
    assert parse(header + b"GET / HTTP/1.1\r\n") == found
