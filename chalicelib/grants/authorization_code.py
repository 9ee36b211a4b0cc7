"""grant_type=authorization_code (RFC 6749 §4.1.3, OAuth 2.1 §4.1.3, RFC 7636 §4.6).

The code is consumed by one conditional UpdateItem: it succeeds only if the code exists, was issued
to this client, is unused and unexpired. Every failure is the same generic `invalid_grant`; the
reason goes to the log. A second redemption revokes the grant, and with it every token issued
from the code (RFC 6749 §4.1.2, RFC 9700 §4.2.4).
"""
from __future__ import annotations

import hmac

from pynamodb.exceptions import UpdateError

from ..config import Settings
from ..errors import InvalidGrant, InvalidRequest
from ..hashing import sha256_hex
from ..log import get_logger, now
from ..oauth import pkce
from ..storage.models import AuthorizationCodeModel, ClientModel, GrantModel
from ..storage.users import get_user
from ..tokens.issue import issue_tokens

log = get_logger("idp.grants.authorization_code")

GENERIC = "the authorization code is invalid, expired, or was already used"


def handle(form: dict, client: ClientModel, settings: Settings) -> dict:
    code = form.get("code")
    if not code:
        raise InvalidRequest("code is required")
    if not form.get("redirect_uri"):
        raise InvalidRequest("redirect_uri is required")
    record = consume(code, client.client_id)
    if not hmac.compare_digest(record.redirect_uri.encode(), form["redirect_uri"].encode()):
        _reject(record, "redirect_uri mismatch")
    if not pkce.verify(form.get("code_verifier"), record.code_challenge):
        _reject(record, "PKCE verification failed")
    user = get_user(record.sub)
    if user is None or user.disabled:
        _reject(record, "user disabled or deleted since the code was issued")
    return issue_tokens(settings, client=client, sub=record.sub, scopes=list(record.scopes),
                        grant_id=record.grant_id, auth_time=record.auth_time, nonce=record.nonce)


def consume(code: str, client_id: str) -> AuthorizationCodeModel:
    code_hash = sha256_hex(code)
    at = now()
    record = AuthorizationCodeModel(code_hash=code_hash)
    try:
        record.update(
            actions=[AuthorizationCodeModel.consumed_at.set(at)],
            condition=(AuthorizationCodeModel.code_hash.exists()
                       & AuthorizationCodeModel.consumed_at.does_not_exist()
                       & (AuthorizationCodeModel.expires_at > at)
                       & (AuthorizationCodeModel.client_id == client_id)),
        )
    except UpdateError as exc:
        if not _is_condition_failure(exc):
            raise
        _explain_failure(code_hash, client_id, at)
    return record


def _is_condition_failure(exc) -> bool:
    return getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException"


def _explain_failure(code_hash: str, client_id: str, at: int):
    """The write failed: find out why, for the log, and revoke on replay. Always raises."""
    try:
        existing = AuthorizationCodeModel.get(code_hash, consistent_read=True)
    except AuthorizationCodeModel.DoesNotExist:
        raise InvalidGrant(GENERIC, detail="unknown code") from None
    if existing.client_id != client_id:
        raise InvalidGrant(GENERIC, detail=f"code issued to {existing.client_id}, presented by {client_id}")
    if existing.consumed_at is not None:
        revoke_grant(existing.grant_id, reason="authorization code replay")
        raise InvalidGrant(GENERIC, detail="code replayed; grant revoked")
    raise InvalidGrant(GENERIC, detail="code expired")


def _reject(record: AuthorizationCodeModel, reason: str):
    # The code is already consumed; make sure nothing issued from it survives either.
    revoke_grant(record.grant_id, reason=reason)
    raise InvalidGrant(GENERIC, detail=reason)


def revoke_grant(grant_id: str, *, reason: str) -> None:
    try:
        GrantModel(grant_id=grant_id).update(
            actions=[GrantModel.status.set("revoked"), GrantModel.revoked_at.set(now())],
            condition=GrantModel.grant_id.exists())
    except UpdateError:
        pass
    log.warning("grant revoked", extra={"grant_id": grant_id, "reason": reason})
