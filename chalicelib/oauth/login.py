"""Password sign-in with throttling per account and per client IP.

Every failure says the same thing whether or not the account exists, and costs the same argon2id
evaluation (chalicelib/passwords.py), so neither the message nor the timing enumerates accounts.
Counters are DynamoDB atomic ADDs in fixed windows, counted before the password is checked and
taken back on success, so they count failures (and refused attempts) even under parallel guessing.
The account counter is keyed by the normalised email even when no such account exists.
"""
from __future__ import annotations

from ..config import Settings
from ..hashing import sha256_hex
from ..log import get_logger, now
from ..passwords import verify_password
from ..storage.models import UserModel
from . import throttle

log = get_logger("idp.login")


class LoginFailed(Exception):
    """Wrong email or password (deliberately indistinguishable)."""


class LoginThrottled(Exception):
    """Too many recent failures for this account or this IP."""


def _keys(settings: Settings, email: str, ip: str, at: int) -> list[tuple[str, int]]:
    window = settings.login_throttle_window
    return [
        (throttle.window_key("account", sha256_hex(email), window, at), settings.login_max_failures_per_account),
        (throttle.window_key("ip", ip, window, at), settings.login_max_failures_per_ip),
    ]


def authenticate(settings: Settings, email: str, password: str, ip: str) -> UserModel:
    from ..storage.users import find_user_by_email, normalise_email

    email = normalise_email(email)
    at = now()
    keys = _keys(settings, email, ip, at)
    # Count the attempt before checking the password, then take it back if it succeeds: a check
    # followed by a later increment would let parallel guesses all pass the check.
    counts = [throttle.add(key, settings.login_throttle_window) for key, _ in keys]
    if any(count > limit for count, (_, limit) in zip(counts, keys)):
        log.warning("sign-in throttled", extra={"ip": ip})
        raise LoginThrottled()
    user = find_user_by_email(email) if email else None
    ok = verify_password(password, user.password_hash if user else None)
    if not ok or user is None or user.disabled:
        log.info("sign-in failed", extra={"ip": ip, "reason": "disabled" if ok and user else "credentials"})
        raise LoginFailed()
    for key, _ in keys:
        throttle.add(key, settings.login_throttle_window, -1)
    return user
