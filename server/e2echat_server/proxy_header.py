"""The PROXY protocol header (v1 text or v2 binary) a TCP load balancer puts first. Pure.

A load balancer in TCP mode (HAProxy ``send-proxy``, AWS NLB, nginx ``stream``) cannot
add ``X-Forwarded-For``: it writes one PROXY header before the client's bytes instead,
naming the client's address. Parsing and validation are the proxy-protocol library's;
this module only frames the header in a buffer that may hold more (the client's request
often comes in the same segment) and says which address it names.
"""

from dataclasses import dataclass
from typing import Final

from proxyprotocol import ProxyProtocolIncompleteError
from proxyprotocol.detect import ProxyProtocolDetect
from proxyprotocol.result import ProxyResultIPv4, ProxyResultIPv6

V1_MAX: Final = 107  # the longest v1 line, CRLF included (the specification's bound)
_PARSER: Final = ProxyProtocolDetect()


class ProxyHeaderError(ValueError):
    """Bytes that are not a valid PROXY header (the connection is dropped)."""


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """A complete header: the client address it names (None: a health check of the
    balancer itself, ``LOCAL``/``UNKNOWN``, so the TCP peer stands) and its length."""

    client: str | None
    length: int


def parse(buffer: bytes) -> ProxyHeader | None:
    """The header at the start of ``buffer``, or None if more bytes are needed.

    Raises ProxyHeaderError if ``buffer`` does not start with a valid header.
    """
    length = 0
    while True:
        try:
            result = _PARSER.unpack(buffer[:length])
        except ProxyProtocolIncompleteError as exc:
            want = exc.want_read
            if want.want_line:
                end = buffer.find(b"\n", length)
                if end < 0:
                    if len(buffer) >= V1_MAX:
                        raise ProxyHeaderError("a PROXY v1 line over 107 bytes") from None
                    return None
                if end + 1 > V1_MAX:
                    raise ProxyHeaderError("a PROXY v1 line over 107 bytes") from None
                length = end + 1
            elif want.want_bytes:
                if len(buffer) < length + want.want_bytes:
                    return None
                length += want.want_bytes
            else:  # pragma: no cover - the library always says what it wants
                raise ProxyHeaderError("an incomplete PROXY header") from None
            continue
        except ValueError as exc:  # syntax, checksum, or an address that is not one
            raise ProxyHeaderError(f"not a PROXY header ({type(exc).__name__})") from None
        if not result.proxied or not isinstance(result, ProxyResultIPv4 | ProxyResultIPv6):
            return ProxyHeader(None, length)
        address = result.source[0]
        mapped = getattr(address, "ipv4_mapped", None)
        return ProxyHeader(str(mapped or address), length)
