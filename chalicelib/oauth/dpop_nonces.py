"""Server-provided DPoP nonces (RFC 9449 §8), derived instead of stored.

A nonce is HMAC-SHA256(key, window number) for the current time window of DPOP_NONCE_WINDOW seconds,
base64url: every container computes the same nonce from the same key, so no table holds nonces or
per-client state, and a client cannot make a proof for a future window ahead of time. The nonce of
the previous window stays valid, so a nonce handed out just before a window ends still works once
the client retries. The key comes from the caller (chalicelib/oauth/dpop_binding.py owns where it
is kept); these functions are pure.
"""
from __future__ import annotations

import base64
import hmac
import hashlib


def _window(now: int, window: int) -> int:
    return now // window


def _nonce(key: bytes, number: int) -> str:
    digest = hmac.new(key, b"dpop-nonce\0" + str(number).encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode("ascii")  # 144 bits, 24 characters, no padding


def current(key: bytes, now: int, window: int) -> str:
    """The nonce to hand out now (in `DPoP-Nonce`)."""
    return _nonce(key, _window(now, window))


def valid(key: bytes, nonce: str, now: int, window: int) -> bool:
    """Is `nonce` the current window's or the previous one's? Constant-time compares."""
    number = _window(now, window)
    candidate = nonce.encode("ascii", "replace")
    return any(hmac.compare_digest(candidate, _nonce(key, n).encode("ascii")) for n in (number, number - 1))
