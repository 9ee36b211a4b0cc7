"""Known devices: browsers that have signed in to an account before.

A browser's device cookie holds a 256-bit random value; the table holds only its SHA-256 with the
user's sub and an expiry (also the TTL attribute, which lags, so the expiry is checked here too).
A new value is written at every successful sign-in, so a device stays known for KNOWN_DEVICE_TTL
after its last sign-in. What knowing a device allows is decided in chalicelib/oauth/login.py.
"""
from __future__ import annotations

from ..hashing import new_secret, sha256_hex
from ..log import now
from .models import KnownDeviceModel

DEVICE_PREFIX = "device#"
MAX_COOKIE_LENGTH = 100  # new_secret() is 43 characters; anything much longer is not ours


def remember_device(sub: str, ttl: int) -> str:
    """Record a new known device of `sub`; returns the raw cookie value (stored nowhere)."""
    raw = new_secret()
    at = now()
    device = KnownDeviceModel(session_hash=DEVICE_PREFIX + sha256_hex(raw), sub=sub, created_at=at,
                              expires_at=at + ttl)
    device.save(condition=KnownDeviceModel.session_hash.does_not_exist())
    return raw


def device_owner(cookie_value: str | None) -> str | None:
    """The sub a device cookie was issued to, or None (absent, malformed, unknown or expired).
    One consistent GetItem, only for a well-formed cookie."""
    if not cookie_value or len(cookie_value) > MAX_COOKIE_LENGTH:
        return None
    try:
        device = KnownDeviceModel.get(DEVICE_PREFIX + sha256_hex(cookie_value), consistent_read=True)
    except KnownDeviceModel.DoesNotExist:
        return None
    return device.sub if device.expires_at > now() else None
