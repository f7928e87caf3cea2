"""Which address a request is limited by: the peer, unless a trusted proxy names the client."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

import pytest

from runwire.transport.client_address import address_key, resolve_client

pytestmark = pytest.mark.unit

PROXIES: list[IPv4Network | IPv6Network] = [ip_network("10.0.0.0/8"), ip_network("fd00::/8")]


def test_the_peer_is_the_client_when_no_proxy_is_trusted() -> None:
    assert resolve_client("203.0.113.9", ["198.51.100.1"], []) == ip_address("203.0.113.9")


def test_forwarded_for_from_an_untrusted_peer_is_ignored() -> None:
    assert resolve_client("203.0.113.9", ["198.51.100.1"], PROXIES) == ip_address("203.0.113.9")


def test_a_trusted_proxy_names_the_client() -> None:
    assert resolve_client("10.1.2.3", ["198.51.100.1"], PROXIES) == ip_address("198.51.100.1")


def test_the_chain_is_walked_from_the_right_past_trusted_proxies_only() -> None:
    # The client wrote "1.1.1.1" itself; the first proxy appended the address it saw.
    chain = ["1.1.1.1, 198.51.100.7", "10.9.9.9"]
    assert resolve_client("10.0.0.1", chain, PROXIES) == ip_address("198.51.100.7")


def test_a_chain_of_only_trusted_proxies_gives_the_leftmost() -> None:
    assert resolve_client("10.0.0.1", ["10.0.0.3, 10.0.0.2"], PROXIES) == ip_address("10.0.0.3")


def test_a_trusted_proxy_without_the_header_is_the_client() -> None:
    assert resolve_client("10.0.0.1", [], PROXIES) == ip_address("10.0.0.1")


def test_garbage_in_the_chain_stops_at_the_last_address_we_can_vouch_for() -> None:
    assert resolve_client("10.0.0.1", ["evil, 10.0.0.2"], PROXIES) == ip_address("10.0.0.2")
    assert resolve_client("10.0.0.1", ["not-an-ip"], PROXIES) == ip_address("10.0.0.1")


def test_peers_that_are_not_addresses_are_kept_as_they_are() -> None:
    assert resolve_client("testclient", ["198.51.100.1"], PROXIES) == "testclient"
    assert resolve_client(None, [], PROXIES) == "unknown"


def test_ipv4_mapped_ipv6_is_the_ipv4_address() -> None:
    assert address_key(resolve_client("::ffff:203.0.113.9", [], [])) == "203.0.113.9"


def test_ipv6_clients_are_keyed_by_their_64_network() -> None:
    one = address_key(ip_address("2001:db8:1:2:aaaa::1"))
    other = address_key(ip_address("2001:db8:1:2:bbbb::2"))
    neighbour = address_key(ip_address("2001:db8:1:3::1"))
    assert one == other == "2001:db8:1:2::/64"
    assert neighbour != one
    assert address_key(ip_address("203.0.113.9")) == "203.0.113.9"
