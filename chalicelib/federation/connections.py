"""Connections: the upstream identity providers users may sign in through, and their rules.

A connection is an OpenID Provider (OpenID Connect Core 1.0, found by OpenID Connect Discovery 1.0
from its issuer) or GitHub (plain OAuth 2.0, RFC 6749: no ID token, the profile comes from its REST
API). Presets fill in what each well-known provider fixes (issuer, endpoints, scopes, client
authentication, response mode), so an operator gives only what is theirs: the client id, the secret,
and for Microsoft Entra ID the tenant, for Apple the team and key ids.

The registration is stored in the connections table (chalicelib/storage/connections.py); its secret
(client secret, or private key for private_key_jwt and Apple's client secret JWT) is kept apart, in
Secrets Manager under SECRET_PREFIX + "connections/<id>", which the API function may only read
(infra/policy.py). `validate` checks an operator's input strictly, before anything is written:
everything here ends up in URLs we fetch, in claims we trust, or on the sign-in page.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, fields

from .. import caches
from ..capabilities import CONFIDENTIAL_AUTH_METHODS, SCOPE_TOKEN
from ..config import Settings
from ..errors import InvalidConnection, TemporarilyUnavailable
from ..log import get_logger
from ..storage.cache import ContainerCache

log = get_logger(__name__)

#: In URLs (/federation/...), storage keys and secret names: short, lower-case, no dots or slashes.
CONNECTION_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
#: What a client's `connections` may name besides connection ids: the local password form.
PASSWORD = "password"
PROTOCOLS = ("oidc", "github")
#: RFC 6749 §2.3.1's client password methods: the ones our own clients use, now with us as the client.
SECRET_METHODS = CONFIDENTIAL_AUTH_METHODS
AUTH_METHODS = (*SECRET_METHODS, "private_key_jwt", "apple_client_secret")
RESPONSE_MODES = ("query", "form_post")
#: What a connection's issuer may be trusted for besides sign-in (chalicelib/federation/trusted_issuers.py):
#: "id-jag": its ID-JAGs are redeemed with the JWT bearer grant (draft-ietf-oauth-identity-assertion-
#: authz-grant); "subject-token": its JWTs are subject tokens of token exchange (RFC 8693).
TRUST = ("id-jag", "subject-token")
#: How a trusted issuer's `sub` becomes a local user: "identity", the user that identity is linked to
#: (`identity#<connection>#<sub>`, linked at a sign-in through it); "email", the user holding the
#: token's `email`, for addresses in trusted_email_domains only (the operator vouches the issuer owns them).
SUBJECT_MAPPINGS = ("identity", "email")
#: Our claims a connection maps from upstream claims (OIDC Core §5.1), for JIT provisioning and linking.
MAPPED_CLAIMS = ("email", "email_verified", "name", "given_name", "family_name", "locale")
#: An upstream claim name or acr value: printable ASCII without spaces (claim names may be URIs).
CLAIM_NAME = re.compile(r"[\x21-\x7E]{1,256}")
#: A DNS name (RFC 1035 §2.3.1 labels, lower-case, punycode for IDNs), with at least one dot.
DOMAIN = re.compile(r"(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?")
#: A Microsoft Entra tenant id (a GUID, as its issuer spells it).
TENANT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
#: Apple's team and key ids: ten upper-case letters or digits.
APPLE_ID = re.compile(r"[A-Z0-9]{10}")
MAX_DISPLAY_NAME = 64
MAX_CLIENT_ID = 256
MAX_SECRET = 1024
MAX_DOMAINS = 100
#: Seconds a container keeps a connection's secret: rotating it upstream then takes effect within this.
SECRET_CACHE_SECONDS = 300

#: Unicode bidirectional controls: they would reorder a button's label ("Google\u202e...").
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

ENTRA = "https://login.microsoftonline.com"
#: Entra's multi-tenant issuer template: each token's `iss` has its tenant id (`tid`) in place of
#: {tenantid}, as the "common" and "organizations" discovery documents publish it literally.
ENTRA_ISSUER_TEMPLATE = ENTRA + "/{tenantid}/v2.0"
#: The tenant of personal Microsoft accounts: "consumers" tokens are issued by it.
ENTRA_CONSUMERS_TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"
ENTRA_TENANTS = ("common", "organizations", "consumers")

_OIDC_SCOPES = ("openid", "email", "profile")
_SAME_CLAIMS = {claim: claim for claim in MAPPED_CLAIMS}

#: What each preset fixes or defaults. Every preset may set what COMMON_FIELDS lists; PRESET_FIELDS
#: lists what else the operator may set for it; anything else is the preset's.
PRESETS: dict[str, dict] = {
    # Any OpenID Provider, by its issuer (required).
    "oidc": {"protocol": "oidc", "auth_method": "client_secret_basic", "scopes": _OIDC_SCOPES,
             "response_mode": "query", "claim_mapping": _SAME_CLAIMS},
    "google": {"protocol": "oidc", "display_name": "Google", "issuer": "https://accounts.google.com",
               "auth_method": "client_secret_basic", "scopes": _OIDC_SCOPES, "response_mode": "query",
               "claim_mapping": _SAME_CLAIMS},
    # Entra ID sends no email_verified: its `email` is whatever the account's owner typed, unless
    # the optional claim xms_edov ("email domain owner verified") says the domain's owner vouches
    # for it. Mapping email_verified to it keeps an unverified address from provisioning or linking.
    "microsoft": {"protocol": "oidc", "display_name": "Microsoft", "auth_method": "client_secret_post",
                  "scopes": _OIDC_SCOPES, "response_mode": "query",
                  "claim_mapping": {**_SAME_CLAIMS, "email_verified": "xms_edov"}},
    # Sign in with Apple: the code comes back in a form_post (its `name`/`email` scopes require it),
    # and the client secret is an ES256 JWT made from the team's private key.
    "apple": {"protocol": "oidc", "display_name": "Apple", "issuer": "https://appleid.apple.com",
              "auth_method": "apple_client_secret", "scopes": ("openid", "email", "name"),
              "response_mode": "form_post", "claim_mapping": _SAME_CLAIMS},
    # GitHub Apps and OAuth apps: OAuth 2.0 with the profile from api.github.com (/user, /user/emails).
    "github": {"protocol": "github", "display_name": "GitHub", "auth_method": "client_secret_post",
               "authorization_endpoint": "https://github.com/login/oauth/authorize",
               "token_endpoint": "https://github.com/login/oauth/access_token",
               "api_base": "https://api.github.com", "scopes": ("read:user", "user:email"),
               "response_mode": "query", "claim_mapping": _SAME_CLAIMS},
}
COMMON_FIELDS = frozenset({"connection_id", "preset", "display_name", "client_id", "scopes", "claim_mapping",
                           "acr_mapping", "trusted_email_domains", "domains", "store_tokens", "icon_url", "enabled",
                           "trust", "subject_mapping"})
PRESET_FIELDS: dict[str, frozenset] = {
    "oidc": frozenset({"issuer", "discovery_url", "auth_method", "response_mode"}),
    "google": frozenset({"auth_method"}),
    "microsoft": frozenset({"tenant", "allowed_tenants", "auth_method"}),
    "apple": frozenset({"apple_team_id", "apple_key_id"}),
    # GitHub Enterprise Server has its own host for all three.
    "github": frozenset({"authorization_endpoint", "token_endpoint", "api_base"}),
}
#: The client authentication each preset's provider supports (Entra's private_key_jwt needs a
#: certificate thumbprint header, which we do not send).
PRESET_AUTH_METHODS = {
    "oidc": (*SECRET_METHODS, "private_key_jwt"),
    "google": SECRET_METHODS,
    "microsoft": ("client_secret_post", "client_secret_basic"),
    "apple": ("apple_client_secret",),
    "github": ("client_secret_post",),
}


@dataclass(frozen=True)
class Connection:
    """A connection as the flow sees it (the ConnectionModel item). Frozen, with tuples: the API's
    copy is cached per container and shared by every request (storage.connections.enabled_connections)."""

    connection_id: str
    preset: str  # a key of PRESETS
    protocol: str  # "oidc" | "github"
    display_name: str
    client_id: str
    auth_method: str  # one of AUTH_METHODS
    #: OIDC: the issuer (Entra multi-tenant: ENTRA_ISSUER_TEMPLATE).
    issuer: str | None = None
    #: Where the discovery document is, when not at issuer + "/.well-known/openid-configuration".
    discovery_url: str | None = None
    #: Entra multi-tenant ("common", "organizations"): the tenant ids allowed; empty: any tenant.
    allowed_tenants: tuple[str, ...] = ()
    #: GitHub (OIDC providers publish theirs in discovery).
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    api_base: str | None = None
    scopes: tuple[str, ...] = _OIDC_SCOPES
    response_mode: str = "query"  # "form_post": Apple
    #: Our claim (MAPPED_CLAIMS) -> the upstream claim it is read from.
    claim_mapping: dict = field(default_factory=lambda: dict(_SAME_CLAIMS))
    #: Upstream acr value -> ours (oauth/acr.SUPPORTED): how strong the upstream's sign-in counts here.
    acr_mapping: dict = field(default_factory=dict)
    #: A verified email in one of these domains links to the local account that has it, without
    #: asking the user to prove it (exact, lower-case): the upstream is trusted for those addresses.
    trusted_email_domains: tuple[str, ...] = ()
    #: Home-realm discovery: an address in one of these domains signs in through this connection.
    domains: tuple[str, ...] = ()
    #: Keep the upstream's tokens, sealed (secret_box purpose "upstream_tokens").
    store_tokens: bool = False
    apple_team_id: str | None = None
    apple_key_id: str | None = None
    #: Microsoft: "common", "organizations", "consumers" or a tenant id; issuer and discovery follow.
    tenant: str | None = None
    #: https; shown on the sign-in button.
    icon_url: str | None = None
    enabled: bool = True
    #: The Secrets Manager secret holding the client secret or private key (never the value).
    secret_name: str | None = None
    created_at: int = 0
    updated_at: int = 0
    #: Values of TRUST: what else than sign-in its issuer's JWTs are accepted for.
    trust: tuple[str, ...] = ()
    #: One of SUBJECT_MAPPINGS: how a trusted JWT's subject names a local user.
    subject_mapping: str = "identity"


CONNECTION_FIELDS = tuple(f.name for f in fields(Connection))
#: What `validate` decides; the rest (secret_name, times) is the store's.
_VALIDATED = tuple(name for name in CONNECTION_FIELDS if name not in ("secret_name", "created_at", "updated_at"))


def validate(*, settings: Settings | None = None, **given) -> dict:
    """An operator's connection -> the Connection fields it determines (the preset's defaults
    applied), or InvalidConnection naming the first rule it breaks. A value of None means "not
    given". URLs are checked as outbound.check_url will check them when they are fetched (https,
    loopback http only in the local stage, not this server), so a connection cannot be saved that
    could never be used."""
    from ..config import settings as current_settings

    settings = settings or current_settings()
    given = {name: value for name, value in given.items() if value is not None}
    preset = given.get("preset")
    if preset not in PRESETS:
        raise InvalidConnection(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    allowed = COMMON_FIELDS | PRESET_FIELDS[preset]
    unknown = sorted(set(given) - set(_VALIDATED))
    if unknown:
        raise InvalidConnection(f"unknown connection field {unknown[0]!r}")
    foreign = sorted(set(given) - allowed)
    if foreign:
        raise InvalidConnection(f"{foreign[0]} cannot be set for the {preset} preset")
    values = {**PRESETS[preset], **given}
    out = {"connection_id": check_connection_id(values.get("connection_id")), "preset": preset,
           "protocol": values["protocol"]}
    out["display_name"] = _display_name(values.get("display_name"))
    out["client_id"] = _client_id(values.get("client_id"))
    method = values["auth_method"]
    if method not in PRESET_AUTH_METHODS[preset]:
        raise InvalidConnection(f"auth_method must be one of {', '.join(PRESET_AUTH_METHODS[preset])} for the "
                                f"{preset} preset, got {method!r}")
    out["auth_method"] = method
    out.update(_endpoints(preset, values, settings))
    out["scopes"] = _scopes(values.get("scopes"), oidc=out["protocol"] == "oidc")
    if values["response_mode"] not in RESPONSE_MODES:
        raise InvalidConnection(f"response_mode must be one of {', '.join(RESPONSE_MODES)}")
    out["response_mode"] = values["response_mode"]
    out["claim_mapping"] = _claim_mapping(values.get("claim_mapping"))
    out["acr_mapping"] = _acr_mapping(values.get("acr_mapping"))
    out["trusted_email_domains"] = check_domains(values.get("trusted_email_domains", ()), "trusted_email_domains")
    out["domains"] = check_domains(values.get("domains", ()), "domains")
    out["store_tokens"] = _flag(values.get("store_tokens", False), "store_tokens")
    out["enabled"] = _flag(values.get("enabled", True), "enabled")
    out["icon_url"] = _url(values["icon_url"], settings, "icon_url") if values.get("icon_url") else None
    out["trust"], out["subject_mapping"] = _trust(values, out)
    if preset == "apple":
        for name, label in (("apple_team_id", "team id"), ("apple_key_id", "key id")):
            if not isinstance(values.get(name), str) or not APPLE_ID.fullmatch(values[name]):
                raise InvalidConnection(f"the apple preset needs its {label}: ten upper-case letters or digits")
            out[name] = values[name]
    return {name: out.get(name, _default(name)) for name in _VALIDATED}


def _default(name: str):
    default = next(f for f in fields(Connection) if f.name == name)
    return default.default_factory() if callable(default.default_factory) else default.default


def check_connection_id(value) -> str:
    if not isinstance(value, str) or not CONNECTION_ID.fullmatch(value):
        raise InvalidConnection("the connection id must be 1 to 32 lower-case letters, digits or hyphens, "
                                "starting with a letter or digit")
    if value == PASSWORD:
        raise InvalidConnection("the connection id 'password' is reserved: a client's connections use it for the "
                                "password form")
    return value


def _display_name(value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidConnection("the oidc preset needs a display name (shown on the sign-in button)")
    value = value.strip()
    if len(value) > MAX_DISPLAY_NAME or any(not c.isprintable() or c in _BIDI_CONTROLS for c in value):
        raise InvalidConnection(f"the display name must be at most {MAX_DISPLAY_NAME} printable characters")
    return value


def _client_id(value) -> str:
    if not isinstance(value, str) or not re.fullmatch(rf"[\x21-\x7E]{{1,{MAX_CLIENT_ID}}}", value):
        raise InvalidConnection(f"the client id (from the provider's app registration) must be 1 to {MAX_CLIENT_ID} "
                                "printable ASCII characters without spaces")
    return value


def _url(value, settings: Settings, what: str) -> str:
    """A URL we will fetch (or show): outbound.check_url's rules, and no query for the issuer-like
    ones callers build paths onto."""
    from ..outbound import Refused, check_url

    if not isinstance(value, str):
        raise InvalidConnection(f"{what} must be a URL")
    try:
        check_url(value, settings, what=what)
    except Refused as exc:
        raise InvalidConnection(str(exc)) from None
    return value


def _issuer(value, settings: Settings) -> str:
    """OIDC Discovery §2 / Core §2: an https URL with no query or fragment, compared exactly, so it
    is kept exactly as given (a trailing slash is part of some issuers)."""
    from urllib.parse import urlsplit

    if not value:
        raise InvalidConnection("the oidc preset needs the provider's issuer URL")
    _url(value, settings, "issuer")
    if urlsplit(value).query or "{" in value or "}" in value:
        raise InvalidConnection("issuer must have no query (and no template: only the microsoft preset has one)")
    return value


def _endpoints(preset: str, values: dict, settings: Settings) -> dict:
    """issuer, discovery_url, tenant, allowed_tenants, and GitHub's endpoints."""
    if preset == "github":
        return {name: _url(values[name], settings, name)
                for name in ("authorization_endpoint", "token_endpoint", "api_base")}
    if preset == "microsoft":
        return _entra(values.get("tenant"), values.get("allowed_tenants", ()))
    out = {"issuer": _issuer(values.get("issuer"), settings)}
    if values.get("discovery_url"):
        out["discovery_url"] = _url(values["discovery_url"], settings, "discovery_url")
    return out


def _entra(tenant, allowed) -> dict:
    """Microsoft Entra ID's v2.0 endpoints for a tenant choice. "common" and "organizations" serve
    any tenant: their discovery documents give the {tenantid} template as issuer, each token's
    issuer has its own tenant (`tid`), and `allowed_tenants` may narrow them. "consumers" and a
    tenant id are single issuers."""
    if not isinstance(tenant, str) or not tenant:
        raise InvalidConnection(f"the microsoft preset needs a tenant: {', '.join(ENTRA_TENANTS)} or a tenant id "
                                "(a GUID)")
    tenant = tenant.lower()
    if tenant not in ENTRA_TENANTS and not TENANT_ID.fullmatch(tenant):
        raise InvalidConnection(f"the tenant must be one of {', '.join(ENTRA_TENANTS)} or a tenant id (a GUID, as "
                                "shown in the Entra admin center)")
    allowed = tuple(dict.fromkeys(t.lower() for t in _strings(allowed, "allowed_tenants")))
    if any(not TENANT_ID.fullmatch(t) for t in allowed):
        raise InvalidConnection("allowed_tenants must be tenant ids (GUIDs)")
    if allowed and tenant not in ("common", "organizations"):
        raise InvalidConnection("allowed_tenants applies only to the common and organizations tenants")
    out = {"tenant": tenant, "allowed_tenants": allowed}
    if tenant in ("common", "organizations"):
        return {**out, "issuer": ENTRA_ISSUER_TEMPLATE,
                "discovery_url": f"{ENTRA}/{tenant}/v2.0/.well-known/openid-configuration"}
    if tenant == "consumers":
        return {**out, "issuer": f"{ENTRA}/{ENTRA_CONSUMERS_TENANT}/v2.0",
                "discovery_url": f"{ENTRA}/consumers/v2.0/.well-known/openid-configuration"}
    return {**out, "issuer": f"{ENTRA}/{tenant}/v2.0"}


def _strings(value, what: str) -> tuple[str, ...]:
    if isinstance(value, str) or not all(isinstance(v, str) for v in value):
        raise InvalidConnection(f"{what} must be a list of strings")
    return tuple(value)


def _scopes(value, *, oidc: bool) -> tuple[str, ...]:
    scopes = tuple(dict.fromkeys(_strings(value or (), "scopes")))
    bad = [s for s in scopes if not SCOPE_TOKEN.fullmatch(s)]
    if bad:
        raise InvalidConnection(f"invalid scope {bad[0]!r}")
    if oidc and "openid" not in scopes:
        # OIDC Core §3.1.2.1: without it the provider answers as plain OAuth 2.0, with no ID token.
        raise InvalidConnection("the scopes of an OpenID Connect provider must include openid")
    if not scopes:
        raise InvalidConnection("scopes must not be empty")
    return scopes


def _claim_mapping(value) -> dict:
    mapping = dict(value or {})
    unknown = sorted(set(mapping) - set(MAPPED_CLAIMS))
    if unknown:
        raise InvalidConnection(f"claims that can be mapped are {', '.join(MAPPED_CLAIMS)}, not {unknown[0]!r}")
    for ours, theirs in mapping.items():
        if not isinstance(theirs, str) or not CLAIM_NAME.fullmatch(theirs):
            raise InvalidConnection(f"the upstream claim for {ours} must be a claim name (printable ASCII, no spaces)")
    return {ours: mapping[ours] for ours in MAPPED_CLAIMS if ours in mapping}


def _acr_mapping(value) -> dict:
    from ..oauth.acr import SUPPORTED

    mapping = dict(value or {})
    for theirs, ours in mapping.items():
        if not isinstance(theirs, str) or not CLAIM_NAME.fullmatch(theirs):
            raise InvalidConnection("an upstream acr value must be printable ASCII without spaces")
        if ours not in SUPPORTED:
            raise InvalidConnection(f"an upstream acr maps to one of {', '.join(SUPPORTED)}, not {ours!r}")
    return {theirs: mapping[theirs] for theirs in sorted(mapping)}


def _trust(values: dict, out: dict) -> tuple[tuple[str, ...], str]:
    """`trust` and `subject_mapping`. Only an OpenID Provider signs JWTs we can check (its JWK Set,
    from discovery), with one issuer (not Entra's template). This server itself never is one: its
    issuer is refused as any URL pointing here (`_url`), and trusted_issuers.verify refuses our own
    JWTs (draft-ietf-oauth-identity-assertion-authz-grant §"Cross-Domain Use")."""
    trust = tuple(dict.fromkeys(_strings(values.get("trust", ()), "trust")))
    unknown = [t for t in trust if t not in TRUST]
    if unknown:
        raise InvalidConnection(f"trust values are {', '.join(TRUST)}, not {unknown[0]!r}")
    if trust and out["protocol"] != "oidc":
        raise InvalidConnection("only an OpenID Provider's JWTs can be trusted (they are checked with its JWK Set)")
    if trust and "{" in (out.get("issuer") or ""):
        raise InvalidConnection("a multi-tenant issuer template cannot be trusted: name the tenant")
    mapping = values.get("subject_mapping", "identity")
    if mapping not in SUBJECT_MAPPINGS:
        raise InvalidConnection(f"subject_mapping must be one of {', '.join(SUBJECT_MAPPINGS)}, got {mapping!r}")
    if mapping == "email" and trust and not out["trusted_email_domains"]:
        raise InvalidConnection("subject_mapping email trusts the issuer for the addresses of trusted_email_domains: "
                                "name them")
    return tuple(t for t in TRUST if t in trust), mapping


def check_domains(value, what: str = "domains") -> tuple[str, ...]:
    """Email domains, exact and lower-case (matching is exact: "acme.com" does not cover
    "eu.acme.com", which a subsidiary's IdP may own)."""
    domains = tuple(dict.fromkeys(d.strip().lower().rstrip(".") for d in _strings(value, what)))
    if len(domains) > MAX_DOMAINS:
        raise InvalidConnection(f"{what}: at most {MAX_DOMAINS} domains")
    bad = [d for d in domains if not DOMAIN.fullmatch(d)]
    if bad:
        raise InvalidConnection(f"{what}: {bad[0]!r} is not a domain name (IDNs in their xn-- form)")
    return domains


def _flag(value, what: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidConnection(f"{what} must be true or false")
    return value


def check_secret(auth_method: str, *, client_secret: str | None = None, private_key: str | bytes | None = None) -> dict:
    """The secret a connection with `auth_method` needs, as stored in Secrets Manager: {"client_secret"}
    or {"private_key": PKCS#8 PEM}. The private key must load and be one a JWS can use: EC P-256
    (ES256; the only kind Apple issues) or RSA of at least 2048 bits (RS256; RFC 7518 §3.3)."""
    if auth_method in SECRET_METHODS:
        if private_key is not None:
            raise InvalidConnection(f"{auth_method} uses a client secret, not a private key")
        if not isinstance(client_secret, str) or not re.fullmatch(rf"[\x21-\x7E]{{1,{MAX_SECRET}}}", client_secret):
            raise InvalidConnection(f"{auth_method} needs the client secret (1 to {MAX_SECRET} printable ASCII "
                                    "characters), on stdin")
        return {"client_secret": client_secret}
    if client_secret is not None:
        raise InvalidConnection(f"{auth_method} uses a private key, not a client secret")
    return {"private_key": _private_key(private_key, ec_only=auth_method == "apple_client_secret")}


def _private_key(pem, *, ec_only: bool) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if not pem:
        raise InvalidConnection("this connection signs with a private key: give its PEM file")
    try:
        key = serialization.load_pem_private_key(pem.encode() if isinstance(pem, str) else pem, password=None)
    except (ValueError, TypeError):
        raise InvalidConnection("the private key must be an unencrypted PEM private key") from None
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        pass
    elif isinstance(key, rsa.RSAPrivateKey) and key.key_size >= 2048 and not ec_only:
        pass
    else:
        raise InvalidConnection("the private key must be EC P-256" + ("" if ec_only else " or RSA of at least 2048 bits"))
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode("ascii")


def secret_name(connection_id: str, settings: Settings) -> str:
    """The connection's Secrets Manager secret: under SECRET_PREFIX, which the API role's one
    GetSecretValue grant names (infra/policy.py)."""
    return f"{settings.secret_prefix}connections/{connection_id}"


def _read_secret(name: str) -> dict | None:
    from botocore.exceptions import ClientError

    from .. import faults
    from ..aws import client

    try:
        text = client("secretsmanager").get_secret_value(SecretId=name)["SecretString"]
        value = json.loads(text)
        if not isinstance(value, dict):
            raise ValueError("not a JSON object")
        return value
    except Exception as exc:
        fault = faults.unavailable(exc)
        if fault is not None:
            raise fault from exc
        if not isinstance(exc, (ClientError, ValueError)):
            raise
        # Missing, unreadable or not ours to read: the operator's to fix, never the user's. A 503
        # (rather than a 500) keeps the page honest that it may work later, and the log says why.
        log.error("connection secret %s cannot be used: %s", name, exc)
        raise TemporarilyUnavailable("the sign-in provider is not available right now",
                                     detail=f"connection secret {name}: {type(exc).__name__}",
                                     retry_after=faults.RETRY_AFTER_SECONDS) from None


_secrets: ContainerCache[dict] = ContainerCache(_read_secret)
caches.register("federation.connection_secrets", _secrets.clear)


def secret(connection: Connection) -> dict:
    """The connection's secret ({"client_secret": ...} and/or {"private_key": PEM}), read once per
    container per SECRET_CACHE_SECONDS. Secrets Manager faults raise TemporarilyUnavailable (503)."""
    from ..config import settings

    name = connection.secret_name or secret_name(connection.connection_id, settings())
    return dict(_secrets.get(name, SECRET_CACHE_SECONDS))


def forget_cached_secrets() -> None:
    _secrets.clear()


# Operator side (tools/admin.py, with the operator's credentials) ---------------------------------

def store_secret(name: str, value: dict, *, stage: str) -> None:
    """Create the secret, or replace its value (a rotated client secret; a secret left behind by a
    create that failed after writing it)."""
    from botocore.exceptions import ClientError

    from ..aws import client

    text = json.dumps(value)
    try:
        client("secretsmanager").create_secret(
            Name=name, SecretString=text, Tags=[{"Key": "idp:stage", "Value": stage}],
            Description="IdP upstream connection credentials (managed by ./idp-admin connections; do not edit)")
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceExistsException":
            raise
        client("secretsmanager").put_secret_value(SecretId=name, SecretString=text)
    _secrets.clear()


def delete_secret(name: str) -> None:
    """Delete at once (no recovery window): the credential can be issued again upstream, and a
    connection of the same id may be created again right away."""
    from botocore.exceptions import ClientError

    from ..aws import client

    try:
        client("secretsmanager").delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise
    _secrets.clear()


def read_secret(name: str) -> dict | None:
    """The stored secret, uncached, or None when there is none (the operator's update checks what it
    already holds)."""
    from botocore.exceptions import ClientError

    from ..aws import client

    try:
        return json.loads(client("secretsmanager").get_secret_value(SecretId=name)["SecretString"])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise
        return None
