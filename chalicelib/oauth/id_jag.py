"""Identity Assertion JWT Authorization Grants (ID-JAG), draft-ietf-oauth-identity-assertion-authz-grant
(followed: the editor's copy after -03, April 2026), on both sides.

As the IdP (`exchange`, reached from token exchange, RFC 8693, with
requested_token_type=urn:ietf:params:oauth:token-type:id-jag): a confidential client trades an ID token
we issued to it for a short-lived signed JWT (typ `oauth-id-jag+jwt`) addressed to another trust
domain's authorization server (`aud` = its issuer), naming the user (`sub`, our public subject, the
one our ID tokens give that authorization server too), the client's identity there (`client_id`) and
the access it may have (`resource`, `scope`). What a client may obtain is the operator's exchange
policy of kind "id_jag" (chalicelib/oauth/exchange_policy.py): one per downstream issuer, with its
resources, scopes and the client's downstream client_id. §"Token Exchange" / "Processing Rules":
- the subject token must be an ID token we issued, unexpired, whose `aud` is the authenticated
  client ("MUST validate that the audience of the assertion ... matches the client_id");
- `audience` is REQUIRED and must be a policy's downstream issuer (else invalid_target);
- requested resources and scopes must be within the policy (never silently widened: a request
  beyond it is refused, invalid_target / invalid_scope); without them, the policy's;
- the response is RFC 8693 §2.2's, `issued_token_type` the ID-JAG token type, `token_type` "N_A",
  and no refresh token ("SHOULD NOT be used").
Errors about the subject token are invalid_request (RFC 8693 §2.2.2).

As the resource authorization server (`check_id_jag_claims`, for chalicelib/grants/jwt_bearer.py,
after chalicelib/federation/trusted_issuers.verify checked typ, issuer and signature), §"Access
Token Request" / "Processing Rules": `aud` is our issuer, as a string or a one-element array (else
invalid_grant: audience injection); `client_id` is the authenticated client; `jti` present (the grant
makes it single-use); `resource` and `scope` read for the caller to narrow.
"""
from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..capabilities import ID_JAG_TOKEN_TYPE, ID_TOKEN_TYPE, IDENTITY_SCOPES
from ..config import Settings
from ..errors import InvalidGrant, InvalidRequest, InvalidScope, InvalidTarget, UnauthorizedClient
from ..log import get_logger
from . import exchange_policy, id_tokens, scopes as scope_syntax

if TYPE_CHECKING:
    from ..storage.clients import Client

log = get_logger("idp.id_jag")

#: §"ID-JAG Claims": "The typ of the JWT indicated in the JWT header MUST be oauth-id-jag+jwt".
TYP = "oauth-id-jag+jwt"
#: Longest lifetime accepted in an ID-JAG we redeem (exp - now): it is meant to be used at once, and
#: its used-jti record lives until it expires.
MAX_LIFETIME = 3600
#: Seconds of clock difference tolerated on iat/exp of a redeemed ID-JAG.
LEEWAY = 60
MAX_JTI_LENGTH = 256
MAX_SUBJECT_LENGTH = 255


# Pure --------------------------------------------------------------------------------------------

def id_jag_claims(*, issuer: str, sub: str, audience: str, client_id: str, jti: str, iat: int, ttl: int,
                  resources=(), scopes=(), auth_time: int | None = None, acr: str | None = None, amr=(),
                  email: str | None = None, email_verified: bool | None = None) -> dict:
    """§"ID-JAG Claims": the REQUIRED iss, sub, aud, client_id, jti, exp, iat; `resource` (a string
    for one, an array for several) and `scope` when granted; the user's authentication (auth_time,
    acr, amr) as the ID token had it; `email` (RECOMMENDED, for subject resolution) only when the ID
    token released it to the client anyway."""
    claims = {"iss": issuer, "sub": sub, "aud": audience, "client_id": client_id, "jti": jti,
              "iat": iat, "exp": iat + ttl}
    if resources:
        claims["resource"] = resources[0] if len(resources) == 1 else list(resources)
    if scopes:
        claims["scope"] = " ".join(scopes)
    if auth_time is not None:
        claims["auth_time"] = auth_time
    if acr:
        claims["acr"] = acr
    if amr:
        claims["amr"] = list(amr)
    if email:
        claims["email"] = email
        if email_verified is not None:
            claims["email_verified"] = email_verified
    return claims


@dataclass(frozen=True)
class IdJagGrant:
    """What a verified ID-JAG grants, for the jwt-bearer grant to narrow."""

    issuer: str
    subject: str
    jti: str
    expires_at: int
    resources: tuple[str, ...]
    scopes: tuple[str, ...]
    email: str | None
    email_verified: bool | None


def check_id_jag_claims(claims: dict, *, issuer: str, client_id: str, now: int) -> IdJagGrant:
    """The checks of §"Access Token Request" that are not the signature's (trusted_issuers.verify):
    InvalidGrant naming the first that fails."""
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    # "If the aud claim is an array, it MUST contain exactly one element, and that element MUST be
    # the issuer identifier of the Resource Authorization Server."
    if len(audiences) != 1 or not isinstance(audiences[0], str) or audiences[0] != issuer:
        raise InvalidGrant("the ID-JAG is not for this authorization server", detail=f"aud={aud!r}")
    named = claims.get("client_id")
    # "The client_id claim MUST identify the same client as the client authentication in the request."
    if not isinstance(named, str) or not hmac.compare_digest(named.encode(), client_id.encode()):
        raise InvalidGrant("the ID-JAG was issued for another client", detail=f"client_id={named!r}")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_LENGTH:
        raise InvalidGrant("the ID-JAG has no valid jti")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > MAX_SUBJECT_LENGTH or not sub.isascii():
        raise InvalidGrant("the ID-JAG has no valid sub")
    exp, iat = claims.get("exp"), claims.get("iat")
    if not _number(exp) or not _number(iat):
        raise InvalidGrant("the ID-JAG needs numeric exp and iat")
    if exp <= now - LEEWAY:
        raise InvalidGrant("the ID-JAG has expired")
    if iat > now + LEEWAY:
        raise InvalidGrant("the ID-JAG is not valid yet")
    if exp - now > MAX_LIFETIME:
        raise InvalidGrant(f"the ID-JAG must expire within {MAX_LIFETIME} seconds")
    resources = claims.get("resource", [])
    resources = [resources] if isinstance(resources, str) else resources
    if not isinstance(resources, list) or not all(isinstance(r, str) and r for r in resources):
        raise InvalidGrant("the ID-JAG's resource must be a URI or an array of URIs")
    scope = claims.get("scope", "")
    if not isinstance(scope, str):
        raise InvalidGrant("the ID-JAG's scope must be a string")
    try:
        granted = scope_syntax.parse(scope)
    except InvalidScope:
        raise InvalidGrant("the ID-JAG's scope is malformed") from None
    email = claims.get("email") if isinstance(claims.get("email"), str) else None
    verified = claims.get("email_verified")
    return IdJagGrant(issuer=claims["iss"], subject=sub, jti=jti, expires_at=int(exp),
                      resources=tuple(dict.fromkeys(resources)), scopes=tuple(granted), email=email,
                      email_verified=verified if isinstance(verified, bool) else None)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def granted_resources(requested: list[str], policy: exchange_policy.ExchangePolicy) -> tuple[str, ...]:
    """§"Processing Rules": the resources to name, within the policy (a request beyond it is refused,
    so the client learns it asked too much rather than getting less unannounced)."""
    extra = [uri for uri in requested if uri not in policy.resources]
    if extra:
        raise InvalidTarget("the exchange policy does not allow that resource", detail=" ".join(extra))
    return tuple(dict.fromkeys(requested)) if requested else tuple(policy.resources)


def granted_scopes(requested: str | None, policy: exchange_policy.ExchangePolicy) -> tuple[str, ...]:
    """The scopes to name, within the policy; none asked: the policy's. Identity scopes have no
    meaning at another authorization server."""
    asked = scope_syntax.parse(requested)
    if any(s in IDENTITY_SCOPES for s in asked):
        raise InvalidScope("identity scopes cannot be delegated in an ID-JAG")
    extra = [s for s in asked if s not in policy.scopes]
    if extra:
        raise InvalidScope(f"the exchange policy does not allow the scope: {' '.join(extra)}")
    return tuple(asked) if asked else tuple(policy.scopes)


# The IdP side: token exchange for an ID-JAG ------------------------------------------------------

def exchange(form: dict, client: Client, settings: Settings) -> dict:
    """RFC 8693 token exchange answered with an ID-JAG (module docstring). One DynamoDB call: the
    user, who must still exist and be enabled; the client, its policy and our keys are cached."""
    from ..hashing import new_secret
    from ..keys import keyring
    from ..log import now
    from ..storage.users import get_user
    from ..tokens import jwt as our_jwt

    # §"Client Authentication" ("SHOULD only be supported for confidential clients"): token exchange
    # takes confidential clients only (grants/token_exchange.handle, which calls this).
    policies = exchange_policy.of(client, "id_jag")
    if not policies:
        raise UnauthorizedClient("no exchange policy allows this client ID-JAGs")
    # §"Token Exchange": the draft leaves actor_token's processing (and an `act` claim) to future
    # profiles; refused rather than ignored, so no client believes its actor was vouched for.
    if form.get("actor_token") or form.get("actor_token_type"):
        raise InvalidRequest("actor_token is not supported when requesting an ID-JAG")
    if form.get("subject_token_type") != ID_TOKEN_TYPE:
        raise InvalidRequest("unsupported subject_token_type: an ID-JAG is issued for an ID token")
    # "MUST validate that the audience of the assertion ... matches the client_id of the client
    # authentication of the request": our ID token, issued to this client.
    subject = id_tokens.verify(form.get("subject_token"), jwks=keyring.cached_jwks(), issuer=settings.issuer,
                               client_id=client.client_id)
    audience = form.get("audience")
    if not audience:
        raise InvalidRequest("audience is required: the issuer of the authorization server the ID-JAG is for")
    policy = next((p for p in policies if p.audience == audience), None)
    if policy is None or audience == settings.issuer:
        raise InvalidTarget("no exchange policy allows ID-JAGs for that audience", detail=str(audience)[:200])
    resources = granted_resources(form.get("resource", []), policy)
    scopes = granted_scopes(form.get("scope"), policy)
    user = get_user(subject["sub"])
    if user is None or user.disabled or user.deleted_at is not None:
        raise InvalidRequest("the subject_token's user cannot be delegated", detail=f"sub={subject['sub']}")
    signer = keyring.current_signer()
    claims = id_jag_claims(
        issuer=settings.issuer, sub=subject["sub"], audience=policy.audience,
        client_id=policy.downstream_client_id or client.client_id, jti=new_secret(16), iat=now(),
        ttl=settings.id_jag_ttl, resources=resources, scopes=scopes, auth_time=subject.get("auth_time"),
        acr=subject.get("acr"), amr=subject.get("amr") or (),
        email=subject.get("email") if isinstance(subject.get("email"), str) else None,
        email_verified=subject.get("email_verified") if isinstance(subject.get("email_verified"), bool) else None)
    token = our_jwt.encode(claims, signer, typ=TYP)
    log.info("ID-JAG issued", extra={"client_id": client.client_id, "sub": claims["sub"], "aud": claims["aud"],
                                     "downstream_client_id": claims["client_id"], "jti": claims["jti"],
                                     "policy_id": policy.policy_id, "scope": claims.get("scope", "")})
    response = {"access_token": token, "issued_token_type": ID_JAG_TOKEN_TYPE, "token_type": "N_A",
                "expires_in": settings.id_jag_ttl}
    if scopes:
        response["scope"] = " ".join(scopes)
    return response
