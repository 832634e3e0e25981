"""Which address a request comes from, behind trusted reverse proxies. Pure functions.

A proxy says who its client was in ``X-Forwarded-For`` (or RFC 7239 ``Forwarded``).
Anyone can send those headers, so they count only when the TCP peer is a proxy the
operator listed (``--trusted-proxy``). The chain is read from the right: each hop a
trusted proxy appended is believed, and the first address not itself a trusted proxy is
the client. Addresses a client wrote further left are never reached, so a spoofed entry
cannot pick the address that limits and logs see.
"""

import ipaddress
from collections.abc import Iterable, Sequence
from functools import lru_cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@lru_cache(maxsize=8)
def networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    """The networks of ``cidrs`` (a bare address is a /32 or /128); ValueError if one is bad."""
    return tuple(ipaddress.ip_network(cidr.strip(), strict=False) for cidr in cidrs)


def _address(text: str) -> Address | None:
    text = text.strip().strip('"')
    if text.startswith("["):  # [2001:db8::1]:443 (Forwarded quotes these)
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:  # 192.0.2.1:443
        text = text.split(":", 1)[0]
    try:
        found = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(found, ipaddress.IPv6Address) and found.ipv4_mapped is not None:
        return found.ipv4_mapped
    return found


def trusted_peer(peer: str, trusted: tuple[Network, ...]) -> bool:
    """Whether the TCP peer ``peer`` is one of the ``trusted`` proxies."""
    found = _address(peer)
    return found is not None and any(found in network for network in trusted)


def _forwarded_for(values: Iterable[str]) -> list[str]:
    """The ``for=`` of each element of ``Forwarded`` headers, in order."""
    found = []
    for value in values:
        for element in value.split(","):
            for pair in element.split(";"):
                name, _, given = pair.partition("=")
                if name.strip().lower() == "for":
                    found.append(given)
    return found


def client_address(
    peer: str,
    forwarded_for: Sequence[str],
    forwarded: Sequence[str],
    trusted: tuple[Network, ...],
) -> str:
    """The client's address: ``peer`` unless it is a trusted proxy that says otherwise.

    ``forwarded_for`` and ``forwarded`` are every ``X-Forwarded-For`` and ``Forwarded``
    header line, in order. ``Forwarded`` wins when both are present. A hop that is not an
    address (``unknown``, an obfuscated name) ends the walk at the last trusted hop.
    """
    current = _address(peer)
    if current is None or not trusted:
        return peer
    if forwarded:
        hops = _forwarded_for(forwarded)
    else:
        hops = [hop for line in forwarded_for for hop in line.split(",")]
    for hop in reversed(hops):
        if not any(current in network for network in trusted):
            break
        found = _address(hop)
        if found is None:
            break
        current = found
    return str(current)
