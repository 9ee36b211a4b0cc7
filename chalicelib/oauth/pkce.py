"""Proof Key for Code Exchange (RFC 7636), S256 only.

OAuth 2.1 §4.1.1 makes PKCE mandatory for every client here; `plain` is refused because it
protects nothing once the authorization request leaks (RFC 9700 §2.1.1).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re

from ..capabilities import PKCE_METHODS
from ..errors import InvalidRequest

# RFC 7636 §4.1: code_verifier = 43*128unreserved
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
# RFC 7636 §4.2: S256 challenge = BASE64URL(SHA256(verifier)), 32 bytes -> 43 characters
_S256_CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")


def validate_challenge(challenge: str | None, method: str | None) -> str:
    """Check the authorization request's PKCE parameters; returns the method.

    RFC 7636 §4.3 defaults a missing method to "plain"; since plain is refused, the stricter
    reading applies: the method must be sent and must be S256.
    """
    if not challenge:
        raise InvalidRequest("code_challenge is required (PKCE with S256)")
    if method not in PKCE_METHODS:
        raise InvalidRequest("code_challenge_method must be S256")
    if not _S256_CHALLENGE.match(challenge):
        raise InvalidRequest("code_challenge is not a valid S256 challenge")
    return method


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def verify(verifier: str | None, challenge: str) -> bool:
    """RFC 7636 §4.6, compared in constant time."""
    if not verifier or not _VERIFIER.match(verifier):
        return False
    return hmac.compare_digest(s256(verifier), challenge)
