"""Password sign-in with throttling per client IP and per account, and known devices.

Counters are DynamoDB atomic ADDs in fixed windows (LOGIN_THROTTLE_WINDOW), counted before the
password is checked and taken back on success, so they count failures (and refused attempts) even
under parallel guessing. The account counter is keyed by the normalised email even when no such
account exists, so being refused says nothing about whether it does.

Per account a hard limit would let anyone lock anyone out: a few wrong guesses for alice's email
would refuse alice's right password. So past LOGIN_MAX_FAILURES_PER_ACCOUNT the account asks for
one more proof instead of refusing outright: a *known device*, a browser that has signed in to
this account before (a long-lived HttpOnly cookie set at every successful sign-in, see
chalicelib/storage/devices.py). An attempt from a known device of the typed account goes on to
the password check (and is still counted); any other attempt is refused with 429 and Retry-After.
Guessing from unknown devices thus stays capped at the account limit per window, while the owner
keeps signing in from a device used before; an owner on a new device waits for the window to end.
Signing a user out everywhere (or disabling them) forgets all their devices: a device counts only
if it signed in under the user's current session_generation.

Per client address the same: a hard limit would let one attacker behind a NAT, a carrier-grade
NAT or a company's egress lock out everyone there. Past LOGIN_MAX_FAILURES_PER_IP for an IPv4
address or an IPv6 /64, or LOGIN_MAX_FAILURES_PER_NETWORK for an IPv6 /48 (a subscriber is often
handed a /48, RFC 6177 §2: counting /64s alone would give it 65,536 times the budget), only known
devices of the typed account may still try. IPv4 clients have no coarser tier and pay no call
for one.

A known device past a limit is held by its own counter instead (LOGIN_MAX_FAILURES_PER_DEVICE, a
hard limit, counted only while a limit above is exceeded), so a stolen device cookie buys a few
more guesses per window at one account, never an open door. The device record is read only when
the account or the address is over its limit, so ordinary sign-ins do not pay for it.

No progressive delay. Sleeping bills Lambda wall time and lets an attacker tie up our concurrency
with cheap requests. A lockout growing across windows (refusal-until plus Retry-After) would cut
an attacker's guesses further, but needs state that outlives a window, one more read and write on
every attempt, and under a sustained attack it would lengthen the wait of an owner on a new
device. Guessing stays bounded by the account limit per window (480 a day at the defaults) plus the
device limit of each known device the attacker holds, each guess costing an argon2id evaluation.

Same cost, same answer: every attempt that reaches the password check costs two counter ADDs
(three from IPv6), two users-table GetItems (chalicelib/storage/users.find_user_by_email) and one argon2id evaluation
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
from .sessions import host_cookie_header, host_cookie_name

log = get_logger("idp.login")


def device_cookie_name(settings: Settings) -> str:
    return host_cookie_name(settings, "idp_device")


def device_cookie_header(settings: Settings, value: str) -> str:
    # SameSite=Strict: only our own sign-in form post ever needs it.
    return host_cookie_header(settings, "idp_device", value, same_site="Strict", max_age=settings.known_device_ttl)


def remember_device(settings: Settings, user: UserModel) -> str:
    """After a successful sign-in: a new known-device cookie value for this browser."""
    from ..storage.devices import remember_device as remember

    return remember(user.pk, settings.known_device_ttl, user.session_generation)


#: The coarser IPv6 tier: one subscriber's allocation (RFC 6177 §2).
NETWORK_PREFIX = 48


def _keys(settings: Settings, email: str, ip: str, at: int) -> list[tuple[str, str, int]]:
    """(scope, counter key, limit) of every counter one attempt adds to."""
    window = settings.login_throttle_window
    address, network = throttle.address_key(ip), throttle.address_key(ip, NETWORK_PREFIX)
    keys = [("account", throttle.window_key("account", sha256_hex(email), window, at),
             settings.login_max_failures_per_account),
            ("ip", throttle.window_key("ip", address, window, at), settings.login_max_failures_per_ip)]
    if network != address:  # IPv6 only: an IPv4 address has no coarser tier
        keys.append(("ip", throttle.window_key("ip", network, window, at), settings.login_max_failures_per_network))
    return keys


def _known_device_user(email: str, device: str | None) -> UserModel | None:
    """The typed account's user, if `device` is a known device of it; else None. A device
    remembered before the user was last signed out everywhere (or disabled) is not known any more:
    whoever was signed in on it then may be the reason for the sign-out."""
    from ..storage.devices import find_device
    from ..storage.users import find_user_by_email

    record = find_device(device) if device else None
    if record is None:
        return None
    user = find_user_by_email(email)
    if user is None or user.pk != record.sub or record.session_generation != user.session_generation:
        return None
    return user


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
    over = set()
    for scope, key, limit in keys:
        if throttle.add(key, window) > limit:
            over.add(scope)
    if over:
        user = _known_device_user(email, device)
        if user is None:
            scope = "ip" if "ip" in over else "account"
            log.warning("sign-in throttled", extra={"ip": ip, "scope": scope})
            raise LoginThrottled(scope, retry_after)
        # A known device of the typed account: others' guesses from its address or at its account
        # do not refuse it, its own attempts do. Never taken back: a successful sign-in gives the
        # browser a new device cookie, so this counter is not consulted for it again.
        device_key = throttle.window_key("device", sha256_hex(device), window, at)
        if throttle.add(device_key, window) > settings.login_max_failures_per_device:
            log.warning("sign-in throttled", extra={"ip": ip, "scope": "device"})
            raise LoginThrottled("device", retry_after)
    else:
        user = find_user_by_email(email)
    ok = verify_password(password, user.password_hash if user else None)
    if not ok or user is None or user.disabled:
        log.info("sign-in failed", extra={"ip": ip, "reason": "disabled" if ok and user else "credentials"})
        raise LoginFailed()
    for _, key, _ in keys:
        throttle.add(key, window, -1)
    return user
