"""TOTP (RFC 6238) as a second factor: the code check, the enrolment on the account page, removal.

The parameters are the ones every authenticator app supports and the otpauth:// URI's defaults:
HMAC-SHA-1, 6 digits, 30-second steps (RFC 6238 §4, §5.2; SHA-1's collision weakness does not
touch HMAC). The secret is 160 random bits (RFC 4226 §4 R6: at least 128, 160 recommended), shown
once as base32 and as a QR code of its otpauth:// URI, and kept sealed with KMS
(chalicelib/secret_box.py): a code check needs the secret itself.

A code is accepted for the current time step and one step either side (RFC 6238 §5.2's
"at most one time step" of network delay and clock drift), and each time step at most once:
`matching_step` returns which step matched, and the write that accepts it moves the factor's
`last_step` forward only (storage/factors.totp_step / activate_totp), so a code seen over a
shoulder or replayed never works again, not even its ±1 neighbour.

Enrolment: `start` (after the current password) seals a new secret into a pending factor;
`pending` shows it; `confirm` activates it only once a first code from the app verifies (a secret
mistyped or scanned into nothing never becomes a factor that locks the user out), and that code's
step is the first `last_step`, so the code typed to enrol cannot sign in afterwards. The first
factor brings recovery codes (accounts/recovery_codes.py), shown once.
"""
from __future__ import annotations

import hmac
from dataclasses import dataclass

from ..config import Settings
from ..errors import AccountActionRefused as Refused
from ..log import get_logger, now
from ..pages import messages

log = get_logger("idp.totp")

DIGITS = 6
PERIOD = 30
#: Steps accepted on either side of the current one (RFC 6238 §5.2 recommends at most one).
WINDOW = 1
#: A pending enrolment (secret shown, first code not yet typed) is good for this long (seconds).
ENROLMENT_TTL = 600
SECRET_PURPOSE = "totp"


# Pure ---------------------------------------------------------------------------------------------

def new_secret() -> str:
    """160 random bits as base32 without padding (RFC 4226 §4 R6; 32 characters)."""
    import pyotp

    return pyotp.random_base32(length=32)


def provisioning_uri(secret: str, email: str, issuer_name: str) -> str:
    """The otpauth://totp/ URI authenticator apps read (Google Authenticator's Key Uri Format): the
    issuer both as label prefix and parameter, so apps group and name the entry alike."""
    import pyotp

    return pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD).provisioning_uri(name=email, issuer_name=issuer_name)


def qr_svg(uri: str, *, title: str = "QR code") -> str:
    """The URI as a QR code in inline SVG: paths only, no script, no XML declaration and no external
    reference, so it embeds under the pages' strict CSP. Black on white whatever the page's colours
    (scanners need the contrast), with the 4-module quiet zone of ISO/IEC 18004."""
    import segno

    return segno.make(uri, error="m").svg_inline(scale=4, border=4, dark="#000", light="#fff", title=title,
                                                svgclass="qr", lineclass=None)


def _code_at(secret: str, step: int) -> str:
    import pyotp

    return pyotp.HOTP(secret, digits=DIGITS).at(step)


def matching_step(secret: str, code: str, at: float) -> int | None:
    """The time step (RFC 6238 §4.2: floor(unix time / 30)) within ±WINDOW of `at` whose code is
    `code`, the newest when several match; None when none does or `code` is not 6 ASCII digits.
    Every candidate is computed and compared in constant time (hmac.compare_digest)."""
    code = (code or "").strip().replace(" ", "")
    if len(code) != DIGITS or not code.isascii() or not code.isdigit():
        return None
    current = int(at) // PERIOD
    matched = None
    for step in range(max(current - WINDOW, 0), current + WINDOW + 1):
        if hmac.compare_digest(_code_at(secret, step).encode("ascii"), code.encode("ascii")):
            matched = step
    return matched


# Enrolment ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Enrolment:
    """A pending enrolment as its page shows it."""

    secret: str
    uri: str
    svg: str


def issuer_name(settings: Settings) -> str:
    """The name authenticator apps show next to the account: the issuer's host."""
    from urllib.parse import urlsplit

    return urlsplit(settings.issuer).netloc


def start(settings: Settings, session, user, password: str, *, ip: str, device: str | None) -> None:
    """After the current password (accounts/account.check_password: a borrowed signed-in browser
    cannot add a factor): seal a new secret into a pending enrolment of this session, replacing an
    earlier pending one. Only this session is shown its secret and may confirm it (`pending`,
    `confirm`): another signed-in browser of the user cannot copy the factor being set up, nor
    step itself up with it. Refused when TOTP is already active (remove it first)."""
    from .. import secret_box
    from ..storage import factors
    from .account import check_password

    check_password(settings, user, password, ip=ip, device=device)
    if factors.TOTP in (user.factors or ()):
        raise Refused(messages.TOTP_ALREADY_ACTIVE, status=409)
    sealed = secret_box.seal(new_secret(), purpose=SECRET_PURPOSE, subject=user.pk)
    if not factors.start_totp(user.pk, sealed, started_by=session.session_hash):
        raise Refused(messages.TOTP_ALREADY_ACTIVE, status=409)


def _pending_factor(sub: str, session_hash: str):
    """The enrolment in progress that session `session_hash` started, or None (none, another
    session's, or expired)."""
    import hmac

    from ..storage import factors

    factor = factors.get(sub, factors.TOTP)
    if factor is None or not factor.pending or factor.created_at + ENROLMENT_TTL <= now():
        return None
    if not factor.started_by or not hmac.compare_digest(factor.started_by, session_hash):
        return None
    return factor


def pending(settings: Settings, session_hash: str, user) -> Enrolment | None:
    """The enrolment in progress that this session started (one read, one kms:Decrypt), or None."""
    from .. import pages, secret_box

    factor = _pending_factor(user.pk, session_hash)
    if factor is None:
        return None
    try:
        secret = secret_box.unseal(factor.sealed_secret, purpose=SECRET_PURPOSE, subject=user.pk)
    except secret_box.SealBroken:
        log.error("a pending TOTP secret does not open: the enrolment starts over", extra={"sub": user.pk})
        return None
    uri = provisioning_uri(secret, user.email, issuer_name(settings))
    return Enrolment(secret=secret, uri=uri, svg=qr_svg(uri, title=pages.translate(messages.TOTP_QR_TITLE)))


def confirm(settings: Settings, session, user, code: str, *, step_up: bool = False) -> list[str]:
    """Activate the pending enrolment if `code` is right for it. With the first factor, recovery
    codes are made in the same transaction and returned (to show once); else []. The session's
    factor kinds follow in that transaction too; with `step_up` (the enrolment that MFA_POLICY=
    required asks for mid-sign-in) the session also counts as signed in with the second factor
    (its amr gains otp, and so mfa: RFC 8176), since the user just proved it."""
    from .. import secret_box
    from ..storage import factors, sessions
    from . import recovery_codes

    factor = _pending_factor(user.pk, session.session_hash)
    if factor is None:
        raise Refused(messages.TOTP_ENROLMENT_GONE, status=409)
    try:
        secret = secret_box.unseal(factor.sealed_secret, purpose=SECRET_PURPOSE, subject=user.pk)
    except secret_box.SealBroken:
        log.error("a pending TOTP secret does not open: the enrolment starts over", extra={"sub": user.pk})
        raise Refused(messages.TOTP_ENROLMENT_GONE, status=409) from None
    step = matching_step(secret, code, now())
    if step is None:
        raise Refused(messages.TOTP_CODE_WRONG)
    codes = [] if factors.RECOVERY in (user.factors or ()) else recovery_codes.new_codes()
    kinds = tuple(sorted({*factors.kinds(user.factors), factors.TOTP, *([factors.RECOVERY] if codes else [])}))
    items = factors.totp_activation(user.pk, step, recovery_code_hashes=[recovery_codes.code_hash(c) for c in codes],
                                    started_by=session.session_hash)
    try:
        if step_up:
            # What the session proved, plus the code just verified (RFC 8176): never a method it did not use.
            from ..oauth import acr

            done = sessions.step_up(session.session_hash, amr=acr.combined(session.amr, ["otp"]), auth_time=now(),
                                    factors=kinds, extra=items)
        else:
            done = factors.write_with_session(items, sessions.factors_item(session.session_hash, kinds))
    except factors.Refused:
        raise Refused(messages.TOTP_ENROLMENT_GONE, status=409) from None
    if not done:
        raise Refused(messages.ACCOUNT_CHANGED_MEANWHILE, status=409)
    from .account import _best_effort, _mail

    _best_effort("factor_changed email", lambda: _mail(user.email, "factor_changed", user, factor="totp",
                                                       change="added"))
    return codes


def remove(settings: Settings, session, user, password: str, *, ip: str, device: str | None) -> None:
    """After the current password: remove TOTP (active or pending), and with it the recovery codes
    when no other factor remains (they exist only next to one), in one transaction with the
    session's factor kinds. With MFA_POLICY=required the last factor stays (add another first)."""
    from ..storage import factors, sessions
    from .account import _best_effort, _mail, check_password

    check_password(settings, user, password, ip=ip, device=device)
    others = set(factors.kinds(user.factors)) - {factors.TOTP, factors.RECOVERY}
    active = factors.TOTP in (user.factors or ())
    if active and not others and settings.mfa_policy == "required":
        raise Refused(messages.FACTOR_REQUIRED, status=409)
    also = () if others else (factors.RECOVERY,)
    kept = others | ({factors.RECOVERY} if others and factors.RECOVERY in factors.kinds(user.factors) else set())
    try:
        removed = factors.remove(user.pk, factors.TOTP, also=also,
                                 extra=[sessions.factors_item(session.session_hash, kept)])
    except factors.Refused:
        raise Refused(messages.ACCOUNT_CHANGED_MEANWHILE, status=409) from None
    if removed and active:
        _best_effort("factor_changed email", lambda: _mail(user.email, "factor_changed", user, factor="totp",
                                                           change="removed"))
