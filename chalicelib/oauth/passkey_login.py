"""Sign-in with a passkey as the first and only factor (WebAuthn §7.2 with a discoverable
credential: the user is not known until the assertion names them in `userHandle`).

Two round trips, like the password path's floor and never more: ONE BatchGetItem reads the user
the assertion names, that user's passkey and the pending authorization request
(storage/sign_ins.read_passkey_attempt); ONE TransactWriteItems writes the session, the known
device and the request (storage/sign_ins.record_sign_in, as a password sign-in does) together with
the passkey's single use (its counter written only over the value read, the challenge marked used,
chalicelib/accounts/passkeys.verify_assertion's items). A replayed assertion or challenge cancels
that transaction: nothing is written.

No throttle counters. A guess at a passkey is a guess at an ECDSA/EdDSA signature, and each
attempt costs the attacker a challenge bound to their own cookie; refusals cost us one read.
The user must be enabled and not deleted, as for a password; the session is born under the
user's session_generation as read, so signing out everywhere meanwhile leaves it dead.
A passkey with user verification is two factors by itself: it never asks for a second one.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..accounts.passkeys import PasskeyRefused, combined_amr, credential_id_of, user_handle_of, verify_assertion
from ..config import Settings
from ..log import get_logger

log = get_logger("idp.login")


@dataclass(frozen=True)
class Read:
    """What one passkey sign-in read: the user and passkey the credential names (None when the
    credential was malformed, or names nothing), and the pending request (None: unknown, expired,
    finished, or not asked for)."""

    user: object | None
    factor: object | None
    request: object | None


def read(credential_json: str, request_id: str | None, *, with_request: bool) -> Read:
    """One BatchGetItem (a GetItem of the request alone when the credential is malformed: the page
    that says so still needs the request)."""
    from ..storage import authorization_requests
    from ..storage.factors import passkey_id
    from ..storage.sign_ins import read_passkey_attempt

    credential_id, sub = credential_id_of(credential_json), user_handle_of(credential_json)
    if credential_id is None or sub is None:
        return Read(None, None, authorization_requests.load(request_id) if with_request else None)
    user, factor, request = read_passkey_attempt(sub, passkey_id(credential_id), request_id if with_request else None)
    return Read(user, factor, request)


def finish(settings: Settings, browser_value: str, credential_json: str, found: Read, *, purpose: str):
    """Verify the assertion against what `read` found and record the sign-in in one transaction
    (for `found.request`, or none: the account page's own sign-in). Returns the
    storage.sign_ins.SignedIn; PasskeyRefused for anything wrong (nothing written)."""
    from ..storage.factors import kinds
    from ..storage.sign_ins import record_sign_in
    from ..storage.transactions import Refused
    from ..tokens.issue import user_attributes
    from .login import marks_request

    user, request = found.user, found.request
    if settings.mfa_policy == "off":
        raise PasskeyRefused("passkeys are off (MFA_POLICY=off)")
    if user is None or found.factor is None:
        raise PasskeyRefused("no such passkey")
    if user.disabled or user.deleted_at is not None:
        log.info("passkey sign-in refused", extra={"sub": user.pk, "reason": "disabled"})
        raise PasskeyRefused("user disabled")
    use = verify_assertion(browser_value, credential_json, found.factor, purpose=purpose, sub=None, require_uv=True)
    try:
        return record_sign_in(user, amr=combined_amr((), use), user_claims=user_attributes(user),
                              session_ttl=settings.session_ttl, device_ttl=settings.known_device_ttl,
                              request_id=request.request_id if request is not None else None,
                              mark_request=marks_request(request), factors=kinds(user.factors), take_back=[],
                              window_seconds=settings.login_throttle_window, extra=use.items)
    except Refused as refused:
        log.warning("passkey assertion replayed", extra={"sub": user.pk, "refused": sorted(refused.labels)})
        raise PasskeyRefused("challenge already used or counter moved") from None
