"""Connections that may start with a PROXY header (``--proxy-protocol``).

Only a connection whose TCP peer is a trusted proxy (``--trusted-proxy``) is read for
one, and it must send one: anyone else's bytes go to the WebSocket handshake unread, so
a client cannot name its own address, and a trusted balancer that sent no header (or a
bad one) is dropped before a byte reaches the handshake. The header's client address
then stands for the TCP peer (`session.remote`), for limits, logs and any
``X-Forwarded-For`` walk after it.
"""

import asyncio
from collections.abc import Callable

from websockets.asyncio.server import ServerConnection

from e2echat_server import proxy_header
from e2echat_server.proxies import Network, trusted_peer
from e2echat_server.session import remember_proxied, remote


def proxied_connection(
    trusted: Callable[[], tuple[Network, ...]], refused: Callable[[str, str], None]
) -> type[ServerConnection]:
    """A ServerConnection class reading a PROXY header from ``trusted()`` peers first;
    ``refused(reason, peer)`` is told of each one dropped."""

    class ProxiedConnection(ServerConnection):
        _header: bytearray | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            peer = transport.get_extra_info("peername")
            if peer and trusted_peer(str(peer[0]), trusted()):
                self._header = bytearray()

        def data_received(self, data: bytes) -> None:
            if self._header is None:
                super().data_received(data)
                return
            self._header += data
            try:
                found = proxy_header.parse(bytes(self._header))
            except proxy_header.ProxyHeaderError:
                self._header = None
                refused("proxy_header", remote(self))
                self.transport.abort()
                return
            if found is None:
                return
            rest = bytes(self._header[found.length :])
            self._header = None
            if found.client is not None:
                remember_proxied(self, found.client)
            if rest:
                super().data_received(rest)

    return ProxiedConnection
