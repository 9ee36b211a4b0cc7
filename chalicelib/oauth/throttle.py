"""Fixed-window counters, for sign-in failures, registrations and client document fetches: what
a counter counts (its key). Counting is chalicelib/storage/throttles.py's.

A counter's key names what is counted and the window, e.g. "ip#203.0.113.9#1795459" for the
window number `now // window_seconds`.
"""
from __future__ import annotations

from ..log import now
from ..storage.throttles import add, count

# add and count are re-exported: registration, client document fetches and refresh tokens count
# through this module.
__all__ = ["add", "address_key", "count", "window_key"]


def window_key(prefix: str, subject: str, window_seconds: int, at: int | None = None) -> str:
    at = now() if at is None else at
    return f"{prefix}#{subject}#{at // window_seconds}"


def address_key(ip: str, ipv6_prefix: int = 64) -> str:
    """What a per-address counter counts: an IPv4 address (also written ::ffff:a.b.c.d), or the
    network of an IPv6 address, its /64 unless `ipv6_prefix` says otherwise. One subscriber is
    usually handed a whole /64 (RFC 7421 §1), often a /56 or a /48 (RFC 6177 §2), so counting single
    IPv6 addresses would let one attacker rotate through 2^64 of them. Not an address: as given."""
    import ipaddress

    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if address.version == 4:
        return str(address)
    if address.ipv4_mapped:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((int(address), ipv6_prefix), strict=False))
