"""The relying-party protocol toward an upstream identity provider: send the browser there (`start`),
then turn what comes back into a verified profile (`finish`).

OpenID Connect upstreams use the authorization code flow (OpenID Connect Core 1.0 §3.1) with PKCE S256
(RFC 7636; RFC 9700 §2.1.1 recommends it for confidential clients too), `state` against cross-site
request forgery (RFC 6749 §10.12) and `nonce` binding the ID token to this browser's request
(OIDC Core §3.1.2.1). On the way back:
- the response's `iss` (RFC 9207 §2.4) must be the upstream's issuer, and must be there when the
  upstream says it sends it: otherwise a mix-up attack could get a code from one provider redeemed at
  another;
- the code is redeemed at the token endpoint with the connection's client authentication;
- the ID token is validated as OIDC Core §3.1.3.7 says: signed with an asymmetric algorithm the
  upstream announces, by a key of its JWK Set; `iss` exactly the issuer; `aud` containing our client
  id; `azp` our client id when present (and required when several audiences); `exp`/`iat` within a
  minute's leeway; `nonce` ours;
- userinfo (OIDC Core §5.3), when the claim mapping needs claims the ID token lacks, must be about the
  same `sub` (§5.3.4), or it could be a token substitution.
Microsoft Entra ID's multi-tenant endpoints publish one issuer for every tenant,
"https://login.microsoftonline.com/{tenantid}/v2.0", literally: the ID token's `iss` must be that
template with the token's own `tid` (Microsoft identity platform, "Validate the issuer"), and the
connection may list which tenants it accepts.

Nothing here touches DynamoDB: the caller keeps state/nonce/code_verifier (and checks `state` against
its record before calling `finish`), and decides what to do with the profile.
"""
from __future__ import annotations

import base64
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote_plus, urlencode, urlsplit, urlunsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from .. import caches, outbound
from ..config import Settings
from ..errors import UpstreamFailed, UpstreamRefused, echo
from ..log import get_logger, now
from ..oauth.pkce import s256
from ..pages import messages
from . import apple, fetching, github
from .fetching import failed

log = get_logger("idp.federation")

#: OIDC Core §3.1.3.7 step 6 allows HMAC ID tokens keyed with the client secret; we accept only
#: signatures checked with the upstream's published public keys (never `none`, never HS*, so a
#: public key can never be used as an HMAC secret). The metadata's own list narrows these.
SIGNING_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
#: OIDC Discovery 1.0 §3: id_token_signing_alg_values_supported is REQUIRED and must include RS256;
#: a document without it is taken to mean RS256 only.
DEFAULT_ID_TOKEN_ALGS = ("RS256",)
#: Seconds of clock difference tolerated on exp/iat (OIDC Core §3.1.3.7 steps 9-10 leave it to us).
LEEWAY = 60
#: An unknown `kid` may mean the upstream rotated its keys: refetch its JWK Set, at most this often per
#: JWK Set, so tokens with made-up kids cannot make us hammer the upstream.
JWKS_REFETCH_INTERVAL = 60
#: Lifetime of a private_key_jwt client assertion (RFC 7523 §3): one token request.
ASSERTION_LIFETIME = 60
#: RFC 7523 §2.2.
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: Claims the profile is made of, in our names; the connection's claim_mapping may say which upstream
#: claim each comes from (the default: the same name).
PROFILE_CLAIMS = ("email", "email_verified", "name", "given_name", "family_name", "locale")
#: Entra tenant ids are GUIDs; nothing else may be spliced into an issuer.
_TENANT_ID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
TENANT_PLACEHOLDER = "{tenantid}"
#: Longest upstream error_description kept for the log (printable ASCII only, like errors.echo).
MAX_UPSTREAM_DESCRIPTION = 200

#: JWK Set URL -> when it was last refetched for an unknown kid (log.now() seconds).
_refetched: dict[str, int] = {}
caches.register("federation.jwks_refetched", _refetched.clear)


@dataclass(frozen=True)
class UpstreamStart:
    url: str            # where to send the browser (upstream authorization endpoint + query)
    state: str          # random 256-bit, base64url
    nonce: str | None   # OIDC only (None for github)
    code_verifier: str  # PKCE S256 verifier (RFC 7636), always sent


@dataclass(frozen=True)
class UpstreamProfile:
    subject: str                 # upstream `sub` (github: str(id)); the identity key with the connection id
    email: str | None
    email_verified: bool         # ONLY what the upstream asserted
    name: str | None
    given_name: str | None
    family_name: str | None
    locale: str | None
    acr: str | None              # upstream acr as sent
    amr: tuple[str, ...]         # upstream amr as sent
    issuer: str                  # the upstream issuer that signed (Entra: the tenant's issuer)
    claims: dict                 # the verified claims (ID token merged with userinfo), for the log/mapping


@dataclass(frozen=True)
class UpstreamResult:
    profile: UpstreamProfile
    tokens: dict | None          # the upstream token response (access/refresh/id token): the caller decides


# Discovery ---------------------------------------------------------------------------------------

def discovery_url(connection) -> str:
    """OpenID Connect Discovery 1.0 §4: the issuer + /.well-known/openid-configuration, unless the
    connection names another (Entra's multi-tenant issuer template is not a URL to fetch)."""
    return connection.discovery_url or connection.issuer.rstrip("/") + "/.well-known/openid-configuration"


def metadata(connection, settings: Settings) -> dict:
    """The upstream's provider metadata (cached per container). Discovery §4.3: its `issuer` must be
    exactly the issuer we expect, or a document from elsewhere could redirect our trust."""
    document = fetching.cached_json(discovery_url(connection), settings, what="discovery")
    if document.get("issuer") != connection.issuer:
        raise failed("metadata_issuer", f"discovery names issuer {echo(document.get('issuer'))}")
    for endpoint in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not isinstance(document.get(endpoint), str):
            raise failed("metadata", f"discovery has no {endpoint}")
    return document


def authorization_origin(connection) -> str:
    """The origin `start` sends the browser to, without any I/O: the authorization endpoint of the
    cached discovery document when there is one, else the issuer's origin (where every provider we
    know serves it). A page whose form leads there must name it in CSP form-action, which Chromium
    applies to the redirect after the post too."""
    from urllib.parse import urlsplit

    endpoint = connection.authorization_endpoint
    if connection.protocol != "github":
        cached = fetching.documents.get(discovery_url(connection))
        endpoint = cached[1].get("authorization_endpoint") if cached is not None else None
        endpoint = endpoint if isinstance(endpoint, str) else connection.issuer
    parts = urlsplit(endpoint or "")
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


# start -------------------------------------------------------------------------------------------

def start(connection, settings: Settings, *, redirect_uri: str, login_hint: str | None = None,
          prompt: str | None = None, max_age: int | None = None) -> UpstreamStart:
    """The authorization request (RFC 6749 §4.1.1, OIDC Core §3.1.2.1) to send the browser to, with
    the fresh secrets the caller must keep for `finish`."""
    state = secrets.token_urlsafe(32)
    code_verifier = secrets.token_urlsafe(32)  # 43 characters, RFC 7636 §4.1's minimum, 256 bits
    query = {"response_type": "code", "client_id": connection.client_id, "redirect_uri": redirect_uri,
             "scope": " ".join(connection.scopes), "state": state,
             "code_challenge": s256(code_verifier), "code_challenge_method": "S256"}
    if connection.protocol == "github":
        nonce = None
        endpoint = connection.authorization_endpoint
        if login_hint:
            query["login"] = login_hint  # GitHub's name for it ("Authorizing OAuth apps", GitHub Docs)
    else:
        nonce = secrets.token_urlsafe(32)
        endpoint = metadata(connection, settings)["authorization_endpoint"]
        query["nonce"] = nonce
        if connection.response_mode != "query":
            query["response_mode"] = connection.response_mode  # OAuth 2.0 Form Post Response Mode
        for name, value in (("login_hint", login_hint), ("prompt", prompt), ("max_age", max_age)):
            if value is not None:
                query[name] = str(value)
    try:
        outbound.check_url(endpoint, settings, what="authorization_endpoint")
    except outbound.Refused as exc:
        raise failed("outbound", f"authorization_endpoint: {exc}") from None
    return UpstreamStart(url=_with_query(endpoint, query), state=state, nonce=nonce, code_verifier=code_verifier)


def _with_query(url: str, query: dict) -> str:
    """RFC 6749 §3.1: the endpoint URI may have a query of its own, which must be kept."""
    parts = urlsplit(url)
    merged = parse_qsl(parts.query, keep_blank_values=True) + list(query.items())
    return urlunsplit(parts._replace(query=urlencode(merged)))


# finish ------------------------------------------------------------------------------------------

def finish(connection, settings: Settings, *, params: dict, state: str, nonce: str | None, code_verifier: str,
           redirect_uri: str, secret: dict | None = None) -> UpstreamResult:
    """The callback's parameters -> the verified profile, or UpstreamFailed (UpstreamRefused for the
    upstream's own `error=`, UpstreamUnavailable for network faults and 5xx). `secret` is the
    connection's secret (chalicelib/federation/connections.secret), read here when not given."""
    try:
        return _finish(connection, settings, params, state, nonce, code_verifier, redirect_uri, secret)
    except UpstreamFailed as exc:
        log.info("upstream sign-in failed", extra={"connection": connection.connection_id, "reason": exc.reason,
                                                   "detail": exc.detail})
        raise


def _finish(connection, settings, params, state, nonce, code_verifier, redirect_uri, secret) -> UpstreamResult:
    # The caller matched state to its record; checked again so this function is safe on its own.
    if not hmac.compare_digest(str(params.get("state") or "").encode(), state.encode()):
        raise failed("state")
    oidc = connection.protocol != "github"
    document = metadata(connection, settings) if oidc else {}
    if oidc:  # RFC 9207 §2.4: error responses too
        _check_response_issuer(connection, document, params.get("iss"))
    if "error" in params:
        raise _refused(params)
    code = params.get("code")
    if not isinstance(code, str) or not code:
        raise failed("code", "no code in the response")
    if secret is None:
        from .connections import secret as read_secret  # helper C's module: Secrets Manager, cached

        secret = read_secret(connection)
    token_endpoint = document["token_endpoint"] if oidc else connection.token_endpoint
    tokens = redeem(connection, settings, token_endpoint, secret=secret, code=code, code_verifier=code_verifier,
                    redirect_uri=redirect_uri)
    if not oidc:
        api_base = connection.api_base
        claims = github.claims(api_base, tokens["access_token"], settings)
        return UpstreamResult(_profile(claims, connection, issuer=api_base), tokens)
    claims = verify_id_token(tokens.get("id_token"), connection, settings, document, nonce=nonce)
    if "iss" in params and params["iss"] != claims["iss"]:  # a template issuer: now the tenant is known
        raise failed("iss", "the response's iss is not the ID token's")
    claims = _with_userinfo(claims, connection, settings, document, tokens["access_token"])
    if getattr(connection, "preset", None) == "apple":
        claims = {**apple.names(params.get("user")), **claims}
    return UpstreamResult(_profile(claims, connection, issuer=claims["iss"]), tokens)


def _refused(params: dict) -> UpstreamRefused:
    """RFC 6749 §4.1.2.1: the upstream's error, kept short and printable for the log; the page says a
    fixed text whatever it was."""
    code = echo(params.get("error"), 64)
    description = echo(params.get("error_description") or "", MAX_UPSTREAM_DESCRIPTION - 3)  # "..." if cut
    return UpstreamRefused(code, messages.MESSAGES[messages.UPSTREAM_REFUSED].body, upstream_description=description)


def _check_response_issuer(connection, document: dict, iss: str | None) -> None:
    """RFC 9207 §2.4: compare `iss` with the issuer before the code goes anywhere; when the metadata
    says the upstream sends it (authorization_response_iss_parameter_supported), a response without
    it is refused. For Entra's template issuer the tenant is known only from the ID token: here the
    value must fit the template (with an allowed tenant); `_finish` then requires it to be the ID
    token's `iss`."""
    if iss is None:
        if document.get("authorization_response_iss_parameter_supported") is True:
            raise failed("iss", "the response has no iss, and the upstream says it sends one")
        return
    if TENANT_PLACEHOLDER in connection.issuer:
        prefix, _, suffix = connection.issuer.partition(TENANT_PLACEHOLDER)
        tenant = iss[len(prefix):len(iss) - len(suffix)] if iss.startswith(prefix) and iss.endswith(suffix) else ""
        _check_tenant(connection, tenant)
        return
    if not hmac.compare_digest(iss.encode(), connection.issuer.encode()):
        raise failed("iss", f"the response's iss is {echo(iss)}")


def _check_tenant(connection, tenant) -> str:
    if not isinstance(tenant, str) or not _TENANT_ID.fullmatch(tenant):
        raise failed("tenant", f"not a tenant id: {echo(tenant)}")
    allowed = {t.lower() for t in connection.allowed_tenants}
    if allowed and tenant.lower() not in allowed:
        raise failed("tenant", f"tenant {tenant} is not allowed")
    return tenant


# The token request -------------------------------------------------------------------------------

def redeem(connection, settings: Settings, token_endpoint: str, *, secret: dict, code: str, code_verifier: str,
           redirect_uri: str) -> dict:
    """RFC 6749 §4.1.3 with RFC 7636 §4.5's verifier, authenticated as the connection says; the token
    response (§5.1), which must hold a bearer access token."""
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
            "code_verifier": code_verifier}
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
    try:
        form_auth, header_auth = client_authentication(connection, token_endpoint, secret, at=now())
    except (KeyError, TypeError, ValueError) as exc:
        raise failed("secret", f"the connection's secret does not fit {connection.auth_method}: {exc!r}") from None
    form.update(form_auth)
    headers.update(header_auth)
    answer = fetching.send("POST", token_endpoint, settings, what="token_endpoint",
                           body=urlencode(form).encode(), headers=headers)
    tokens = fetching.parse_json(answer, what="token_endpoint")
    if "error" in tokens:  # GitHub answers a bad code with 200 and an error
        raise failed("token_endpoint", f"error={echo(tokens['error'])}")
    if not isinstance(tokens.get("access_token"), str) or not tokens["access_token"]:
        raise failed("token_endpoint", "no access_token")
    if str(tokens.get("token_type", "bearer")).lower() != "bearer":
        raise failed("token_endpoint", f"token_type {echo(tokens.get('token_type'))}")
    return tokens


def client_authentication(connection, token_endpoint: str, secret: dict, *, at: int) -> tuple[dict, dict]:
    """(form parameters, headers) authenticating us at the upstream's token endpoint."""
    client_id, method = connection.client_id, connection.auth_method
    if method == "client_secret_basic":
        # RFC 6749 §2.3.1: both parts form-urlencoded before base64.
        pair = f"{quote_plus(client_id)}:{quote_plus(secret['client_secret'])}"
        return {}, {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}
    if method == "client_secret_post":
        return {"client_id": client_id, "client_secret": secret["client_secret"]}, {}
    if method == "private_key_jwt":
        assertion = client_assertion(client_id, token_endpoint, secret["private_key"], key_id=secret.get("key_id"),
                                     at=at)
        return {"client_id": client_id, "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}, {}
    if method == "apple_client_secret":
        return {"client_id": client_id,
                "client_secret": apple.client_secret(team_id=connection.apple_team_id, key_id=connection.apple_key_id,
                                                     client_id=client_id, private_key_pem=secret["private_key"],
                                                     at=at)}, {}
    raise ValueError(f"unknown auth_method {method!r}")


def client_assertion(client_id: str, token_endpoint: str, private_key_pem: str, *, key_id: str | None,
                     at: int) -> str:
    """RFC 7523 §3 / OIDC Core §9 private_key_jwt: iss = sub = our client id, aud = the token
    endpoint, a unique jti (the upstream may refuse a replay), expiring in ASSERTION_LIFETIME. The
    algorithm follows the key: RS256 for RSA, ES256/ES384/ES512 by curve, EdDSA for Ed25519."""
    key = load_pem_private_key(private_key_pem.encode(), password=None)
    claims = {"iss": client_id, "sub": client_id, "aud": token_endpoint, "jti": str(uuid.uuid4()),
              "iat": at, "exp": at + ASSERTION_LIFETIME}
    return jwt.encode(claims, key, algorithm=_algorithm_for(key), headers={"kid": key_id} if key_id else None)


def _algorithm_for(key) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}[key.curve.name]
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "EdDSA"
    raise ValueError("the private key must be RSA, EC (P-256/384/521) or Ed25519")


# The ID token ------------------------------------------------------------------------------------

def verify_id_token(id_token, connection, settings: Settings, document: dict, *, nonce: str | None) -> dict:
    """OIDC Core §3.1.3.7: the ID token's claims once every check passed, else UpstreamFailed."""
    if not isinstance(id_token, str) or not id_token:
        raise failed("id_token", "the token response has no id_token")
    try:
        header = jwt.get_unverified_header(id_token)
        unverified = jwt.decode(id_token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise failed("malformed", repr(exc)) from None
    alg = header.get("alg")
    announced = document.get("id_token_signing_alg_values_supported") or DEFAULT_ID_TOKEN_ALGS
    if alg not in SIGNING_ALGS or alg not in announced:
        raise failed("alg", f"alg {echo(alg)}")
    issuer = connection.issuer
    if TENANT_PLACEHOLDER in issuer:
        issuer = issuer.replace(TENANT_PLACEHOLDER, _check_tenant(connection, unverified.get("tid")))
    key = _signing_key(document["jwks_uri"], header, alg, settings)
    try:
        claims = jwt.decode(id_token, key, algorithms=[alg], audience=connection.client_id, issuer=issuer,
                            leeway=LEEWAY, options={"require": ["iss", "sub", "aud", "exp", "iat"]})
    except jwt.ExpiredSignatureError:
        raise failed("expired") from None
    except jwt.InvalidAudienceError:
        raise failed("aud", f"aud {echo(unverified.get('aud'))}") from None
    except jwt.InvalidIssuerError:
        raise failed("iss", f"iss {echo(unverified.get('iss'))}") from None
    except (jwt.ImmatureSignatureError, jwt.InvalidIssuedAtError):
        raise failed("iat") from None
    except jwt.InvalidSignatureError:
        raise failed("signature") from None
    except jwt.PyJWTError as exc:
        raise failed("claims", repr(exc)) from None
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    # §3.1.3.7 steps 4-5: with several audiences azp must be there; when there, it must be us.
    if ("azp" in claims or len(audiences) > 1) and claims.get("azp") != connection.client_id:
        raise failed("azp", f"azp {echo(claims.get('azp'))}")
    # §3.1.3.7 step 11: the nonce we sent, compared in constant time.
    if nonce is not None and not hmac.compare_digest(str(claims.get("nonce") or "").encode(), nonce.encode()):
        raise failed("nonce")
    # §2: sub is at most 255 ASCII characters, never empty.
    if not isinstance(claims["sub"], str) or not claims["sub"] or len(claims["sub"]) > 255 \
            or not claims["sub"].isascii():
        raise failed("sub")
    return claims


def _signing_key(jwks_uri: str, header: dict, alg: str, settings: Settings):
    """The upstream's key for this token: by `kid` (refetching the JWK Set once per
    JWKS_REFETCH_INTERVAL for a kid not seen yet), or the only signing key when there is no kid."""
    kid = header.get("kid")
    key = _find_key(fetching.cached_json(jwks_uri, settings, what="jwks"), kid, alg)
    if key is None and kid is not None and now() - _refetched.get(jwks_uri, -JWKS_REFETCH_INTERVAL) \
            >= JWKS_REFETCH_INTERVAL:
        _refetched[jwks_uri] = now()
        key = _find_key(fetching.cached_json(jwks_uri, settings, what="jwks", refresh=True), kid, alg)
    if key is None:
        raise failed("unknown_key", f"kid {echo(kid)}")
    try:
        return jwt.PyJWK(key, algorithm=alg).key
    except jwt.PyJWTError as exc:  # a key of another type than alg, or broken
        raise failed("signature", f"kid {echo(kid)}: {exc!r}") from None


def _find_key(jwks: dict, kid, alg: str) -> dict | None:
    keys = [k for k in jwks.get("keys", []) if isinstance(k, dict) and k.get("use", "sig") == "sig"
            and k.get("alg", alg) == alg]
    if kid is None:
        # OIDC Core §10.1: a kid is required unless the JWK Set holds a single signing key.
        return keys[0] if len(keys) == 1 else None
    return next((k for k in keys if k.get("kid") == kid), None)


# userinfo and the profile ------------------------------------------------------------------------

def _mapping(connection) -> dict:
    return {ours: (getattr(connection, "claim_mapping", None) or {}).get(ours, ours) for ours in PROFILE_CLAIMS}


def _with_userinfo(claims: dict, connection, settings: Settings, document: dict, access_token: str) -> dict:
    """The ID token's claims, completed from userinfo (OIDC Core §5.3) when claims we need are not in
    the ID token (Google and Entra leave some out, depending on scopes); the ID token's own values win."""
    mapping = _mapping(connection)
    # Worth a round trip: the email and whether it is verified (linking and provisioning turn on them),
    # and whatever the operator mapped explicitly; a missing locale or family name alone is not.
    # A preset's mapping names every profile claim as itself (name -> name): that is no explicit wish.
    explicit = {theirs for ours, theirs in (getattr(connection, "claim_mapping", None) or {}).items() if theirs != ours}
    wanted = {mapping["email"], mapping["email_verified"], *explicit}
    endpoint = document.get("userinfo_endpoint")
    if not isinstance(endpoint, str) or wanted <= set(claims):
        return claims
    userinfo = fetching.get_json(endpoint, settings, what="userinfo",
                                 headers={"Authorization": f"Bearer {access_token}"})
    # §5.3.4: the sub in the UserInfo Response MUST be verified to exactly match the ID token's.
    if not hmac.compare_digest(str(userinfo.get("sub", "")).encode(), claims["sub"].encode()):
        raise failed("userinfo_sub")
    return {**userinfo, **claims}


def _profile(claims: dict, connection, *, issuer: str) -> UpstreamProfile:
    mapping = _mapping(connection)

    def text(ours: str) -> str | None:
        value = claims.get(mapping[ours])
        return value if isinstance(value, str) and value else None

    email = text("email")
    # Only what the upstream asserted: a boolean true, or Apple's string "true".
    verified = claims.get(mapping["email_verified"])
    amr = claims.get("amr")
    return UpstreamProfile(
        subject=str(claims["sub"]), email=email, email_verified=email is not None and (verified is True or verified == "true"),
        name=text("name"), given_name=text("given_name"), family_name=text("family_name"), locale=text("locale"),
        acr=claims["acr"] if isinstance(claims.get("acr"), str) else None,
        amr=tuple(value for value in amr if isinstance(value, str)) if isinstance(amr, list) else (),
        issuer=issuer, claims=claims)
