"""grant_type=authorization_code (RFC 6749 §4.1.3, OAuth 2.1 §4.1.3, RFC 7636 §4.6).

The code is consumed by one conditional UpdateItem: it succeeds only if the code exists, was issued
to this client, is unused and unexpired. Every failure is the same generic `invalid_grant`; the
reason goes to the log. A second redemption revokes the grant, and with it every token issued
from the code (RFC 6749 §4.1.2, RFC 9700 §4.2.4).
"""
from __future__ import annotations

import hmac


from ..config import Settings
from ..errors import InvalidGrant, InvalidRequest, InvalidScope, InvalidTarget
from ..hashing import sha256_hex
from ..log import get_logger, now
from ..oauth import pkce
from ..oauth.refresh_tokens import mint
from ..oauth.resources import audience, narrow, resolve, resource_less_audience, token_scopes
from ..storage.grants import active_grant, revoke_grant
from ..storage.models import AuthorizationCodeModel, ClientModel, conditionally
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
    requested_resources = form.get("resource", [])
    record = consume(code, client.client_id)
    if not hmac.compare_digest(record.redirect_uri.encode(), form["redirect_uri"].encode()):
        _reject(record, "redirect_uri mismatch")
    if not pkce.verify(form.get("code_verifier"), record.code_challenge):
        _reject(record, "PKCE verification failed")
    grant = active_grant(record.grant_id)
    if grant is None:
        # Signed out, replayed or revoked since the code was issued: nothing may come of it.
        raise InvalidGrant(GENERIC, detail=f"grant {record.grant_id} no longer active")
    user = get_user(record.sub)
    if user is None or user.disabled:
        _reject(record, "user disabled or deleted since the code was issued")
    if grant.session_generation < user.session_generation:
        # Signed out everywhere (or disabled) after the session signed in, even if re-enabled since.
        _reject(record, "user signed out everywhere since the session signed in")
    try:
        # Resolved again like /authorize's: the registrations may have changed since the code was
        # issued (deleted, made private, scopes withdrawn). From this container's cache: /authorize
        # has just read them, so a warm container makes no DynamoDB call here.
        targets = resolve(narrow(requested_resources, list(record.resources)), client,
                          max_age=settings.client_cache_seconds)
        scopes = token_scopes(list(record.scopes), targets, unverified=client.registered_dynamically)
    except (InvalidTarget, InvalidScope) as exc:
        # The code is already consumed; as for every failure after that, nothing may come of it.
        revoke_grant(record.grant_id, reason=f"the code's audience no longer allows a token: {exc.description}")
        if requested_resources:
            raise  # the client narrowed: its resource or scope is what is wrong
        raise InvalidGrant(GENERIC, detail=f"audience check failed: {exc.description}") from None
    refresh_token = mint(settings, record.grant_id, client.client_id) if wants_refresh_token(client, scopes) else None
    return issue_tokens(settings, client=client, sub=record.sub, scopes=scopes, grant_id=record.grant_id,
                        auth_time=record.auth_time, nonce=record.nonce, user=user, refresh_token=refresh_token,
                        audience=audience([t.resource for t in targets], resource_less_audience(client, settings)))


def wants_refresh_token(client: ClientModel, scopes: list[str]) -> bool:
    """Refresh tokens go to clients allowed the grant; for OpenID requests only when the user granted
    offline_access (OIDC Core §11), which the consent page spells out."""
    if "refresh_token" not in client.grant_types:
        return False
    return "openid" not in scopes or "offline_access" in scopes


def consume(code: str, client_id: str) -> AuthorizationCodeModel:
    code_hash = sha256_hex(code)
    at = now()
    record = AuthorizationCodeModel(code_hash=code_hash)
    consumed = conditionally(lambda: record.update(
            actions=[AuthorizationCodeModel.consumed_at.set(at)],
            condition=(AuthorizationCodeModel.code_hash.exists()
                       & AuthorizationCodeModel.consumed_at.does_not_exist()
                       & (AuthorizationCodeModel.expires_at > at)
                       & (AuthorizationCodeModel.client_id == client_id)),
    ))
    if not consumed:
        _explain_failure(code_hash, client_id, at)
    return record


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
