"""Known devices: browsers that have signed in to an account before.

A browser's device cookie holds a 256-bit random value; the table holds only its SHA-256 with the
user's sub and an expiry (also the TTL attribute, which lags, so the expiry is checked here too).
A new value is written at every successful sign-in, so a device stays known for KNOWN_DEVICE_TTL
after its last sign-in. What knowing a device allows is decided in chalicelib/oauth/login.py.

Each record also keeps the user's `session_generation` at that sign-in. "Sign out everywhere" and
disabling move the user's generation on (storage/users.end_all_sessions) without touching these
records, so a device counts only while its generation equals the user's: the sign-in path reads
the user anyway, so this costs nothing.
"""
from __future__ import annotations

from ..hashing import new_secret, sha256_hex
from ..log import now
from .models import KnownDeviceModel

DEVICE_PREFIX = "device#"
MAX_COOKIE_LENGTH = 100  # new_secret() is 43 characters; anything much longer is not ours


def remember_device(sub: str, ttl: int, generation: int) -> str:
    """Record a new known device of `sub`, signed in under the user's `session_generation`
    `generation`; returns the raw cookie value (stored nowhere)."""
    raw = new_secret()
    at = now()
    device = KnownDeviceModel(session_hash=DEVICE_PREFIX + sha256_hex(raw), sub=sub, created_at=at,
                              expires_at=at + ttl, session_generation=generation)
    device.save(condition=KnownDeviceModel.session_hash.does_not_exist())
    return raw


def find_device(cookie_value: str | None) -> KnownDeviceModel | None:
    """The unexpired device record of a device cookie, or None (absent, malformed, unknown or
    expired). One consistent GetItem, only for a well-formed cookie. Whether it still counts for
    its user (same `session_generation`) is for the caller, who has the user."""
    if not cookie_value or len(cookie_value) > MAX_COOKIE_LENGTH:
        return None
    try:
        device = KnownDeviceModel.get(DEVICE_PREFIX + sha256_hex(cookie_value), consistent_read=True)
    except KnownDeviceModel.DoesNotExist:
        return None
    return device if device.expires_at > now() else None
