"""private_key_jwt: a client authenticates with a JWT signed by its private key (RFC 7523 §2.2 and §3,
OpenID Connect Core 1.0 §9).

We hold only the client's public keys (its registered `jwks`, or a `jwks_uri` fetched through the
SSRF guard and cached like an upstream's JWK Set), so no stored secret could be replayed. An
assertion passes when, in this order:
- its `alg` is one of CLIENT_ASSERTION_ALGS (never `none`, never HMAC: RFC 8725 §3.1; PROFILE=fapi2
  leaves out RS256, FAPI 2.0 §5.4.1) and its `typ`,
  when present, says it is a client assertion (not some other JWT the client signed);
- it is signed by one of the client's keys of that algorithm's type, picked by `kid` (OIDC Core §10.1:
  a kid may be left out only when there is one key); an unknown kid refetches a `jwks_uri` at most
  once a minute (the upstream JWKS limit), so made-up kids cannot make us hammer the client's host;
- RFC 7523 §3: `iss` and `sub` are the client_id (items 1-2); `aud` is our issuer or our token
  endpoint URL, as a string or within a list (item 3; OIDC Core §9 names the token endpoint, RFC 7523
  the issuer: both are ours; RFC 9126 §2 adds the pushed authorization request endpoint's URL;
  PROFILE=fapi2 takes only the issuer, as a string: FAPI 2.0 §5.3.2.1 item 8, chalicelib/profiles.py);
  `exp` is present and not past (item 4), and at most CLIENT_ASSERTION_MAX_LIFETIME ahead, since
  its `jti` is remembered until then; `nbf` and `iat` are not in the future (items 5-6);
- `jti` is present and used for the first time (item 7: "MAY ensure that JWTs are not replayed"; we
  do, with one conditional write: storage/used_jtis.py, kind "client_assertion", keyed by the client).
The jti is spent last, so an assertion that fails any other check (a forgery included) spends nothing.

Refusals at the token, revocation and introspection endpoints are RFC 7523 §3.2's `invalid_client`.
Before the signature is checked they say only "client authentication failed", so nobody learns
which clients exist or which keys they have; what a claim check finds wrong is said plainly,
because only the key's holder gets that far.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING

import jwt

from .. import profiles
from ..capabilities import PRIVATE_KEY_JWT
from ..errors import AssertionRefused as Refused
from ..errors import (DocumentError, InvalidClient, InvalidRequest, TemporarilyUnavailable, UpstreamFailed,
                      UpstreamUnavailable, echo)
from ..keys.jwk import fits
from ..log import get_logger, now

if TYPE_CHECKING:
    from ..config import Settings
    from ..storage.clients import Client

log = get_logger("idp.client_assertions")

#: A client assertion is a few hundred bytes; a bigger one is not worth parsing.
MAX_ASSERTION_BYTES = 8192
#: Seconds of clock difference tolerated on exp, nbf and iat (the access token verifier's).
LEEWAY = 30
#: RFC 7519 §4.1.7 sets no length; ours bounds what a client can make us store per request.
MAX_JTI_LENGTH = 256
#: `typ` values of a client assertion: none, the generic one, and the explicit type of
#: draft-ietf-oauth-rfc7523bis. Anything else names another kind of JWT (an ID-JAG, an access
#: token) that the client's key also signed, which must not pass as a client assertion.
ASSERTION_TYPES = (None, "JWT", "client-authentication+jwt")
GENERIC = "client authentication failed"
#: What `aud` must be: with PROFILE=fapi2 the issuer alone, as a string (chalicelib/profiles.py).
_AUD_RULE = {True: "the client assertion's aud must be this issuer, its token endpoint or its PAR endpoint",
             False: "the client assertion's aud must be this issuer, as a string"}
BAD_JTI = f"the client assertion's jti must be a string of 1 to {MAX_JTI_LENGTH} characters"


def claimed_client_id(assertion) -> str:
    """The client an assertion claims to come from (its `sub`, RFC 7523 §3 item 2), unverified: only
    to find the client whose keys then verify it. InvalidClient when it is not a JWT."""
    try:
        sub = _unverified_claims(assertion).get("sub")
    except Refused as exc:
        raise InvalidClient(exc.description, detail=exc.detail) from None
    if not isinstance(sub, str) or not sub:
        raise InvalidClient("the client assertion needs a sub naming the client")
    return sub


def verify(assertion: str, client: Client, settings: Settings) -> dict:
    """The claims of `assertion` once it passed every check above for `client`, its jti then spent;
    else InvalidClient. TemporarilyUnavailable when the client's jwks_uri cannot be fetched now."""
    try:
        return _verified(assertion, client, settings)
    except Refused as exc:
        reason = exc.detail or exc.description
        log.info("client assertion refused", extra={"client_id": client.client_id, "reason": reason})
        raise InvalidClient(exc.description, detail=exc.detail) from None


def verify_actor_assertion(assertion, settings: Settings) -> Client:
    """The registered private_key_jwt client that signed `assertion` (iss = sub = its client_id, every
    check of `verify`, the jti spent in the same namespace, so one assertion serves once, either to
    authenticate or to name an actor): the acting agent of a token exchange whose actor_token is a
    client assertion (RFC 8693 §2.1). Refusals are `invalid_request`, as RFC 8693 §2.2.2 wants for
    an actor_token that is not valid."""
    from .clients import find_client

    try:
        claims = _unverified_claims(assertion)
        client_id = claims.get("sub")
        if not isinstance(client_id, str) or not client_id or claims.get("iss") != client_id:
            raise Refused(GENERIC, "iss and sub must both name the client")
        try:
            client = find_client(client_id, settings, cache_seconds=settings.client_cache_seconds)
        except DocumentError:  # a client ID metadata document URL: public clients only, never an actor
            client = None
        if client is None:
            raise Refused(GENERIC, f"no client {echo(client_id)}")
        _verified(assertion, client, settings)
        return client
    except Refused as exc:
        raise InvalidRequest(f"actor_token: {exc.description}", detail=exc.detail) from None


def _unverified_claims(assertion) -> dict:
    if not isinstance(assertion, str) or not assertion or len(assertion) > MAX_ASSERTION_BYTES:
        raise Refused(f"the client assertion must be a JWT of at most {MAX_ASSERTION_BYTES} bytes")
    try:
        return jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise Refused("the client assertion is not a JWT", repr(exc)) from None


def _verified(assertion: str, client: Client, settings: Settings) -> dict:
    if client.token_endpoint_auth_method != PRIVATE_KEY_JWT or client.disabled:
        raise Refused(GENERIC, f"client {echo(client.client_id)} does not use {PRIVATE_KEY_JWT}")
    _unverified_claims(assertion)  # the size and shape checks, before any key is looked up
    header = jwt.get_unverified_header(assertion)
    alg = header.get("alg")
    algs = profiles.assertion_algs(settings)
    if alg not in algs:
        raise Refused(f"the client assertion's alg must be one of {', '.join(algs)}", f"alg {echo(alg)}")
    if header.get("typ") not in ASSERTION_TYPES:
        raise Refused("the client assertion's typ must be JWT or client-authentication+jwt",
                      f"typ {echo(header.get('typ'))}")
    key = _key(client, header, alg, settings)
    audiences = profiles.assertion_audiences(settings)
    try:
        claims = jwt.decode(assertion, key, algorithms=[alg], audience=list(audiences),
                            issuer=client.client_id, leeway=LEEWAY,
                            options={"require": ["iss", "sub", "aud", "exp", "jti"]})
    except jwt.InvalidSignatureError:
        raise Refused(GENERIC, "signature") from None
    except jwt.MissingRequiredClaimError as exc:
        raise Refused(f"the client assertion needs {exc.claim}") from None
    except jwt.ExpiredSignatureError:
        raise Refused("the client assertion has expired") from None
    except jwt.InvalidAudienceError:
        raise Refused(_AUD_RULE[len(audiences) > 1]) from None
    except jwt.InvalidIssuerError:
        raise Refused("the client assertion's iss must be the client_id") from None
    except (jwt.ImmatureSignatureError, jwt.InvalidIssuedAtError):
        raise Refused("the client assertion's iat or nbf is in the future") from None
    except jwt.exceptions.InvalidJTIError:
        raise Refused(BAD_JTI) from None
    except jwt.PyJWTError as exc:
        raise Refused("the client assertion's claims are not valid", repr(exc)) from None
    if profiles.assertion_audience_is_string(settings) and not isinstance(claims["aud"], str):
        raise Refused(_AUD_RULE[False])
    if claims["sub"] != client.client_id:
        raise Refused("the client assertion's sub must be the client_id")
    if not isinstance(claims["exp"], int) or claims["exp"] > now() + settings.client_assertion_max_lifetime:
        raise Refused(f"the client assertion must expire within {settings.client_assertion_max_lifetime} seconds")
    jti = claims["jti"]
    if not isinstance(jti, str) or not 1 <= len(jti) <= MAX_JTI_LENGTH:
        raise Refused(BAD_JTI)
    from ..storage import used_jtis

    # Remembered while the assertion would pass: until exp plus the clock-skew leeway, not exp
    # alone, or the record's TTL could remove it while a replay is still accepted.
    if not used_jtis.use("client_assertion", client.client_id, jti, claims["exp"] + LEEWAY):
        raise Refused("the client assertion was already used", f"jti {echo(jti)}")
    return claims


def _key(client: Client, header: dict, alg: str, settings: Settings):
    """The client's public key for this assertion, as a key object of `alg`'s type. The JWK Set is
    the client's `jwks`, or what its `jwks_uri` serves, through the upstream JWKS machinery
    (federation/upstream.py: cache, one rate-limited refetch for an unknown kid)."""
    from ..federation import upstream

    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise Refused(GENERIC, "kid is not a string")
    try:
        if client.jwks is not None:
            jwk = upstream._find_key(json.loads(client.jwks), kid, alg)
            if jwk is None:
                raise Refused(GENERIC, f"no key {echo(kid)} for {alg}")
            key = jwt.PyJWK(jwk, algorithm=alg).key
        elif client.jwks_uri is not None:
            key = upstream._signing_key(client.jwks_uri, header, alg, settings)
        else:
            raise Refused(GENERIC, "the client has neither jwks nor jwks_uri")
    except UpstreamUnavailable as exc:
        raise TemporarilyUnavailable("the client's jwks_uri cannot be reached; try again later", retry_after=5,
                                     detail=exc.detail) from None
    except UpstreamFailed as exc:
        raise Refused(GENERIC, f"jwks_uri: {exc.reason} {exc.detail}") from None
    except jwt.PyJWTError as exc:  # a key of another type than alg, or a broken one
        raise Refused(GENERIC, f"kid {echo(kid)}: {exc!r}") from None
    if not fits(key, alg):
        raise Refused(GENERIC, f"kid {echo(kid)} is not a public key for {alg}")
    return key
