"""One frozen settings object, read from the environment once per container.

Every setting is an environment variable so that the same code runs on AWS (values from the
Chalice stage in .chalice/config.json) and locally on moto (values exported by tools/devstack.py).
Defaults are documented next to each field; required settings fail loudly when missing.
"""
from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass

from .capabilities import LOOPBACK_HOSTS, SCOPE_TOKEN, SIGNING_ALGS


class ConfigError(RuntimeError):
    """A required setting is missing or malformed. Raised at start-up, never per request."""


KEY_BACKENDS = ("secretsmanager", "kms")
#: A DNS name or IPv4 address in lowercase, as urlsplit() reports a URL's host.
_HOST_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")


def _int(env, name: str, default: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc
    if value < 0:
        raise ConfigError(f"{name} must not be negative, got {value}")
    return value


def _choice(env, name: str, choices: tuple[str, ...], default: str) -> str:
    value = env.get(name) or default
    if value not in choices:
        raise ConfigError(f"{name} must be one of {choices}, got {value!r}")
    return value


@dataclass(frozen=True)
class Settings:
    #: STAGE: "local", "dev" or "prod". Only "local" may use plain-http loopback issuers.
    stage: str
    #: ISSUER: the issuer identifier (RFC 8414 §2): https URL, no query or fragment. Required.
    issuer: str
    #: TABLE_PREFIX: every DynamoDB table is named "<prefix>-<name>" (default "idp-<stage>").
    table_prefix: str
    #: AWS_REGION / AWS_DEFAULT_REGION (Lambda sets AWS_REGION). Default "us-east-1".
    region: str
    #: KEY_BACKEND: "secretsmanager" (private key in a secret, signed in-process) or "kms"
    #: (asymmetric KMS key, signed with kms:Sign). Default "secretsmanager".
    key_backend: str
    #: SIGNING_ALG: "ES256" (default) or "RS256"; applies to keys created from now on.
    signing_alg: str
    #: SECRET_PREFIX: Secrets Manager name prefix for signing-key secrets (default "idp/<stage>/").
    secret_prefix: str
    #: JWKS_MAX_AGE: seconds verifiers may cache /jwks (Cache-Control max-age). Default 300.
    #: A "next" key must be published at least this long before it is promoted.
    jwks_max_age: int
    #: KEY_RETIRE_AFTER: seconds a retired key stays in /jwks after rotation, so tokens it signed
    #: keep verifying. Must exceed the longest token lifetime. Default 86400.
    key_retire_after: int
    #: KEY_CACHE_SECONDS: how long a container trusts its cached view of which key is current.
    #: Default 60; a promoted key was already published as "next", so the lag is harmless.
    key_cache_seconds: int
    #: CODE_TTL: authorization code lifetime in seconds (RFC 6749 §4.1.2 recommends <= 600). Default 60.
    code_ttl: int = 60
    #: ACCESS_TOKEN_TTL: access token lifetime in seconds; short because JWTs are not looked up. Default 600.
    access_token_ttl: int = 600
    #: ID_TOKEN_TTL: ID token lifetime in seconds. Default 600.
    id_token_ttl: int = 600
    #: SESSION_TTL: SSO session lifetime in seconds after sign-in. Default 43200 (12 h).
    session_ttl: int = 43200
    #: REQUEST_TTL: how long a pending authorization request waits for sign-in/consent. Default 600.
    request_ttl: int = 600
    #: LOGIN_THROTTLE_WINDOW: seconds over which failed sign-ins are counted. Default 900.
    login_throttle_window: int = 900
    #: LOGIN_MAX_FAILURES_PER_ACCOUNT: failed sign-ins per account per window before refusing browsers
    #: that are not a known device of that account (chalicelib/oauth/login.py). Default 5.
    login_max_failures_per_account: int = 5
    #: LOGIN_MAX_FAILURES_PER_IP: failed sign-ins per client IP per window before refusing. Default 20.
    login_max_failures_per_ip: int = 20
    #: KNOWN_DEVICE_TTL: seconds a browser stays a "known device" after its last successful sign-in;
    #: past LOGIN_MAX_FAILURES_PER_ACCOUNT only known devices may still try. Default 7776000 (90 days).
    known_device_ttl: int = 7776000
    #: DEFAULT_AUDIENCE: `aud` of access tokens requested without a resource. Default: the issuer.
    default_audience: str = ""
    #: REFRESH_TOKEN_IDLE_TTL: a refresh token unused this long expires. Default 1209600 (14 days).
    refresh_token_idle_ttl: int = 1209600
    #: REFRESH_TOKEN_ABSOLUTE_TTL: a refresh-token family ends this long after sign-in, however used.
    #: Default 7776000 (90 days).
    refresh_token_absolute_ttl: int = 7776000
    #: REFRESH_GRACE_SECONDS: a consumed refresh token presented again within this window returns
    #: the same successor instead of revoking the family (network retries). Default 0 (off).
    refresh_grace_seconds: int = 0
    #: CLIENT_CACHE_SECONDS: how long a container reuses a client's registration without reading
    #: DynamoDB. Disabling a client takes effect within this window. Default 60.
    client_cache_seconds: int = 60
    #: CLIENT_DOCUMENT_FETCHES_PER_IP: client ID metadata documents fetched per minute on behalf of one
    #: client IP (an IPv6 client: its /64), counting real fetches only, not cache hits. Default 10.
    client_document_fetches_per_ip: int = 10
    #: CLIENT_DOCUMENT_FETCHES_PER_HOST: client ID metadata documents fetched per minute from one host,
    #: whoever asks; bounds what many addresses together can make us send one site. Default 60.
    client_document_fetches_per_host: int = 60
    #: REGISTRATION_MODE: dynamic client registration (RFC 7591) at /register: "open" (anyone, the
    #: MCP default), "token" (an initial access token is required, see REGISTRATION_TOKEN_SHA256)
    #: or "off". Default "open".
    registration_mode: str = "open"
    #: REGISTRATION_TOKEN_SHA256: hex SHA-256 of the initial access token for mode "token"
    #: (`./idp-admin registration token` makes one).
    registration_token_sha256: str = ""
    #: REGISTRATION_MAX_PER_IP: registrations per client IP per hour before 429. Default 20.
    registration_max_per_ip: int = 20
    #: CLIENT_ID_DOCUMENTS: which https URLs may be used as a client_id (client ID metadata
    #: documents): "off", "any", or a comma-separated allow-list of exact host names (a listed
    #: "example.com" does not admit "agents.example.com"). Default: "any" when REGISTRATION_MODE is
    #: "open", else "off": a document is a self-registration, so it is allowed no more widely.
    client_id_documents: str = "any"
    #: UNVERIFIED_CLIENT_SCOPES: space-separated scopes that clients nobody vetted (registered at
    #: /register or described by a client ID metadata document) may ask for. Default (unset): the
    #: identity scopes plus the scopes of resources registered with --public.
    unverified_client_scopes: tuple[str, ...] | None = None
    #: KEY_ROTATION_INTERVAL: the scheduled rotation (chalicelib/keys/rotation.py) promotes the next
    #: key once the current one has been signing this long. Default 2592000 (30 days).
    key_rotation_interval: int = 2592000
    #: SECRETS_KMS_KEY_ID: KMS key (id, ARN or "alias/...") that encrypts new signing-key secrets. The
    #: deployed stack creates one per stage (infra/template.py). Default "": Secrets Manager's AWS
    #: managed key, as on the local stack.
    secrets_kms_key_id: str = ""
    #: KMS_SIGNER_ROLE_NAME: with KEY_BACKEND=kms, KMS keys are created with a key policy that lets
    #: only this IAM role (of the caller's account) Sign, GetPublicKey and DescribeKey; the account
    #: root keeps administration. Default "": the account's default key policy.
    kms_signer_role_name: str = ""
    #: LOG_LEVEL: Python logging level name. Default INFO.
    log_level: str = "INFO"

    def __post_init__(self):
        # A container keeps signing with the old key for up to KEY_CACHE_SECONDS after a rotation,
        # and what it signs must verify until it expires: only then may the key leave /jwks.
        longest = self.key_cache_seconds + max(self.access_token_ttl, self.id_token_ttl)
        if self.key_retire_after < longest:
            raise ConfigError(f"KEY_RETIRE_AFTER ({self.key_retire_after}) must be at least KEY_CACHE_SECONDS + the "
                              f"longest token lifetime ({longest}), or tokens stop verifying before they expire")
        if self.key_rotation_interval < self.jwks_max_age:
            raise ConfigError(f"KEY_ROTATION_INTERVAL ({self.key_rotation_interval}) must be at least "
                              f"JWKS_MAX_AGE ({self.jwks_max_age})")

    @property
    def https(self) -> bool:
        return self.issuer.startswith("https://")

    @property
    def client_id_document_hosts(self) -> frozenset[str]:
        """The CLIENT_ID_DOCUMENTS allow-list (empty for "off" and "any")."""
        if self.client_id_documents in ("off", "any"):
            return frozenset()
        return frozenset(self.client_id_documents.split(","))

    def table_name(self, name: str) -> str:
        return f"{self.table_prefix}-{name}"


def _validate_issuer(issuer: str, stage: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(issuer)
    if parts.query or parts.fragment or not parts.netloc:
        raise ConfigError(f"ISSUER must be an absolute URL without query or fragment: {issuer!r}")
    loopback = parts.hostname in LOOPBACK_HOSTS
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback and stage == "local"):
        # RFC 8414 §2: the issuer uses the https scheme; plain http is tolerated only for the
        # local stage on a loopback address.
        raise ConfigError(f"ISSUER must use https outside the local stage: {issuer!r}")
    return issuer.rstrip("/")


def _client_id_documents(env, registration_mode: str) -> str:
    raw = env.get("CLIENT_ID_DOCUMENTS") or ("any" if registration_mode == "open" else "off")
    if raw in ("off", "any"):
        return raw
    hosts = [host.strip().lower() for host in raw.split(",")]
    bad = [host for host in hosts if not _HOST_NAME.fullmatch(host) or host in ("off", "any")]
    if bad:
        raise ConfigError(f"CLIENT_ID_DOCUMENTS must be 'off', 'any' or comma-separated host names "
                          f"(exact, no scheme, port or wildcard), got {bad[0]!r}")
    return ",".join(dict.fromkeys(hosts))


def _scopes(env, name: str) -> tuple[str, ...] | None:
    raw = env.get(name)
    if not raw or not raw.strip():
        return None
    scopes = raw.split()
    bad = [s for s in scopes if not SCOPE_TOKEN.fullmatch(s)]
    if bad:
        raise ConfigError(f"{name} must be space-separated scopes (RFC 6749 §3.3), got {bad[0]!r}")
    return tuple(dict.fromkeys(scopes))


def table_prefix(env=None) -> str:
    """Table prefix without the rest of the settings: pynamodb needs it when models are defined."""
    env = os.environ if env is None else env
    return env.get("TABLE_PREFIX") or f"idp-{env.get('STAGE', 'local')}"


def region(env=None) -> str:
    env = os.environ if env is None else env
    return env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"


def load_settings(env=None) -> Settings:
    env = os.environ if env is None else env
    stage = env.get("STAGE", "local")
    issuer = env.get("ISSUER")
    if not issuer:
        raise ConfigError("ISSUER is required (e.g. https://login.example.com)")
    key_backend = env.get("KEY_BACKEND", "secretsmanager")
    if key_backend not in KEY_BACKENDS:
        raise ConfigError(f"KEY_BACKEND must be one of {KEY_BACKENDS}, got {key_backend!r}")
    signing_alg = env.get("SIGNING_ALG", "ES256")
    if signing_alg not in SIGNING_ALGS:
        raise ConfigError(f"SIGNING_ALG must be one of {SIGNING_ALGS}, got {signing_alg!r}")
    registration_token = env.get("REGISTRATION_TOKEN_SHA256", "")
    registration_mode = _choice(env, "REGISTRATION_MODE", ("open", "token", "off"), "open")
    if registration_mode == "token" and len(registration_token) != 64:
        raise ConfigError("REGISTRATION_MODE=token needs REGISTRATION_TOKEN_SHA256 (64 hex characters)")
    return Settings(
        stage=stage,
        issuer=_validate_issuer(issuer, stage),
        table_prefix=table_prefix(env),
        region=region(env),
        key_backend=key_backend,
        signing_alg=signing_alg,
        secret_prefix=env.get("SECRET_PREFIX") or f"idp/{stage}/",
        jwks_max_age=_int(env, "JWKS_MAX_AGE", 300),
        key_retire_after=_int(env, "KEY_RETIRE_AFTER", 86400),
        key_cache_seconds=_int(env, "KEY_CACHE_SECONDS", 60),
        code_ttl=_int(env, "CODE_TTL", 60),
        access_token_ttl=_int(env, "ACCESS_TOKEN_TTL", 600),
        id_token_ttl=_int(env, "ID_TOKEN_TTL", 600),
        session_ttl=_int(env, "SESSION_TTL", 43200),
        request_ttl=_int(env, "REQUEST_TTL", 600),
        login_throttle_window=_int(env, "LOGIN_THROTTLE_WINDOW", 900),
        login_max_failures_per_account=_int(env, "LOGIN_MAX_FAILURES_PER_ACCOUNT", 5),
        login_max_failures_per_ip=_int(env, "LOGIN_MAX_FAILURES_PER_IP", 20),
        known_device_ttl=_int(env, "KNOWN_DEVICE_TTL", 7776000),
        default_audience=env.get("DEFAULT_AUDIENCE") or _validate_issuer(issuer, stage),
        refresh_token_idle_ttl=_int(env, "REFRESH_TOKEN_IDLE_TTL", 1209600),
        refresh_token_absolute_ttl=_int(env, "REFRESH_TOKEN_ABSOLUTE_TTL", 7776000),
        refresh_grace_seconds=_int(env, "REFRESH_GRACE_SECONDS", 0),
        client_cache_seconds=_int(env, "CLIENT_CACHE_SECONDS", 60),
        client_document_fetches_per_ip=_int(env, "CLIENT_DOCUMENT_FETCHES_PER_IP", 10),
        client_document_fetches_per_host=_int(env, "CLIENT_DOCUMENT_FETCHES_PER_HOST", 60),
        registration_mode=registration_mode,
        registration_token_sha256=env.get("REGISTRATION_TOKEN_SHA256", "").lower(),
        registration_max_per_ip=_int(env, "REGISTRATION_MAX_PER_IP", 20),
        client_id_documents=_client_id_documents(env, registration_mode),
        unverified_client_scopes=_scopes(env, "UNVERIFIED_CLIENT_SCOPES"),
        key_rotation_interval=_int(env, "KEY_ROTATION_INTERVAL", 2592000),
        secrets_kms_key_id=env.get("SECRETS_KMS_KEY_ID", ""),
        kms_signer_role_name=env.get("KMS_SIGNER_ROLE_NAME", ""),
        log_level=env.get("LOG_LEVEL", "INFO"),
    )


@functools.lru_cache(maxsize=1)
def settings() -> Settings:
    """The container's settings, read once. Tests call settings.cache_clear() after changing env."""
    return load_settings()
