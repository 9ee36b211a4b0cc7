"""One frozen settings object, read from the environment once per container.

Every setting is an environment variable so that the same code runs on AWS (values from the
Chalice stage in .chalice/config.json) and locally on moto (values exported by tools/devstack.py).
Each field states its variable and its default once, in `setting(...)` next to its documentation;
load_settings reads every field from that, and tests/unit/test_config.py checks README's
Configuration table against it. Required settings fail loudly when missing.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import re
from dataclasses import dataclass

from . import caches, profiles
from .capabilities import LOOPBACK_HOSTS, PROFILES, SCOPE_TOKEN, SIGNING_ALGS


class ConfigError(RuntimeError):
    """A required setting is missing or malformed. Raised at start-up, never per request."""


KEY_BACKENDS = ("secretsmanager", "kms", "kms-envelope")
REGISTRATION_MODES = ("open", "token", "off")
SIGNUP_MODES = ("open", "invite", "off")
#: A DNS name or IPv4 address in lowercase, as urlsplit() reports a URL's host.
_HOST_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")


def _int(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc
    if value < 0:
        raise ConfigError(f"{name} must not be negative, got {value}")
    return value


def _choice(*choices: str):
    def parse(name: str, raw: str) -> str:
        if raw not in choices:
            raise ConfigError(f"{name} must be one of {choices}, got {raw!r}")
        return raw
    return parse


def _client_id_documents(name: str, raw: str) -> str:
    if raw in ("off", "any"):
        return raw
    hosts = [host.strip().lower() for host in raw.split(",")]
    bad = [host for host in hosts if not _HOST_NAME.fullmatch(host) or host in ("off", "any")]
    if bad:
        raise ConfigError(f"{name} must be 'off', 'any' or comma-separated host names "
                          f"(exact, no scheme, port or wildcard), got {bad[0]!r}")
    return ",".join(dict.fromkeys(hosts))


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise ConfigError(f"{name} must be true or false, got {raw!r}")
    return value in ("true", "1", "yes")


def _email_domains(name: str, raw: str) -> tuple[str, ...]:
    domains = [d.strip().lower().lstrip("@") for d in raw.split(",") if d.strip()]
    bad = [d for d in domains if not _HOST_NAME.fullmatch(d) or "." not in d]
    if bad:
        raise ConfigError(f"{name} must be comma-separated domain names (exact, no wildcard), got {bad[0]!r}")
    return tuple(dict.fromkeys(domains))


def _scopes(name: str, raw: str) -> tuple[str, ...] | None:
    scopes = raw.split()
    if not scopes:
        return None
    bad = [s for s in scopes if not SCOPE_TOKEN.fullmatch(s)]
    if bad:
        raise ConfigError(f"{name} must be space-separated scopes (RFC 6749 §3.3), got {bad[0]!r}")
    return tuple(dict.fromkeys(scopes))


def setting(env: str, default=dataclasses.MISSING, *, parse=None, derived: str | None = None,
            also: tuple[str, ...] = ()):
    """A field read from the environment variable `env` (else the first of `also` that is set).

    `default` is the one place its default is stated. `derived` describes, for README, a default
    that __post_init__ computes from other settings (the field's own default is then a placeholder).
    `parse(name, raw)` turns the raw string into the value; without it the string is the value.
    An empty variable counts as unset.
    """
    return dataclasses.field(default=default, metadata={"env": env, "also": also, "parse": parse, "derived": derived})


@dataclass(frozen=True, kw_only=True)
class Settings:
    #: "local", "dev" or "prod". Only "local" may use plain-http loopback issuers.
    stage: str = setting("STAGE", "local")
    #: The issuer identifier (RFC 8414 §2): https URL, no query or fragment. Required.
    issuer: str = setting("ISSUER", "", derived="required (local: `http://localhost:$PORT`)")
    #: Every DynamoDB table is named "<prefix>-<name>".
    table_prefix: str = setting("TABLE_PREFIX", "", derived="`idp-<stage>`")
    #: The AWS region (Lambda sets AWS_REGION).
    region: str = setting("AWS_REGION", "us-east-1", also=("AWS_DEFAULT_REGION",))
    #: "secretsmanager" (private key in a secret, signed in-process), "kms" (asymmetric KMS key,
    #: signed with kms:Sign) or "kms-envelope" (key pair from kms:GenerateDataKeyPair, stored encrypted
    #: under ENVELOPE_KMS_KEY_ID, decrypted once per container, signed in-process).
    key_backend: str = setting("KEY_BACKEND", "secretsmanager", parse=_choice(*KEY_BACKENDS))
    #: "ES256" or "RS256"; applies to keys created from now on.
    signing_alg: str = setting("SIGNING_ALG", "ES256", parse=_choice(*SIGNING_ALGS))
    #: Secrets Manager name prefix for signing-key secrets.
    secret_prefix: str = setting("SECRET_PREFIX", "", derived="`idp/<stage>/`")
    #: Seconds verifiers may cache /jwks (Cache-Control max-age). A "next" key must be published at
    #: least this long before it is promoted.
    jwks_max_age: int = setting("JWKS_MAX_AGE", 300, parse=_int)
    #: Seconds a retired key stays in /jwks after rotation, so tokens it signed keep verifying. Must
    #: exceed the longest token lifetime.
    key_retire_after: int = setting("KEY_RETIRE_AFTER", 86400, parse=_int)
    #: How long a container trusts its cached view of which key is current; a promoted key was
    #: already published as "next", so the lag is harmless.
    key_cache_seconds: int = setting("KEY_CACHE_SECONDS", 60, parse=_int)
    #: Authorization code lifetime in seconds (RFC 6749 §4.1.2 recommends <= 600).
    code_ttl: int = setting("CODE_TTL", 60, parse=_int)
    #: Device authorization lifetime in seconds (RFC 8628 §3.2 `expires_in`): the user has this long
    #: to enter the code and approve.
    device_code_ttl: int = setting("DEVICE_CODE_TTL", 600, parse=_int)
    #: Seconds a device waits between polls (RFC 8628 §3.2 `interval`, default 5); each slow_down adds 5.
    device_poll_interval: int = setting("DEVICE_POLL_INTERVAL", 5, parse=_int)
    #: User codes one browser session, and one client IP (an IPv6 client: its /64), may submit on the
    #: /device page per LOGIN_THROTTLE_WINDOW; past it 429. Against 20^8 codes a few thousand live
    #: ones leave a guess at about one in ten million.
    device_user_code_attempts: int = setting("DEVICE_USER_CODE_ATTEMPTS", 10, parse=_int)
    #: "oauth2.1" (the strict core) or "fapi2": FAPI 2.0 Security Profile rules on top (PAR and DPoP
    #: required, private_key_jwt only, codes <= 60 s...: chalicelib/profiles.py applies them).
    profile: str = setting("PROFILE", "oauth2.1", parse=_choice(*PROFILES))
    #: RFC 9449: every token request must carry a DPoP proof, so every access token is sender-constrained
    #: (per client: the `dpop_bound_access_tokens` metadata).
    dpop_required: bool = setting("DPOP_REQUIRED", False, parse=_bool)
    #: RFC 9449 §8: the token endpoint demands a server-provided nonce in DPoP proofs (`use_dpop_nonce`),
    #: so a proof cannot be made ahead of time. Nonces rotate every DPOP_NONCE_WINDOW seconds and are
    #: derived, not stored.
    dpop_nonce: bool = setting("DPOP_NONCE", True, parse=_bool)
    #: Seconds a DPoP nonce is current; the previous window's nonce is still accepted.
    dpop_nonce_window: int = setting("DPOP_NONCE_WINDOW", 300, parse=_int)
    #: RFC 9449 §4.3 item 11: a DPoP proof's `iat` may be at most this many seconds old.
    dpop_proof_max_age: int = setting("DPOP_PROOF_MAX_AGE", 60, parse=_int)
    #: RFC 9126: every authorization request must be pushed to /par first (per client: the
    #: `require_pushed_authorization_requests` metadata).
    par_required: bool = setting("PAR_REQUIRED", False, parse=_bool)
    #: RFC 9126 §2.2: seconds a pushed request's request_uri stays usable (once).
    par_ttl: int = setting("PAR_TTL", 60, parse=_int)
    #: Access token lifetime in seconds; short because JWTs are not looked up.
    access_token_ttl: int = setting("ACCESS_TOKEN_TTL", 600, parse=_int)
    #: ID token lifetime in seconds.
    id_token_ttl: int = setting("ID_TOKEN_TTL", 600, parse=_int)
    #: Lifetime of an ID-JAG (draft-ietf-oauth-identity-assertion-authz-grant) in seconds: it is
    #: redeemed at once, and our ID token it came from expires anyway.
    id_jag_ttl: int = setting("ID_JAG_TTL", 300, parse=_int)
    #: SSO session lifetime in seconds after sign-in (12 h).
    session_ttl: int = setting("SESSION_TTL", 43200, parse=_int)
    #: How long a pending authorization request waits for sign-in/consent.
    request_ttl: int = setting("REQUEST_TTL", 600, parse=_int)
    #: Seconds over which failed sign-ins are counted.
    login_throttle_window: int = setting("LOGIN_THROTTLE_WINDOW", 900, parse=_int)
    #: Failed sign-ins per account per window before refusing browsers that are not a known device
    #: of that account (chalicelib/oauth/login.py).
    login_max_failures_per_account: int = setting("LOGIN_MAX_FAILURES_PER_ACCOUNT", 5, parse=_int)
    #: Failed sign-ins per client IP (an IPv6 client: its /64) per window before refusing browsers
    #: that are not a known device of the typed account.
    login_max_failures_per_ip: int = setting("LOGIN_MAX_FAILURES_PER_IP", 20, parse=_int)
    #: Failed sign-ins per IPv6 /48 per window, the same way; bounds an attacker who rotates through
    #: the 65,536 /64s of a /48. Not counted for IPv4.
    login_max_failures_per_network: int = setting("LOGIN_MAX_FAILURES_PER_NETWORK", 100, parse=_int)
    #: Sign-in attempts per window from one known device while its address or account is over a
    #: limit above; past it that device is refused too.
    login_max_failures_per_device: int = setting("LOGIN_MAX_FAILURES_PER_DEVICE", 10, parse=_int)
    #: Second factors (passkeys, TOTP, recovery codes): "off" (passwords only; nothing is offered or
    #: asked), "optional" (users choose; whoever has one is always asked for it) or "required"
    #: (everyone; a user without one enrols at their next sign-in).
    mfa_policy: str = setting("MFA_POLICY", "optional", parse=_choice("off", "optional", "required"))
    #: Second-factor codes (TOTP, recovery) that may fail per user per LOGIN_THROTTLE_WINDOW; past it
    #: the second step answers 429 until the window ends. A 6-digit TOTP with its ±1 step has 3 right
    #: answers in a million: 5 a window bounds an attacker who has the password to ~0.14% a day.
    mfa_max_failures: int = setting("MFA_MAX_FAILURES", 5, parse=_int)
    #: Seconds between a right password and its second factor before the sign-in starts over.
    mfa_step_ttl: int = setting("MFA_STEP_TTL", 300, parse=_int)
    #: Seconds a browser stays a "known device" after its last successful sign-in; past
    #: LOGIN_MAX_FAILURES_PER_ACCOUNT only known devices may still try (90 days).
    known_device_ttl: int = setting("KNOWN_DEVICE_TTL", 7776000, parse=_int)
    #: `aud` of access tokens requested without a resource by admin-created clients (unverified
    #: clients always get the issuer: oauth/resources.resource_less_audience).
    default_audience: str = setting("DEFAULT_AUDIENCE", "", derived="the issuer")
    #: A refresh token unused this long expires (14 days).
    refresh_token_idle_ttl: int = setting("REFRESH_TOKEN_IDLE_TTL", 1209600, parse=_int)
    #: A refresh-token family ends this long after sign-in, however used (90 days).
    refresh_token_absolute_ttl: int = setting("REFRESH_TOKEN_ABSOLUTE_TTL", 7776000, parse=_int)
    #: A consumed refresh token presented again within this window returns the same successor instead
    #: of revoking the family (network retries). 0 is off. (PROFILE=fapi2 does not rotate at all.)
    refresh_grace_seconds: int = setting("REFRESH_GRACE_SECONDS", 0, parse=_int)
    #: How long a container reuses a client's registration without reading DynamoDB. Disabling a
    #: client takes effect within this window.
    client_cache_seconds: int = setting("CLIENT_CACHE_SECONDS", 60, parse=_int)
    #: Longest a private_key_jwt client assertion (RFC 7523 §3) may still be valid when presented:
    #: its `exp` at most this far ahead. Each assertion's `jti` is remembered until its `exp`, so a
    #: short limit keeps the used-jti items few and a stolen assertion's window small.
    client_assertion_max_lifetime: int = setting("CLIENT_ASSERTION_MAX_LIFETIME", 300, parse=_int)
    #: Seconds into a request after which no AWS attempt starts (the request answers 503), so that
    #: every answer leaves inside the function's 10 s timeout (chalicelib/aws.py has the budget).
    #: 0 turns the deadline off: the local stage, where no Lambda timeout applies and a loaded
    #: moto server may be slow.
    aws_deadline_seconds: int = setting("AWS_DEADLINE_SECONDS", 3, parse=_int)
    #: Client ID metadata documents fetched per minute on behalf of one client IP (an IPv6 client:
    #: its /64), counting real fetches only, not cache hits.
    client_document_fetches_per_ip: int = setting("CLIENT_DOCUMENT_FETCHES_PER_IP", 10, parse=_int)
    #: Client ID metadata documents fetched per minute from one host, whoever asks; bounds what many
    #: addresses together can make us send one site.
    client_document_fetches_per_host: int = setting("CLIENT_DOCUMENT_FETCHES_PER_HOST", 60, parse=_int)
    #: Dynamic client registration (RFC 7591) at /register: "open" (anyone, the MCP default), "token"
    #: (an initial access token is required, see REGISTRATION_TOKEN_SHA256) or "off".
    registration_mode: str = setting("REGISTRATION_MODE", "open", parse=_choice(*REGISTRATION_MODES))
    #: Hex SHA-256 of the initial access token for mode "token" (`./idp-admin registration token`).
    registration_token_sha256: str = setting("REGISTRATION_TOKEN_SHA256", "", parse=lambda name, raw: raw.lower())
    #: Registrations per client IP per hour before 429.
    registration_max_per_ip: int = setting("REGISTRATION_MAX_PER_IP", 20, parse=_int)
    #: Which https URLs may be used as a client_id (client ID metadata documents): "off", "any", or a
    #: comma-separated allow-list of exact host names (a listed "example.com" does not admit
    #: "agents.example.com"). A document is a self-registration, so by default it is allowed no more
    #: widely than REGISTRATION_MODE allows registration.
    client_id_documents: str = setting("CLIENT_ID_DOCUMENTS", "", parse=_client_id_documents,
                                       derived="`any` if `REGISTRATION_MODE=open`, else `off`")
    #: Space-separated scopes that clients nobody vetted (registered at /register or described by a
    #: client ID metadata document) may ask for. Unset: the identity scopes plus the scopes of
    #: resources registered with --public.
    unverified_client_scopes: tuple[str, ...] | None = setting(
        "UNVERIFIED_CLIENT_SCOPES", None, parse=_scopes, derived="identity scopes + scopes of `--public` resources")
    #: The scheduled rotation (chalicelib/keys/rotation.py) promotes the next key once the current
    #: one has been signing this long (30 days).
    key_rotation_interval: int = setting("KEY_ROTATION_INTERVAL", 2592000, parse=_int)
    #: KMS key (id, ARN or "alias/...") that encrypts new signing-key secrets. The deployed stack
    #: creates one per stage (infra/template.py). Unset: Secrets Manager's AWS managed key, as on the
    #: local stack.
    secrets_kms_key_id: str = setting("SECRETS_KMS_KEY_ID", "")
    #: With KEY_BACKEND=kms, KMS keys are created with a key policy that lets only this IAM role (of
    #: the caller's account) Sign, GetPublicKey and DescribeKey; the account root keeps
    #: administration. Unset: the account's default key policy.
    kms_signer_role_name: str = setting("KMS_SIGNER_ROLE_NAME", "")
    #: With KEY_BACKEND=kms-envelope, the symmetric KMS key (id, ARN or "alias/...") that encrypts the
    #: signing keys' private keys. Required with that backend; the deployed stack creates one per stage.
    envelope_kms_key_id: str = setting("ENVELOPE_KMS_KEY_ID", "")
    #: The symmetric KMS key (id, ARN or "alias/...") that seals TOTP secrets (chalicelib/secret_box.py):
    #: they must be read back to check codes, so they are kept encrypted, never hashed. A key of their
    #: own, which the deployed stack creates with a key policy letting only the API role use it, and
    #: only under the encryption context of this stage (infra/policy.factors_key_policy); the local
    #: stack creates it too.
    factor_kms_key_id: str = setting("FACTOR_KMS_KEY_ID", "", derived="`alias/<TABLE_PREFIX>-factors`")
    #: Sign-ups, verification resends and password resets per client IP (an IPv6 client: its /64),
    #: each per hour (chalicelib/accounts/limits.py).
    account_actions_per_ip: int = setting("ACCOUNT_ACTIONS_PER_IP", 20, parse=_int)
    #: Sign-ups, resends and resets per email address typed, each per hour.
    account_actions_per_address: int = setting("ACCOUNT_ACTIONS_PER_ADDRESS", 5, parse=_int)
    #: Emails sent to one address per hour, whatever caused them.
    emails_per_address_per_hour: int = setting("EMAILS_PER_ADDRESS_PER_HOUR", 6, parse=_int)
    #: The sender of every email (verification, reset, invitations, notices): an address or
    #: "Name <address>" of an identity verified in Amazon SES (chalicelib/mail.py).
    email_from: str = setting("EMAIL_FROM", "", derived="`no-reply@<issuer host>`")
    #: SES configuration set named on every SendEmail (event publishing, dedicated IPs); optional.
    ses_configuration_set: str = setting("SES_CONFIGURATION_SET", "")
    #: A directory that receives a copy of every email as an RFC 5322 .eml file (the local stage:
    #: `make run` sets <state dir>/outbox; `./idp-admin outbox list|show`). Unset: no copies.
    outbox_dir: str = setting("OUTBOX_DIR", "")
    #: Self-service sign-up at /signup (chalicelib/accounts/signup.py): "open" (anyone), "invite"
    #: (only through an invitation link, `./idp-admin users invite`: /signup itself is closed) or
    #: "off". Closed by default, so a deployment never takes strangers' sign-ups by accident: the
    #: operator opens it deliberately. The local stage sets "open" in .chalice/config.json.
    signup_mode: str = setting("SIGNUP_MODE", "invite", parse=_choice(*SIGNUP_MODES))
    #: Optional comma-separated allow-list of email domains sign-up accepts (exact: "example.com"
    #: does not admit "eu.example.com"). Unset: any domain.
    signup_email_domains: tuple[str, ...] | None = setting("SIGNUP_EMAIL_DOMAINS", None, parse=_email_domains)
    #: Lifetime of an email verification link and its typed code, in seconds (24 hours): people
    #: read mail hours later or on another day, and the link is 130 random bits that work once, so
    #: a long life gives a guesser nothing; a reset link (which grants the account) lives far shorter.
    verify_email_ttl: int = setting("VERIFY_EMAIL_TTL", 86400, parse=_int)
    #: A user whose email is not verified may sign in but not complete an authorization request:
    #: they are asked to verify first (OIDC clients trust `email`; an unproven one is a claim anyone
    #: could make). Off: unverified users get codes, with `email_verified: false` in their tokens.
    require_verified_email: bool = setting("REQUIRE_VERIFIED_EMAIL", True, parse=_bool)
    #: Lifetime in seconds of a password-reset link (issue 12 asks for 30 minutes:
    #: chalicelib/accounts/recovery.py).
    reset_password_ttl: int = setting("RESET_PASSWORD_TTL", 1800, parse=_int)
    #: Lifetime in seconds of an invitation link (`./idp-admin users invite`; 7 days).
    invitation_ttl: int = setting("INVITATION_TTL", 604800, parse=_int)
    #: Where "Your account is ready" (an accepted invitation, which has no app to return to) links:
    #: the product's home or app. Unset: the page only says the account is ready.
    home_url: str = setting("HOME_URL", "")
    #: The SQS queue of back-channel logout notifications (chalicelib/logout_queue.py): a sign-out
    #: only enqueues, a function of its own POSTs the logout tokens. The deployed stack sets it to its
    #: queue's URL; unset, the queue named `<TABLE_PREFIX>-logout` is looked up (the local stack).
    logout_queue_url: str = setting("LOGOUT_QUEUE_URL", "", derived="the queue `<TABLE_PREFIX>-logout`")
    #: Seconds a back-channel logout token is valid after it is signed (OpenID Connect Back-Channel
    #: Logout 1.0 §2.4 recommends at most two minutes); each delivery attempt signs a new one.
    logout_token_ttl: int = setting("LOGOUT_TOKEN_TTL", 120, parse=_int)
    #: Python logging level name.
    log_level: str = setting("LOG_LEVEL", "INFO")

    def __post_init__(self):
        if not self.issuer:
            raise ConfigError("ISSUER is required (e.g. https://login.example.com)")
        derive = object.__setattr__  # frozen: the derived defaults are filled in once, here
        derive(self, "issuer", _validate_issuer(self.issuer, self.stage))
        derive(self, "table_prefix", self.table_prefix or _default_table_prefix(self.stage))
        derive(self, "secret_prefix", self.secret_prefix or f"idp/{self.stage}/")
        derive(self, "default_audience", self.default_audience or self.issuer)
        derive(self, "factor_kms_key_id", self.factor_kms_key_id or f"alias/{self.table_prefix}-factors")
        if not self.email_from:
            from urllib.parse import urlsplit

            derive(self, "email_from", f"no-reply@{urlsplit(self.issuer).hostname}")
        # Before the defaults below: the profile forces some settings and refuses others (profiles.py).
        profiles.apply(self)
        if not self.client_id_documents:
            derive(self, "client_id_documents", "any" if self.registration_mode == "open" else "off")
        if self.key_backend == "kms-envelope" and not self.envelope_kms_key_id:
            raise ConfigError("KEY_BACKEND=kms-envelope needs ENVELOPE_KMS_KEY_ID (the symmetric KMS key that "
                              "encrypts the signing keys)")
        if self.registration_mode == "token" and len(self.registration_token_sha256) != 64:
            raise ConfigError("REGISTRATION_MODE=token needs REGISTRATION_TOKEN_SHA256 (64 hex characters)")
        # A container keeps signing with the old key for up to KEY_CACHE_SECONDS after a rotation,
        # and what it signs must verify until it expires: only then may the key leave /jwks.
        longest = self.key_cache_seconds + max(self.access_token_ttl, self.id_token_ttl, self.id_jag_ttl)
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


FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def _read(env, name: str) -> str | None:
    """The raw value of one setting: its variable, else its fallbacks; None when all are unset or empty."""
    meta = FIELDS[name].metadata
    return next((env[var] for var in (meta["env"], *meta["also"]) if env.get(var)), None)


def _default_table_prefix(stage: str) -> str:
    return f"idp-{stage}"


def table_prefix(env=None) -> str:
    """Table prefix without the rest of the settings: pynamodb needs it when models are defined."""
    env = os.environ if env is None else env
    return _read(env, "table_prefix") or _default_table_prefix(_read(env, "stage") or FIELDS["stage"].default)


def region(env=None) -> str:
    env = os.environ if env is None else env
    return _read(env, "region") or FIELDS["region"].default


def load_settings(env=None) -> Settings:
    """Every field from its environment variable (parsed and checked), else its default."""
    env = os.environ if env is None else env
    values = {}
    for name, field in FIELDS.items():
        raw = _read(env, name)
        if raw is not None:
            parse = field.metadata["parse"]
            values[name] = parse(field.metadata["env"], raw) if parse else raw
    return Settings(**values)


@functools.lru_cache(maxsize=1)
def settings() -> Settings:
    """The container's settings, read once. Tests call settings.cache_clear() after changing env."""
    return load_settings()


caches.register("settings", settings.cache_clear)
