"""grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer (RFC 7523 §2.1) for ID-JAGs
(draft-ietf-oauth-identity-assertion-authz-grant §"Access Token Request"): this server as the
resource authorization server of another trust domain's IdP.

A confidential client (the draft's §"Client Authentication": SHOULD only be supported for them; it
also keeps anyone who only holds an ID-JAG from using it) presents an ID-JAG in `assertion`. In order:
1. trusted_issuers.verify: typ `oauth-id-jag+jwt`, an issuer trusted for "id-jag" (never this server
   itself: §"Cross-Domain Use"), its signature, exp/iat;
2. id_jag.check_id_jag_claims: `aud` our issuer (string or one-element array), `client_id` the
   authenticated client, jti, sub; RFC 7523 §3 items 1-7;
3. the access: `resource` and `scope` of the ID-JAG, narrowed by the request's own `resource` and
   `scope` (never widened: RFC 7523 §2.1's scope must be within what the IdP granted), against our
   resource registry and the client's registration (§"Processing Rules": the RAS "evaluates ... based
   on policy"), refused rather than silently cut (invalid_target, invalid_scope);
4. the subject: the connection's `subject_mapping` names the local user, "identity" the user its
   identity is linked to, "email" the user holding the ID-JAG's email in one of the connection's
   trusted_email_domains; a user that is unknown, disabled or deleted is invalid_grant (no JIT
   provisioning here: an account is made by signing in through the connection);
5. the `jti`, used once (storage/used_jtis.py: one conditional PutItem), last, after the access
   token is signed, so a refused request or a fault (KMS, DynamoDB) leaves the ID-JAG usable;
6. an access token only, no refresh token (§"Refresh Token": the RAS SHOULD NOT return one; a client
   gets a fresh ID-JAG from the IdP instead).
DynamoDB: 3 calls (the identity claim or email claim, the user, the jti); the client, connections,
resources and the issuer's keys come from container caches.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..capabilities import IDENTITY_SCOPES
from ..config import Settings
from ..errors import InvalidGrant, InvalidRequest, InvalidScope, UnauthorizedClient, UntrustedJwt
from ..federation import home_realm, trusted_issuers
from ..log import get_logger, now
from ..oauth import dpop_binding, id_jag, scopes
from ..oauth.clients import allowed_scopes
from ..oauth.resources import audience, check_scopes, narrow, resolve, resource_less_audience
from ..tokens.issue import issue_tokens

if TYPE_CHECKING:
    from ..federation.connections import Connection
    from ..storage.clients import Client

log = get_logger("idp.id_jag")


def handle(form: dict, client: Client, settings: Settings, proof=None) -> dict:
    from ..storage import used_jtis

    if client.client_type != "confidential":
        raise UnauthorizedClient("the jwt-bearer grant is for confidential clients only")
    assertion = form.get("assertion")
    if not assertion:
        raise InvalidRequest("assertion is required")
    try:
        connection, claims = trusted_issuers.verify(assertion, settings, purpose="id-jag", typ=id_jag.TYP)
    except UntrustedJwt as exc:
        raise InvalidGrant(exc.description, detail=f"{exc.reason}: {exc.detail}") from None
    grant = id_jag.check_id_jag_claims(claims, issuer=settings.issuer, client_id=client.client_id, now=now())
    if not home_realm.allows(client.connections, connection.connection_id):
        raise InvalidGrant("this client's users may not come in through that issuer",
                           detail=f"connection={connection.connection_id}")
    targets = resolve(narrow(form.get("resource", []), list(grant.resources)), client,
                      max_age=settings.client_cache_seconds)
    granted = _scopes(form.get("scope"), grant, client, settings)
    check_scopes(granted, targets)
    sub = local_subject(connection, grant)
    # Signed before the jti is used, and handed out only after: a fault of the signature (KMS) or of
    # the write leaves the ID-JAG unspent for the client's retry, with nothing to undo; on a replay
    # the token is thrown away unseen.
    response = issue_tokens(settings, client=client, sub=sub, scopes=granted, grant_id=None, auth_time=None,
                            nonce=None, cnf=dpop_binding.confirmation(proof),
                            audience=audience([t.resource for t in targets], resource_less_audience(client, settings)))
    # Kept while the ID-JAG would pass (exp plus the leeway), so TTL cannot reopen it to a replay.
    if not used_jtis.use("id_jag", grant.issuer, grant.jti, grant.expires_at + id_jag.LEEWAY):
        raise InvalidGrant("the ID-JAG was used already", detail=f"iss={grant.issuer} jti={grant.jti}")
    log.info("ID-JAG redeemed", extra={"client_id": client.client_id, "sub": sub, "iss": grant.issuer,
                                       "upstream_sub": grant.subject, "jti": grant.jti,
                                       "connection": connection.connection_id, "scope": " ".join(granted)})
    return response


def _scopes(requested: str | None, grant: id_jag.IdJagGrant, client: Client, settings: Settings) -> list[str]:
    """The ID-JAG's scopes, or the request's subset of them; each one the client is registered for
    here. No identity scope: this grant issues no ID token and no userinfo access for the IdP's user."""
    asked = scopes.parse(requested)
    wider = [s for s in asked if s not in grant.scopes]
    if wider:
        raise InvalidScope(f"scope beyond what the ID-JAG grants: {' '.join(wider)}")
    granted = asked or list(grant.scopes)
    if not granted:
        raise InvalidScope("the ID-JAG grants no scope")
    if any(s in IDENTITY_SCOPES for s in granted):
        raise InvalidScope("identity scopes cannot be granted by an ID-JAG")
    return scopes.require_subset(granted, allowed_scopes(client, settings))


def local_subject(connection: Connection, grant: id_jag.IdJagGrant) -> str:
    """The local user the ID-JAG's subject is (trusted_issuers.local_user); InvalidGrant when there is
    none, or it is disabled or deleted."""
    sub = trusted_issuers.local_user(connection, subject=grant.subject, email=grant.email,
                                     email_verified=grant.email_verified)
    if sub is None:
        raise InvalidGrant("the ID-JAG's subject is not known here",
                           detail=f"connection={connection.connection_id} upstream_sub={grant.subject} "
                                  f"mapping={connection.subject_mapping}")
    return sub
