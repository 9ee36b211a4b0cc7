"""Recovery codes: the way back in when the authenticator app or passkey is lost.

NIST SP 800-63B §5.1.2 "look-up secrets": a set of single-use secrets the user keeps (printed, in a
password manager), each worth a second factor once. Here:

- COUNT codes of 10 Crockford base32 characters (50 random bits each, from `secrets`: §5.1.2.1
  asks for at least 20 bits with a throttled verifier; 50 leave nothing to guess at
  MFA_MAX_FAILURES a window), shown as XXXXX-XXXXX;
- shown once, when made, and kept only as the SHA-256 of the normalised code (§5.1.2.1: stored
  hashed; a fast hash suffices for 50 random bits, there is nothing to brute-force offline);
- a code works once: using it removes its hash from the set with one conditional write
  (storage/factors.recovery_use), in the transaction that signs in;
- made automatically with the user's first factor (accounts/totp.confirm), made anew (all old ones
  dead) on request, and removed with the last factor: they exist only next to another factor;
- typed codes forgive what people do to them: case, spaces, dashes, and Crockford's confusables
  (O for 0, I and L for 1).
"""
from __future__ import annotations

import secrets

from ..config import Settings
from ..errors import AccountActionRefused as Refused
from ..hashing import sha256_hex
from ..pages import messages

COUNT = 10
LENGTH = 10
#: Crockford's base32: digits and letters without I, L, O, U (https://www.crockford.com/base32.html).
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CONFUSABLES = str.maketrans({"O": "0", "I": "1", "L": "1"})


def new_codes(count: int = COUNT) -> list[str]:
    """`count` new codes, as shown: XXXXX-XXXXX."""
    codes = []
    while len(codes) < count:
        raw = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
        code = f"{raw[:5]}-{raw[5:]}"
        if code not in codes:
            codes.append(code)
    return codes


def normalise(typed: str | None) -> str | None:
    """The 10 characters a typed code stands for, or None when it cannot be one."""
    if not typed or len(typed) > 40:
        return None
    cleaned = "".join(typed.split()).replace("-", "").upper().translate(_CONFUSABLES)
    if len(cleaned) != LENGTH or any(c not in ALPHABET for c in cleaned):
        return None
    return cleaned


def code_hash(typed: str | None) -> str | None:
    """The SHA-256 (hex) a typed code is stored under, or None when it is malformed (then there is
    nothing to look up: the /mfa page refuses it without a write)."""
    normalised = normalise(typed)
    return sha256_hex(normalised) if normalised else None


def regenerate(settings: Settings, session, user, password: str, *, ip: str, device: str | None) -> list[str]:
    """After the current password: a new set replaces the old one (every old code dies), in one
    transaction with the session's factor kinds. Refused without another factor. Returns the codes,
    for the one page that shows them."""
    from ..storage import factors, sessions
    from .account import _best_effort, _mail, check_password

    check_password(settings, user, password, ip=ip, device=device)
    kinds = set(factors.kinds(user.factors))
    if not kinds - {factors.RECOVERY}:
        raise Refused(messages.RECOVERY_NEEDS_FACTOR, status=409)
    codes = new_codes()
    if not factors.set_recovery_codes(user.pk, [code_hash(code) for code in codes],
                                      extra=[sessions.factors_item(session.session_hash, kinds | {factors.RECOVERY})]):
        raise Refused(messages.ACCOUNT_CHANGED_MEANWHILE, status=409)
    _best_effort("factor_changed email", lambda: _mail(user.email, "factor_changed", user, factor="recovery",
                                                       change="added"))
    return codes


def announce_use(user, remaining: int) -> None:
    """Tell the user a recovery code signed them in (the lead's /mfa page calls this after the
    sign-in is written): if it was not them, their password and a code are known to someone.
    Best effort: the sign-in has happened, a mail failure is logged, not answered."""
    from .account import _best_effort, _mail

    _best_effort("recovery_code_used email", lambda: _mail(user.email, "recovery_code_used", user,
                                                           remaining=remaining))
