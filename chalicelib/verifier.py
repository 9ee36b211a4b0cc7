"""Access-token verification for resource servers (RFC 9068 §4, RFC 6750), also used by /userinfo.

A SaaS API protects its routes with a `Verifier`:

    verifier = Verifier(issuer="https://login.example.com", audience="https://api.example.com")
    claims = verifier.authenticate(request.headers.get("Authorization"), required_scopes=["notes:read"])

It fetches the issuer's discovery document and JWK Set once per process (container) and caches
them; a token signed by a `kid` it has not seen triggers one refetch, at most every
`refetch_interval` seconds, so a key rotation is picked up without a restart and a flood of bogus
kids cannot turn into a flood of fetches. Only ES256/RS256 are accepted: never `none`, never HMAC,
whose "key" would be our public key (RFC 8725 §2.1, §3.1). Failures raise InvalidToken (401) or
InsufficientScope (403) from chalicelib.errors, which carry the RFC 6750 WWW-Authenticate header.

A route that needs a stronger or fresher sign-in than others (RFC 9470) says so:

    claims = verifier.authenticate(header, required_scopes=["notes:write"],
                                   required_acr=["urn:serverless-idp:acr:mfa"], max_age=600)

A token whose `acr` does not meet `required_acr` (one of the values, or on this IdP's ladder at or
above the lowest of them: chalicelib/oauth/acr.py), or whose `auth_time` is more than `max_age`
seconds ago, raises InsufficientUserAuthentication: 401 with `WWW-Authenticate: Bearer
error="insufficient_user_authentication", acr_values="...", max_age=...` (RFC 9470 §3). The client
sends the user back to /authorize with those as `acr_values` and `max_age` (RFC 9470 §4) and retries
with the new token.

For MCP servers and other APIs that advertise themselves (RFC 9728), `protected_resource_metadata`
builds the document to serve at `metadata_path(resource)`, and a Verifier constructed with
`resource_metadata=True` puts its URL (and the scopes a request needs) into every 401/403 challenge,
which is how a client finds the authorization server and knows which scopes to step up to.

Dependencies: pyjwt, cryptography and the standard library only (and chalicelib/oauth/acr.py, pure).
"""
from __future__ import annotations

import json
import threading
import time
import urllib.request
from typing import Callable
from urllib.parse import urlsplit, urlunsplit

import jwt

from .capabilities import SIGNING_ALGS
from .errors import (
    BearerError,
    InsufficientScope,
    InsufficientUserAuthentication,
    InvalidRequest,
    InvalidToken,
    MissingToken,
    UnknownKey,
)
from .oauth import acr

LEEWAY_SECONDS = 30
ACCESS_TOKEN_TYPES = ("at+jwt", "application/at+jwt")


def verify_access_token(token: str, *, jwks: dict, issuer: str, audience: str | list[str] | None,
                        leeway: int = LEEWAY_SECONDS) -> dict:
    """Verify one RFC 9068 access token against a JWK Set; `audience=None` skips only the aud check
    (for introspection, which decides visibility itself)."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise InvalidToken("the access token is malformed") from None
    alg = header.get("alg")
    if alg not in SIGNING_ALGS:
        raise InvalidToken("the access token is not signed with an accepted algorithm", detail=f"alg={alg!r}")
    if str(header.get("typ", "")).lower() not in ACCESS_TOKEN_TYPES:
        raise InvalidToken("the token is not an access token", detail=f"typ={header.get('typ')!r}")
    jwk = next((k for k in jwks.get("keys", ()) if k.get("kid") == header.get("kid")), None)
    if jwk is None:
        raise UnknownKey("the access token was signed by an unknown key", detail=f"kid={header.get('kid')!r}")
    if jwk.get("alg") != alg:
        raise InvalidToken("the access token's algorithm does not match its key")
    try:
        return jwt.decode(
            token, jwt.PyJWK(jwk).key, algorithms=[alg], audience=audience, issuer=issuer, leeway=leeway,
            options={"require": ["iss", "sub", "exp", "iat", "jti", "client_id"], "verify_aud": audience is not None},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("the access token has expired") from None
    except jwt.InvalidAudienceError:
        raise InvalidToken("the access token is not meant for this resource") from None
    except jwt.InvalidTokenError as exc:
        raise InvalidToken("the access token is invalid", detail=str(exc)) from None


def bearer_token(authorization: str | None) -> str:
    """RFC 6750 §2.1: `Authorization: Bearer <token>`."""
    if not authorization:
        raise MissingToken("an access token is required")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise MissingToken("use the Bearer authentication scheme")
    return token.strip()


def require_scopes(claims: dict, required: list[str] | tuple[str, ...]) -> None:
    granted = set(str(claims.get("scope", "")).split())
    missing = [s for s in required if s not in granted]
    if missing:
        raise InsufficientScope("the access token lacks a required scope", scope=" ".join(required))


def require_authentication(claims: dict, *, required_acr=(), max_age: int | None = None,
                           at: float | None = None) -> None:
    """RFC 9470 §3: the token's authentication must meet `required_acr` (acceptable acr values; a
    value of this IdP's ladder also accepts any above it, acr.meets) and be at most `max_age`
    seconds old (`auth_time`). A token that says nothing about it (no acr, no auth_time) does not
    meet a requirement. Raises InsufficientUserAuthentication naming what would do."""
    required_acr = tuple(required_acr or ())
    weak = bool(required_acr) and not (claims.get("acr") and acr.meets(claims["acr"], required_acr))
    auth_time = claims.get("auth_time")
    stale = max_age is not None and (not isinstance(auth_time, (int, float)) or isinstance(auth_time, bool)
                                   or (time.time() if at is None else at) - auth_time > max_age)
    if weak or stale:
        raise InsufficientUserAuthentication(
            "a stronger authentication is required" if weak else "a more recent authentication is required",
            acr_values=" ".join(required_acr) or None, max_age=max_age)


#: The most actors a delegation chain may name: a token nesting deeper is refused rather than walked.
MAX_ACTOR_CHAIN = 10


def actor_chain(claims: dict) -> list[dict]:
    """RFC 8693 §4.1: who acts for the token's `sub`, current actor first, then each prior one (an
    `act` nested inside another names the actor before it). Each entry is that actor's identity
    claims (`sub`, and `iss` or `client_id` when given) without the nested chain; [] when nobody
    acts (the subject itself is calling). Only the current actor is for access decisions (§4.1:
    prior actors are "informational only"); the rest is for audit. A malformed `act` (not an
    object, no `sub`, more than MAX_ACTOR_CHAIN deep) raises InvalidToken: a chain that cannot be
    read cannot be audited either.

        claims = verifier.authenticate(request.headers.get("Authorization"))
        chain = actor_chain(claims)     # [{"sub": "agent-client-id"}, ...]
    """
    chain = []
    act = claims.get("act")
    while act is not None:
        if not isinstance(act, dict) or not isinstance(act.get("sub"), str) or len(chain) == MAX_ACTOR_CHAIN:
            raise InvalidToken("the token's delegation chain (act) is malformed")
        chain.append({k: v for k, v in act.items() if k != "act"})
        act = act.get("act")
    return chain


WELL_KNOWN_PROTECTED_RESOURCE = "/.well-known/oauth-protected-resource"


def metadata_path(resource: str) -> str:
    """RFC 9728 §3.1: the well-known segment goes between the host and the resource's path:
    https://api.example.com/mcp -> /.well-known/oauth-protected-resource/mcp."""
    path = urlsplit(resource).path.rstrip("/")
    return WELL_KNOWN_PROTECTED_RESOURCE + path


def metadata_url(resource: str) -> str:
    parts = urlsplit(resource)
    return urlunsplit((parts.scheme, parts.netloc, metadata_path(resource), "", ""))


def protected_resource_metadata(resource: str, authorization_servers: list[str], *,
                                scopes_supported: list[str] | None = None, resource_name: str | None = None) -> dict:
    """RFC 9728 §2 metadata. `resource` must be exactly the URI clients use (and ask tokens for)."""
    document = {
        "resource": resource,
        "authorization_servers": list(authorization_servers),
        "bearer_methods_supported": ["header"],
    }
    if scopes_supported:
        document["scopes_supported"] = list(scopes_supported)
    if resource_name:
        document["resource_name"] = resource_name
    return document


def _http_get_json(url: str, timeout: float = 5.0) -> dict:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - https in production
        return json.loads(response.read(1_000_000))


class Verifier:
    """Verifies access tokens for one resource (audience) issued by one issuer."""

    def __init__(self, issuer: str, audience: str | list[str], *, jwks_provider: Callable[[bool], dict] | None = None,
                 http_get: Callable[[str], dict] = _http_get_json, refetch_interval: float = 30.0,
                 cache_seconds: float = 300.0, leeway: int = LEEWAY_SECONDS, resource_metadata: bool = False,
                 realm: str = "api"):
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self.realm = realm
        # RFC 9728 §5.1: challenges point at the metadata of the resource (the audience).
        self.resource_metadata_url = metadata_url(audience if isinstance(audience, str) else audience[0]) \
            if resource_metadata else None
        self.leeway = leeway
        self._http_get = http_get
        self._jwks_provider = jwks_provider or self._fetch_jwks
        self._refetch_interval = refetch_interval
        # Keys are refetched after this long anyway, so a key the issuer withdrew stops verifying.
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._jwks: dict | None = None
        self._fetched_at = float("-inf")
        self._refetched_at = float("-inf")

    def _fetch_jwks(self, refresh: bool) -> dict:
        # RFC 8414 §3: the metadata lives at the issuer's well-known URL; its jwks_uri names the keys.
        metadata = self._http_get(f"{self.issuer}/.well-known/oauth-authorization-server")
        if metadata.get("issuer") != self.issuer:
            raise InvalidToken("the authorization server metadata names another issuer")
        return self._http_get(metadata["jwks_uri"])

    def _keys(self, *, refresh: bool) -> dict:
        """The cached JWK Set; `refresh` (an unknown kid) refetches at most once per refetch_interval."""
        with self._lock:
            at = time.monotonic()
            refetch = refresh and at - self._refetched_at >= self._refetch_interval
            if self._jwks is None or at - self._fetched_at >= self._cache_seconds or refetch:
                self._jwks = self._jwks_provider(refetch)
                self._fetched_at = at
                if refetch:
                    self._refetched_at = at
            return self._jwks

    def verify(self, token: str, required_scopes=(), *, required_acr=(), max_age: int | None = None) -> dict:
        """The token's claims; raises InvalidToken, InsufficientScope, or (`required_acr`, `max_age`:
        RFC 9470) InsufficientUserAuthentication."""
        try:
            claims = verify_access_token(token, jwks=self._keys(refresh=False), issuer=self.issuer,
                                         audience=self.audience, leeway=self.leeway)
        except UnknownKey:
            claims = verify_access_token(token, jwks=self._keys(refresh=True), issuer=self.issuer,
                                         audience=self.audience, leeway=self.leeway)
        require_scopes(claims, required_scopes)
        require_authentication(claims, required_acr=required_acr, max_age=max_age)
        return claims

    def authenticate(self, authorization: str | None, required_scopes=(), *, required_acr=(),
                     max_age: int | None = None) -> dict:
        """Verify a request's Authorization header. Errors carry this resource's challenge: realm,
        resource_metadata, the scopes the request needs (so a client can step up), and for RFC 9470
        the acr_values and max_age it needs."""
        try:
            return self.verify(bearer_token(authorization), required_scopes, required_acr=required_acr,
                               max_age=max_age)
        except BearerError as exc:
            exc.realm = self.realm
            exc.resource_metadata = self.resource_metadata_url
            exc.scope = exc.scope or (" ".join(required_scopes) or None)
            raise


__all__ = ["Verifier", "verify_access_token", "bearer_token", "require_scopes", "require_authentication",
           "actor_chain", "InvalidToken", "InsufficientScope", "InsufficientUserAuthentication", "InvalidRequest", "MissingToken",
           "UnknownKey"]
