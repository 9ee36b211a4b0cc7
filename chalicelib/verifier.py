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

DPoP (RFC 9449 §7): a client holding a DPoP-bound token (its `cnf.jkt` names the client's key) sends
it as `Authorization: DPoP <token>` with a fresh proof in the `DPoP` header. Give the verifier the
proof, the request's method and its URL as the client addressed it (behind a proxy: the public URL):

    claims = verifier.authenticate(request.headers.get("Authorization"), ["notes:read"],
                                   dpop_proof=request.headers.get("DPoP"), method=request.method,
                                   url="https://api.example.com/notes")

The proof must pass RFC 9449 §4.3 (`ath` = the token's hash, `htm`/`htu` = this request), be signed
by the key the token is bound to, and be new: its `jti` is spent in `replay_cache`. The default
cache lives in this process's memory, which is enough for one instance; an API running on several
instances (Lambda containers, pods) must plug in a shared one (`ReplayCache` protocol: one
conditional write per proof, e.g. a DynamoDB PutItem with `attribute_not_exists`, or Redis SET NX
with an expiry), or a proof replayed to another instance within its lifetime would pass. A bound
token sent as Bearer is refused (§7.2: else stealing it would be enough again); an unbound token
still works as Bearer. `dpop_nonces` (DpopNonces) makes the resource demand its own nonces (§9).
DPoP refusals answer `WWW-Authenticate: DPoP ... error="invalid_dpop_proof" | "invalid_token" |
"use_dpop_nonce"` naming the accepted proof algorithms (`algs`); `announce_dpop=True` makes a request
without credentials get both a Bearer and a DPoP challenge, `require_dpop=True` refuses Bearer.
Without `method` and `url` the verifier cannot check proofs and takes Bearer only, as before.

Dependencies: pyjwt, cryptography and the standard library only (and chalicelib/oauth/acr.py,
dpop.py and dpop_nonces.py, pure).
"""
from __future__ import annotations

import hashlib
import heapq
import hmac
import json
import threading
import time
import urllib.request
from typing import Callable, Protocol
from urllib.parse import urlsplit, urlunsplit

import jwt

from .capabilities import DPOP_ALGS, SIGNING_ALGS
from .errors import (
    BearerError,
    DpopProofRefused,
    InsufficientScope,
    InsufficientUserAuthentication,
    InvalidDpopProofChallenge,
    InvalidRequest,
    InvalidToken,
    MissingToken,
    UnknownKey,
    UseDpopNonceChallenge,
)
from .oauth import acr, dpop, dpop_nonces

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


#: The authentication schemes an access token may come with (lower-case, as compared).
BEARER, DPOP = "bearer", "dpop"


def credentials(authorization: str | None, *, schemes: tuple[str, ...] = (BEARER, DPOP)) -> tuple[str, str]:
    """(scheme, token) of an Authorization header: RFC 6750 §2.1 `Bearer <token>` or RFC 9449 §7.1
    `DPoP <token>`; the scheme name is case-insensitive (RFC 9110 §11.1)."""
    if not authorization:
        raise MissingToken("an access token is required")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() not in schemes or not token.strip():
        raise MissingToken("use the Bearer authentication scheme" if schemes == (BEARER,)
                           else "use the Bearer or DPoP authentication scheme")
    return scheme.lower(), token.strip()


class ReplayCache(Protocol):
    """Where a resource server spends DPoP proof `jti`s (RFC 9449 §11.1)."""

    def use(self, jkt: str, jti: str, expires_at: int) -> bool:
        """True the first time (jkt, jti) is seen before `expires_at` (epoch seconds); False for a
        replay. Must be atomic: of two concurrent calls with the same pair, one gets False."""


class MemoryReplayCache:
    """A ReplayCache in this process's memory, thread-safe, each entry kept until its proof expires.

    Enough for an API that runs as ONE instance. Several instances each keep their own memory, so a
    proof replayed to another instance would pass there: plug in a shared store instead. At most
    `max_entries` live proofs are remembered; past that, new proofs are refused (a replay cache
    that forgot would let replays through) until old ones expire, a minute or so later."""

    def __init__(self, max_entries: int = 100_000, clock: Callable[[], float] = time.time):
        self._max, self._clock = max_entries, clock
        self._lock = threading.Lock()
        self._expiry: dict[bytes, int] = {}
        self._queue: list[tuple[int, bytes]] = []

    def use(self, jkt: str, jti: str, expires_at: int) -> bool:
        key = hashlib.sha256(f"{jkt}\0{jti}".encode("utf-8")).digest()
        with self._lock:
            now = self._clock()
            while self._queue and self._queue[0][0] < now:
                _, old = heapq.heappop(self._queue)
                if self._expiry.get(old, now) < now:
                    del self._expiry[old]
            if key in self._expiry or len(self._expiry) >= self._max:
                return False
            self._expiry[key] = int(expires_at)
            heapq.heappush(self._queue, (int(expires_at), key))
            return True


class DpopNonces:
    """Resource-server nonces (RFC 9449 §9), derived from `key` per time window
    (chalicelib/oauth/dpop_nonces.py): nothing is stored, and every instance holding the same key
    accepts the others' nonces. The key is this resource's own secret (32 random bytes), never
    the authorization server's: a nonce is only good where it was issued (§9)."""

    def __init__(self, key: bytes, window: int = 300, clock: Callable[[], float] = time.time):
        if len(key) < 16:
            raise ValueError("a DPoP nonce key needs at least 16 random bytes")
        self._key, self._window, self._clock = key, window, clock

    def current(self) -> str:
        """The nonce to hand out (`DPoP-Nonce`), also on successful responses (§8.2)."""
        return dpop_nonces.current(self._key, int(self._clock()), self._window)

    def valid(self, nonce: str) -> bool:
        return dpop_nonces.valid(self._key, nonce, int(self._clock()), self._window)


def check_dpop_binding(claims: dict, *, scheme: str, access_token: str, proof: str | None, method: str | None,
                       url: str | None, now: int, max_age: int, algs: tuple[str, ...] = DPOP_ALGS,
                       nonces: DpopNonces | None = None) -> dpop.Proof | None:
    """RFC 9449 §7: does the way a verified token was presented fit its binding? Pure; the caller
    then spends the returned proof's `jti` (a replay cache, or storage/used_jtis at /userinfo).

    - Bearer: a token carrying `cnf` is refused (§7.2: "MUST reject a DPoP-bound access token
      received as a bearer token"); an unbound one passes, and any DPoP header is not looked at.
    - DPoP: the token must be bound (`cnf.jkt`); the proof must pass §4.3 for this method and URL
      with `ath` = the token's hash, else invalid_dpop_proof (use_dpop_nonce when `nonces` demand
      one); its key's thumbprint must be `cnf.jkt` (§7.1: "the public key to which the access token
      is bound matches the public key from the DPoP proof"), else invalid_token, as §7.1's example
      answers a key that does not match the binding."""
    bound = claims.get("cnf")
    if scheme == BEARER:
        if bound is not None:
            raise InvalidToken("a DPoP-bound access token must be sent with the DPoP scheme and a proof")
        return None
    jkt = bound.get("jkt") if isinstance(bound, dict) else None
    if not isinstance(jkt, str):
        raise InvalidToken("the access token is not DPoP-bound; send it with the Bearer scheme")
    if not (method and url):
        raise InvalidDpopProofChallenge("this resource cannot check DPoP proofs")
    try:
        checked = dpop.check_proof(proof, method=method, url=url, now=now, max_age=max_age, algs=algs,
                                   access_token=access_token, nonce_ok=nonces.valid if nonces else None)
    except DpopProofRefused as exc:
        if exc.nonce_needed and nonces is not None:
            raise UseDpopNonceChallenge(exc.description, nonce=nonces.current(), detail=exc.detail) from None
        raise InvalidDpopProofChallenge(exc.description, detail=exc.detail) from None
    if not hmac.compare_digest(checked.jkt.encode("ascii"), jkt.encode("ascii", "replace")):
        raise InvalidToken("the access token is bound to another key than the DPoP proof's",
                           detail=f"cnf.jkt {jkt} proof jkt {checked.jkt}")
    return checked


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
                                scopes_supported: list[str] | None = None, resource_name: str | None = None,
                                dpop_signing_alg_values_supported: list[str] | None = None,
                                dpop_bound_access_tokens_required: bool = False) -> dict:
    """RFC 9728 §2 metadata. `resource` must be exactly the URI clients use (and ask tokens for).
    A resource taking DPoP names the proof algorithms it accepts, and whether it takes only
    DPoP-bound tokens (RFC 9728 §2 `dpop_signing_alg_values_supported`,
    `dpop_bound_access_tokens_required`)."""
    document = {
        "resource": resource,
        "authorization_servers": list(authorization_servers),
        "bearer_methods_supported": ["header"],
    }
    if scopes_supported:
        document["scopes_supported"] = list(scopes_supported)
    if resource_name:
        document["resource_name"] = resource_name
    if dpop_signing_alg_values_supported:
        document["dpop_signing_alg_values_supported"] = list(dpop_signing_alg_values_supported)
    if dpop_bound_access_tokens_required:
        document["dpop_bound_access_tokens_required"] = True
    return document


def _http_get_json(url: str, timeout: float = 5.0) -> dict:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - https in production
        return json.loads(response.read(1_000_000))


class Verifier:
    """Verifies access tokens for one resource (audience) issued by one issuer.

    DPoP (RFC 9449): `dpop_algs` the proof algorithms accepted (and named in challenges);
    `replay_cache` where proof jtis are spent (default: MemoryReplayCache, one instance only);
    `dpop_nonces` demands this resource's nonces (§9); `proof_max_age` how old a proof's `iat` may be;
    `announce_dpop` adds a DPoP challenge to the 401 of a request without credentials (§7.2);
    `require_dpop` refuses Bearer (every token must be DPoP-bound)."""

    def __init__(self, issuer: str, audience: str | list[str], *, jwks_provider: Callable[[bool], dict] | None = None,
                 http_get: Callable[[str], dict] = _http_get_json, refetch_interval: float = 30.0,
                 cache_seconds: float = 300.0, leeway: int = LEEWAY_SECONDS, resource_metadata: bool = False,
                 realm: str = "api", dpop_algs: tuple[str, ...] = DPOP_ALGS, replay_cache: ReplayCache | None = None,
                 dpop_nonces: DpopNonces | None = None, proof_max_age: int = 60, announce_dpop: bool = False,
                 require_dpop: bool = False):
        self.dpop_algs = tuple(dpop_algs)
        self.replay_cache = replay_cache if replay_cache is not None else MemoryReplayCache()
        self.dpop_nonces, self.proof_max_age = dpop_nonces, proof_max_age
        self.announce_dpop, self.require_dpop = announce_dpop or require_dpop, require_dpop
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

    def _claims(self, token: str) -> dict:
        try:
            return verify_access_token(token, jwks=self._keys(refresh=False), issuer=self.issuer,
                                       audience=self.audience, leeway=self.leeway)
        except UnknownKey:
            return verify_access_token(token, jwks=self._keys(refresh=True), issuer=self.issuer,
                                       audience=self.audience, leeway=self.leeway)

    def verify(self, token: str, required_scopes=(), *, required_acr=(), max_age: int | None = None) -> dict:
        """The token's claims; raises InvalidToken, InsufficientScope, or (`required_acr`, `max_age`:
        RFC 9470) InsufficientUserAuthentication. Says nothing about how the token was presented:
        `authenticate` checks that (a DPoP-bound token needs its proof)."""
        claims = self._claims(token)
        require_scopes(claims, required_scopes)
        require_authentication(claims, required_acr=required_acr, max_age=max_age)
        return claims

    def authenticate(self, authorization: str | None, required_scopes=(), *, required_acr=(),
                     max_age: int | None = None, dpop_proof: str | None = None, method: str | None = None,
                     url: str | None = None) -> dict:
        """Verify a request's Authorization header (and, for the DPoP scheme, its `DPoP` header
        `dpop_proof`, checked against `method` and `url`). Errors carry this resource's challenge:
        realm, resource_metadata, the scopes the request needs (so a client can step up), for RFC
        9470 the acr_values and max_age it needs, and for DPoP the scheme and accepted algs.

        Order: the token (signature, issuer, audience, expiry), then how it was presented (§7), then
        scopes and authentication, and only then the proof's jti is spent: a refused request
        spends nothing."""
        schemes = (BEARER, DPOP) if method and url else (BEARER,)
        scheme = None
        try:
            scheme, token = credentials(authorization, schemes=schemes)
            if scheme == BEARER and self.require_dpop:
                raise InvalidToken("this resource requires a DPoP-bound access token")
            claims = self._claims(token)
            proof = check_dpop_binding(claims, scheme=scheme, access_token=token, proof=dpop_proof, method=method,
                                       url=url, now=int(time.time()), max_age=self.proof_max_age,
                                       algs=self.dpop_algs, nonces=self.dpop_nonces)
            require_scopes(claims, required_scopes)
            require_authentication(claims, required_acr=required_acr, max_age=max_age)
            if proof is not None and not self.replay_cache.use(proof.jkt, proof.jti, proof.expires_at):
                raise InvalidDpopProofChallenge("the DPoP proof was used before; make a new one",
                                                detail=f"jti {proof.jti}")
            return claims
        except BearerError as exc:
            exc.realm = self.realm
            exc.resource_metadata = self.resource_metadata_url
            exc.scope = exc.scope or (" ".join(required_scopes) or None)
            exc.schemes = self._challenge_schemes(exc, scheme)
            exc.algs = " ".join(self.dpop_algs) if DPOP in (s.lower() for s in exc.schemes) else None
            raise

    def _challenge_schemes(self, exc: BearerError, scheme: str | None) -> tuple[str, ...]:
        """RFC 9449 §7.1: an error about a DPoP request is a DPoP challenge; §7.2: a request without
        usable credentials learns every scheme this resource takes (when it announces DPoP)."""
        if scheme == DPOP or self.require_dpop:
            return ("DPoP",)
        if exc.challenge_only and self.announce_dpop:
            return ("Bearer", "DPoP")
        return exc.schemes


__all__ = ["Verifier", "verify_access_token", "bearer_token", "credentials", "check_dpop_binding",
           "MemoryReplayCache", "ReplayCache", "DpopNonces", "require_scopes", "require_authentication",
           "actor_chain", "InvalidDpopProofChallenge", "UseDpopNonceChallenge", "InvalidToken", "InsufficientScope",
           "InsufficientUserAuthentication", "InvalidRequest", "MissingToken", "UnknownKey"]
