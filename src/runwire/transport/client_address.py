"""The client's network address, as per-address rate limits see it.

By default it is the socket peer. ``X-Forwarded-For`` is read only when the peer is one of
``RUNWIRE_TRUSTED_PROXIES``: then the chain is walked from the right (the entries trusted proxies
appended) past every trusted proxy, and the first address that is not one is the client. Anything
to its left was written by the client itself and could be made up, so it is never used.

IPv6 clients are grouped by their /64 network: one host is normally given a whole /64, so keying
by single addresses would let it pick a fresh one for every attempt.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

from starlette.requests import HTTPConnection

__all__ = ["address_key", "client_address", "resolve_client"]

IPNetwork = IPv4Network | IPv6Network
IPAddress = IPv4Address | IPv6Address

UNKNOWN = "unknown"
"""The key of a connection whose peer the server was not told (all such share one limit)."""


def _parse(text: str) -> IPAddress | None:
    try:
        address = ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: IPAddress, proxies: Sequence[IPNetwork]) -> bool:
    return any(address in network for network in proxies)


def resolve_client(
    peer: str | None, forwarded_for: Iterable[str], proxies: Sequence[IPNetwork]
) -> IPAddress | str:
    """The client's address: ``peer`` unless it is a trusted proxy naming the client.

    ``forwarded_for`` holds the ``X-Forwarded-For`` header values in the order they came. A peer
    that is not an IP address (a Unix socket, a test client) is returned as it is.
    """
    if peer is None:
        return UNKNOWN
    current = _parse(peer)
    if current is None:
        return peer
    if not _trusted(current, proxies):
        return current
    hops = [hop for value in forwarded_for for hop in value.split(",")]
    for hop in reversed(hops):
        previous = _parse(hop)
        if previous is None:
            # A trusted proxy writes only addresses; garbage came from the client. Stop at the
            # last address we can vouch for, which limits the client together with its proxy.
            return current
        current = previous
        if not _trusted(current, proxies):
            return current
    return current


def address_key(address: IPAddress | str) -> str:
    """The rate-limit key of an address: itself, or its /64 network for IPv6."""
    if isinstance(address, IPv6Address):
        return str(IPv6Network((address, 64), strict=False))
    return str(address)


def client_address(conn: HTTPConnection, proxies: Sequence[IPNetwork]) -> str:
    """The rate-limit key of the client of ``conn`` (see the module docstring)."""
    peer = conn.client.host if conn.client is not None else None
    return address_key(resolve_client(peer, conn.headers.getlist("x-forwarded-for"), proxies))
