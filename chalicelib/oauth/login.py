"""Password sign-in with throttling per client IP and per account, and known devices.

Counters are DynamoDB atomic ADDs in fixed windows (LOGIN_THROTTLE_WINDOW), counted before the
password is checked and taken back on success, so they count failures (and refused attempts) even
under parallel guessing. The account counter is keyed by the normalised email even when no such
account exists, so being refused says nothing about whether it does.

Per client IP (IPv6 by its /64, see throttle.address_key) the limit is hard: past
LOGIN_MAX_FAILURES_PER_IP every attempt from that address is refused until the window ends.

Per account a hard limit would let anyone lock anyone out: a few wrong guesses for alice's email
would refuse alice's right password. So past LOGIN_MAX_FAILURES_PER_ACCOUNT the account asks for
one more proof instead of refusing outright: a *known device*, a browser that has signed in to
this account before (a long-lived HttpOnly cookie set at every successful sign-in, see
chalicelib/storage/devices.py). An attempt from a known device of the typed account goes on to
the password check (and is still counted); any other attempt is refused with 429 and Retry-After.
Guessing from unknown devices thus stays capped at the account limit per window, while the owner
keeps signing in from a device used before; an owner on a new device waits for the window to end.
The device record is read only when the account is over its limit, so ordinary sign-ins do not
pay for it.

No progressive delay. Sleeping bills Lambda wall time and lets an attacker tie up our concurrency
with cheap requests. A lockout growing across windows (refusal-until plus Retry-After) would cut
an attacker's guesses further, but needs state that outlives a window, one more read and write on
every attempt, and under a sustained attack it would lengthen the wait of an owner on a new
device. Guessing stays bounded by the account limit per window (480 a day at the defaults) and by
the IP limit per address, each guess costing an argon2id evaluation.

Same cost, same answer: every attempt that reaches the password check costs two counter ADDs, two
users-table GetItems (chalicelib/storage/users.find_user_by_email) and one argon2id evaluation
(chalicelib/passwords.py), whether the email is known, unknown, disabled or malformed, and every
failure says the same thing. Refusals by the throttle skip argon2id: their 429 already says what
happened, and refusing cheaply is what a throttle is for. What a refusal costs depends on the
counters and the caller's own device cookie (a valid one makes us look up the typed account, at
the same two GetItems), never on whether the account exists.
"""
from __future__ import annotations

from ..config import Settings
from ..errors import LoginFailed, LoginThrottled
from ..hashing import sha256_hex
from ..log import get_logger, now
from ..passwords import verify_password
from ..storage.models import UserModel
from . import throttle

log = get_logger("idp.login")


def device_cookie_name(settings: Settings) -> str:
    # As the session cookie: __Host- makes the browser refuse it unless Secure, Path=/, host-only.
    return "__Host-idp_device" if settings.https else "idp_device"


def device_cookie_header(settings: Settings, value: str) -> str:
    # SameSite=Strict: only our own sign-in form post ever needs it.
    parts = [f"{device_cookie_name(settings)}={value}", "Path=/", "HttpOnly", "SameSite=Strict",
             f"Max-Age={settings.known_device_ttl}"]
    if settings.https:
        parts.append("Secure")
    return "; ".join(parts)


def remember_device(settings: Settings, user: UserModel) -> str:
    """After a successful sign-in: a new known-device cookie value for this browser."""
    from ..storage.devices import remember_device as remember

    return remember(user.pk, settings.known_device_ttl)


def _keys(settings: Settings, email: str, ip: str, at: int) -> list[tuple[str, int]]:
    window = settings.login_throttle_window
    return [
        (throttle.window_key("account", sha256_hex(email), window, at), settings.login_max_failures_per_account),
        (throttle.window_key("ip", throttle.address_key(ip), window, at), settings.login_max_failures_per_ip),
    ]


def _known_device_user(email: str, device: str | None) -> UserModel | None:
    """The typed account's user, if `device` is a known device of it; else None."""
    from ..storage.devices import device_owner
    from ..storage.users import find_user_by_email

    owner = device_owner(device) if device else None
    if owner is None:
        return None
    user = find_user_by_email(email)
    return user if user is not None and user.pk == owner else None


def authenticate(settings: Settings, email: str, password: str, ip: str, device: str | None = None) -> UserModel:
    """The user, or LoginFailed / LoginThrottled. `device` is the browser's device cookie value."""
    from ..storage.users import find_user_by_email, normalise_email

    email = normalise_email(email)
    at = now()
    window = settings.login_throttle_window
    keys = _keys(settings, email, ip, at)
    retry_after = window - at % window
    # Count the attempt before checking the password, then take it back if it succeeds: a check
    # followed by a later increment would let parallel guesses all pass the check.
    (account_count, account_limit), (ip_count, ip_limit) = [(throttle.add(key, window), limit) for key, limit in keys]
    if ip_count > ip_limit:
        log.warning("sign-in throttled", extra={"ip": ip, "scope": "ip"})
        raise LoginThrottled("ip", retry_after)
    if account_count > account_limit:
        user = _known_device_user(email, device)
        if user is None:
            log.warning("sign-in throttled", extra={"ip": ip, "scope": "account"})
            raise LoginThrottled("account", retry_after)
    else:
        user = find_user_by_email(email)
    ok = verify_password(password, user.password_hash if user else None)
    if not ok or user is None or user.disabled:
        log.info("sign-in failed", extra={"ip": ip, "reason": "disabled" if ok and user else "credentials"})
        raise LoginFailed()
    for key, _ in keys:
        throttle.add(key, window, -1)
    return user
