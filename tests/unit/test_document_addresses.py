"""Which addresses the client ID metadata document fetcher may connect to: the IANA IPv4 and IPv6
Special-Purpose Address Registries entry by entry, by their "Globally Reachable" column, plus what
they leave out (multicast, site-local, cloud metadata) and every IPv6 form that carries an IPv4
address. The examples are written from the registries, not from the code's tables."""
from __future__ import annotations

import ipaddress

import pytest

from chalicelib.config import load_settings
from chalicelib import outbound
from chalicelib.oauth import throttle

PROD = load_settings({"STAGE": "prod", "ISSUER": "https://login.example.com"})
LOCAL = load_settings({"STAGE": "local", "ISSUER": "http://localhost:8000"})

#: One address in every entry whose column says False, is blank or N/A, and in every extra refusal.
REFUSED = {
    "0.1.2.3": "0.0.0.0/8 this network (RFC 791)",
    "0.0.0.0": "0.0.0.0/32 this host on this network (RFC 1122)",
    "10.20.30.40": "10.0.0.0/8 private-use (RFC 1918)",
    "100.64.0.1": "100.64.0.0/10 shared address space (RFC 6598)",
    "127.0.0.1": "127.0.0.0/8 loopback (RFC 1122)",
    "169.254.1.1": "169.254.0.0/16 link local (RFC 3927)",
    "172.16.5.4": "172.16.0.0/12 private-use (RFC 1918)",
    "192.0.0.100": "192.0.0.0/24 IETF protocol assignments (RFC 6890)",
    "192.0.0.1": "192.0.0.0/29 IPv4 service continuity prefix (RFC 7335)",
    "192.0.0.8": "192.0.0.8/32 IPv4 dummy address (RFC 7600)",
    "192.0.0.170": "192.0.0.170/32 NAT64/DNS64 discovery (RFC 8880)",
    "192.0.0.171": "192.0.0.171/32 NAT64/DNS64 discovery (RFC 8880)",
    "192.0.2.1": "192.0.2.0/24 TEST-NET-1 (RFC 5737)",
    "192.88.99.1": "192.88.99.0/24 deprecated 6to4 relay anycast (RFC 7526), blank column",
    "192.88.99.2": "192.88.99.2/32 6a44-relay anycast (RFC 6751)",
    "192.168.1.20": "192.168.0.0/16 private-use (RFC 1918)",
    "198.19.255.1": "198.18.0.0/15 benchmarking (RFC 2544)",
    "198.51.100.7": "198.51.100.0/24 TEST-NET-2 (RFC 5737)",
    "203.0.113.9": "203.0.113.0/24 TEST-NET-3 (RFC 5737)",
    "240.0.0.1": "240.0.0.0/4 reserved (RFC 1112)",
    "255.255.255.255": "limited broadcast (RFC 919)",
    "224.0.0.251": "IPv4 multicast (RFC 5771)",
    "239.255.255.250": "IPv4 multicast (RFC 5771)",
    "169.254.169.254": "AWS instance metadata",
    "169.254.170.2": "ECS task metadata",
    "100.100.100.200": "Alibaba Cloud metadata",
    "::1": "::1/128 loopback (RFC 4291)",
    "::": "::/128 unspecified (RFC 4291)",
    "::ffff:10.0.0.1": "::ffff:0:0/96 IPv4-mapped (RFC 4291), private inside",
    "::ffff:8.8.8.8": "::ffff:0:0/96 IPv4-mapped (RFC 4291), even around a public address",
    "::ffff:0:a9fe:a9fe": "::ffff:0:0:0/96 IPv4-translated, SIIT (RFC 2765)",
    "::a9fe:a9fe": "::/96 IPv4-compatible, deprecated (RFC 4291)",
    "64:ff9b::a9fe:a9fe": "64:ff9b::/96 NAT64 (RFC 6052), the metadata service inside",
    "64:ff9b::808:808": "64:ff9b::/96 NAT64 (RFC 6052): globally reachable, but a translator picks the IPv4",
    "64:ff9b:1::a00:1": "64:ff9b:1::/48 local-use NAT64 (RFC 8215)",
    "100::1": "100::/64 discard-only (RFC 6666)",
    "100:0:0:1::1": "100:0:0:1::/64 dummy IPv6 prefix (RFC 9780)",
    "2001:1::4": "2001::/23 IETF protocol assignments (RFC 2928)",
    "2001:0:4136:e378::1": "2001::/32 Teredo (RFC 4380), N/A",
    "2001:2::1": "2001:2::/48 benchmarking (RFC 5180)",
    "2001:10::1": "2001:10::/28 deprecated ORCHID (RFC 4843), blank column",
    "2001:db8::1": "2001:db8::/32 documentation (RFC 3849)",
    "2002:a9fe:a9fe::1": "2002::/16 6to4 (RFC 3056), N/A",
    "3fff::1": "3fff::/20 documentation (RFC 9637)",
    "5f00::1": "5f00::/16 SRv6 SIDs (RFC 9602)",
    "fd12:3456::1": "fc00::/7 unique-local (RFC 4193)",
    "fe80::1": "fe80::/10 link-local (RFC 4291)",
    "fec0::1": "fec0::/10 site-local, deprecated (RFC 3879)",
    "ff02::1": "IPv6 multicast (RFC 4291)",
    "fd00:ec2::254": "AWS instance metadata over IPv6",
    "4000::1": "outside 2000::/3, the only global unicast space IANA has allocated",
}

#: One address in every entry whose column says True, and public addresses.
REACHABLE = {
    "192.0.0.9": "192.0.0.9/32 PCP anycast (RFC 7723)",
    "192.0.0.10": "192.0.0.10/32 TURN anycast (RFC 8155)",
    "192.31.196.1": "192.31.196.0/24 AS112-v4 (RFC 7535)",
    "192.52.193.1": "192.52.193.0/24 AMT (RFC 7450)",
    "192.175.48.1": "192.175.48.0/24 direct delegation AS112 (RFC 7534)",
    "2001:1::1": "2001:1::1/128 PCP anycast (RFC 7723)",
    "2001:1::2": "2001:1::2/128 TURN anycast (RFC 8155)",
    "2001:1::3": "2001:1::3/128 DNS-SD SRP anycast (RFC 9665)",
    "2001:3::1": "2001:3::/32 AMT (RFC 7450)",
    "2001:4:112::1": "2001:4:112::/48 AS112-v6 (RFC 7535)",
    "2001:20::1": "2001:20::/28 ORCHIDv2 (RFC 7343)",
    "2001:30::1": "2001:30::/28 DETs (RFC 9374)",
    "2620:4f:8000::1": "2620:4f:8000::/48 direct delegation AS112 (RFC 7534)",
    "8.8.8.8": "public",
    "1.1.1.1": "public",
    "93.184.215.14": "public",
    "2606:4700:4700::1111": "public",
    "2a00:1450:4001:80b::200e": "public",
}


@pytest.mark.parametrize("address", REFUSED, ids=[f"{a} {why}" for a, why in REFUSED.items()])
def test_addresses_that_are_not_globally_reachable_are_refused(address):
    assert outbound.allowed_address(address, PROD) is False


@pytest.mark.parametrize("address", REACHABLE, ids=[f"{a} {why}" for a, why in REACHABLE.items()])
def test_globally_reachable_addresses_are_allowed(address):
    assert outbound.allowed_address(address, PROD) is True


def test_every_entry_of_the_tables_has_an_example_above():
    """A new table entry needs its row in the examples, so its decision is stated twice."""
    examples = [ipaddress.ip_address(a) for a in {**REFUSED, **REACHABLE}]
    networks = ([network for network, _ in outbound.SPECIAL_PURPOSE]
                + list(outbound.EMBEDDED_IPV4) + list(outbound.ALSO_REFUSED))
    assert [str(n) for n in networks if not any(a in n for a in examples)] == []


@pytest.mark.parametrize("address", ["127.0.0.1", "127.8.9.10", "::1"])
def test_the_local_stage_also_allows_loopback(address):
    assert outbound.allowed_address(address, LOCAL) is True


@pytest.mark.parametrize("address", ["0.0.0.0", "169.254.169.254", "10.0.0.1", "::ffff:127.0.0.1", "fd00:ec2::254"])
def test_the_local_stage_allows_nothing_else_that_is_not_public(address):
    assert outbound.allowed_address(address, LOCAL) is False


@pytest.mark.parametrize("source, subject", [
    ("203.0.113.9", "203.0.113.9"),
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
    ("::ffff:203.0.113.9", "203.0.113.9"),
    ("unknown", "unknown"),
])
def test_per_address_counters_count_an_ipv6_client_by_its_64(source, subject):
    assert throttle.address_key(source) == subject
