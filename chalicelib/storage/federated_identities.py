"""Federated identities: an upstream identity (connection, upstream `sub`) linked to exactly one
local user (issue 15).

The link is an IdentityClaimModel item "identity#<connection_id>#<upstream sub>" -> sub in the
users table, the uniqueness guard EmailClaimModel is for emails: created with attribute_not_exists
in the transaction that links, so two concurrent links of one identity have one winner. The user
item's `identities` set names the same links ("<connection_id>#<upstream sub>"), written in the
same transactions, so the account page lists a user's identities from the user item and one
BatchGetItem, without a Query.

- `read_for_sign_in`: what the callback needs before deciding, in ONE strongly consistent
  BatchGetItem: the identity's claim, the email claim of the upstream's email, and the pending
  authorization request;
- `link_items` / `provision_items`: the TxItems that link an identity to an existing user, or
  create a user (no password) with its email claim and identity (just-in-time provisioning), for
  the sign-in transaction (storage/sign_ins.record_sign_in `extra`);
- `of_user`: a user's identities for the account page;
- `unlink`: remove one, on condition that another way in remains.
"""
from __future__ import annotations

from dataclasses import dataclass

from pynamodb.exceptions import DoesNotExist

from ..log import now
from . import authorization_requests
from .authorization_requests import PendingRequest
from .models import AuthorizationRequestModel, EmailClaimModel, IdentityClaimModel, UserModel
from .reads import consistent_batch_get
from .transactions import Refused, TxItem, write
from .users import EMAIL_PREFIX, claim_key

IDENTITY_PREFIX = "identity#"
#: DynamoDB keys are at most 2048 bytes; an upstream `sub` is at most 255 ASCII characters (OIDC
#: Core §2), so anything longer is not one.
MAX_SUBJECT_LENGTH = 255


@dataclass(frozen=True)
class Identity:
    connection_id: str
    upstream_sub: str
    sub: str
    email: str | None
    linked_at: int


def entry(connection_id: str, upstream_sub: str) -> str:
    """The user item's `identities` entry (and the claim key's tail) of an identity."""
    return f"{connection_id}#{upstream_sub}"


def identity_key(connection_id: str, upstream_sub: str) -> str:
    return IDENTITY_PREFIX + entry(connection_id, upstream_sub)


def _split(value: str) -> tuple[str, str]:
    connection_id, _, upstream_sub = value.partition("#")
    return connection_id, upstream_sub


def _from_model(item: IdentityClaimModel) -> Identity:
    connection_id, upstream_sub = _split(item.pk[len(IDENTITY_PREFIX):])
    return Identity(connection_id=connection_id, upstream_sub=upstream_sub, sub=item.sub, email=item.email,
                    linked_at=int(item.linked_at or 0))


@dataclass(frozen=True)
class Found:
    """What the callback reads: the user the identity is linked to (None: not linked), the user
    holding the upstream email's claim (None: nobody, or no email), the pending request."""

    identity_sub: str | None
    email_sub: str | None
    request: PendingRequest | None


def read_for_sign_in(connection_id: str, upstream_sub: str, email: str | None, request_id: str | None) -> Found:
    """One strongly consistent BatchGetItem: the identity claim, the email claim of `email` (when
    given) and the authorization request `request_id` (when well-formed)."""
    keys: list = [(IdentityClaimModel, identity_key(connection_id, upstream_sub))]
    if email:
        keys.append((EmailClaimModel, claim_key(email)))
    if request_id and len(request_id) <= authorization_requests.MAX_REQUEST_ID_LENGTH:
        keys.append((AuthorizationRequestModel, request_id))
    found = consistent_batch_get(keys)
    identity = found[0]
    claim = found[1] if email else None
    request = found[-1] if len(found) > (2 if email else 1) else None
    return Found(identity_sub=identity.sub if identity is not None else None,
                 email_sub=claim.sub if claim is not None else None,
                 request=authorization_requests.from_model(request))


def linked_sub(connection_id: str, upstream_sub: str) -> str | None:
    """The local user an upstream identity is linked to, or None: one consistent GetItem of its
    claim (a trusted issuer's JWT naming its `sub`, chalicelib/grants/jwt_bearer.py)."""
    if not upstream_sub or len(upstream_sub) > MAX_SUBJECT_LENGTH:
        return None
    try:
        return IdentityClaimModel.get(identity_key(connection_id, upstream_sub), consistent_read=True).sub
    except DoesNotExist:
        return None


def _live_user():
    return (UserModel.pk.exists() & UserModel.deleted_at.does_not_exist()
            & (UserModel.disabled.does_not_exist() | (UserModel.disabled == False)))  # noqa: E712


def _claim_item(sub: str, connection_id: str, upstream_sub: str, *, email: str | None, at: int,
                sealed_tokens: str | None) -> TxItem:
    # An update that creates the claim (condition: no such item), as the email claim of an email
    # change is made: a taken identity refuses the whole transaction (label "identity").
    actions = [IdentityClaimModel.sub.set(sub), IdentityClaimModel.connection_id.set(connection_id),
               IdentityClaimModel.linked_at.set(at)]
    if email:
        actions.append(IdentityClaimModel.email.set(email))
    if sealed_tokens:
        actions.append(IdentityClaimModel.sealed_tokens.set(sealed_tokens))
    key = identity_key(connection_id, upstream_sub)
    return TxItem("update", "identity", lambda tx: tx.update(
        IdentityClaimModel(pk=key), actions=actions, condition=IdentityClaimModel.pk.does_not_exist()))


def link_items(sub: str, connection_id: str, upstream_sub: str, *, email: str | None, at: int | None = None,
               sealed_tokens: str | None = None) -> list[TxItem]:
    """Link the identity to the existing, live user `sub`: the identity claim (label "identity":
    refused when it is linked already) and the user's `identities` entry (label "user": refused
    when the user is gone, deleted or disabled)."""
    at = now() if at is None else at
    value = entry(connection_id, upstream_sub)
    return [_claim_item(sub, connection_id, upstream_sub, email=email, at=at, sealed_tokens=sealed_tokens),
            TxItem("update", "user", lambda tx: tx.update(
                UserModel(pk=sub), actions=[UserModel.identities.add({value}), UserModel.updated_at.set(at)],
                condition=_live_user()))]


def provision_items(user: UserModel, connection_id: str, upstream_sub: str, *, at: int,
                    sealed_tokens: str | None = None) -> list[TxItem]:
    """Just-in-time provisioning: the new user `user` (built by the caller, no password, its
    `identities` naming this one), its email claim (label "email": refused when the address was
    taken meanwhile) and the identity claim (label "identity")."""
    claim_pk = EMAIL_PREFIX + user.email
    return [TxItem("put", "new_user", lambda tx: tx.save(user, condition=UserModel.pk.does_not_exist())),
            TxItem("update", "email", lambda tx: tx.update(
                EmailClaimModel(pk=claim_pk), actions=[EmailClaimModel.sub.set(user.pk)],
                condition=EmailClaimModel.pk.does_not_exist())),
            _claim_item(user.pk, connection_id, upstream_sub, email=user.email, at=at, sealed_tokens=sealed_tokens)]


def new_user(*, sub: str, email: str, name=None, given_name=None, family_name=None, locale=None,
             connection_id: str, upstream_sub: str, at: int) -> UserModel:
    """The user item of a just-in-time provisioned account: the upstream verified its email, it
    has no password (the forgotten-password email sets one) and this identity."""
    return UserModel(pk=sub, email=email, email_verified=True, name=name, given_name=given_name,
                     family_name=family_name, locale=locale, identities={entry(connection_id, upstream_sub)},
                     session_generation=0, created_at=at, updated_at=at)


def tokens_item(sub: str, connection_id: str, upstream_sub: str, sealed_tokens: str) -> TxItem:
    """Replace the sealed upstream tokens kept with a linked identity (a sign-in through it), on
    condition it is still `sub`'s (label "identity")."""
    key = identity_key(connection_id, upstream_sub)
    return TxItem("update", "identity", lambda tx: tx.update(
        IdentityClaimModel(pk=key), actions=[IdentityClaimModel.sealed_tokens.set(sealed_tokens)],
        condition=IdentityClaimModel.sub == sub))


def of_user(user: UserModel) -> list[Identity]:
    """The user's identities, oldest link first: one BatchGetItem of the claims the user item names
    (none when it names none). An entry whose claim is gone or names another user is left out."""
    values = sorted(user.identities or ())
    if not values:
        return []
    items = consistent_batch_get([(IdentityClaimModel, IDENTITY_PREFIX + value) for value in values])
    found = [_from_model(item) for item in items if item is not None and item.sub == user.pk]
    return sorted(found, key=lambda identity: (identity.linked_at, identity.connection_id))


def _remaining(keeps: tuple[str, str | None]):
    """The condition on the user item that the way in `keeps` names is still there: ("password",
    None), ("identity", "<connection_id>#<upstream sub>") or ("passkey", its factors entry)."""
    kind, value = keeps
    if kind == "password":
        return UserModel.password_hash.exists()
    if kind == "identity":
        return UserModel.identities.contains(value)
    if kind == "passkey":
        return UserModel.factors.contains(value)
    raise ValueError(f"unknown way in {kind!r}")


def unlink(sub: str, connection_id: str, upstream_sub: str, *, keeps: tuple[str, str | None]) -> str:
    """Remove the link in one transaction: the identity claim (if it is this user's) and the
    user's entry, on condition that the way in `keeps` names remains (`_remaining`: its password,
    another identity, a passkey). "removed", "gone" (no such link) or "last" (that way in went
    meanwhile)."""
    keeps = _remaining(keeps)
    value = entry(connection_id, upstream_sub)
    key = identity_key(connection_id, upstream_sub)
    items = [TxItem("delete", "identity", lambda tx: tx.delete(IdentityClaimModel(pk=key),
                                                               condition=IdentityClaimModel.sub == sub)),
             TxItem("update", "user", lambda tx: tx.update(
                 UserModel(pk=sub), actions=[UserModel.identities.delete({value}), UserModel.updated_at.set(now())],
                 condition=UserModel.pk.exists() & UserModel.identities.contains(value) & keeps))]
    try:
        write(items)
    except Refused as refused:
        return "gone" if "identity" in refused.labels else "last"
    return "removed"


def deleting_items(sub: str, values) -> list[TxItem]:
    """The deletion of the identity claims `values` (user item entries) of user `sub`: part of an
    account deletion's transaction, so the identities are free to sign up again."""
    return [TxItem("delete", "identity", lambda tx, key=IDENTITY_PREFIX + value: tx.delete(
        IdentityClaimModel(pk=key), condition=IdentityClaimModel.sub == sub)) for value in sorted(values or ())]
