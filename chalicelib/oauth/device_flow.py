"""The device authorization grant's pure parts (RFC 8628): user codes, device codes, the
verification URIs.

User codes (RFC 8628 §6.1): 8 letters from the 20 consonants BCDFGHJKLMNPQRSTVWXZ, shown as
XXXX-XXXX. No vowels, so no words form by accident; no digits, so nothing is confused with letters
(0/O, 1/I) and a phone shows one keyboard. 20^8 ≈ 2^34.6 codes: with a few thousand codes live at a
time a guess succeeds about once in ten million, and guesses are throttled per address and per
session (blueprints/device.py). Typed input is forgiving: case does not matter, dashes and spaces
are ignored (§6.1: "the server SHOULD ... ignore characters like punctuation").

The device code carries the user code it goes with, plus 256 random bits: the authorization is one
item keyed by the user code (storage/device_codes.py), which the page finds from the code the user
types and the token endpoint from the device code. The device shows the user code anyway, so it
learns nothing new; the random part is the secret, stored only as its SHA-256.
"""
from __future__ import annotations

import secrets
from urllib.parse import urlencode

from ..hashing import new_secret

#: RFC 8628 §6.1: "BCDFGHJKLMNPQRSTVWXZ", base-20, the example alphabet of the RFC.
ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8
#: Longer typed input is not a user code at all: refused before any work.
MAX_INPUT_LENGTH = 32
#: RFC 8628 §3.5 slow_down: "the interval MUST be increased by 5 seconds for this and all
#: subsequent requests".
SLOW_DOWN_STEP = 5
#: Between the user code and the secret in a device code; in neither alphabet.
_SEPARATOR = "."


def new_user_code() -> str:
    """A fresh user code, normalised (no dash)."""
    return "".join(secrets.choice(ALPHABET) for _ in range(USER_CODE_LENGTH))


def display(user_code: str) -> str:
    """XXXX-XXXX: two groups of four read (and typed) more easily than eight letters in a row."""
    half = USER_CODE_LENGTH // 2
    return f"{user_code[:half]}-{user_code[half:]}"


def normalise(typed: str | None) -> str | None:
    """The user code a person typed, or None when it cannot be one: ASCII, upper-cased, dashes and
    whitespace dropped, then exactly 8 letters of the alphabet."""
    # ASCII first: upper() maps "ß" to "SS", so "ßßßß" would read as a code.
    if not typed or len(typed) > MAX_INPUT_LENGTH or not typed.isascii():
        return None
    code = "".join(c for c in typed if c != "-" and not c.isspace()).upper()
    if len(code) != USER_CODE_LENGTH or any(c not in ALPHABET for c in code):
        return None
    return code


def new_device_code(user_code: str) -> tuple[str, str]:
    """(device code, its secret part): "<user code>.<43 random characters>"."""
    secret = new_secret()
    return f"{user_code}{_SEPARATOR}{secret}", secret


def parse_device_code(device_code: str | None) -> tuple[str, str] | None:
    """(user code, secret) of a device code we could have issued, else None."""
    user_code, separator, secret = (device_code or "").partition(_SEPARATOR)
    if not separator or not secret or len(device_code) > 128 or normalise(user_code) != user_code:
        return None
    return user_code, secret


def verification_uris(issuer: str, user_code: str) -> tuple[str, str]:
    """RFC 8628 §3.2: `verification_uri`, short enough to type, and `verification_uri_complete`,
    which carries the code (for a QR code or a link). The complete one only fills the form in: the
    user still confirms, so a link someone else sent cannot approve their device in one click
    (§5.4 remote phishing)."""
    base = f"{issuer}/device"
    return base, f"{base}?{urlencode({'user_code': display(user_code)})}"

