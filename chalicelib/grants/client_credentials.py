"""grant_type=client_credentials (RFC 6749 §4.4): a confidential client acting for itself.

No user, so no ID token, no identity scopes and no refresh token (§4.4.3). With the client and the
resources cached per container, issuing needs no DynamoDB call at all.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..capabilities import IDENTITY_SCOPES
from ..config import Settings
from ..errors import InvalidScope, UnauthorizedClient
from ..oauth import dpop_binding, scopes
from ..oauth.clients import allowed_scopes
from ..oauth.resources import audience, check_scopes, default_scopes, resolve, resource_less_audience
from ..tokens.issue import issue_tokens

if TYPE_CHECKING:
    from ..storage.clients import Client


def handle(form: dict, client: Client, settings: Settings, proof=None) -> dict:
    if client.client_type != "confidential":
        raise UnauthorizedClient("client_credentials is for confidential clients only")
    allowed = [s for s in allowed_scopes(client, settings) if s not in IDENTITY_SCOPES]
    requested = scopes.parse(form.get("scope"))
    if any(s in IDENTITY_SCOPES for s in requested):
        raise InvalidScope("identity scopes need a user; client_credentials has none")
    targets = resolve(form.get("resource", []), client, max_age=settings.client_cache_seconds)
    # Only admin-created clients get here (registration and documents offer no client_credentials);
    # `unverified` keeps the rule of oauth/resources.resource_less_audience should that change.
    unverified = client.registered_dynamically
    granted = (scopes.require_subset(requested, allowed) if requested
               else default_scopes(allowed, targets, unverified=unverified))
    check_scopes(granted, targets, unverified=unverified)
    return issue_tokens(settings, client=client, sub=client.client_id, scopes=granted, grant_id=None,
                        auth_time=None, nonce=None, cnf=dpop_binding.confirmation(proof),
                        audience=audience([t.resource for t in targets], resource_less_audience(client, settings)))
