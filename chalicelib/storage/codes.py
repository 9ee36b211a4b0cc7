"""Authorization codes: issued with their grant in one transaction, redeemed with one UpdateItem.

`issue` is the single write of /authorize's answer: the grant, the code, the session's list of its
grants and, as conditions, everything that must still hold when they are written (the session is
live, the user's generation is the session's and the user is enabled, the remembered consent covers
every (audience, scope) pair asked for, the stored request is unfinished). A request that needs no
page therefore costs one read (the session) and this one write; a refused condition comes back as
an outcome naming what no longer holds.

`consume` is the single read-and-write of redemption: one conditional UpdateItem whose answer
(ALL_NEW) carries everything the token response needs. `restore` undoes a redemption whose token
response could not be made (a fault after the code was consumed), on that failure path only.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from ..hashing import new_secret, sha256_hex
from . import consents, grants as grant_store
from .models import (
    AuthorizationCodeModel,
    AuthorizationRequestModel,
    ConsentModel,
    GrantModel,
    SessionModel,
    UserModel,
    cancellation_codes,
    conditionally,
    retrying_conflicts,
    transact_write,
)

#: Transaction conflicts (another request writing the same session item) are retried a few times.
CONFLICT_RETRIES = 3
#: Consent pairs checked inside the transaction; a request asking for more is refused as "consent"
#: (asked again), which keeps the condition expression far below DynamoDB's 4 KB limit.
MAX_CONSENT_PAIRS = 40


@dataclass(frozen=True)
class Code:
    code_hash: str
    client_id: str
    redirect_uri: str
    code_challenge: str
    code_challenge_method: str
    scopes: tuple[str, ...]
    resources: tuple[str, ...]
    sub: str
    auth_time: int
    grant_id: str
    created_at: int
    expires_at: int
    nonce: str | None = None
    session_hash: str | None = None
    user_claims: dict | None = None
    consumed_at: int | None = None
    #: How the session authenticated (RFC 8176) and the acr chosen for the request (oauth/acr.py).
    amr: tuple[str, ...] = ()
    acr: str | None = None
    #: The random id of the redemption that consumed it (see AuthorizationCodeModel.redemption).
    redemption: str | None = field(default=None, compare=False, repr=False)
    #: RFC 9449 §10: the JWK thumbprint a DPoP proof at redemption must have (`dpop_jkt` at /authorize).
    dpop_jkt: str | None = None


@dataclass(frozen=True)
class Refused:
    """Why a code was not redeemed: "unknown", "other_client", "replayed", "expired" or "dpop_key"
    (bound to a DPoP key the redemption did not prove: RFC 9449 §10; the code stays unused)."""

    reason: str
    code: Code | None = None


@dataclass(frozen=True)
class NotIssued:
    """Why a code was not issued: "session" (ended), "user" (disabled or signed out everywhere),
    "consent" (not remembered for every pair) or "request" (already finished in another tab)."""

    reason: str


def _from_model(item: AuthorizationCodeModel) -> Code:
    return Code(code_hash=item.code_hash, client_id=item.client_id, redirect_uri=item.redirect_uri,
                code_challenge=item.code_challenge, code_challenge_method=item.code_challenge_method,
                scopes=tuple(item.scopes or ()), resources=tuple(item.resources or ()), sub=item.sub,
                auth_time=int(item.auth_time), grant_id=item.grant_id, created_at=int(item.created_at),
                expires_at=int(item.expires_at), nonce=item.nonce, session_hash=item.session_hash,
                user_claims=json.loads(item.user_claims) if item.user_claims else None,
                consumed_at=None if item.consumed_at is None else int(item.consumed_at),
                amr=tuple(item.amr or ()), acr=item.acr, redemption=item.redemption, dpop_jkt=item.dpop_jkt)


def _to_model(code: Code) -> AuthorizationCodeModel:
    return AuthorizationCodeModel(
        code_hash=code.code_hash, client_id=code.client_id, redirect_uri=code.redirect_uri,
        code_challenge=code.code_challenge, code_challenge_method=code.code_challenge_method,
        scopes=list(code.scopes), resources=list(code.resources), nonce=code.nonce, sub=code.sub,
        auth_time=code.auth_time, session_hash=code.session_hash, grant_id=code.grant_id,
        user_claims=json.dumps(code.user_claims, separators=(",", ":")) if code.user_claims is not None else None,
        amr=list(code.amr) or None, acr=code.acr, created_at=code.created_at, expires_at=code.expires_at,
        dpop_jkt=code.dpop_jkt)


def issue(code: Code, grant: grant_store.Grant, *, session_hash: str, session_generation: int,
          consent_pairs: set[str] | None, request_id: str | None, at: int,
          require_verified_email: bool = False) -> NotIssued | None:
    """Write the grant and its code, in one transaction, if everything named still holds.

    `consent_pairs`: the remembered consent must contain each (None: consent was just given on the
    page, and is written by the caller first). `request_id`: the stored request to finish (None: it
    was never stored). `require_verified_email`: the user's email must be verified too (refused as
    "user"), so a session's stale `email_verified` claim never gets a code past REQUIRE_VERIFIED_EMAIL."""
    if consent_pairs is not None and len(consent_pairs) > MAX_CONSENT_PAIRS:
        return NotIssued("consent")
    # pynamodb sends condition checks, deletes, puts, then updates; the reasons come back in that order.
    checked = ["user"] + (["consent"] if consent_pairs is not None else []) + (["request"] if request_id else [])
    checked += ["grant", "code", "session"]

    def write():
        with transact_write() as tx:
            user_condition = _user_unchanged(session_generation)
            if require_verified_email:
                user_condition &= UserModel.email_verified == True  # noqa: E712
            tx.condition_check(UserModel, grant.sub, condition=user_condition)
            if consent_pairs is not None:
                condition = ConsentModel.pk.exists()
                for pair in sorted(consent_pairs):
                    condition &= ConsentModel.audience_scopes.contains(pair)
                tx.condition_check(ConsentModel, consents.key(grant.sub, grant.client_id), condition=condition)
            if request_id:
                tx.delete(AuthorizationRequestModel(request_id=request_id),
                          condition=AuthorizationRequestModel.request_id.exists())
            tx.save(grant_store.to_model(grant), condition=GrantModel.grant_id.does_not_exist())
            tx.save(_to_model(code), condition=AuthorizationCodeModel.code_hash.does_not_exist())
            tx.update(SessionModel(session_hash=session_hash),
                      actions=[SessionModel.grant_ids.add({grant.grant_id})],
                      condition=SessionModel.session_hash.exists() & (SessionModel.revoked == False)  # noqa: E712
                      & (SessionModel.expires_at > at))

    from pynamodb.exceptions import TransactWriteError

    try:
        # Two codes issued at once through one session (SSO into two apps) both write the session item.
        retrying_conflicts(write, CONFLICT_RETRIES)
    except TransactWriteError as exc:
        reasons = cancellation_codes(exc)
        failed = [name for name, reason in zip(checked, reasons) if reason == "ConditionalCheckFailed"]
        # The session first: an ended session needs a sign-in whatever else changed meanwhile.
        for name in ("session", "user", "request", "consent"):
            if name in failed:
                return NotIssued(name)
        raise
    return None


def _user_unchanged(session_generation: int):
    """The user exists, is enabled, and has not been signed out everywhere since the session began."""
    enabled = UserModel.pk.exists() & (UserModel.disabled.does_not_exist() | (UserModel.disabled == False))  # noqa: E712
    if session_generation:
        return enabled & (UserModel.session_generation == session_generation)
    # Users written before the counter existed have none; it reads as 0.
    return enabled & (UserModel.session_generation.does_not_exist() | (UserModel.session_generation == 0))


def consume(code: str, client_id: str, at: int, dpop_jkt: str | None = None) -> Code | Refused:
    """Redeem a code: one conditional UpdateItem (exists, this client's, unused, unexpired, and not
    bound to a DPoP key other than `dpop_jkt`, the thumbprint of the redemption's proof: RFC 9449
    §10) that returns the code. On refusal one consistent read says why (a replay must revoke the
    grant). A redemption without the bound key changes nothing: whoever stole a bound code cannot
    spend it, so the client it was issued to still can.

    The write records a random redemption id. botocore sends a write again when its response was
    lost (a read timeout, a 5xx after DynamoDB applied it); that second attempt is refused, since the
    code is now consumed, and without the id the refusal would read as a replay and revoke the
    sign-in. With it, finding our own id on the code means the first attempt consumed it for us."""
    code_hash = sha256_hex(code)
    redemption = new_secret(12)
    item = AuthorizationCodeModel(code_hash=code_hash)
    if conditionally(lambda: item.update(
            actions=[AuthorizationCodeModel.consumed_at.set(at), AuthorizationCodeModel.redemption.set(redemption)],
            condition=(AuthorizationCodeModel.code_hash.exists()
                       & AuthorizationCodeModel.consumed_at.does_not_exist()
                       & (AuthorizationCodeModel.expires_at > at)
                       & (AuthorizationCodeModel.client_id == client_id)
                       & _key_allowed(dpop_jkt)))):
        return _from_model(item)
    try:
        existing = _from_model(AuthorizationCodeModel.get(code_hash, consistent_read=True))
    except AuthorizationCodeModel.DoesNotExist:
        return Refused("unknown")
    if existing.redemption == redemption:
        return existing  # our own write, its answer lost and the write retried by botocore
    if existing.client_id != client_id:
        return Refused("other_client", existing)
    if existing.dpop_jkt is not None and existing.dpop_jkt != dpop_jkt:
        # Before the replay check: only the key holder can have redeemed a bound code, so a replay
        # without the key proves no theft and must not let its sender revoke the grant.
        return Refused("dpop_key", existing)
    if existing.consumed_at is not None:
        return Refused("replayed", existing)
    if existing.expires_at <= at:
        return Refused("expired", existing)
    return Refused("dpop_key", existing)


def _key_allowed(dpop_jkt: str | None):
    """Unbound, or bound to the key proved (RFC 9449 §10)."""
    unbound = AuthorizationCodeModel.dpop_jkt.does_not_exist()
    return unbound if dpop_jkt is None else unbound | (AuthorizationCodeModel.dpop_jkt == dpop_jkt)


def restore(code: Code, *, family_token_hash: str | None) -> bool:
    """Undo the redemption that returned `code`, when its token response could not be made (a
    fault after the code was consumed: a KMS signature, a resource read, the grant's write): the
    code is unused again and its grant's family unstarted, so the client's retry redeems it as if
    nothing had happened, instead of looking like a replay that revokes the sign-in.

    One transaction, on the failure path only: the code loses consumed_at and its redemption id on
    condition the id is this redemption's (nobody else consumed it, and nothing else can have); the
    grant loses what `grants.start_family` wrote (last_used_at and the family's first refresh token,
    which was never delivered) on condition that token is absent or this redemption's. Before the
    redemption the grant had none of them: it is created with its code (`issue`). Its status is left
    alone: a grant revoked meanwhile stays revoked, and the retry then gets invalid_grant. False
    when a condition failed (nothing written)."""
    from pynamodb.exceptions import TransactWriteError

    try:
        with transact_write() as tx:
            tx.update(AuthorizationCodeModel(code_hash=code.code_hash),
                      actions=[AuthorizationCodeModel.consumed_at.remove(), AuthorizationCodeModel.redemption.remove()],
                      condition=AuthorizationCodeModel.redemption == code.redemption)
            grant_store.unstart_family(tx, code.sub, code.grant_id, family_token_hash)
    except TransactWriteError as exc:
        if "ConditionalCheckFailed" in cancellation_codes(exc):
            return False
        raise
    return True
