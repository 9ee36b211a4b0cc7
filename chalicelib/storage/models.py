"""pynamodb models, one table each. Table names come from TABLE_PREFIX (per stage).

Conventions:
- Secrets (client secrets, codes, refresh tokens, session ids) are keyed by their SHA-256 hash
  (see chalicelib/secrets.py); the raw value exists only in the response that hands it out.
- Ephemeral items carry `expires_at` (epoch seconds), which is also the table's DynamoDB TTL
  attribute. TTL deletion lags by up to days (and moto never deletes), so code always checks it.
- Times are integer epoch seconds.
"""
from __future__ import annotations

import functools

from pynamodb.attributes import (
    BooleanAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
)
from pynamodb.indexes import GlobalSecondaryIndex, KeysOnlyProjection

from .. import caches, config
from .connection import Model, SharedClientConnection


def _meta(name: str, ttl: str | None = None):
    class Meta:
        table_name = f"{config.table_prefix()}-{name}"
        region = config.region()
        # Timeouts and retries are the shared client's (chalicelib/aws.py); pynamodb itself reads
        # only this, to bound its re-sends of a batch write's unprocessed items.
        max_retry_attempts = 3
        #: Read by storage/tables.py to enable DynamoDB TTL; not a pynamodb setting.
        ttl_attribute = ttl

    return Meta


def _strings(**kwargs):
    return ListAttribute(of=UnicodeAttribute, **kwargs)


class ClientModel(Model):
    """An OAuth client (RFC 6749 §2). Public clients have no secret and must use PKCE."""

    Meta = _meta("clients")
    client_id = UnicodeAttribute(hash_key=True)
    client_name = UnicodeAttribute()
    client_type = UnicodeAttribute()  # "confidential" | "public"
    token_endpoint_auth_method = UnicodeAttribute()
    secret_hash = UnicodeAttribute(null=True)
    redirect_uris = _strings(default=list)
    grant_types = _strings(default=list)
    response_types = _strings(default=list)
    scopes = _strings(default=list)
    #: RFC 8707 resources this client may request; empty means any registered resource.
    resources = _strings(default=list)
    #: May call /introspect (a resource server) ...
    introspection = BooleanAttribute(default=False)
    #: ... and see tokens whose audience is one of these resources: the APIs it serves. Kept apart
    #: from `resources` (what it may request) so a client's own allowance never widens what it sees.
    introspects = _strings(default=list)
    #: Registered through POST /register (RFC 7591): shown as "unverified" on the consent page.
    registered_dynamically = BooleanAttribute(default=False)
    #: SHA-256 of the RFC 7592 registration access token (rotated on every use).
    registration_token_hash = UnicodeAttribute(null=True)
    client_uri = UnicodeAttribute(null=True)
    disabled = BooleanAttribute(default=False)
    #: An operator's rule (`./idp-admin clients create/update --require-mfa`, never RFC 7591 metadata):
    #: its users sign in with a second factor, unless MFA_POLICY=off (chalicelib/oauth/acr.py).
    require_mfa = BooleanAttribute(default=False)
    #: An operator's rule (`./idp-admin clients create/update --connections`, never RFC 7591 metadata):
    #: how its users may sign in: connection ids and "password" (the password form). Empty: every
    #: enabled connection and the password form (chalicelib/federation/home_realm.py).
    connections = _strings(default=list)
    created_at = NumberAttribute()
    updated_at = NumberAttribute()
    #: OpenID Connect RP-Initiated Logout 1.0 §3.1: where the end-session endpoint may send the
    #: browser back to after sign-out (exact match, the redirect URI rules).
    post_logout_redirect_uris = _strings(default=list)
    #: OpenID Connect Back-Channel Logout 1.0 §2.2: where logout tokens are POSTed, and whether
    #: every one must carry `sid`.
    backchannel_logout_uri = UnicodeAttribute(null=True)
    backchannel_logout_session_required = BooleanAttribute(default=False)
    #: RFC 7591 §2 / RFC 7523 §2.2: the public keys of a private_key_jwt client, by value (a JWK Set
    #: as JSON text, public parts only) or by reference (fetched through chalicelib/outbound.py).
    jwks = UnicodeAttribute(null=True)
    jwks_uri = UnicodeAttribute(null=True)
    #: An operator's rules (`./idp-admin exchange-policies`, never RFC 7591 metadata): which tokens
    #: this client may exchange for which (RFC 8693, ID-JAG), as JSON text
    #: (chalicelib/oauth/exchange_policy.py). Kept on the client item: read with the client, which the
    #: token endpoint already has cached, so a policy costs no DynamoDB call.
    exchange_policies = UnicodeAttribute(null=True)
    #: RFC 9449 §5.2 / RFC 9126 §6 client metadata (chalicelib/oauth/client_metadata.py).
    dpop_bound_access_tokens = BooleanAttribute(default=False)
    require_pushed_authorization_requests = BooleanAttribute(default=False)


class UserModel(Model):
    """An end user. `pk` is the subject identifier (`sub`); the password is an argon2id PHC string.

    A deleted account leaves a tombstone: the same key, `disabled`, `deleted_at`, and no personal
    data (no email, names, locale or password hash), so the subject is never issued again and
    everything checking the user refuses it (storage/accounts.delete_account)."""

    Meta = _meta("users")
    pk = UnicodeAttribute(hash_key=True)
    #: None only on a tombstone.
    email = UnicodeAttribute(null=True)
    email_verified = BooleanAttribute(default=False)
    name = UnicodeAttribute(null=True)
    #: OIDC Core §5.1 profile claims, set by the user (/account) or an operator (`users update`);
    #: `locale` is a BCP 47 language tag (RFC 5646).
    given_name = UnicodeAttribute(null=True)
    family_name = UnicodeAttribute(null=True)
    locale = UnicodeAttribute(null=True)
    #: None only on a tombstone.
    password_hash = UnicodeAttribute(null=True)
    deleted_at = NumberAttribute(null=True)
    disabled = BooleanAttribute(default=False)
    #: Bumped (atomic ADD) to end every session and grant of the user at once: sessions and grants
    #: record it when made, and one older than this is dead for good (see storage/users.py). Items
    #: written before the attribute existed read as 0, like the sessions and grants of their time.
    session_generation = NumberAttribute(default=0)
    #: The user's second factors, one entry each: "totp", "recovery", "passkey#<credential id>"
    #: (storage/factors.py keeps it in step with the factors table, in the same transactions). Sign-in
    #: reads the user anyway, so it knows from this item alone whether to ask for a second factor and
    #: which passkeys to allow, without a Query.
    factors = UnicodeSetAttribute(null=True)
    #: The upstream identities linked to the user, "<connection_id>#<upstream sub>" each
    #: (storage/federated_identities.py keeps it in step with the IdentityClaimModel items, in the
    #: same transactions): the account page lists them without a Query. A federated-only user has
    #: no `password_hash` (and is no tombstone: tombstones have `deleted_at`).
    identities = UnicodeSetAttribute(null=True)
    created_at = NumberAttribute()
    updated_at = NumberAttribute()


class EmailClaimModel(Model):
    """Uniqueness guard: `pk` is "email#<normalised email>" and points at the user's `sub`.

    Written in the same transaction as the user with attribute_not_exists, because a GSI query is
    eventually consistent and cannot enforce uniqueness.
    """

    Meta = _meta("users")
    pk = UnicodeAttribute(hash_key=True)
    sub = UnicodeAttribute()


class IdentityClaimModel(Model):
    """Uniqueness guard of a federated identity, like EmailClaimModel: `pk` is
    "identity#<connection_id>#<upstream sub>" and points at the one local user it is linked to
    (storage/federated_identities.py). Created with attribute_not_exists in the transaction that
    links it, so an identity never links to two users."""

    Meta = _meta("users")
    pk = UnicodeAttribute(hash_key=True)
    sub = UnicodeAttribute()
    connection_id = UnicodeAttribute()
    #: The upstream's email at link time (shown on the account page), if it sent one.
    email = UnicodeAttribute(null=True)
    linked_at = NumberAttribute()
    #: The upstream's token response, sealed (secret_box purpose "upstream_tokens"), only when the
    #: connection keeps tokens (store_tokens).
    sealed_tokens = UnicodeAttribute(null=True)


class SessionModel(Model):
    """A signed-in (SSO) session; the cookie holds the raw id, the table only its hash."""

    Meta = _meta("sessions", ttl="expires_at")
    session_hash = UnicodeAttribute(hash_key=True)
    sub = UnicodeAttribute()
    auth_time = NumberAttribute()
    amr = _strings(default=list)
    created_at = NumberAttribute()
    expires_at = NumberAttribute()
    revoked = BooleanAttribute(default=False)
    #: The user's `session_generation` at sign-in.
    session_generation = NumberAttribute(default=0)
    #: Grants issued through this session, added by the transaction that creates each grant under
    #: the condition that the session is live; sign-out reads them back from its own update, so it
    #: finds every one.
    grant_ids = UnicodeSetAttribute(null=True)
    #: The user's ID-token claims at sign-in (JSON text of name, email, email_verified): codes issued
    #: through the session carry them, so /authorize need not read the user (see GrantModel).
    user_claims = UnicodeAttribute(null=True)
    #: The kinds of second factor the user had ("passkey", "totp", "recovery"), kept up to date when
    #: they change in this session: /authorize decides a step-up without reading the user.
    factors = _strings(null=True)
    #: The upstream connection the user signed in through (chalicelib/federation/); None: our own
    #: sign-in (password, passkey). A client restricted to some connections accepts only those.
    connection_id = UnicodeAttribute(null=True)


class SignInStepModel(Model):
    """A sign-in half done: the password was right, the user's second factor is still to come
    (chalicelib/storage/sign_in_steps.py). No session exists until then. It shares the sessions
    table (and its TTL) like KnownDeviceModel: key "mfa#<SHA-256 of the idp_mfa cookie value>"."""

    Meta = _meta("sessions", ttl="expires_at")
    session_hash = UnicodeAttribute(hash_key=True)
    sub = UnicodeAttribute()
    #: What the first step proved (["pwd"]) and when.
    amr = _strings(default=list)
    auth_time = NumberAttribute()
    #: The pending authorization request to continue (none: the account page's own sign-in).
    request_id = UnicodeAttribute(null=True)
    #: The user's `session_generation` at the first step: the session is born under it.
    session_generation = NumberAttribute(default=0)
    #: An upstream identity to link once the second factor is proved (JSON text: connection_id,
    #: upstream_sub, email, sealed_tokens; chalicelib/federation/sign_in.py). Never linked before: a
    #: password alone must not attach a stranger's upstream account, whose mapped acr could then
    #: skip the second factor.
    pending_link = UnicodeAttribute(null=True)
    #: The upstream connection of a first step made there (the session records it).
    connection_id = UnicodeAttribute(null=True)
    created_at = NumberAttribute()
    expires_at = NumberAttribute()


class FederationStateModel(Model):
    """A sign-in sent to an upstream identity provider, waiting for its callback
    (chalicelib/federation/sign_in.py): key "fed#<SHA-256 of the state>" in the sessions table.
    Consumed by one conditional delete (single use); bound to the browser that started it by the
    SHA-256 of the idp_fed cookie's value."""

    Meta = _meta("sessions", ttl="expires_at")
    session_hash = UnicodeAttribute(hash_key=True)
    connection_id = UnicodeAttribute()
    nonce = UnicodeAttribute(null=True)
    code_verifier = UnicodeAttribute()
    #: The pending authorization request to continue (none: the account page's "link another sign-in").
    request_id = UnicodeAttribute(null=True)
    #: The signed-in user who asked to link another sign-in (account page), else none.
    link_sub = UnicodeAttribute(null=True)
    binding_hash = UnicodeAttribute()
    created_at = NumberAttribute()
    expires_at = NumberAttribute()


class PendingLinkModel(Model):
    """An upstream identity waiting for its owner to prove the local account with the same email
    (password or emailed link) before it is linked: key "fedlink#<SHA-256 of the idp_fedlink
    cookie's value>" in the sessions table, so only the browser that came back from the upstream
    can finish it. Deleted by the transaction that links."""

    Meta = _meta("sessions", ttl="expires_at")
    session_hash = UnicodeAttribute(hash_key=True)
    connection_id = UnicodeAttribute()
    upstream_sub = UnicodeAttribute()
    #: The local account to link to, and its (normalised) email, as found at the callback.
    sub = UnicodeAttribute()
    email = UnicodeAttribute()
    upstream_email = UnicodeAttribute(null=True)
    #: What the upstream sign-in proved: the amr the session gets, and when.
    amr = _strings(default=list)
    auth_time = NumberAttribute()
    request_id = UnicodeAttribute(null=True)
    sealed_tokens = UnicodeAttribute(null=True)
    created_at = NumberAttribute()
    expires_at = NumberAttribute()


class UsedChallengeModel(Model):
    """A WebAuthn challenge that has been answered (chalicelib/storage/factors.py): put with
    attribute_not_exists in the transaction that relies on it, so each challenge works once. Key
    "challenge#<SHA-256 of the challenge>" in the sessions table, kept until the challenge expires."""

    Meta = _meta("sessions", ttl="expires_at")
    session_hash = UnicodeAttribute(hash_key=True)
    expires_at = NumberAttribute()


class AuthorizationRequestModel(Model):
    """A validated authorization request waiting for sign-in and consent.

    The browser carries only `request_id` (256-bit random) between pages; everything that decides
    what is issued (client, redirect URI, scopes, PKCE challenge, nonce) stays here, out of reach.
    """

    Meta = _meta("authorization_requests", ttl="expires_at")
    request_id = UnicodeAttribute(hash_key=True)
    client_id = UnicodeAttribute()
    redirect_uri = UnicodeAttribute()
    scopes = _strings(default=list)
    resources = _strings(default=list)
    state = UnicodeAttribute(null=True)
    nonce = UnicodeAttribute(null=True)
    code_challenge = UnicodeAttribute()
    code_challenge_method = UnicodeAttribute()
    prompt = _strings(default=list)
    max_age = NumberAttribute(null=True)
    login_hint = UnicodeAttribute(null=True)
    #: A public client cannot prove who it is at the token endpoint (RFC 8252 §8.6).
    client_public = BooleanAttribute(default=False)
    #: The `aud` the token will have when no resource is named (oauth/resources.resource_less_audience):
    #: consent is remembered for the audience actually issued.
    resource_less_audience = UnicodeAttribute(null=True)
    #: The session that signed in for this very request (prompt=login is satisfied only by it).
    login_session_hash = UnicodeAttribute(null=True)
    #: The supported locale the request's ui_locales picked (chalicelib/i18n.py): later pages speak it.
    ui_locale = UnicodeAttribute(null=True)
    #: Known acr values asked for voluntarily, and those of an essential acr claim (chalicelib/oauth/acr.py).
    acr_values = _strings(default=list)
    essential_acr = _strings(default=list)
    #: The client's require_mfa when the request was validated.
    client_requires_mfa = BooleanAttribute(default=False)
    #: The client's `connections` restriction when the request was validated (empty: any way in):
    #: connection ids and "password" (chalicelib/federation/home_realm.py).
    client_connections = _strings(null=True)
    #: RFC 9449 §10: the JWK thumbprint the code is to be bound to (`dpop_jkt`), if the client named one.
    dpop_jkt = UnicodeAttribute(null=True)
    created_at = NumberAttribute()
    expires_at = NumberAttribute()


class PushedRequestModel(Model):
    """A pushed authorization request (RFC 9126 §2), waiting for /authorize to name it: key
    "par#<SHA-256 of the request_uri's secret>" in the authorization_requests table (shared the way
    EmailClaimModel shares users; storage/authorization_requests.from_model never reads one as a
    pending request). `params` are the validated request's parameters as JSON text; `used_by` is set
    by the one conditional update that consumes it (storage/pushed_requests.py)."""

    Meta = _meta("authorization_requests", ttl="expires_at")
    request_id = UnicodeAttribute(hash_key=True)
    client_id = UnicodeAttribute()
    params = UnicodeAttribute()
    created_at = NumberAttribute()
    expires_at = NumberAttribute()
    used_by = UnicodeAttribute(null=True)


class ConsentModel(Model):
    """What a user has agreed to share with a client: pk "<sub>#<client_id>"."""

    Meta = _meta("consents")
    pk = UnicodeAttribute(hash_key=True)
    #: (audience, scope) pairs allowed, each "<scope> <audience>" (oauth/consent.py). Items written
    #: before pairs, with separate `scopes` and `resources` sets, have none and so cover nothing.
    audience_scopes = UnicodeSetAttribute(null=True)
    updated_at = NumberAttribute()


class ConsentListModel(Model):
    """Which clients a user has consents with, so the account page lists them with one GetItem
    rather than a Scan of the consents table: pk "apps#<sub>" (never a consent's "<sub>#<client_id>":
    subjects start "u_"), kept in step with the consents by the same transactions
    (storage/consents.py)."""

    Meta = _meta("consents")
    pk = UnicodeAttribute(hash_key=True)
    client_ids = UnicodeSetAttribute(null=True)


class ThrottleModel(Model):
    """A failure counter for one key ("account#...", "ip#..." or "device#...") in one time window."""

    Meta = _meta("throttles", ttl="expires_at")
    pk = UnicodeAttribute(hash_key=True)
    failures = NumberAttribute(default=0)
    expires_at = NumberAttribute()


class GrantsByClient(GlobalSecondaryIndex):
    class Meta:
        index_name = "by_client"
        projection = KeysOnlyProjection()

    client_id = UnicodeAttribute(hash_key=True)


class GrantModel(Model):
    """An authorization grant: what a user allowed a client, and its refresh-token family. Every
    refresh token and access token issued under it dies when it is revoked (chalicelib/storage/grants.py).

    Keyed by (sub, grant_id), so that every grant of a user is one strongly consistent Query on the
    table itself: disabling a user or signing them out everywhere finds a grant made a moment ago,
    which an (eventually consistent) index could miss. Indexed by client for disabling a client.

    The family's state lives here too, so rotation is ONE conditional UpdateItem of this item: the
    current token's hash and idle expiry, the previous token's hash and when it was rotated (to tell
    a retry within the grace window from reuse), and the current token sealed under the previous one
    for that retry (chalicelib/sealing.py).
    """

    Meta = _meta("grants", ttl="expires_at")
    sub = UnicodeAttribute(hash_key=True)
    grant_id = UnicodeAttribute(range_key=True)
    client_id = UnicodeAttribute()
    session_hash = UnicodeAttribute(null=True)
    auth_time = NumberAttribute(null=True)
    #: The user's `session_generation` when the session that made this grant signed in.
    session_generation = NumberAttribute(default=0)
    scopes = _strings(default=list)
    resources = _strings(default=list)
    #: The user's ID-token claims when the session signed in (name, email, email_verified), JSON
    #: text: refreshed ID tokens carry them without reading the user (OIDC Core §12.2 does not ask
    #: for fresh ones; /userinfo reads the user).
    user_claims = UnicodeAttribute(null=True)
    #: How the session authenticated (RFC 8176 amr) and the acr chosen when the code was issued:
    #: refreshed tokens repeat them (OIDC Core §12.2), like auth_time.
    amr = _strings(null=True)
    acr = UnicodeAttribute(null=True)
    status = UnicodeAttribute(default="active")  # "active" | "revoked"
    created_at = NumberAttribute()
    last_used_at = NumberAttribute(null=True)
    revoked_at = NumberAttribute(null=True)
    #: Absolute lifetime of the family (REFRESH_TOKEN_ABSOLUTE_TTL).
    expires_at = NumberAttribute()
    #: SHA-256 of the family's current refresh token, and when it goes idle (REFRESH_TOKEN_IDLE_TTL).
    token_hash = UnicodeAttribute(null=True)
    token_expires_at = NumberAttribute(null=True)
    #: SHA-256 of the token rotated into the current one, and when: presenting it again is a retry
    #: within REFRESH_GRACE_SECONDS, reuse after.
    previous_hash = UnicodeAttribute(null=True)
    rotated_at = NumberAttribute(null=True)
    #: The current token sealed under the previous one (only while the grace window is on).
    retry_seal = UnicodeAttribute(null=True)
    #: Reuse detection beyond the previous token: slot (rotation number mod
    #: storage.grants.CONSUMED_SLOTS) -> storage.grants.consumed_mark of the token consumed by that
    #: rotation. A fixed number of slots keeps the item (and each rotation's write) small.
    consumed = MapAttribute(default=dict)
    #: `jti`s of this grant's access tokens revoked one by one (RFC 7009); bounded, see storage/grants.py.
    revoked_jtis = UnicodeSetAttribute(null=True)
    #: RFC 9449 §5: a public client's refresh tokens are bound to this DPoP key (JWK thumbprint);
    #: rotation's condition demands a proof of it (storage/grants.rotate).
    dpop_jkt = UnicodeAttribute(null=True)
    #: Rotation number of the family's first token bound to `dpop_jkt` (0: bound at redemption). Its
    #: tokens issued before were unbound, so their reuse is reuse (oauth/refresh_tokens.py).
    dpop_bound_from = NumberAttribute(null=True)
    by_client = GrantsByClient()


class AuthorizationCodeModel(Model):
    """RFC 6749 §4.1.2: single use, short-lived, bound to everything the token request must repeat,
    and carrying everything the token response needs, so redeeming it is one UpdateItem (ALL_NEW)."""

    Meta = _meta("codes", ttl="expires_at")
    code_hash = UnicodeAttribute(hash_key=True)
    client_id = UnicodeAttribute()
    redirect_uri = UnicodeAttribute()
    code_challenge = UnicodeAttribute()
    code_challenge_method = UnicodeAttribute(default="S256")
    scopes = _strings(default=list)
    resources = _strings(default=list)
    nonce = UnicodeAttribute(null=True)
    sub = UnicodeAttribute()
    auth_time = NumberAttribute()
    session_hash = UnicodeAttribute(null=True)
    grant_id = UnicodeAttribute()
    #: The ID-token claims of the user (JSON text), from the session (see GrantModel.user_claims).
    user_claims = UnicodeAttribute(null=True)
    #: The session's amr and the acr chosen for this request (chalicelib/oauth/acr.py).
    amr = _strings(null=True)
    acr = UnicodeAttribute(null=True)
    created_at = NumberAttribute()
    expires_at = NumberAttribute()
    consumed_at = NumberAttribute(null=True)
    #: A random id of the redemption that consumed the code: tells that redemption's own write, seen
    #: again after a lost response, from another's (storage/codes.consume), and what `restore` undoes.
    redemption = UnicodeAttribute(null=True)
    #: RFC 9449 §10: redeemable only with a DPoP proof of this key (JWK thumbprint); consume's condition.
    dpop_jkt = UnicodeAttribute(null=True)


class DeviceAuthorizationModel(Model):
    """A device authorization (RFC 8628 §3.1-§3.5) in the codes table, key "device#<SHA-256 of the
    user code>" (chalicelib/storage/device_codes.py): the request, its polling state, and once the
    user approved, everything the token response needs. The device code's secret is kept as its
    SHA-256 only."""

    Meta = _meta("codes", ttl="expires_at")
    code_hash = UnicodeAttribute(hash_key=True)
    secret_hash = UnicodeAttribute()
    client_id = UnicodeAttribute()
    scopes = _strings(default=list)
    resources = _strings(default=list)
    created_at = NumberAttribute()
    expires_at = NumberAttribute()
    #: Seconds a poll must wait after the previous one (RFC 8628 §3.5: grows by 5 with each slow_down),
    #: and when the next poll may come.
    interval = NumberAttribute()
    next_poll_at = NumberAttribute()
    status = UnicodeAttribute(default="pending")  # "pending" | "approved" | "denied"
    #: "-" until approved; then absent until the first poll after approval sets it to that poll's
    #: random id, which redeems the authorization for that poll alone (storage/device_codes.poll).
    claim = UnicodeAttribute(null=True)
    # Set on approval, as on an authorization code:
    sub = UnicodeAttribute(null=True)
    grant_id = UnicodeAttribute(null=True)
    auth_time = NumberAttribute(null=True)
    user_claims = UnicodeAttribute(null=True)
    amr = _strings(null=True)
    acr = UnicodeAttribute(null=True)


class ResourceModel(Model):
    """A protected resource (RFC 8707 resource indicator) clients may ask tokens for."""

    Meta = _meta("resources")
    resource = UnicodeAttribute(hash_key=True)  # absolute URI, no fragment
    name = UnicodeAttribute()
    scopes = _strings(default=list)
    #: Open to clients nobody vetted (dynamically registered, client ID metadata documents): they may
    #: target it and ask for its scopes (unless UNVERIFIED_CLIENT_SCOPES says otherwise).
    public = BooleanAttribute(default=False)
    created_at = NumberAttribute()


class PublicScopesModel(Model):
    """The public resources' scopes in one item, so the unverified-client ceiling is one GetItem, not a
    Scan (chalicelib/storage/resources.py). It shares the resources table under a key that is never a
    resource (not an absolute URI); every registration and deletion changes its entry in the same
    transaction as the resource, and listings skip it."""

    Meta = _meta("resources")
    resource = UnicodeAttribute(hash_key=True)
    #: resource URI -> JSON list of its scopes, for each public resource.
    scopes_by_resource = MapAttribute(default=dict)


class ClientDocumentModel(Model):
    """A fetched client ID metadata document (the client_id is its https URL), cached per its HTTP
    cache headers within bounds, or an operator's block on that URL (chalicelib/storage/client_documents.py).

    `fresh_until` ends the cache's lifetime; past it a failed refresh may still serve the copy until
    `expires_at`, the TTL attribute (items written before `fresh_until` existed are fresh until
    `expires_at`). A blocked item has no `expires_at`, so TTL never deletes the block."""

    Meta = _meta("client_documents", ttl="expires_at")
    url = UnicodeAttribute(hash_key=True)
    document = UnicodeAttribute(null=True)  # the validated JSON text; none on a block set before any fetch
    fetched_at = NumberAttribute(null=True)
    fresh_until = NumberAttribute(null=True)
    expires_at = NumberAttribute(null=True)
    blocked = BooleanAttribute(null=True)


class RevokedTokenModel(Model):
    """Access tokens revoked before they expire (RFC 7009), by `jti`; kept until the token's `exp`."""

    Meta = _meta("revoked_tokens", ttl="expires_at")
    jti = UnicodeAttribute(hash_key=True)
    expires_at = NumberAttribute()


class UsedJtiModel(Model):
    """A JWT that may be used once (a client assertion, RFC 7523 §3 item 7; an ID-JAG; a DPoP proof),
    seen: key "used#<kind>#<SHA-256 of issuer and jti>" in the revoked_tokens table (both are "jtis
    we know about"), kept until the JWT expires. `claim` is a random id of the request that wrote
    it, so botocore resending a PutItem whose answer was lost finds its own item, not a replay
    (chalicelib/storage/used_jtis.py)."""

    Meta = _meta("revoked_tokens", ttl="expires_at")
    jti = UnicodeAttribute(hash_key=True)
    claim = UnicodeAttribute()
    expires_at = NumberAttribute()


class SigningKeyModel(Model):
    """Metadata of a signing key; the private part lives in Secrets Manager or KMS (`key_ref`).

    state: "next" (published, not yet signing) -> "current" (signing) -> "retired" (published
    until `publish_until`, so tokens it signed keep verifying).
    """

    Meta = _meta("signing_keys")
    kid = UnicodeAttribute(hash_key=True)
    alg = UnicodeAttribute()
    backend = UnicodeAttribute()
    key_ref = UnicodeAttribute()
    public_jwk = UnicodeAttribute()  # JSON text of the public JWK, served verbatim in /jwks
    state = UnicodeAttribute()
    created_at = NumberAttribute()
    activated_at = NumberAttribute(null=True)
    retired_at = NumberAttribute(null=True)
    publish_until = NumberAttribute(null=True)


class KeyRingModel(Model):
    """Every signing key's record in one item, so requests read the key ring (current key, /jwks)
    with one GetItem instead of a Scan (chalicelib/storage/signing_keys.py). It shares the
    signing_keys table under a key that is never a kid (kids are base64url thumbprints); every
    transaction that creates, promotes, retires or deletes a key changes its entry too, and
    listings skip it."""

    Meta = _meta("signing_keys")
    kid = UnicodeAttribute(hash_key=True)
    #: kid -> JSON text of the key's SigningKeyModel attributes.
    records = MapAttribute(default=dict)


class KnownDeviceModel(Model):
    """A browser that has signed in as `sub` (chalicelib/storage/devices.py). It shares the sessions
    table (and its TTL) the way EmailClaimModel shares the users table: its key is "device#<SHA-256
    of the cookie value>" in the table's key attribute, never a bare hex hash like a session's."""

    Meta = _meta("sessions", ttl="expires_at")
    session_hash = UnicodeAttribute(hash_key=True)
    sub = UnicodeAttribute()
    created_at = NumberAttribute()
    expires_at = NumberAttribute()
    #: The user's `session_generation` when this device signed in: signing the user out everywhere
    #: (or disabling them) moves theirs on, and the device is no longer known.
    session_generation = NumberAttribute(default=0)


class LinkModel(Model):
    """A one-time link (and the code typed in its place) sent by email: verification, password
    reset, invitation, email change (chalicelib/storage/links.py). Keyed by the SHA-256 of the
    token; the token itself exists only in the email."""

    Meta = _meta("links", ttl="expires_at")
    link_hash = UnicodeAttribute(hash_key=True)
    #: What the link may do ("verify_email", "reset_password", "invitation", "email_change"): a
    #: token is consumed only for its own purpose.
    purpose = UnicodeAttribute()
    #: The address the link was sent to, and the user it is for (none for an invitation to sign up).
    email = UnicodeAttribute()
    sub = UnicodeAttribute(null=True)
    #: The pending authorization request to continue after the link is used (same browser or not).
    request_id = UnicodeAttribute(null=True)
    #: Purpose-specific JSON text (e.g. the new address of an email change).
    data = UnicodeAttribute(null=True)
    created_at = NumberAttribute()
    expires_at = NumberAttribute()
    #: Set by the one conditional update that consumes the link, with a random id telling our own
    #: retried write from a second use.
    used_at = NumberAttribute(null=True)
    use_id = UnicodeAttribute(null=True)


class FactorModel(Model):
    """A second factor (or passwordless credential) of a user (chalicelib/storage/factors.py).

    Keyed by (sub, factor_id) so a user's factors are one strongly consistent Query:
    - "passkey#<credential id, base64url>": a WebAuthn public-key credential;
    - "totp": an RFC 6238 secret, sealed (chalicelib/secret_box.py), never stored in the clear;
    - "recovery": the SHA-256 of each unused recovery code."""

    Meta = _meta("factors")
    sub = UnicodeAttribute(hash_key=True)
    factor_id = UnicodeAttribute(range_key=True)
    kind = UnicodeAttribute()  # "passkey" | "totp" | "recovery"
    #: The user's own label (passkeys).
    name = UnicodeAttribute(null=True)
    created_at = NumberAttribute()
    last_used_at = NumberAttribute(null=True)
    # passkey
    public_key = UnicodeAttribute(null=True)  # COSE_Key, base64url
    sign_count = NumberAttribute(null=True)
    transports = _strings(null=True)
    backup_eligible = BooleanAttribute(null=True)
    # totp
    sealed_secret = UnicodeAttribute(null=True)
    #: True until the first code has verified (an enrolment in progress, not a factor yet).
    pending = BooleanAttribute(null=True)
    #: The session (its hash) that started a pending enrolment: only it is shown the secret and may
    #: confirm it, so another signed-in browser of the user cannot copy a factor being set up.
    started_by = UnicodeAttribute(null=True)
    #: The newest accepted time step: a code is accepted once (RFC 6238 §5.2).
    last_step = NumberAttribute(null=True)
    # recovery codes
    code_hashes = UnicodeSetAttribute(null=True)


class ConnectionModel(Model):
    """An upstream identity provider users may sign in through (chalicelib/federation/connections.py
    says what each field means and checks them; chalicelib/storage/connections.py reads and writes).
    Its client secret or private key is not here: `secret_name` names the Secrets Manager secret."""

    Meta = _meta("connections")
    connection_id = UnicodeAttribute(hash_key=True)
    preset = UnicodeAttribute()
    protocol = UnicodeAttribute()
    display_name = UnicodeAttribute()
    client_id = UnicodeAttribute()
    auth_method = UnicodeAttribute()
    issuer = UnicodeAttribute(null=True)
    discovery_url = UnicodeAttribute(null=True)
    allowed_tenants = _strings(default=list)
    authorization_endpoint = UnicodeAttribute(null=True)
    token_endpoint = UnicodeAttribute(null=True)
    api_base = UnicodeAttribute(null=True)
    scopes = _strings(default=list)
    response_mode = UnicodeAttribute(default="query")
    #: JSON text: our claim -> the upstream claim, and upstream acr -> ours.
    claim_mapping = UnicodeAttribute(default="{}")
    acr_mapping = UnicodeAttribute(default="{}")
    trusted_email_domains = _strings(default=list)
    domains = _strings(default=list)
    store_tokens = BooleanAttribute(default=False)
    apple_team_id = UnicodeAttribute(null=True)
    apple_key_id = UnicodeAttribute(null=True)
    tenant = UnicodeAttribute(null=True)
    icon_url = UnicodeAttribute(null=True)
    enabled = BooleanAttribute(default=True)
    secret_name = UnicodeAttribute(null=True)
    created_at = NumberAttribute()
    updated_at = NumberAttribute()
    #: What its issuer's JWTs are trusted for ("id-jag", "subject-token") and how their subject maps.
    trust = _strings(default=list)
    subject_mapping = UnicodeAttribute(default="identity")


#: Every model, in bootstrap order. Two models may share a table (users).
ALL_MODELS = (ClientModel, UserModel, EmailClaimModel, SessionModel, AuthorizationRequestModel, ConsentModel,
              ThrottleModel, GrantModel, AuthorizationCodeModel, ResourceModel, RevokedTokenModel,
              ClientDocumentModel, SigningKeyModel,
              KnownDeviceModel, KeyRingModel, PublicScopesModel, LinkModel, ConsentListModel, SignInStepModel,
              UsedChallengeModel, FactorModel, IdentityClaimModel, FederationStateModel, PendingLinkModel,
              ConnectionModel, UsedJtiModel, DeviceAuthorizationModel, PushedRequestModel)


@functools.lru_cache(maxsize=1)
def _transaction_connection() -> SharedClientConnection:
    return SharedClientConnection(region=config.region())


def transact_write():
    """A DynamoDB write transaction (all-or-nothing, each item's condition checked atomically).

    Each carries its own ClientRequestToken, which makes it idempotent for ten minutes: botocore
    retries a transaction whose response was lost (a timeout, a 5xx) with the same parameters, and
    without the token the retry of one that did succeed fails on its own writes' conditions
    ("does not exist"), turning a success into an error. With it, DynamoDB answers the retry with
    the first outcome."""
    import uuid

    from pynamodb.transactions import TransactWrite

    return TransactWrite(connection=_transaction_connection(), client_request_token=uuid.uuid4().hex)


def error_code(exc: Exception) -> str | None:
    """DynamoDB's error code behind a pynamodb error ("ConditionalCheckFailedException",
    "TransactionCanceledException", ...); None when DynamoDB never answered (a timeout, a refused
    connection). pynamodb's own `cause_response_code` raises AttributeError for those: botocore's
    connection errors carry `response=None`."""
    response = getattr(getattr(exc, "cause", None), "response", None)
    return (response or {}).get("Error", {}).get("Code")


def cancellation_codes(exc: Exception) -> list[str | None]:
    """For a transaction DynamoDB cancelled, each item's reason ("ConditionalCheckFailed",
    "TransactionConflict", or None for an item that was not a reason), in the order pynamodb sent
    the items: condition checks, deletes, puts, then updates. [] for any other failure."""
    if error_code(exc) != "TransactionCanceledException":
        return []
    return [r.code if r else None for r in exc.cancellation_reasons]


def conditionally(write) -> bool:
    """Run one conditional write (a callable doing a save/update/delete with a condition). False
    when the condition refused it; any other failure (throttling, network) still raises."""
    from pynamodb.exceptions import DeleteError, PutError, UpdateError

    try:
        write()
    except (PutError, UpdateError, DeleteError) as exc:
        if error_code(exc) == "ConditionalCheckFailedException":
            return False
        raise
    return True


def retrying_conflicts(write, attempts: int):
    """Run `write()` (one transaction) and return its result, running it again, after a short pause,
    while DynamoDB cancels it with TransactionConflict: another request was writing one of the same
    items at that moment, and DynamoDB refuses rather than queues. The last attempt's error, and
    any other error, is raised."""
    import time

    from pynamodb.exceptions import TransactWriteError

    for attempt in range(attempts):
        try:
            return write()
        except TransactWriteError as exc:
            if "TransactionConflict" not in cancellation_codes(exc) or attempt + 1 == attempts:
                raise
            time.sleep(0.02 * (attempt + 1))
    raise AssertionError("unreachable")


def transaction_refused(exc: Exception) -> bool:
    """A write transaction cancelled because one of its conditions did not hold (rather than a
    throttle, a conflict with a concurrent transaction, or a network failure)."""
    from pynamodb.exceptions import TransactWriteError

    return isinstance(exc, TransactWriteError) and "ConditionalCheckFailed" in cancellation_codes(exc)


def reset_connections() -> None:
    """Drop cached pynamodb connections (tests). They hold no client of their own: the endpoint
    follows chalicelib.aws, whose reset_clients() re-reads AWS_ENDPOINT_URL."""
    for model in ALL_MODELS:
        model._connection = None
    _transaction_connection.cache_clear()


caches.register("pynamodb.connections", reset_connections, kind="connection")
caches.register("pynamodb.transaction_connection", _transaction_connection.cache_clear, kind="connection")
