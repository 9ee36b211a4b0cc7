"""Password sign-in with throttling per client IP and per account, and known devices.

Counters are fixed windows (LOGIN_THROTTLE_WINDOW) in DynamoDB. An attempt adds 1 to all of its
counters in one transaction, each only while it is below its limit, before the password is checked;
the transaction that records a successful sign-in takes them back. So they count failures even
under parallel guessing, and an attempt refused by one limit counts at none (refusals check no
password, so they are not guesses). The account counter is keyed by the normalised email even when
no such account exists, so being refused says nothing about whether it does.

Per account a hard limit would let anyone lock anyone out: a few wrong guesses for alice's email
would refuse alice's right password. So past LOGIN_MAX_FAILURES_PER_ACCOUNT the account asks for
one more proof instead of refusing outright: a *known device*, a browser that has signed in to
this account before (a long-lived HttpOnly cookie set at every successful sign-in, see
chalicelib/storage/devices.py). An attempt from a known device of the typed account goes on to
the password check (and is still counted, at the account and the address too, over their limits
or not); any other attempt is refused with 429 and Retry-After.
Guessing from unknown devices thus stays capped at the account limit per window, while the owner
keeps signing in from a device used before; an owner on a new device waits for the window to end.
Signing a user out everywhere (or disabling them) forgets all their devices: a device counts only
if it signed in under the user's current session_generation.

Per client address the same: a hard limit would let one attacker behind a NAT, a carrier-grade
NAT or a company's egress lock out everyone there. Past LOGIN_MAX_FAILURES_PER_IP for an IPv4
address or an IPv6 /64, or LOGIN_MAX_FAILURES_PER_NETWORK for an IPv6 /48 (a subscriber is often
handed a /48, RFC 6177 §2: counting /64s alone would give it 65,536 times the budget), only known
devices of the typed account may still try. IPv4 clients have no coarser tier and write no
counter for one.

A known device past a limit is held by its own counter instead (LOGIN_MAX_FAILURES_PER_DEVICE, a
hard limit, counted only while a limit above is exceeded), so a stolen device cookie buys a few
more guesses per window at one account, never an open door. The device record is read only when
the account or the address is over its limit (with the user, in one BatchGetItem), so ordinary
sign-ins do not pay for it.

No progressive delay. Sleeping bills Lambda wall time and lets an attacker tie up our concurrency
with cheap requests. A lockout growing across windows (refusal-until plus Retry-After) would cut
an attacker's guesses further, but needs state that outlives a window, one more read and write on
every attempt, and under a sustained attack it would lengthen the wait of an owner on a new
device. Guessing stays bounded by the account limit per window (480 a day at the defaults) plus the
device limit of each known device the attacker holds, each guess costing an argon2id evaluation.

Same cost, same answer: every attempt that reaches the password check costs one BatchGetItem (the
typed email's claim, with the authorization request), one counter transaction (two counters, three
from IPv6), one users-table GetItem (the claim's subject, or a key no user has: storage/users.py)
and one argon2id evaluation (chalicelib/passwords.py), whether the email is known, unknown,
disabled or malformed, and every failure says the same thing. Refusals by the throttle skip
argon2id: their 429 already says what happened, and refusing cheaply is what a throttle is for.
What a refusal costs depends on the counters and the caller's own device cookie (a well-formed one
makes us read the typed account's user with the device record), never on whether the account
exists. A successful sign-in then writes everything it changes in one transaction
(storage/sign_ins.record_sign_in): the session, the known device, the take-backs, and the request.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..config import Settings
from ..errors import LoginFailed, LoginThrottled
from ..hashing import sha256_hex
from ..log import get_logger, now
from ..passwords import verify_password
from ..undo import undone_on_failure
from . import throttle
from .sessions import host_cookie_header, host_cookie_name

log = get_logger("idp.login")


def device_cookie_name(settings: Settings) -> str:
    return host_cookie_name(settings, "idp_device")


def device_cookie_header(settings: Settings, value: str) -> str:
    # SameSite=Strict: only our own sign-in form post ever needs it.
    return host_cookie_header(settings, "idp_device", value, same_site="Strict", max_age=settings.known_device_ttl)


#: The coarser IPv6 tier: one subscriber's allocation (RFC 6177 §2).
NETWORK_PREFIX = 48


@dataclass(frozen=True)
class Attempt:
    """One sign-in attempt, as read before anything is counted (`begin`)."""

    email: str  # normalised
    ip: str
    at: int
    #: (scope, storage.throttles.Counter) of every counter the attempt adds to.
    counters: tuple
    #: The subject the typed email's claim names, or one no user has (storage/users.claimed_sub).
    sub: str
    #: The pending authorization request (storage.authorization_requests.PendingRequest), or None when it
    #: is unknown, expired or already finished.
    request: object | None


def _counters(settings: Settings, email: str, ip: str, at: int) -> tuple:
    """(scope, counter) of every counter one attempt adds to, each with its limit."""
    from ..storage.throttles import Counter

    window = settings.login_throttle_window
    address, network = throttle.address_key(ip), throttle.address_key(ip, NETWORK_PREFIX)
    counters = [("account", Counter(throttle.window_key("account", sha256_hex(email), window, at),
                                    settings.login_max_failures_per_account)),
                ("ip", Counter(throttle.window_key("ip", address, window, at), settings.login_max_failures_per_ip))]
    if network != address:  # IPv6 only: an IPv4 address has no coarser tier
        counters.append(("ip", Counter(throttle.window_key("ip", network, window, at),
                                       settings.login_max_failures_per_network)))
    return tuple(counters)


def begin(settings: Settings, email: str, ip: str, request_id: str | None) -> Attempt:
    """Read what an attempt needs before counting it: the typed email's claim and the pending
    authorization request `request_id`, in one round trip. Nothing is counted yet, so an attempt
    for a request that is gone changes nothing."""
    from ..storage.sign_ins import read_attempt
    from ..storage.users import normalise_email

    email = normalise_email(email)
    at = now()
    sub, request = read_attempt(email, request_id)
    return Attempt(email, ip, at, _counters(settings, email, ip, at), sub, request)


def _known_device_user(attempt: Attempt, device: str | None):
    """The typed account's user, if `device` is a known device of it; else None. A device
    remembered before the user was last signed out everywhere (or disabled) is not known any more:
    whoever was signed in on it then may be the reason for the sign-out."""
    from ..storage.devices import device_key
    from ..storage.sign_ins import read_user_and_device

    key = device_key(device)
    if key is None:
        return None
    user, record = read_user_and_device(attempt.sub, key)
    if user is None or record is None or user.pk != record.sub or record.session_generation != user.session_generation:
        return None
    return user


def authenticate(settings: Settings, attempt: Attempt, password: str, device: str | None = None):
    """The user (storage.models.UserModel), or LoginFailed / LoginThrottled. `device` is the
    browser's device cookie value."""
    from ..storage import throttles

    window = settings.login_throttle_window
    retry_after = window - attempt.at % window
    # Count the attempt before checking the password, then take it back if it succeeds: a check
    # followed by a later increment would let parallel guesses all pass the check.
    stopped = throttles.add_to_all([counter for _, counter in attempt.counters], window)
    if stopped:  # counted nowhere (a refused attempt is not a guess), so nothing to take back
        return _checked(settings, attempt, password, device, stopped, retry_after)
    # From here a fault (not a wrong password: that is a counted failure) takes the attempt back.
    with undone_on_failure(lambda: _take_back(settings, attempt), what="sign-in attempt",
                           refusals=(LoginFailed, LoginThrottled)):
        return _checked(settings, attempt, password, device, stopped, retry_after)


def take_back(settings: Settings, attempt: Attempt) -> bool:
    """Take a counted attempt back: the password was right (one transaction of -1s). For checks of
    the current password that sign nobody in (the account page); `finish` does it for a sign-in."""
    return _take_back(settings, attempt)


def _take_back(settings: Settings, attempt: Attempt) -> bool:
    from ..storage import throttles

    return throttles.take_back([counter.key for _, counter in attempt.counters], settings.login_throttle_window)


def _checked(settings: Settings, attempt: Attempt, password: str, device: str | None, stopped: frozenset,
             retry_after: int):
    """The user, once the attempt is counted: its throttle, its known device, its password."""
    from ..storage import throttles
    from ..storage.users import get_user

    window = settings.login_throttle_window
    if stopped:
        over = {scope for scope, counter in attempt.counters if counter.key in stopped}
        user = _known_device_user(attempt, device)
        if user is None:
            scope = "ip" if "ip" in over else "account"
            log.warning("sign-in throttled", extra={"ip": attempt.ip, "scope": scope})
            raise LoginThrottled(scope, retry_after)
        # A known device of the typed account: others' guesses from its address or at its account
        # do not refuse it, its own attempts do. Its device counter is never taken back: a successful
        # sign-in gives the browser a new device cookie, so it is not consulted for it again. Its
        # guesses are failures at the account and the address as much as anyone's: counted there
        # too, past their limits (and taken back on success, like any attempt's).
        device_counter = throttles.Counter(throttle.window_key("device", sha256_hex(device), window, attempt.at),
                                           settings.login_max_failures_per_device)
        if throttles.add_to_all([device_counter, *(throttles.Counter(c.key) for _, c in attempt.counters)], window):
            log.warning("sign-in throttled", extra={"ip": attempt.ip, "scope": "device"})
            raise LoginThrottled("device", retry_after)
    else:
        user = get_user(attempt.sub)
    ok = verify_password(password, user.password_hash if user else None)
    if not ok or user is None or user.disabled:
        log.info("sign-in failed", extra={"ip": attempt.ip, "reason": "disabled" if ok and user else "credentials"})
        raise LoginFailed()
    return user


@dataclass(frozen=True)
class SecondStep:
    """The password was right and the user has a second factor: no session yet. `cookie` is the
    idp_mfa cookie's value naming the half-done sign-in (storage/sign_in_steps.py); the /mfa page
    (chalicelib/blueprints/mfa.py) takes it from there."""

    cookie: str


def second_factor_needed(settings: Settings, user) -> bool:
    """Whoever has a second factor is always asked for it (unless MFA_POLICY is off): a password
    alone never makes a session for them, so nothing (the account page included) is reachable with
    a stolen password."""
    return settings.mfa_policy != "off" and bool(user.factors)


def step_cookie_name(settings: Settings) -> str:
    return host_cookie_name(settings, "idp_mfa")


def step_cookie_header(settings: Settings, value: str, *, max_age: int | None = None) -> str:
    # Strict: only our own /mfa page, same origin, ever needs it.
    return host_cookie_header(settings, "idp_mfa", value, same_site="Strict",
                              max_age=settings.mfa_step_ttl if max_age is None else max_age)


def finish(settings: Settings, attempt: Attempt, user):
    """Record a successful password check for `attempt.request` (None: the account page's own
    sign-in, for no authorization request) in one transaction. Without a second factor that is the
    sign-in (storage/sign_ins.record_sign_in: a new session under a new cookie value, this browser
    as a new known device, the attempt's counters taken back) and returns its
    storage.sign_ins.SignedIn; with one, it is the first step (`SecondStep`)."""
    request = attempt.request
    # The user's ID-token claims travel with the session into its codes and grants, so issuing and
    # redeeming a code need not read the user again. A fault here leaves the attempt counted
    # unless taken back (chalicelib/undo.py).
    with undone_on_failure(lambda: _take_back(settings, attempt), what="sign-in attempt"):
        if second_factor_needed(settings, user):
            return _first_step(settings, attempt, user, request)
        return _record(settings, attempt, user, request)


def _first_step(settings: Settings, attempt: Attempt, user, request) -> SecondStep:
    from ..storage import sign_in_steps

    return SecondStep(sign_in_steps.start(
        user, amr=["pwd"], auth_time=attempt.at, request_id=request.request_id if request is not None else None,
        ttl=settings.mfa_step_ttl, take_back=[counter.key for _, counter in attempt.counters],
        window_seconds=settings.login_throttle_window))


def marks_request(request) -> bool:
    """Whether a sign-in for `request` records itself on it: only prompt=login and max_age=0 ask
    which session signed in for the request (authorization.may_consent)."""
    from .authorization import fresh_login_required

    return request is not None and fresh_login_required(request)


def _record(settings: Settings, attempt: Attempt, user, request):
    from ..storage.sign_ins import record_sign_in
    from ..tokens.issue import user_attributes

    from ..storage.factors import kinds

    return record_sign_in(user, amr=["pwd"], user_claims=user_attributes(user), session_ttl=settings.session_ttl,
                          device_ttl=settings.known_device_ttl,
                          request_id=request.request_id if request is not None else None,
                          mark_request=marks_request(request), factors=kinds(user.factors),
                          take_back=[counter.key for _, counter in attempt.counters],
                          window_seconds=settings.login_throttle_window)
