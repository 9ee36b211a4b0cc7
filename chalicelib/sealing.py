"""Sealing a value so that only the holder of a secret can open it again.

For values the server must hand back later but may neither keep in the clear nor be able to
recompute from client-held material alone (the refresh-token grace window, see
chalicelib/oauth/refresh_tokens.py):

    key    = HKDF-SHA256(secret, salt=none, info=purpose)                 RFC 5869
    sealed = base64url(nonce || AES-256-GCM(key, nonce, value, aad=bound_to))  NIST SP 800-38D

The store keeps `sealed` next to the secret's SHA-256, never the secret: reading the store gives
nothing to derive the key from, and holding the secret without the store gives nothing to open.
`secret` must be a 256-bit random value (hashing.new_secret), never a password: HKDF extracts
entropy, it does not slow guessing. `purpose` separates keys derived from one secret for different
uses; `bound_to` (authenticated, not encrypted) ties the seal to the record holding it, so a seal
copied to another record does not open. The nonce is random: a key seals at most a few values
(one per attempt of one rotation), far below AES-GCM's random-nonce limit.
"""
from __future__ import annotations

import base64
import binascii
import os

_NONCE_BYTES = 12  # 96 bits, the GCM nonce size
_TAG_BYTES = 16


def _key(secret: str, purpose: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret.encode("utf-8"))


def seal(secret: str, value: str, *, purpose: bytes, bound_to: str) -> str:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(_NONCE_BYTES)
    ciphertext = AESGCM(_key(secret, purpose)).encrypt(nonce, value.encode("utf-8"), bound_to.encode("utf-8"))
    return base64.urlsafe_b64encode(nonce + ciphertext).rstrip(b"=").decode("ascii")


def unseal(secret: str, sealed: str, *, purpose: bytes, bound_to: str) -> str | None:
    """The sealed value, or None when it does not open: another secret, purpose or record, or
    altered or malformed."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        raw = base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(raw) < _NONCE_BYTES + _TAG_BYTES:
        return None
    try:
        value = AESGCM(_key(secret, purpose)).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:],
                                                      bound_to.encode("utf-8"))
    except InvalidTag:
        return None
    return value.decode("utf-8")
