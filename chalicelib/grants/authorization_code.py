"""grant_type=authorization_code (RFC 6749 §4.1.3, OAuth 2.1 §4.1.3, RFC 7636 §4.6).

The code is consumed by one conditional UpdateItem: it succeeds only if the code exists, was issued
to this client, is unused and unexpired. Every failure is the same generic `invalid_grant`; the
reason goes to the log. A second redemption revokes the grant, and with it every token issued
from the code (RFC 6749 §4.1.2, RFC 9700 §4.2.4). So a fault must not make the client's retry one:
the signer is loaded before the code is consumed, and a failure after it (KMS, DynamoDB) puts the
code back (chalicelib/undo.py) before the 503.
"""
from __future__ import annotations

import hmac

from ..config import Settings
from ..errors import InvalidGrant, InvalidRequest, InvalidScope, InvalidTarget
from ..keys import keyring
from ..log import get_logger, now
from ..oauth import dpop_binding, pkce, refresh_tokens
from ..oauth.resources import audience, narrow, resolve, resource_less_audience, token_scopes
from ..storage import codes, grants
from ..tokens.issue import issue_tokens
from ..undo import undone_on_failure

log = get_logger("idp.grants.authorization_code")

GENERIC = "the authorization code is invalid, expired, or was already used"
#: RFC 9449 §10: "If they do not match, it MUST reject the request." The code stays unused.
KEY_MISMATCH = "the authorization code is bound to a DPoP key (dpop_jkt) this request did not prove"


def handle(form: dict, client, settings: Settings, proof=None) -> dict:
    """Two DynamoDB calls: the code's conditional consumption (which returns everything the response
    needs) and the grant's conditional update (active; it records the family's first refresh token).
    The user is not read: the transaction that issued the code checked them, and disabling a user or
    signing them out everywhere revokes their grants (chalicelib/storage/grants.revoke_all_of_user)."""
    code = form.get("code")
    if not code:
        raise InvalidRequest("code is required")
    if not form.get("redirect_uri"):
        raise InvalidRequest("redirect_uri is required")
    requested_resources = form.get("resource", [])
    # Before the code is spent: a Secrets Manager fault here costs the client nothing.
    signer = keyring.current_signer()
    at = now()
    # A code bound with dpop_jkt is consumed only for a proof of that key (RFC 9449 §10), by the
    # same conditional write: a wrong key or none leaves the code as it was.
    record = codes.consume(code, client.client_id, at, dpop_jkt=proof.jkt if proof is not None else None)
    if isinstance(record, codes.Refused):
        _refused(record)
    if not hmac.compare_digest(record.redirect_uri.encode(), form["redirect_uri"].encode()):
        _reject(record, "redirect_uri mismatch")
    if not pkce.verify(form.get("code_verifier"), record.code_challenge):
        _reject(record, "PKCE verification failed")
    # Minted before anything can fail, so that undoing the redemption knows the family it started.
    refresh_token = refresh_tokens.new_token(record.sub, record.grant_id)
    # Anything failing from here on but a refusal (a KMS signature, DynamoDB) puts the code back.
    with undone_on_failure(lambda: codes.restore(record, family_token_hash=refresh_tokens.token_hash(refresh_token)),
                           what="authorization code", grant_id=record.grant_id):
        return _redeemed(record, client, settings, signer, requested_resources, at, refresh_token, proof)


def _redeemed(record: codes.Code, client, settings: Settings, signer, requested_resources: list[str], at: int,
              refresh_token: str | None, proof=None) -> dict:
    """The token response of a consumed code: audience, the grant's family, the tokens."""
    try:
        # Resolved again like /authorize's: the registrations may have changed since the code was
        # issued (deleted, made private, scopes withdrawn). From this container's cache: /authorize
        # has just read them, so a warm container makes no DynamoDB call here.
        targets = resolve(narrow(requested_resources, list(record.resources)), client,
                          max_age=settings.client_cache_seconds)
        scopes = token_scopes(list(record.scopes), targets, unverified=client.registered_dynamically)
    except (InvalidTarget, InvalidScope) as exc:
        # The code is already consumed; as for every failure after that, nothing may come of it.
        grants.revoke(record.sub, record.grant_id,
                      reason=f"the code's audience no longer allows a token: {exc.description}")
        if requested_resources:
            raise  # the client narrowed: its resource or scope is what is wrong
        raise InvalidGrant(GENERIC, detail=f"audience check failed: {exc.description}") from None
    refresh_token = refresh_token if wants_refresh_token(client, scopes) else None
    started = grants.start_family(
        record.sub, record.grant_id, client.client_id, at=at,
        token_hash=refresh_tokens.token_hash(refresh_token) if refresh_token else None,
        token_expires_at=at + settings.refresh_token_idle_ttl if refresh_token else None,
        dpop_jkt=refresh_tokens.family_key(client, proof))
    if not started:
        # Signed out, replayed or revoked since the code was issued: nothing may come of it.
        raise InvalidGrant(GENERIC, detail=f"grant {record.grant_id} no longer active")
    return issue_tokens(settings, client=client, sub=record.sub, scopes=scopes, grant_id=record.grant_id,
                        auth_time=record.auth_time, nonce=record.nonce, user_claims=record.user_claims,
                        acr=record.acr, amr=record.amr, session_hash=record.session_hash,
                        refresh_token=refresh_token, signer=signer, cnf=dpop_binding.confirmation(proof),
                        audience=audience([t.resource for t in targets], resource_less_audience(client, settings)))


def wants_refresh_token(client, scopes: list[str]) -> bool:
    """Refresh tokens go to clients allowed the grant; for OpenID requests only when the user granted
    offline_access (OIDC Core §11), which the consent page spells out."""
    if "refresh_token" not in client.grant_types:
        return False
    return "openid" not in scopes or "offline_access" in scopes


def _refused(refusal: codes.Refused):
    """Why the code was not consumed, for the log; a replay revokes the grant. Always raises."""
    if refusal.reason == "replayed":
        grants.revoke(refusal.code.sub, refusal.code.grant_id, reason="authorization code replay")
        raise InvalidGrant(GENERIC, detail="code replayed; grant revoked")
    if refusal.reason == "dpop_key":
        raise InvalidGrant(KEY_MISMATCH, detail="code bound to another DPoP key (or the request had no proof)")
    detail = {"unknown": "unknown code", "expired": "code expired"}.get(refusal.reason)
    if refusal.reason == "other_client":
        detail = f"code issued to {refusal.code.client_id}"
    raise InvalidGrant(GENERIC, detail=detail)


def _reject(record: codes.Code, reason: str):
    # The code is already consumed; make sure nothing issued from it survives either.
    grants.revoke(record.sub, record.grant_id, reason=reason)
    raise InvalidGrant(GENERIC, detail=reason)
