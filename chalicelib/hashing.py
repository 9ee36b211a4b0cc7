"""Random secrets and how we store them.

Codes, refresh tokens, session ids and client secrets are 256-bit random values, so a plain
SHA-256 is the right at-rest form: it cannot be brute-forced and is cheap to look up by. Passwords
are low-entropy and use argon2id instead (chalicelib/passwords.py).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets


def new_secret(nbytes: int = 32) -> str:
    """A URL-safe random string with `nbytes` bytes (256 bits by default) of entropy."""
    return secrets.token_urlsafe(nbytes)


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def matches_hash(value: str, stored_hash: str | None) -> bool:
    """Constant-time comparison of a presented secret against its stored hash."""
    if not stored_hash:
        return False
    return hmac.compare_digest(sha256_hex(value), stored_hash)
