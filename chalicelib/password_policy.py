"""Which passwords a user may choose: NIST SP 800-63B-4 §3.1.1.2 (§5.1.1.2 in revision 3).

The rules, all of them (800-63B forbids composition rules: no "one digit, one capital"):

1. Length, counted in Unicode code points (each code point "SHALL be counted as a single
   character"). At least MIN_LENGTH = 8 ("SHALL require ... a minimum of eight characters"); at
   most MAX_LENGTH = 1024, far above the 64 that verifiers "SHOULD permit", and a bound on the
   work an attacker can make us do (NFKC here, argon2id in passwords.py). The minimum must hold
   both as typed and after NFKC: compatibility normalisation can turn one code point into
   eighteen (U+FDFA) and combining marks can compose, so neither view alone can make a short
   password count as long.
2. Not the user's email address or a derivative of it. The verifier "SHALL compare the prospective
   secret against a blocklist" including "context-specific words, such as ... the username, and
   derivatives thereof" (rev. 3 §5.1.1.2). An attacker who targets an account knows its email, so
   the guesses are the address and its local part, decorated the usual ways (`email_words`).
3. Not on the bundled list of the most common passwords ("passwords obtained from previous breach
   corpuses"): the 100,000 most frequent passwords of at least MIN_LENGTH characters in the
   10-million-password list that SecLists distributes (docs/passwords.md, tools/build_password_list.py).

Comparisons (rules 2 and 3) use `normalise`: NFKC, as 800-63B recommends for Unicode passwords,
then case folding. Case folding is a choice: attackers try "Password" and "PASSWORD" right after
"password", so a case variant of a listed password is as weak as the listed one, and folding lets
one list entry cover every variant. Only the comparisons use it; what is hashed and verified is
unchanged (chalicelib/passwords.py).

The list is stored compactly (COMMON_PASSWORDS): each entry is the first RECORD_BYTES bytes of
the SHA-256 of its normalised UTF-8 form, the records sorted and concatenated, no header. A lookup
is a binary search over the fixed-width records (O(log n), 17 steps); the file is read once per
container, lazily, the first time a password is chosen, so sign-in never pays for it.

RECORD_BYTES = 5 (40 bits): a password that is not on the list matches one of the n = 100,000
records by chance with probability about n / 2**40 = 9.1e-8, one strong password in eleven million
wrongly refused (the user just picks another); 4 bytes would be 2.3e-5, one in 43,000, and 6 bytes
would add 100 KB to every Lambda package for a rate already negligible. 500 KB in all.
"""
from __future__ import annotations

import bisect
import functools
import hashlib
import unicodedata
from pathlib import Path

from . import caches
from .pages.messages import (PASSWORD_CONTAINS_EMAIL, PASSWORD_TOO_COMMON, PASSWORD_TOO_LONG,
                             PASSWORD_TOO_SHORT)

MIN_LENGTH = 8
MAX_LENGTH = 1024

COMMON_PASSWORDS = Path(__file__).with_name("common_passwords.bin")
RECORD_BYTES = 5

def normalise(text: str) -> str:
    """The form passwords are compared in: NFKC, case folded, NFKC again (folding can denormalise)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


def list_record(password: str) -> bytes:
    """The record `password` would have on the list; tools/build_password_list.py writes these."""
    return hashlib.sha256(normalise(password).encode("utf-8")).digest()[:RECORD_BYTES]


@functools.cache
def _common_passwords() -> bytes:
    return COMMON_PASSWORDS.read_bytes()


caches.register("password_policy.common_passwords", _common_passwords.cache_clear, kind="memo")


def is_common(password: str) -> bool:
    """True when the normalised password is on the bundled list: a binary search of its records."""
    data = _common_passwords()
    record = list_record(password)
    count = len(data) // RECORD_BYTES
    at = bisect.bisect_left(range(count), record, key=lambda i: data[i * RECORD_BYTES:(i + 1) * RECORD_BYTES])
    return at < count and data[at * RECORD_BYTES:(at + 1) * RECORD_BYTES] == record


def _alphanumeric(text: str) -> str:
    """Letters and digits only: "alice.smith+idp" and "Alice_Smith idp" are the same guess."""
    return "".join(c for c in text if c.isalnum())


def _core(text: str) -> str:
    """Without the digits people put around a word ("2024alice99" -> "alice"), but never empty."""
    return text.strip("0123456789") or text


def email_words(email: str | None) -> set[str]:
    """What an attacker who knows the email tries first, in the form `_derived_from` compares:
    the whole address and its local part, with and without an RFC 5233 "+tag", each with its
    punctuation removed ("alice.smith+idp@example.com" -> "alicesmithidpexamplecom",
    "alicesmithexamplecom", "alicesmithidp", "alicesmith"). The domain alone is left out: it is
    shared with every other user of it, not this user's word."""
    email = normalise((email or "").strip())
    local, at, domain = email.rpartition("@")
    if not at:
        local = email
    base = local.partition("+")[0]
    words = {_alphanumeric(w) for w in (email, local, base, base + at + domain)}
    return {_core(w) for w in words if w}


def _derived_from(password: str, words: set[str]) -> bool:
    """The password is one of `words` give or take punctuation, spaces and surrounding digits:
    "Alice2024!", "alice.smith", "ALICE@example.com" for alice(.smith)@example.com."""
    return _core(_alphanumeric(normalise(password))) in words


def problem(password: str, email: str | None = None) -> str | None:
    """None when `password` may be chosen by the user with `email`, else what is wrong with it: one
    of the fixed texts of pages/messages.py (marked with N_, so pages translate them with `_()`)."""
    if len(password) > MAX_LENGTH:  # first, so that an oversized input is never normalised
        return PASSWORD_TOO_LONG
    if min(len(password), len(unicodedata.normalize("NFKC", password))) < MIN_LENGTH:
        return PASSWORD_TOO_SHORT
    if _derived_from(password, email_words(email)):
        return PASSWORD_CONTAINS_EMAIL
    if is_common(password):
        return PASSWORD_TOO_COMMON
    return None
