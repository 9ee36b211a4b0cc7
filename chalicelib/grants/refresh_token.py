"""grant_type=refresh_token (RFC 6749 §6): rotate, then issue. Scope and resources may be narrowed,
never widened; both are checked before the token is consumed so a bad request costs nothing.
Refreshed tokens also stay within what the client may ask for now (oauth/clients.allowed_scopes):
a scope withdrawn from unverified clients is not refreshed into new tokens; and within what is
registered now: every refresh resolves the grant's resources again as /authorize would (deleted,
made private to an unverified client, or off the client's list: refused), and each audience keeps
only the scopes it still defines.

Reuse of a rotated token revokes the family (oauth/refresh_tokens.py), so a fault must not turn the
client's retry into reuse: the signer is loaded before the rotation, and a failure after it (a KMS
signature, DynamoDB) puts the family back as it was (chalicelib/undo.py) before the 503.

DPoP (RFC 9449 §5): a public client's family is bound to its proof's key, and the rotation's one
conditional write refuses a refresh with another key or none (oauth/refresh_tokens.py); the new
access token is bound to the key the request proves."""
from __future__ import annotations

from ..config import Settings
from ..errors import InvalidGrant, InvalidRequest, InvalidScope, InvalidTarget
from ..keys import keyring
from ..oauth import dpop_binding, refresh_tokens, scopes
from ..oauth.clients import allowed_scopes
from ..oauth.resources import audience, narrow, resolve, resource_less_audience, token_scopes
from ..storage import grants
from ..tokens.issue import issue_tokens
from ..undo import undone_on_failure


def handle(form: dict, client, settings: Settings, proof=None) -> dict:
    """One DynamoDB call for a plain refresh (the rotation's conditional update returns the grant).
    The user is not read: disabling a user or signing them out everywhere revokes every grant of
    theirs (a strongly consistent query, storage/grants.revoke_all_of_user), and a grant is never
    created for a user already disabled (storage/codes.issue checks the user in its transaction)."""
    token = form.get("refresh_token")
    if not token:
        raise InvalidRequest("refresh_token is required")
    requested_scopes = scopes.parse(form.get("scope"))
    requested_resources = form.get("resource", [])
    allowed = allowed_scopes(client, settings)
    scopes.require_subset(requested_scopes, allowed)
    if requested_scopes or requested_resources:
        sub, grant_id, _ = refresh_tokens.parse(token)
        current = grants.active(sub, grant_id)
        if current is None or current.client_id != client.client_id:
            raise InvalidGrant(refresh_tokens.GENERIC, detail="grant inactive before rotation")
        _narrowed(requested_scopes, requested_resources, current, client, settings, allowed)
    # Before the token is spent: a Secrets Manager fault here costs the client nothing.
    signer = keyring.current_signer()
    grant, successor = refresh_tokens.rotate(settings, token, client.client_id,
                                             dpop_jkt=proof.jkt if proof is not None else None,
                                             bind_dpop_key=refresh_tokens.family_key(client, proof) is not None)
    # Anything failing from here on but a refusal (a KMS signature) puts the family back as it was.
    with undone_on_failure(lambda: grants.undo_rotation(grant), what="refresh token", grant_id=grant.grant_id):
        return _rotated(grant, successor, signer, requested_scopes, requested_resources, client, settings, allowed,
                        proof)


def _rotated(grant: grants.Grant, successor: str, signer, requested_scopes: list[str],
             requested_resources: list[str], client, settings: Settings, allowed: list[str], proof=None) -> dict:
    """The token response of a rotated family: audience, scopes, the tokens."""
    try:
        granted_scopes, resources = _narrowed(requested_scopes, requested_resources, grant, client, settings,
                                              allowed)
    except (InvalidTarget, InvalidScope) as exc:
        # Rotation is one blind update, so for a plain refresh this is the first look at the
        # registrations (a narrowing request was checked before it). The grant's audience is gone,
        # private to this unverified client, off its list, or left without a scope: a plain refresh
        # asks for exactly that audience, so the family cannot yield a valid token any more, and the
        # successor just minted must not outlive this answer. End the family; the client starts over.
        grants.revoke(grant.sub, grant.grant_id,
                      reason=f"the grant's audience no longer allows a token: {exc.description}")
        raise InvalidGrant(refresh_tokens.GENERIC, detail=f"audience check failed: {exc.description}") from None
    # OIDC Core §12.2: a refreshed ID token keeps auth_time (and acr, amr) and carries no nonce.
    return issue_tokens(settings, client=client, sub=grant.sub, scopes=granted_scopes, grant_id=grant.grant_id,
                        auth_time=grant.auth_time, nonce=None, user_claims=grant.user_claims,
                        acr=grant.acr, amr=grant.amr, session_hash=grant.session_hash,
                        refresh_token=successor, signer=signer, cnf=dpop_binding.confirmation(proof),
                        audience=audience([r.resource for r in resources], resource_less_audience(client, settings)))


def _narrowed(requested_scopes: list[str], requested_resources: list[str], grant, client,
              settings: Settings, allowed: list[str]):
    """(scopes, resource registrations) of the new token: what was asked for, within the grant,
    within what the client may ask for now (`allowed`) and within what is registered now. The
    resources are resolved like /authorize's, from this container's cache (no DynamoDB call on a
    warm container), and the token carries only the scopes its audience defines (RFC 8707 §2.2)."""
    wider = [s for s in requested_scopes if s not in grant.scopes]
    if wider:
        # RFC 6749 §6: the requested scope "MUST NOT include any scope not originally granted".
        raise InvalidScope(f"scope exceeds the original grant: {' '.join(wider)}")
    targets = resolve(narrow(requested_resources, list(grant.resources)), client,
                      max_age=settings.client_cache_seconds)
    granted_scopes = requested_scopes or [s for s in grant.scopes if s in allowed]
    return token_scopes(granted_scopes, targets, unverified=client.registered_dynamically), targets
