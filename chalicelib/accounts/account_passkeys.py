"""What the account page does with passkeys (issue 13 §1): list them, add one (the registration
ceremony, chalicelib/accounts/passkeys.py), rename, remove. The blueprint
(chalicelib/blueprints/account.py) parses and renders; this decides.

Adding and removing a passkey change how the account can be entered, so both ask for the current
password, checked as a sign-in attempt is (accounts/account.check_password: throttled like one),
as changing the password or the address does: a browser left signed in is not enough. Renaming
changes nothing that matters and asks for nothing.

A user always keeps their password (nothing here removes it), so removing a passkey never locks
them out; an account without a password hash cannot remove one. Each change is one transaction on
the factor item and the user's `factors` set (storage/factors.py); then, best effort, the
session's kinds of factor (storage/sessions.set_factors, so /authorize's step-up decisions follow)
and an email to the user, so a passkey added by someone else is noticed.

MFA_POLICY=off hides passkeys: nothing is listed, offered or accepted.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from ..config import Settings
from ..errors import AccountActionRefused as Refused
from ..log import get_logger
from ..pages import messages
from . import passkeys

log = get_logger("idp.account")


@dataclass(frozen=True)
class Listed:
    """A passkey as the account page shows it."""

    credential_id: str
    name: str
    created: str
    last_used: str | None


def _when(at: int | None) -> str | None:
    return datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if at is not None else None


def enabled(settings: Settings) -> bool:
    return settings.mfa_policy != "off"


def page_context(settings: Settings, user, cookie_value: str) -> dict:
    """The account page's passkey section: the list (one Query, only when the user's `factors` names
    a passkey) and the registration options (no I/O: a stateless challenge), or passkeys_on=False."""
    from ..storage import factors

    if not enabled(settings):
        return {"passkeys_on": False}
    ids = factors.passkey_ids(user.factors)
    listed = [Listed(p.credential_id, p.name or "", _when(p.created_at), _when(p.last_used_at))
              for p in factors.passkeys(user.pk)] if ids else []
    options = None
    if len(ids) < factors.MAX_PASSKEYS:
        options = passkeys.registration_options(cookie_value, sub=user.pk, email=user.email, display_name=user.name,
                                                existing_ids=ids)
    return {"passkeys_on": True, "passkeys": listed, "passkey_options": options}


def _owned(user, credential_id: str) -> str:
    """The factor id of the user's passkey `credential_id`, or Refused(PASSKEY_GONE)."""
    from ..storage import factors

    if not credential_id or credential_id not in factors.passkey_ids(user.factors):
        raise Refused(messages.PASSKEY_GONE, status=404)
    return factors.passkey_id(credential_id)


def add(settings: Settings, session, user, cookie_value: str, form: dict, *, ip: str, device: str | None) -> None:
    """Check the registration (WebAuthn §7.1) and the current password, then store the passkey and
    mark its challenge used in one transaction (storage/factors.add_passkey)."""
    from ..storage import factors, sessions
    from .account import check_password

    if not enabled(settings):
        raise Refused(messages.PASSKEY_NOT_ADDED, status=404)
    name = passkeys.clean_name(form.get("name"))
    if name is None:
        raise Refused(messages.PASSKEY_NAME_INVALID)
    if len(factors.passkey_ids(user.factors)) >= factors.MAX_PASSKEYS:
        raise Refused(messages.PASSKEY_LIMIT, status=409)
    try:
        new = passkeys.verify_registration(cookie_value, form.get("credential", ""), sub=user.pk)
    except passkeys.PasskeyRefused as exc:
        log.info("passkey registration refused", extra={"sub": user.pk, "reason": exc.reason})
        raise Refused(messages.PASSKEY_NOT_ADDED) from None
    check_password(settings, user, form.get("current_password", ""), ip=ip, device=device)
    entries = {*(user.factors or ()), factors.passkey_id(new.credential_id)}
    # The session's factor kinds change in the same transaction, as TOTP's do (accounts/totp.py).
    if not factors.add_passkey(user.pk, credential_id=new.credential_id, public_key=new.public_key,
                               sign_count=new.sign_count, transports=new.transports,
                               backup_eligible=new.backup_eligible, name=name, challenge=new.challenge,
                               challenge_expires_at=new.challenge_expires_at,
                               extra=[sessions.factors_item(session.session_hash, factors.kinds(entries))]):
        raise Refused(messages.PASSKEY_NOT_ADDED, status=409)
    _announce(user, "added", name)


def rename(session, user, form: dict) -> None:
    from ..storage import factors

    factor_id = _owned(user, form.get("credential_id", ""))
    name = passkeys.clean_name(form.get("name"))
    if name is None:
        raise Refused(messages.PASSKEY_NAME_INVALID)
    if not factors.rename(user.pk, factor_id, name):
        raise Refused(messages.PASSKEY_GONE, status=404)


def remove(settings: Settings, session, user, form: dict, *, ip: str, device: str | None) -> None:
    """Remove a passkey after checking the current password (so another way in remains)."""
    from ..storage import factors, sessions
    from .account import check_password

    factor_id = _owned(user, form.get("credential_id", ""))
    if not user.password_hash:
        raise Refused(messages.PASSKEY_NEEDS_PASSWORD, status=409)
    left = set(user.factors or ()) - {factor_id}
    others = {entry for entry in left if entry != factors.RECOVERY}
    if not others and settings.mfa_policy == "required":
        raise Refused(messages.FACTOR_REQUIRED, status=409)
    check_password(settings, user, form.get("current_password", ""), ip=ip, device=device)
    found = factors.get(user.pk, factor_id)
    # Recovery codes exist only next to another factor (as TOTP's removal does): left alone, every
    # sign-in would spend one.
    also = () if others else (factors.RECOVERY,)
    try:
        removed = factors.remove(user.pk, factor_id, also=also,
                                 extra=[sessions.factors_item(session.session_hash, factors.kinds(left - set(also)))])
    except factors.Refused:
        raise Refused(messages.ACCOUNT_CHANGED_MEANWHILE, status=409) from None
    if not removed:
        raise Refused(messages.PASSKEY_GONE, status=404)
    _announce(user, "removed", found.name if found else None)


def _announce(user, change: str, name: str | None) -> None:
    """After the commit, best effort (see accounts/account.py): the email that tells the user (the
    one every change of a sign-in method sends)."""
    from .account import _best_effort, _mail

    _best_effort("factor_changed email", lambda: _mail(user.email, "factor_changed", user, factor="passkey",
                                                       change=change, name=name or ""))
