"""The second step of a sign-in, and stepping a signed-in session up to more factors.

A user with a second factor never gets a session from a password alone (oauth/login.finish records
a half-done sign-in instead, storage/sign_in_steps.py). The /mfa page (chalicelib/blueprints/mfa.py)
then takes one of the user's factors:
- a TOTP code (RFC 6238; chalicelib/accounts/totp.py): its time step must be newer than the last
  one accepted (RFC 6238 §5.2: a code works once, and never after a newer one);
- a recovery code (chalicelib/accounts/recovery_codes.py): its hash leaves the user's set;
- a passkey (chalicelib/accounts/passkeys.py).

Codes can be guessed, so they are throttled like passwords (oauth/login.py): a counter per user
per LOGIN_THROTTLE_WINDOW, counted before the check (so parallel guesses cannot all pass it) and
taken back by the transaction that signs in; past it, only known devices of the user may try. Passkey assertions cannot be guessed and are not
counted.

The factor's single use, the step's deletion and the new session (or, stepping up, the session's
new `amr` and `auth_time`) are written in ONE transaction (storage/transactions.py): two tabs
sending the same code, or the same step twice, get one session.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..config import Settings
from ..errors import LoginThrottled, SecondFactorFailed
from ..hashing import sha256_hex
from ..log import get_logger, now
from ..undo import undone_on_failure
from . import acr, throttle

log = get_logger("idp.mfa")

TOTP, RECOVERY, PASSKEY = "totp", "recovery", "passkey"
#: What each factor adds to `amr` (RFC 8176). A look-up secret is a one-time "something you have"
#: (NIST SP 800-63B §5.1.2), so a recovery code counts as `otp` too.
CODE_AMR = {TOTP: ("otp",), RECOVERY: ("otp",)}


@dataclass(frozen=True)
class Proof:
    """A verified factor: what it adds to `amr`, and the writes that spend it (storage TxItems),
    which must be in the transaction that relies on it."""

    kind: str
    amr: tuple[str, ...]
    items: tuple = ()


def available(settings: Settings, entries) -> list[str]:
    """The kinds of factor the user's `factors` set offers for a second step, in the page's order."""
    from ..storage.factors import kinds

    if settings.mfa_policy == "off":
        return []
    have = set(kinds(entries))
    return [kind for kind in (PASSKEY, TOTP, RECOVERY) if kind in have]


def _counter(settings: Settings, sub: str, at: int):
    from ..storage.throttles import Counter

    return Counter(throttle.window_key("mfa", sha256_hex(sub), settings.login_throttle_window, at),
                   settings.mfa_max_failures)


def check_code(settings: Settings, user, kind: str, code: str, factors: dict, *, device: str | None = None,
               at: int | None = None) -> Proof:
    """Check a TOTP or recovery code of `user` against their factor items (`factors`, by
    factor_id, as read with the step). Counted first (LoginThrottled past MFA_MAX_FAILURES); a
    wrong code stays counted (SecondFactorFailed). The Proof's items spend the code and take the
    count back, in the caller's transaction.

    Past the user's limit, a *known device* of the user (`device`: the browser's device cookie,
    oauth/login.py) may still try, held by its own counter (LOGIN_MAX_FAILURES_PER_DEVICE), as for
    passwords: whoever knows the password can use up the user's codes every window, but cannot so
    keep the owner out of a browser they signed in from before."""
    from ..storage import throttles
    from ..storage.transactions import TxItem

    sub = user.pk
    at = now() if at is None else at
    window = settings.login_throttle_window
    counter = _counter(settings, sub, at)
    if throttles.add_to_all([counter], window):
        device_counter = _known_device_counter(settings, user, device, at)
        if device_counter is None or throttles.add_to_all([device_counter], window):
            log.warning("second factor throttled", extra={"sub": sub, "scope": "mfa" if device_counter is None
                                                          else "device"})
            raise LoginThrottled("mfa", window - at % window)
        # Counted on the device's own counter, never taken back (the sign-in gives the browser a new
        # device cookie), and not on the user's, which stopped it.
        keys = []
    else:
        keys = [counter.key]
    take_back = TxItem("update", "mfa_counter", lambda tx: throttles.taking_back(tx, keys, window))
    # A fault after counting (KMS, say) takes the count back: it was no guess.
    with undone_on_failure(lambda: keys and throttles.take_back(keys, window), what="second-factor attempt",
                           refusals=(SecondFactorFailed,)):
        if kind == TOTP:
            item = _totp(sub, code, factors.get(TOTP), at)
        elif kind == RECOVERY:
            item = _recovery(sub, code, factors.get(RECOVERY))
        else:
            raise SecondFactorFailed("method")
    return Proof(kind, CODE_AMR[kind], (item, take_back) if keys else (item,))


def _known_device_counter(settings: Settings, user, device: str | None, at: int):
    """The second-factor counter of `device` when it is a known device of `user` (signed in as the
    user under the user's current session_generation; one GetItem), else None."""
    from ..storage import devices
    from ..storage.throttles import Counter

    record = devices.read(devices.device_key(device))
    if record is None or record.sub != user.pk or record.session_generation != int(user.session_generation or 0):
        return None
    return Counter(throttle.window_key("mfa-device", sha256_hex(device), settings.login_throttle_window, at),
                   settings.login_max_failures_per_device)


def _totp(sub: str, code: str, factor, at: int):
    from .. import secret_box
    from ..accounts import totp
    from ..storage import factors

    if factor is None or factor.pending or not factor.sealed_secret:
        raise SecondFactorFailed("no_factor")
    try:
        secret = secret_box.unseal(factor.sealed_secret, purpose="totp", subject=sub)
    except secret_box.SealBroken:
        # The key that sealed it is gone (a local stack restarted: moto keeps no KMS keys) or the item
        # was tampered with: no code can match. The user still has a recovery code or a passkey.
        log.error("TOTP secret does not open", extra={"sub": sub})
        raise SecondFactorFailed("seal_broken") from None
    step = totp.matching_step(secret, code, at)
    if step is None:
        raise SecondFactorFailed("wrong")
    if factor.last_step is not None and step <= factor.last_step:
        # RFC 6238 §5.2: the verifier must not accept the second attempt of the same OTP.
        raise SecondFactorFailed("replayed")
    return factors.totp_step(sub, step)


def _recovery(sub: str, code: str, factor):
    from ..accounts import recovery_codes
    from ..storage import factors

    code_hash = recovery_codes.code_hash(code)
    # Looked up by hash, like a refresh token: timing says nothing about a code's characters.
    if code_hash is None or factor is None or code_hash not in factor.code_hashes:
        raise SecondFactorFailed("wrong")
    return factors.recovery_use(sub, code_hash)


def usable_step(step, user) -> bool:
    """The user behind a half-done sign-in still exists, is enabled and was not signed out
    everywhere (or disabled and re-enabled) since the password was checked."""
    return not (step is None or user is None or user.disabled
                or int(user.session_generation or 0) != step.session_generation)


def complete_sign_in(settings: Settings, step, user, proof: Proof, request):
    """The second step succeeded: the session, the known device, the step's deletion and the
    factor's single use in one transaction (storage/sign_ins.record_sign_in). Returns its SignedIn;
    SecondFactorFailed("replayed") when the code was spent meanwhile (another tab), ("step") when
    the step was."""
    from ..storage.factors import kinds
    from ..storage.sign_in_steps import consumed
    from ..storage.sign_ins import record_sign_in
    from ..storage.transactions import Refused
    from ..tokens.issue import user_attributes
    from .login import marks_request

    link = step.pending_link
    linking = []
    if link:  # an upstream sign-in's identity, linked only now that the factor is proved
        from ..storage.federated_identities import link_items

        linking = link_items(user.pk, link["connection_id"], link["upstream_sub"], email=link.get("email"),
                             sealed_tokens=link.get("sealed_tokens"))
    try:
        signed_in = record_sign_in(
            user, amr=acr.combined(step.amr, proof.amr), user_claims=user_attributes(user),
            session_ttl=settings.session_ttl, device_ttl=settings.known_device_ttl, request_id=step.request_id,
            mark_request=marks_request(request), take_back=(), window_seconds=settings.login_throttle_window,
            generation=step.session_generation, factors=kinds(user.factors),
            extra=[consumed(step), *proof.items, *linking], connection_id=step.connection_id)
    except Refused as refused:
        # "identity"/"user": the identity was linked meanwhile (another tab) or the user went: the
        # step cannot complete as it was started, like a step that is gone.
        raise SecondFactorFailed("step" if refused.labels & {"step", "identity", "user"} else "replayed") from None
    if link:
        from ..federation.sign_in import announce_link_by_id

        announce_link_by_id(settings, user, link["connection_id"])
    return signed_in


def step_up(session, proof: Proof):
    """A signed-in session proved one more factor: its amr grows and auth_time is now, with the
    factor's single use, in one transaction. Returns the session as written; None when it ended
    meanwhile; SecondFactorFailed("replayed") when the factor was spent meanwhile."""
    from dataclasses import replace

    from ..storage import sessions
    from ..storage.transactions import Refused

    amr, at = acr.combined(session.amr, proof.amr), now()
    try:
        written = sessions.step_up(session.session_hash, amr=amr, auth_time=at, extra=proof.items)
    except Refused:
        raise SecondFactorFailed("replayed") from None
    return replace(session, amr=tuple(amr), auth_time=at) if written else None
