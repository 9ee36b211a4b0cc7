"""Device authorizations (RFC 8628) as items of the codes table, key "device#<SHA-256 of the user code>".

One item per authorization, found from either side: the /device page by the user code the person
types, the token endpoint by the device code, which carries that user code (oauth/device_flow.py)
and a secret whose SHA-256 the item keeps. Every step is one write or one read:

- `create`: one conditional PutItem (a new key, or one whose previous authorization has expired);
- `find`: one consistent GetItem (the page shows the request);
- `approve`: one transaction (the user is enabled and not signed out everywhere, the session is
  live, the grant is new, the authorization still pending and unexpired), `deny`: one conditional
  UpdateItem;
- `poll`: one conditional UpdateItem that enforces the interval and answers every outcome; a too
  early poll costs a second one, which grows the interval (slow_down); only a refusal of both reads.

Redeeming without a read first: the pending item carries `claim` "-"; approval removes it; each poll
sets `claim = if_not_exists(claim, <its random id>)`. The first poll after approval therefore writes
its own id, and every later one finds another's: of 32 polls racing on one approved device code
exactly one gets the tokens (the interval condition also lets only one of them write at all).
"""
from __future__ import annotations

import hmac
import json
from dataclasses import dataclass

from ..hashing import new_secret, sha256_hex
from . import grants as grant_store
from .models import (
    DeviceAuthorizationModel,
    GrantModel,
    SessionModel,
    UserModel,
    cancellation_codes,
    conditionally,
    transact_write,
)

#: The claim of an authorization nobody approved yet.
UNCLAIMED = "-"


def key(user_code: str) -> str:
    return f"device#{sha256_hex(user_code)}"


@dataclass(frozen=True)
class DeviceAuthorization:
    key: str
    client_id: str
    scopes: tuple[str, ...]
    resources: tuple[str, ...]
    created_at: int
    expires_at: int
    interval: int
    status: str  # "pending" | "approved" | "denied"
    sub: str | None = None
    grant_id: str | None = None
    auth_time: int | None = None
    user_claims: dict | None = None
    amr: tuple[str, ...] = ()
    acr: str | None = None
    claim: str | None = None


@dataclass(frozen=True)
class Pending:
    """authorization_pending (RFC 8628 §3.5)."""


@dataclass(frozen=True)
class SlowDown:
    """slow_down: polled before `interval` seconds had passed; the interval has grown."""

    interval: int


@dataclass(frozen=True)
class Redeemed:
    """This poll redeemed the approved authorization: the token response may be made."""

    authorization: DeviceAuthorization
    claim: str


@dataclass(frozen=True)
class Refused:
    """"unknown" (no such device code, or not this client's), "expired", "denied" or "used"."""

    reason: str


@dataclass(frozen=True)
class NotApproved:
    """Why an approval was not written: "session" (ended), "user" (disabled, signed out everywhere,
    or email unverified when that is required) or "authorization" (no longer pending, or expired)."""

    reason: str


def _from_model(item: DeviceAuthorizationModel) -> DeviceAuthorization:
    return DeviceAuthorization(
        key=item.code_hash, client_id=item.client_id, scopes=tuple(item.scopes or ()),
        resources=tuple(item.resources or ()), created_at=int(item.created_at), expires_at=int(item.expires_at),
        interval=int(item.interval), status=item.status, sub=item.sub, grant_id=item.grant_id,
        auth_time=None if item.auth_time is None else int(item.auth_time),
        user_claims=json.loads(item.user_claims) if item.user_claims else None, amr=tuple(item.amr or ()),
        acr=item.acr, claim=item.claim)


def create(user_code: str, secret: str, *, client_id: str, scopes, resources, at: int, expires_at: int,
           interval: int) -> bool:
    """Store a new authorization; False when its user code belongs to a live one (pick another).
    An expired one with the same code (TTL deletion lags) is replaced."""
    item = DeviceAuthorizationModel(
        code_hash=key(user_code), secret_hash=sha256_hex(secret), client_id=client_id, scopes=list(scopes),
        resources=list(resources), created_at=at, expires_at=expires_at, interval=interval, next_poll_at=at,
        status="pending", claim=UNCLAIMED)
    return conditionally(lambda: item.save(
        condition=DeviceAuthorizationModel.code_hash.does_not_exist() | (DeviceAuthorizationModel.expires_at <= at)))


def find(user_code: str, at: int) -> DeviceAuthorization | None:
    """The live authorization of a user code (None: unknown or expired), read consistently: the
    user types the code seconds after the device asked for it."""
    try:
        item = DeviceAuthorizationModel.get(key(user_code), consistent_read=True)
    except DeviceAuthorizationModel.DoesNotExist:
        return None
    found = _from_model(item)
    return found if found.expires_at > at else None


def approve(user_code: str, grant: grant_store.Grant, *, session_hash: str, session_generation: int, at: int,
            require_verified_email: bool = False) -> NotApproved | None:
    """The user allowed the device: in one transaction the grant is written and the authorization
    approved with everything the token response needs, if the user is still enabled (and not signed
    out everywhere since the session began), the session still live, and the authorization still
    pending and unexpired. The grant is not added to the session's grants: signing out of the phone
    that approved a television does not sign the television out (signing out everywhere does:
    grants.revoke_all_of_user)."""
    from pynamodb.exceptions import TransactWriteError

    from .codes import _user_unchanged

    user_condition = _user_unchanged(session_generation)
    if require_verified_email:
        user_condition &= UserModel.email_verified == True  # noqa: E712
    model = DeviceAuthorizationModel
    # pynamodb sends condition checks, puts, then updates; the reasons come back in that order.
    checked = ["user", "session", "grant", "authorization"]
    try:
        with transact_write() as tx:
            tx.condition_check(UserModel, grant.sub, condition=user_condition)
            tx.condition_check(SessionModel, session_hash,
                               condition=SessionModel.session_hash.exists() & (SessionModel.revoked == False)  # noqa: E712
                               & (SessionModel.expires_at > at))
            tx.save(grant_store.to_model(grant), condition=GrantModel.grant_id.does_not_exist())
            tx.update(model(code_hash=key(user_code)),
                      actions=[model.status.set("approved"), model.claim.remove(), model.sub.set(grant.sub),
                               model.grant_id.set(grant.grant_id), model.auth_time.set(grant.auth_time),
                               model.user_claims.set(json.dumps(grant.user_claims, separators=(",", ":"))),
                               model.amr.set(list(grant.amr) or None), model.acr.set(grant.acr),
                               model.scopes.set(list(grant.scopes)), model.resources.set(list(grant.resources))],
                      condition=model.code_hash.exists() & (model.status == "pending") & (model.expires_at > at)
                      & (model.client_id == grant.client_id))
    except TransactWriteError as exc:
        failed = [name for name, reason in zip(checked, cancellation_codes(exc)) if reason == "ConditionalCheckFailed"]
        for name in ("session", "user", "authorization"):
            if name in failed:
                return NotApproved(name)
        raise
    return None


def deny(user_code: str, at: int) -> bool:
    """The user refused: the device's next poll gets access_denied. False when it was no longer pending."""
    model = DeviceAuthorizationModel
    return conditionally(lambda: model(code_hash=key(user_code)).update(
        actions=[model.status.set("denied")],
        condition=model.code_hash.exists() & (model.status == "pending") & (model.expires_at > at)))


def poll(user_code: str, secret: str, client_id: str, at: int, *, slow_down_step: int):
    """One poll of the token endpoint: Pending, SlowDown, Redeemed or Refused.

    First write: if the device code's secret and client match, it has not expired and the interval
    has passed, note the poll (the next may come `interval` seconds later) and claim the
    authorization if approved and unclaimed; ALL_NEW says which outcome it was. Refused: the second
    write grows the interval by `slow_down_step` if the only thing wrong was polling too early;
    refused again, one consistent read says why.

    A claim equal to this poll's id means this poll redeemed it, also when botocore resent the first
    write after its answer was lost (the resend is then refused as too early, and the second write's
    answer shows our claim)."""
    model = DeviceAuthorizationModel
    claim = new_secret(12)
    item = model(code_hash=key(user_code))
    matches = model.code_hash.exists() & (model.secret_hash == sha256_hex(secret)) & (model.client_id == client_id) \
        & (model.expires_at > at)
    if conditionally(lambda: item.update(
            actions=[model.next_poll_at.set(model.interval + at), model.claim.set(model.claim | claim)],
            condition=matches & (model.next_poll_at <= at))):
        return _answer(_from_model(item), claim)
    if conditionally(lambda: item.update(
            actions=[model.interval.set(model.interval + slow_down_step),
                     model.next_poll_at.set(model.interval + (at + slow_down_step))],
            condition=matches & (model.next_poll_at > at))):
        found = _from_model(item)
        return Redeemed(found, claim) if found.claim == claim else SlowDown(found.interval)
    try:
        stored = model.get(key(user_code), consistent_read=True)
    except model.DoesNotExist:
        return Refused("unknown")
    found = _from_model(stored)
    if found.client_id != client_id or not hmac.compare_digest(stored.secret_hash, sha256_hex(secret)):
        return Refused("unknown")
    if found.expires_at <= at:
        return Refused("expired")
    # The interval passed between the two writes: tell the device to keep polling.
    return SlowDown(found.interval)


def _answer(found: DeviceAuthorization, claim: str):
    if found.status == "denied":
        return Refused("denied")
    if found.status == "approved":
        return Redeemed(found, claim) if found.claim == claim else Refused("used")
    return Pending()


def restore(redeemed: Redeemed, *, family_token_hash: str | None) -> bool:
    """Undo a redemption whose token response could not be made (a fault after the poll claimed it):
    the authorization is unclaimed again and its grant's family unstarted, so the device's next poll
    redeems it (as storage/codes.restore does for a code). On the failure path only. False when a
    condition failed (nothing written)."""
    from pynamodb.exceptions import TransactWriteError

    model = DeviceAuthorizationModel
    found = redeemed.authorization
    try:
        with transact_write() as tx:
            tx.update(model(code_hash=found.key), actions=[model.claim.remove()],
                      condition=model.claim == redeemed.claim)
            grant_store.unstart_family(tx, found.sub, found.grant_id, family_token_hash)
    except TransactWriteError as exc:
        if "ConditionalCheckFailed" in cancellation_codes(exc):
            return False
        raise
    return True
