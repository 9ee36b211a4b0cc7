"""What the account page (and `idp-admin users update`) changes on a user's own record: profile
claims, password, email address, and deletion down to a tombstone. One DynamoDB call each, all
conditioned on the user's state as the caller read it, so a concurrent change or deletion makes
the write fail cleanly rather than be overwritten.

Ending the user's sessions and grants around these writes is the core's job
(chalicelib/accounts/account.py); here a password change or a deletion only moves
`session_generation` on, in the same write, which kills every session and stops every new code
(storage/users.end_all_sessions explains the generation).
"""
from __future__ import annotations

import json

from pynamodb.exceptions import TransactWriteError

from ..log import now
from .models import EmailClaimModel, SessionModel, UserModel, cancellation_codes, conditionally, transact_write
from .users import EMAIL_PREFIX, generation_is

#: The personal data a deletion removes from the user item (everything but the key and state).
PERSONAL = ("email", "name", "given_name", "family_name", "locale", "password_hash", "factors", "identities")


def _live_user():
    return UserModel.pk.exists() & UserModel.deleted_at.does_not_exist()


def _set_or_remove(attribute, value):
    return attribute.set(value) if value is not None else attribute.remove()


def update_profile(sub: str, profile, *, at: int, session_hash: str | None = None,
                   session_claims: dict | None = None) -> bool:
    """Set the user's profile claims (`profile`: accounts.profile.Profile; None removes a claim).
    With `session_hash`, the session's kept ID-token claims become `session_claims` in the same
    transaction, so tokens issued through the browser that made the change carry it at once
    (other sessions keep theirs until they sign in again; /userinfo always reads the user).
    False when there is no such (live) user."""
    actions = [_set_or_remove(UserModel.name, profile.name), _set_or_remove(UserModel.given_name, profile.given_name),
               _set_or_remove(UserModel.family_name, profile.family_name),
               _set_or_remove(UserModel.locale, profile.locale), UserModel.updated_at.set(at)]
    if session_hash is None:
        return bool(sub) and conditionally(lambda: UserModel(pk=sub).update(actions=actions, condition=_live_user()))
    try:
        with transact_write() as tx:
            tx.update(UserModel(pk=sub), actions=actions, condition=_live_user())
            tx.update(SessionModel(session_hash=session_hash),
                      actions=[SessionModel.user_claims.set(json.dumps(session_claims, separators=(",", ":")))],
                      condition=SessionModel.session_hash.exists() & (SessionModel.sub == sub))
    except TransactWriteError as exc:
        if "ConditionalCheckFailed" in cancellation_codes(exc):
            return False
        raise
    return True


def end_sessions(sub: str) -> bool:
    """Move the user's `session_generation` on (sign out everywhere): every session ends and no
    new code is issued under an old one. False when there is no such live user. The grants are the
    caller's to revoke (storage/grants.revoke_all_of_user)."""
    return bool(sub) and conditionally(lambda: UserModel(pk=sub).update(
        actions=[UserModel.session_generation.add(1), UserModel.updated_at.set(now())], condition=_live_user()))


def change_password(sub: str, *, old_hash: str, new_hash: str) -> bool:
    """Replace the password hash and move `session_generation` on (every session ends, no new
    code is issued under an old one), on condition that the hash is still `old_hash`: of two
    concurrent changes, one wins. False otherwise."""
    return conditionally(lambda: UserModel(pk=sub).update(
        actions=[UserModel.password_hash.set(new_hash), UserModel.session_generation.add(1),
                 UserModel.updated_at.set(now())],
        # Or already `new_hash` (salted, so only this very change can have written it): botocore
        # re-sends a write whose answer was lost, and the re-sent one must not read as a conflict.
        condition=_live_user() & ((UserModel.password_hash == old_hash) | (UserModel.password_hash == new_hash))))


def change_email(sub: str, *, old_email: str, new_email: str, generation: int) -> str:
    """Move the user from `old_email` to `new_email` (verified: the link proved it) in one
    transaction: the old email claim deleted (if it is still this user's), the new one put (if no
    one holds it), the user's address set (if it is still `old_email`). "changed", "taken" (the new
    address belongs to someone now) or "stale" (the user changed or was deleted meanwhile, or is no
    longer at session `generation`: storage/users.generation_is)."""
    try:
        with transact_write() as tx:
            tx.delete(EmailClaimModel(pk=EMAIL_PREFIX + old_email), condition=EmailClaimModel.sub == sub)
            # An update that creates the claim, rather than a put: the API role never puts into the
            # users table (tests/infra/test_template.py), and the condition makes it a create.
            tx.update(EmailClaimModel(pk=EMAIL_PREFIX + new_email), actions=[EmailClaimModel.sub.set(sub)],
                      condition=EmailClaimModel.pk.does_not_exist())
            tx.update(UserModel(pk=sub), actions=[UserModel.email.set(new_email), UserModel.email_verified.set(True),
                                                  UserModel.updated_at.set(now())],
                      condition=_live_user() & (UserModel.email == old_email) & generation_is(generation))
    except TransactWriteError as exc:
        reasons = cancellation_codes(exc)  # in the order sent: the delete, then the two updates
        if "ConditionalCheckFailed" not in reasons:
            raise
        return "taken" if reasons[1] == "ConditionalCheckFailed" and reasons[0] != "ConditionalCheckFailed" \
            and reasons[2] != "ConditionalCheckFailed" else "stale"
    return "changed"


def delete_account(sub: str, *, email: str, identities=()) -> bool:
    """Erase the user's personal data and free their address, in one transaction: the user item
    becomes a tombstone (key, `disabled`, `deleted_at`, `session_generation` moved on; no email,
    names, locale or password hash), so the subject is never issued again (create_user puts new
    users on condition that their key is new) and every check of the user refuses it; the email
    claim is deleted, so the address is free to sign up again (as a new subject). On condition
    that the user still has `email` and is not deleted. False otherwise. The claims of the user's
    linked upstream `identities` (its `identities` entries, storage/federated_identities.py) go in the
    same transaction: those identities are free to sign up again rather than lead to a tombstone."""
    from .federated_identities import IDENTITY_PREFIX
    from .models import IdentityClaimModel

    try:
        with transact_write() as tx:
            tx.delete(EmailClaimModel(pk=EMAIL_PREFIX + email), condition=EmailClaimModel.sub == sub)
            for value in sorted(identities or ()):
                tx.delete(IdentityClaimModel(pk=IDENTITY_PREFIX + value), condition=IdentityClaimModel.sub == sub)
            tx.update(UserModel(pk=sub), actions=[
                *(getattr(UserModel, name).remove() for name in PERSONAL), UserModel.email_verified.set(False),
                UserModel.disabled.set(True), UserModel.deleted_at.set(now()), UserModel.session_generation.add(1),
                UserModel.updated_at.set(now())], condition=_live_user() & (UserModel.email == email))
    except TransactWriteError as exc:
        if "ConditionalCheckFailed" in cancellation_codes(exc):
            return False
        raise
    return True


def end_session(session_hash: str) -> bool:
    """End one session and drop the user's claims kept with it (account deletion: the item keeps
    only its hash, subject and times until the TTL deletes it). False when there is none."""
    return conditionally(lambda: SessionModel(session_hash=session_hash).update(
        actions=[SessionModel.revoked.set(True), SessionModel.user_claims.remove()],
        condition=SessionModel.session_hash.exists()))
