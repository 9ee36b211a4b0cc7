"""Known devices: browsers that have signed in to an account before.

A browser's device cookie holds a 256-bit random value; the table holds only its SHA-256 with the
user's sub and an expiry (also the TTL attribute, which lags, so the expiry is checked here too).
A new value is written at every successful sign-in, so a device stays known for KNOWN_DEVICE_TTL
after its last sign-in. What knowing a device allows is decided in chalicelib/oauth/login.py.

Each record also keeps the user's `session_generation` at that sign-in. "Sign out everywhere" and
disabling move the user's generation on (storage/users.end_all_sessions) without touching these
records, so a device counts only while its generation equals the user's: the sign-in path reads
the device together with the user (one BatchGetItem, storage/sign_ins.py), so this costs nothing.
"""
from __future__ import annotations

from ..hashing import new_secret, sha256_hex
from ..log import now
from .models import KnownDeviceModel

DEVICE_PREFIX = "device#"
MAX_COOKIE_LENGTH = 100  # new_secret() is 43 characters; anything much longer is not ours


def new_device(sub: str, ttl: int, generation: int) -> tuple[str, KnownDeviceModel]:
    """A new known device of `sub`, signed in under the user's `session_generation` `generation`:
    the raw cookie value (stored nowhere) and its record, which the sign-in's transaction writes
    (storage/sign_ins.py)."""
    raw = new_secret()
    at = now()
    return raw, KnownDeviceModel(session_hash=device_key(raw), sub=sub, created_at=at, expires_at=at + ttl,
                                 session_generation=generation)


def device_key(cookie_value: str | None) -> str | None:
    """The record key a device cookie points at, or None for no cookie or one that is not ours
    (too long): such a cookie is not worth a read."""
    if not cookie_value or len(cookie_value) > MAX_COOKIE_LENGTH:
        return None
    return DEVICE_PREFIX + sha256_hex(cookie_value)


def read(key: str | None) -> KnownDeviceModel | None:
    """The unexpired known-device record `key` (device_key), or None (no read for no key)."""
    if key is None:
        return None
    try:
        return unexpired(KnownDeviceModel.get(key, consistent_read=True))
    except KnownDeviceModel.DoesNotExist:
        return None


def unexpired(device: KnownDeviceModel | None) -> KnownDeviceModel | None:
    """The record if it has not expired (DynamoDB's TTL deletes late, moto never). Whether it still
    counts for its user (same `session_generation`) is for the caller, who has the user."""
    return device if device is not None and device.expires_at > now() else None
