"""Client metadata rules (RFC 7591 §2), one set for every way a client comes to exist.

Two entry points share every rule below and the redirect URI rules of oauth/redirect_uris.py:
- `validate_client_metadata`: an administrator's client (tools/admin.py via oauth.clients.create_client);
  it may be public or confidential, use client_credentials, and name resources and introspection.
- `validate_registration`: RFC 7591 JSON from a client nobody vetted (POST /register, RFC 7592 updates,
  and client ID metadata documents); only SELF_REGISTERED_GRANT_TYPES, and its scopes are the
  unverified-client ceiling.
On what both accept they give the same verdict (tests/unit/test_client_metadata.py runs each case through
both). Both return the ClientModel fields they determine and raise InvalidClientMetadata (or its
InvalidRedirectUri) with a message that says which rule failed and quotes input only through `echo`.
"""
from __future__ import annotations

import json
import unicodedata
from urllib.parse import urlsplit

from ..capabilities import (
    CONFIDENTIAL_AUTH_METHODS,
    DEVICE_CODE,
    GRANT_TYPES,
    JWT_BEARER,
    LOOPBACK_HOSTS,
    PRIVATE_KEY_JWT,
    RESPONSE_TYPES,
    SCOPE_TOKEN,
    SELF_REGISTERED_GRANT_TYPES,
    TOKEN_ENDPOINT_AUTH_METHODS,
    TOKEN_EXCHANGE,
)
from ..errors import InvalidClientMetadata, echo
from . import redirect_uris

CLIENT_TYPES = ("confidential", "public")
MAX_NAME_LENGTH = 200
MAX_URL_LENGTH = 512
#: Unicode bidirectional embeddings, overrides and isolates: they reorder the text around them on the
#: consent page ("App\u202eevil" shows reversed), so a name could pass for another.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def validate_client_metadata(*, client_name: str, client_type: str = "confidential", redirect_uris=(),
                             grant_types=None, scopes=None, token_endpoint_auth_method=None, resources=(),
                             introspects=(), require_mfa: bool = False, connections=(),
                             post_logout_redirect_uris=(), backchannel_logout_uri: str | None = None,
                             backchannel_logout_session_required: bool = False, jwks=None,
                             jwks_uri: str | None = None,
                             require_pushed_authorization_requests: bool = False,
                             dpop_bound_access_tokens: bool = False) -> dict:
    """An administrator's client: check and normalise its metadata into ClientModel fields.
    `require_mfa` and `connections` (how its users may sign in: connection ids and "password", whose
    existence the caller checks) are an operator's settings, never RFC 7591 metadata:
    `validate_registration` has neither."""
    if client_type not in CLIENT_TYPES:
        raise InvalidClientMetadata(f"client_type must be one of {', '.join(CLIENT_TYPES)}, got '{echo(client_type)}'")
    if introspects and client_type != "confidential":
        # RFC 7662 §2.1: the introspection endpoint requires authorization; only secrets prove it.
        raise InvalidClientMetadata("only confidential clients may introspect tokens")
    grants = check_grant_types(client_type, ["authorization_code"] if grant_types is None else grant_types,
                               supported=GRANT_TYPES)
    method = check_auth_method(client_type, token_endpoint_auth_method)
    return {
        "client_name": check_client_name(client_name),
        "client_type": client_type,
        "token_endpoint_auth_method": method,
        **client_keys(method, jwks, jwks_uri),
        "grant_types": grants,
        "redirect_uris": redirect_uris_for(grants, redirect_uris),
        "response_types": check_response_types(grants),
        "scopes": check_scope_tokens(["openid"] if scopes is None else scopes),
        "resources": _resources(resources),
        "introspection": bool(introspects),
        "introspects": _resources(introspects),
        "require_mfa": bool(require_mfa),
        "connections": check_client_connections(connections),
        **logout_metadata(list(post_logout_redirect_uris), backchannel_logout_uri,
                          backchannel_logout_session_required),
        "require_pushed_authorization_requests": check_require_par(require_pushed_authorization_requests),
        "dpop_bound_access_tokens": check_dpop_bound_access_tokens(dpop_bound_access_tokens),
    }


def check_client_connections(names) -> list[str]:
    """A client's sign-in methods: connection ids (federation/connections.CONNECTION_ID) and the word
    "password", each once."""
    from ..federation.connections import CONNECTION_ID

    names = list(dict.fromkeys(names or ()))
    bad = [n for n in names if not isinstance(n, str) or not CONNECTION_ID.fullmatch(n)]
    if bad:
        raise InvalidClientMetadata(f"connections are connection ids or 'password', not '{echo(bad[0])}'")
    return names


def validate_registration(metadata, ceiling: tuple[str, ...]) -> dict:
    """RFC 7591 §2 metadata of a self-registered client -> ClientModel fields, with `ceiling` (the
    scopes an unverified client may ask for) as its scopes."""
    if not isinstance(metadata, dict):
        raise InvalidClientMetadata("the registration request must be a JSON object")
    method = metadata.get("token_endpoint_auth_method", "client_secret_basic")  # RFC 7591 §2 default
    if not isinstance(method, str):
        raise InvalidClientMetadata("token_endpoint_auth_method must be a string")
    client_type = "public" if method == "none" else "confidential"
    grants = check_grant_types(client_type, _strings(metadata, "grant_types", ["authorization_code"]),
                               supported=SELF_REGISTERED_GRANT_TYPES)
    uris = redirect_uris_for(grants, _strings(metadata, "redirect_uris", []))
    name = metadata.get("client_name")
    if name is not None and not isinstance(name, str):
        raise InvalidClientMetadata("client_name must be a string")
    method = check_auth_method(client_type, method)
    return {
        "client_name": check_client_name(name) if name is not None else _default_name(uris[0]),
        "client_type": client_type,
        "token_endpoint_auth_method": method,
        **client_keys(method, metadata.get("jwks"), metadata.get("jwks_uri"), others="ignore"),
        "redirect_uris": uris,
        "grant_types": grants,
        "response_types": check_response_types(grants, _strings(metadata, "response_types", None)),
        "scopes": _within_ceiling(metadata.get("scope"), ceiling),
        "client_uri": _optional_web_url(metadata, "client_uri"),
        **logout_metadata(_strings(metadata, "post_logout_redirect_uris", []), metadata.get("backchannel_logout_uri"),
                          metadata.get("backchannel_logout_session_required", False)),
        "require_pushed_authorization_requests": check_require_par(
            metadata.get("require_pushed_authorization_requests", False)),
        "dpop_bound_access_tokens": check_dpop_bound_access_tokens(metadata.get("dpop_bound_access_tokens", False)),
    }


# The rules, shared by both entry points -----------------------------------------------------------

def check_dpop_bound_access_tokens(value) -> bool:
    """RFC 9449 §5.2 `dpop_bound_access_tokens`: a JSON boolean, false when omitted; true makes
    every token request of the client need a DPoP proof (chalicelib/oauth/dpop_binding.required)."""
    if not isinstance(value, bool):
        raise InvalidClientMetadata("dpop_bound_access_tokens must be a boolean")
    return value


def check_client_name(name: str) -> str:
    """Shown on the sign-in and consent pages: printable, and trimmed."""
    name = (name or "").strip()
    if not 1 <= len(name) <= MAX_NAME_LENGTH:
        raise InvalidClientMetadata(f"client_name must be 1 to {MAX_NAME_LENGTH} characters")
    if any(unicodedata.category(c) == "Cc" or c in _BIDI_CONTROLS for c in name):
        raise InvalidClientMetadata("client_name must not contain control characters")
    return name


def check_auth_method(client_type: str, method: str | None) -> str:
    """RFC 6749 §2.3.1 / RFC 7591 §2: confidential clients authenticate with their secret or their
    private key (RFC 7523 §2.2); public clients can keep neither and use "none" (PKCE protects their
    codes instead). The profile may narrow that further (chalicelib/profiles.py: PROFILE=fapi2 takes
    confidential private_key_jwt clients only), so no client is made that could never authenticate."""
    if method is not None and method not in TOKEN_ENDPOINT_AUTH_METHODS:
        raise InvalidClientMetadata(f"token_endpoint_auth_method must be one of "
                                    f"{', '.join(TOKEN_ENDPOINT_AUTH_METHODS)}, got '{echo(method)}'")
    if client_type == "public":
        if method not in (None, "none"):
            raise InvalidClientMetadata("public clients have no secret: token_endpoint_auth_method must be 'none'")
        return _profile_allows(client_type, "none")
    if method == "none":
        raise InvalidClientMetadata("confidential clients authenticate: token_endpoint_auth_method must be "
                                    f"{', '.join(CONFIDENTIAL_AUTH_METHODS)} or {PRIVATE_KEY_JWT}")
    return _profile_allows(client_type, method or CONFIDENTIAL_AUTH_METHODS[0])


def _profile_allows(client_type: str, method: str) -> str:
    from .. import profiles
    from ..config import settings

    profiles.check_client_authentication(client_type, method, settings())
    return method


def client_keys(method: str, jwks, jwks_uri, *, others: str = "refuse") -> dict:
    """The `jwks` / `jwks_uri` ClientModel fields of a client using `method`: for private_key_jwt
    exactly one of them (RFC 7591 §2: "MUST NOT both be present"), else neither. Keys given with
    another method are refused (`others="refuse"`: an operator who gives keys means private_key_jwt,
    and keeping them unused would hide the slip) or dropped (`"ignore"`: RFC 7591 §2 keys serve
    purposes we do not offer too, such as request objects, so a self-registered client may send them).

    - `jwks`: a JWK Set of 1 to MAX_CLIENT_KEYS public keys that can verify a client assertion
      (keys/jwk.fits: P-256, RSA of 2048 bits or more, Ed25519), each with `use` "sig" if
      any and an `alg` of CLIENT_ASSERTION_ALGS if any, with distinct `kid`s when there are several
      (OIDC Core §10.1 picks the key by kid). A private key is refused: we must never hold one that
      could sign as the client. Stored as compact JSON text.
    - `jwks_uri`: where the client publishes it; fetched later through the outbound guard, so it
      must pass the guard's URL rules now (https, loopback http in the local stage only).
    """
    if method != PRIVATE_KEY_JWT:
        if others == "refuse" and (jwks is not None or jwks_uri is not None):
            raise InvalidClientMetadata(f"jwks and jwks_uri are for token_endpoint_auth_method {PRIVATE_KEY_JWT}")
        return {"jwks": None, "jwks_uri": None}
    if (jwks is None) == (jwks_uri is None):
        raise InvalidClientMetadata(f"{PRIVATE_KEY_JWT} needs exactly one of jwks and jwks_uri")
    if jwks_uri is not None:
        return {"jwks": None, "jwks_uri": _jwks_uri(jwks_uri)}
    return {"jwks": json.dumps(check_jwks(jwks), separators=(",", ":"), sort_keys=True), "jwks_uri": None}


#: Keys of one client: a current one and a few being rotated in or out.
MAX_CLIENT_KEYS = 10
#: JWK members of a private or symmetric key (RFC 7518 §6.2.2, §6.3.2, §6.4.1, RFC 8037 §2).
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")


def check_jwks(jwks) -> dict:
    """A client's JWK Set (see `client_keys`), or InvalidClientMetadata naming what is wrong."""
    from .. import profiles
    from ..config import settings

    algs_allowed = profiles.assertion_algs(settings())  # PROFILE=fapi2: no RS256 (FAPI 2.0 §5.4.1)
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list) or not 1 <= len(keys) <= MAX_CLIENT_KEYS:
        raise InvalidClientMetadata(f"jwks must be a JWK Set with 1 to {MAX_CLIENT_KEYS} keys")
    for jwk in keys:
        if not isinstance(jwk, dict):
            raise InvalidClientMetadata("jwks: every key must be a JSON object")
        if any(member in jwk for member in _PRIVATE_MEMBERS):
            raise InvalidClientMetadata("jwks must hold public keys only: never register a private or secret key")
        if jwk.get("use", "sig") != "sig":
            raise InvalidClientMetadata("jwks: a key's use must be sig")
        algs = [jwk["alg"]] if "alg" in jwk else list(algs_allowed)
        if not any(alg in algs_allowed and _verifies(jwk, alg) for alg in algs):
            raise InvalidClientMetadata(f"jwks: every key must be a public key for {', '.join(algs_allowed)} "
                                        "(P-256, RSA of at least 2048 bits, Ed25519)")
    kids = [jwk.get("kid") for jwk in keys]
    if len(keys) > 1 and (None in kids or len(set(map(str, kids))) != len(kids)):
        raise InvalidClientMetadata("jwks: with several keys, each needs its own kid")
    return {"keys": keys}


def _verifies(jwk: dict, alg) -> bool:
    import jwt

    from ..keys.jwk import fits

    try:
        return fits(jwt.PyJWK(jwk, algorithm=alg).key, alg)
    except (jwt.PyJWTError, ValueError, TypeError, KeyError):
        return False


def _jwks_uri(uri) -> str:
    from .. import outbound
    from ..config import settings

    if not isinstance(uri, str) or len(uri) > MAX_URL_LENGTH:
        raise InvalidClientMetadata(f"jwks_uri must be a URL of at most {MAX_URL_LENGTH} characters")
    try:
        outbound.check_url(uri, settings(), what="jwks_uri")
    except outbound.Refused as exc:
        raise InvalidClientMetadata(str(exc)) from None
    return uri


#: Grants only a client that proves who it is may use, by the name refusals give them:
#: - client_credentials: RFC 6749 §4.4 "MUST only be used by confidential clients";
#: - jwt-bearer: draft-ietf-oauth-identity-assertion-authz-grant §"Client Authentication";
#: - token exchange: RFC 8693 §2.1 leaves client authentication to the server; ours, since the result
#:   names the client as the actor (oauth/delegation.py).
_CONFIDENTIAL_ONLY = {"client_credentials": "client_credentials", JWT_BEARER: "jwt-bearer",
                      TOKEN_EXCHANGE: "token exchange"}


def check_grant_types(client_type: str, grants, *, supported: tuple[str, ...]) -> list[str]:
    grants = list(dict.fromkeys(grants))
    if not grants:
        raise InvalidClientMetadata("at least one grant type is required")
    unknown = [g for g in grants if g not in supported]
    if unknown:
        raise InvalidClientMetadata(f"unsupported grant type '{echo(unknown[0])}'; supported: {', '.join(supported)}")
    for grant, name in _CONFIDENTIAL_ONLY.items():
        if client_type == "public" and grant in grants:
            raise InvalidClientMetadata(f"public clients cannot use the {name} grant")
    # Refresh tokens come only from a grant with a user: the code flow or the device flow (RFC 8628
    # §3.5 allows them), never client_credentials (RFC 6749 §4.4.3).
    with_user = [g for g in ("authorization_code", DEVICE_CODE) if g in supported]
    if "refresh_token" in grants and not any(g in grants for g in with_user):
        raise InvalidClientMetadata(f"the refresh_token grant requires the {' or '.join(with_user)} grant")
    return grants


def check_response_types(grants: list[str], requested: list[str] | None = None) -> list[str]:
    """RFC 7591 §2.1: "code" goes with the authorization_code grant, and nothing else is served."""
    expected = list(RESPONSE_TYPES) if "authorization_code" in grants else []
    if requested is not None and requested != expected:
        raise InvalidClientMetadata('response_types must be ["code"] with the authorization_code grant' if expected
                                    else "response_types must be empty without the authorization_code grant")
    return expected


def redirect_uris_for(grants: list[str], uris) -> list[str]:
    return redirect_uris.check_all(list(uris), required="authorization_code" in grants)


def logout_metadata(post_logout_redirect_uris: list[str], backchannel_logout_uri, session_required) -> dict:
    """The logout metadata of a client, as ClientModel fields.

    - `post_logout_redirect_uris` (OpenID Connect RP-Initiated Logout 1.0 §3.1): compared by exact
      match at the end-session endpoint, so they follow the redirect URI rules (oauth/redirect_uris.py).
    - `backchannel_logout_uri` (OpenID Connect Back-Channel Logout 1.0 §2.2: "MUST NOT include a
      fragment component"): we POST logout tokens to it from our own network, so it passes the
      outbound guard's URL rules (https, http to loopback only in the local stage, the default
      port, no credentials, never this server: chalicelib/outbound.check_url) when registered, and
      the guard's address rules every time it is used.
    - `backchannel_logout_session_required` (§2.2): a JSON boolean; meaningless without the URI.
    """
    from .. import outbound
    from ..config import settings

    try:
        uris = redirect_uris.check_all(post_logout_redirect_uris, required=False)
    except InvalidClientMetadata as exc:  # RFC 7591 §3.2.2's invalid_redirect_uri is for redirect_uris alone
        raise InvalidClientMetadata(f"post_logout_redirect_uris: {exc.description}") from None
    if backchannel_logout_uri is not None:
        if not isinstance(backchannel_logout_uri, str):
            raise InvalidClientMetadata("backchannel_logout_uri must be a string")
        try:
            outbound.check_url(backchannel_logout_uri, settings(), what="backchannel_logout_uri")
        except outbound.Refused as exc:
            raise InvalidClientMetadata(str(exc)) from None
    if not isinstance(session_required, bool):
        raise InvalidClientMetadata("backchannel_logout_session_required must be a boolean")
    if session_required and backchannel_logout_uri is None:
        raise InvalidClientMetadata("backchannel_logout_session_required needs a backchannel_logout_uri")
    return {"post_logout_redirect_uris": uris, "backchannel_logout_uri": backchannel_logout_uri,
            "backchannel_logout_session_required": session_required}


def check_require_par(value) -> bool:
    """RFC 9126 §6 `require_pushed_authorization_requests`: a JSON boolean, false when omitted; true
    makes /authorize refuse the client's requests that were not pushed to /par."""
    if not isinstance(value, bool):
        raise InvalidClientMetadata("require_pushed_authorization_requests must be a boolean")
    return value


def check_scope_tokens(scopes) -> list[str]:
    scopes = list(dict.fromkeys(scopes))
    for scope in scopes:
        if not isinstance(scope, str) or not SCOPE_TOKEN.fullmatch(scope):
            raise InvalidClientMetadata(f"invalid scope '{echo(scope)}': not an RFC 6749 §3.3 scope-token")
    return scopes


# Only for one entry point -------------------------------------------------------------------------

def _strings(metadata: dict, name: str, default: list[str] | None) -> list[str] | None:
    value = metadata.get(name, default)
    if value is default:
        return default
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidClientMetadata(f"{name} must be an array of strings")
    return list(dict.fromkeys(value))


def _default_name(redirect_uri: str) -> str:
    return f"App at {urlsplit(redirect_uri).hostname or urlsplit(redirect_uri).scheme}"


def _within_ceiling(scope, ceiling: tuple[str, ...]) -> list[str]:
    """The registration's scope (optional: Claude-style requests omit it) must be within the ceiling;
    the client gets the whole ceiling either way (oauth/clients.allowed_scopes says why)."""
    if scope is not None:
        if not isinstance(scope, str):
            raise InvalidClientMetadata("scope must be a space-separated string")
        # One message for a scope no API defines and a private API's scope: no existence oracle.
        refused = [s for s in check_scope_tokens(s for s in scope.split(" ") if s) if s not in ceiling]
        if refused:
            raise InvalidClientMetadata(f"scope not available to self-registered clients: '{echo(refused[0])}'")
    return list(ceiling)


def _optional_web_url(metadata: dict, name: str) -> str | None:
    """RFC 7591 §2 client_uri: a web page about the client; https (http on loopback), no credentials."""
    value = metadata.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_URL_LENGTH or not value.isascii():
        raise InvalidClientMetadata(f"{name} must be an ASCII URL of at most {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(value)
    except ValueError:
        raise InvalidClientMetadata(f"{name} is not a valid URL") from None
    if "@" in parts.netloc or not (parts.scheme == "https" and parts.hostname
                                   or parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS):
        raise InvalidClientMetadata(f"{name} must be an https URL without credentials")
    return value


def _resources(resources) -> list[str]:
    from ..storage.resources import InvalidResource, check_resource_uri, get_resource

    resources = list(dict.fromkeys(resources))
    for uri in resources:
        try:
            check_resource_uri(uri)
        except InvalidResource as exc:
            raise InvalidClientMetadata(str(exc)) from None
        if get_resource(uri) is None:
            raise InvalidClientMetadata(f"resource {uri!r} is not registered; register it first")
    return resources
