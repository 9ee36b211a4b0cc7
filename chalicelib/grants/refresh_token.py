"""grant_type=refresh_token (RFC 6749 §6): rotate, then issue. Scope and resources may be narrowed,
never widened; both are checked before the token is consumed so a bad request costs nothing.
Refreshed tokens also stay within what the client may ask for now (oauth/clients.allowed_scopes):
a scope withdrawn from unverified clients is not refreshed into new tokens."""
from __future__ import annotations

from ..config import Settings
from ..errors import InvalidGrant, InvalidRequest, InvalidScope
from ..oauth import refresh_tokens, scopes
from ..oauth.clients import allowed_scopes
from ..oauth.resources import audience, narrow, registered, token_scopes
from ..storage.grants import active_grant, revoke_grant
from ..storage.models import ClientModel
from ..storage.users import get_user
from ..tokens.issue import issue_tokens


def handle(form: dict, client: ClientModel, settings: Settings) -> dict:
    token = form.get("refresh_token")
    if not token:
        raise InvalidRequest("refresh_token is required")
    requested_scopes = scopes.parse(form.get("scope"))
    requested_resources = form.get("resource", [])
    allowed = allowed_scopes(client, settings)
    scopes.require_subset(requested_scopes, allowed)
    if requested_scopes or requested_resources:
        grant_id, _ = refresh_tokens.split(token)
        current = active_grant(grant_id)
        if current is None or current.client_id != client.client_id:
            raise InvalidGrant(refresh_tokens.GENERIC, detail="grant inactive before rotation")
        _narrowed(requested_scopes, requested_resources, current, settings, allowed)
    grant, successor = refresh_tokens.rotate(settings, token, client.client_id)
    user = get_user(grant.sub)
    if user is None or user.disabled:
        revoke_grant(grant.grant_id, reason="user disabled or deleted")
        raise InvalidGrant(refresh_tokens.GENERIC, detail="user disabled")
    if grant.session_generation < user.session_generation:
        # Signed out everywhere after this family began: the by_sub index may have missed it.
        revoke_grant(grant.grant_id, reason="user signed out everywhere")
        raise InvalidGrant(refresh_tokens.GENERIC, detail="grant older than the user's session generation")
    granted_scopes, resources = _narrowed(requested_scopes, requested_resources, grant, settings, allowed)
    # OIDC Core §12.2: a refreshed ID token keeps auth_time and carries no nonce.
    return issue_tokens(settings, client=client, sub=grant.sub, scopes=granted_scopes, grant_id=grant.grant_id,
                        auth_time=grant.auth_time, nonce=None, user=user, refresh_token=successor,
                        audience=audience(resources, settings.default_audience))


def _narrowed(requested_scopes: list[str], requested_resources: list[str], grant, settings: Settings,
              allowed: list[str]):
    """(scopes, resources) of the new token: what was asked for, within the grant and within what
    the client may ask for now (`allowed`). A narrowed token carries only the scopes its audience
    defines (RFC 8707 §2.2); a plain refresh keeps the grant's scopes and needs no registration lookup."""
    wider = [s for s in requested_scopes if s not in grant.scopes]
    if wider:
        # RFC 6749 §6: the requested scope "MUST NOT include any scope not originally granted".
        raise InvalidScope(f"scope exceeds the original grant: {' '.join(wider)}")
    resources = narrow(requested_resources, list(grant.resources))
    granted_scopes = requested_scopes or [s for s in grant.scopes if s in allowed]
    if resources and (requested_scopes or requested_resources):
        granted_scopes = token_scopes(granted_scopes, registered(resources, max_age=settings.client_cache_seconds))
    return granted_scopes, resources
