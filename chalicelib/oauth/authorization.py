"""The authorization endpoint's logic (RFC 6749 §4.1.1-§4.1.2, OAuth 2.1 §4.1, OIDC Core §3.1.2).

Validation happens in two phases, because errors must never be sent to an unvalidated redirect URI
(RFC 6749 §4.1.2.1, RFC 9700 §4.11):
1. `trusted_client_and_redirect`: duplicated parameters, client_id, redirect_uri. Failures raise
   `UntrustedRequest` and are shown to the user on our own error page.
2. `validate`: everything else. Failures raise `RedirectableError`, sent back to the client's
   redirect URI with `state` and `iss` (RFC 9207).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit, urlunsplit

from .. import i18n
from ..capabilities import PROMPT_VALUES, RESPONSE_TYPES
from ..config import Settings
from ..errors import (
    ConsentRequired,
    DocumentError,
    InteractionRequired,
    InvalidRequest,
    InvalidScope,
    InvalidTarget,
    LoginRequired,
    OAuthError,
    RedirectableError,
    RequestNotSupported,
    UnauthorizedClient,
    UnmetAuthenticationRequirements,
    UnsupportedResponseType,
    UntrustedRequest,
    echo,
)
from ..hashing import new_secret, sha256_hex
from ..log import get_logger, now
from ..storage.authorization_requests import PendingRequest
from . import acr, consent, pkce, redirect_uris, resources, scopes, sessions
from .clients import allowed_scopes

if TYPE_CHECKING:
    from ..storage.clients import Client

log = get_logger("idp.authorize")

#: Bound on any single parameter: keeps items small and rejects garbage early.
MAX_PARAM_LENGTH = 2048
#: RFC 9449 §10 `dpop_jkt`: a JWK SHA-256 thumbprint (RFC 7638), base64url without padding: 43 characters.
_DPOP_JKT = re.compile(r"[A-Za-z0-9_-]{43}")


@dataclass
class Decision:
    """What the endpoint should do next with a stored request."""

    action: str  # "login" | "verify" | "mfa" | "enroll" | "consent" | "redirect"
    request: PendingRequest
    location: str | None = None


def trusted_client_and_redirect(params: dict, settings: Settings, *,
                                source_ip: str | None = None) -> tuple[Client, str]:
    from .clients import find_client

    client_id = params.get("client_id")
    if not client_id:
        raise UntrustedRequest("missing_client_id", "client_id is required")
    if len(client_id) > MAX_PARAM_LENGTH:
        raise UntrustedRequest("unknown_client", "client_id is too long", detail=f"{len(client_id)} characters")
    try:
        # From this container's cache, like the token endpoint's: a signed-in request then costs the
        # session read and the issuing transaction only. A change to a client (disabled, redirect URIs)
        # reaches every container within CLIENT_CACHE_SECONDS.
        client = find_client(client_id, settings, cache_seconds=settings.client_cache_seconds, source_ip=source_ip)
    except DocumentError as exc:
        # The reason may quote the document or the fetch: the log gets it, the page does not.
        raise UntrustedRequest("unverified_client", "the client could not be verified",
                               detail=f"client_id={client_id!r}: {exc}") from None
    if client is None:
        raise UntrustedRequest("unknown_client", "unknown client", detail=f"client_id={client_id!r}")
    return client, trusted_redirect(params, client)


def trusted_redirect(params: dict, client: Client) -> str:
    """Phase 1's redirect_uri check for a known `client` (the pushed authorization endpoint has
    authenticated it already). Raises UntrustedRequest."""
    client_id = client.client_id
    redirect_uri = params.get("redirect_uri")
    # OAuth 2.1 lets a client with one registered URI omit it; OIDC Core §3.1.2.1 requires it.
    # Stricter reading: always required, so the code is bound to a URI the client stated.
    if not redirect_uri:
        raise UntrustedRequest("missing_redirect_uri", "redirect_uri is required")
    if not redirect_uris.matches(redirect_uri, list(client.redirect_uris)):
        raise UntrustedRequest("unregistered_redirect_uri", "redirect_uri is not registered for this client",
                               detail=f"client {client_id} redirect_uri={redirect_uri!r}")
    return redirect_uri


def validate(params: dict, client: Client, redirect_uri: str, settings: Settings, *,
             pushed: bool = False) -> PendingRequest:
    """Phase 2. Returns an unsaved request record; raises RedirectableError. `pushed`: the
    parameters came through the pushed authorization endpoint (RFC 9126, oauth/pushed_authorization.py)."""
    state = params.get("state")
    try:
        if not pushed and (settings.par_required or client.require_pushed_authorization_requests):
            # RFC 9126 §4: PAR as the only way in, globally or for this client: invalid_request.
            raise InvalidRequest("authorization requests of this client must be pushed to the "
                                 "pushed authorization request endpoint first (RFC 9126)")
        for name, value in params.items():
            if any(len(v) > MAX_PARAM_LENGTH for v in (value if isinstance(value, list) else [value])):
                raise InvalidRequest(f"parameter {echo(name)} is too long")
        if "request" in params:
            raise RequestNotSupported("request objects are not supported")
        if "request_uri" in params:
            # Only /authorize takes one, naming a pushed request; RFC 9126 §2.1: never inside a push.
            raise InvalidRequest("request_uri must not be pushed")
        if params.get("response_type") not in RESPONSE_TYPES:
            raise UnsupportedResponseType("only response_type=code is supported")
        if "authorization_code" not in client.grant_types:
            raise UnauthorizedClient("this client may not use the authorization code grant")
        if params.get("response_mode", "query") != "query":
            raise InvalidRequest("only response_mode=query is supported")
        method = pkce.validate_challenge(params.get("code_challenge"), params.get("code_challenge_method"))
        requested = scopes.parse(params.get("scope"))
        # Cached like the token endpoint's lookups: decide() reads the same registrations again.
        targets = resources.resolve(params.get("resource", []), client, max_age=settings.client_cache_seconds)
        # RFC 6749 §3.3: without a scope we apply a default, the scopes the client may ask for.
        allowed = allowed_scopes(client, settings)
        unverified = client.registered_dynamically
        granted = (scopes.require_subset(requested, allowed) if requested
                   else resources.default_scopes(allowed, targets, unverified=unverified))
        if not granted:
            raise InvalidScope("no scope requested and the client has no default scopes")
        # An unverified client naming no resource gets the issuer as audience, so identity scopes
        # only (resources.resource_less_audience): never a token for DEFAULT_AUDIENCE.
        resources.check_scopes(granted, targets, unverified=unverified)
        prompt = params.get("prompt", "").split()
        if any(p not in PROMPT_VALUES for p in prompt):
            raise InvalidRequest("unsupported prompt value")
        if "none" in prompt and len(prompt) > 1:
            raise InvalidRequest("prompt=none cannot be combined with other values")
        max_age = _max_age(params.get("max_age"))
        acr_values, essential_acr = requested_acr(params.get("acr_values"), params.get("claims"))
        dpop_jkt = _dpop_jkt(params.get("dpop_jkt"))
    except OAuthError as exc:
        raise RedirectableError(exc, redirect_uri, state) from None
    at = now()
    return PendingRequest(
        request_id=new_secret(), client_id=client.client_id, redirect_uri=redirect_uri, scopes=tuple(granted),
        state=state, nonce=params.get("nonce"), code_challenge=params["code_challenge"],
        code_challenge_method=method, prompt=tuple(prompt), max_age=max_age,
        login_hint=_login_hint(params.get("login_hint")), resources=tuple(r.resource for r in targets),
        client_public=client.client_type == "public",
        resource_less_audience=None if targets else resources.resource_less_audience(client, settings),
        ui_locale=i18n.from_ui_locales(params.get("ui_locales")),
        acr_values=acr_values, essential_acr=essential_acr, client_requires_mfa=client.require_mfa,
        client_connections=tuple(getattr(client, "connections", None) or ()), dpop_jkt=dpop_jkt,
        created_at=at, expires_at=at + settings.request_ttl,
    )


def _dpop_jkt(raw: str | None) -> str | None:
    """RFC 9449 §10: the thumbprint of the key the code is to be bound to; its token request must
    then prove that key. Anything but a SHA-256 thumbprint could never match: refused at once."""
    if raw is None:
        return None
    if not _DPOP_JKT.fullmatch(raw):
        raise InvalidRequest("dpop_jkt must be the base64url SHA-256 JWK thumbprint of the DPoP key")
    return raw


def _max_age(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    if not re.fullmatch(r"[0-9]{1,9}", raw):
        raise InvalidRequest("max_age must be a non-negative integer (seconds)")
    return int(raw)


#: OIDC Core §5.5: the members of `claims` that request claims, by where they are returned.
CLAIMS_DESTINATIONS = ("id_token", "userinfo")


def requested_acr(acr_values: str | None, claims: str | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(acr values asked for voluntarily, acr values of an essential `acr` claim), each only the
    values we know (chalicelib/oauth/acr.py), in request order.

    `acr_values` (OIDC Core §3.1.2.1) is voluntary and unknown values in it are ignored. `claims`
    (OIDC Core §5.5) must be a JSON object whose id_token / userinfo members are objects of claim
    requests (null or an object); only `acr` is acted upon (§5.5.1.1): its `value` / `values` are
    voluntary unless `essential`. Essential values none of which we know cannot be met:
    unmet_authentication_requirements. Other claim requests are accepted and answered as the scopes
    decide (§5.5: a claim not returned is never an error). Raises InvalidRequest for malformed input."""
    voluntary = (acr_values or "").split()
    essential: list[str] = []
    if claims:  # RFC 6749 §3.1: a parameter sent without a value is treated as omitted
        try:
            document = json.loads(claims)
        except (ValueError, RecursionError):
            raise InvalidRequest("claims must be a JSON object") from None
        if not isinstance(document, dict):
            raise InvalidRequest("claims must be a JSON object")
        for destination in CLAIMS_DESTINATIONS:
            wanted = document.get(destination)
            if wanted is None:
                continue
            if not isinstance(wanted, dict) or any(v is not None and not isinstance(v, dict) for v in wanted.values()):
                raise InvalidRequest(f"claims.{destination} must be an object of claim requests (null or objects)")
            request = wanted.get("acr") or {}
            values = _claim_values(request, destination)
            (essential if request.get("essential") is True else voluntary).extend(values)
        if essential and not any(acr.level(v) for v in essential):
            raise UnmetAuthenticationRequirements("none of the essential acr values is supported")

    def known(values: list[str]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(v for v in values if acr.level(v) is not None))

    return known(voluntary), known(essential)


def _claim_values(request: dict, destination: str) -> list[str]:
    """OIDC Core §5.5.1: `essential` a boolean, `value` a string, `values` an array of strings."""
    where = f"claims.{destination}.acr"
    if not isinstance(request.get("essential", False), bool):
        raise InvalidRequest(f"{where}.essential must be true or false")
    values = request.get("values", [])
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise InvalidRequest(f"{where}.values must be an array of strings")
    if "value" in request:
        if not isinstance(request["value"], str):
            raise InvalidRequest(f"{where}.value must be a string")
        values = [request["value"], *values]
    return values


#: An email address (our usernames): no spaces or control characters, one "@", a dot in the domain.
_EMAIL_SHAPED = re.compile(r"[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+")


def _login_hint(raw: str | None) -> str | None:
    """OIDC Core §3.1.2.1: login_hint is a hint the server may ignore. It prefills the sign-in form
    on our domain, so only an email address is kept: free text from a crafted link ("Your account
    is locked, call ...") must not appear on our page."""
    from ..storage.users import MAX_EMAIL_LENGTH

    if raw and len(raw) <= MAX_EMAIL_LENGTH and _EMAIL_SHAPED.fullmatch(raw):
        return raw
    return None


def store(request: PendingRequest) -> None:
    from ..storage import authorization_requests

    authorization_requests.store(request)


def load_pending(request_id: str | None) -> PendingRequest | None:
    """A stored request that has not expired."""
    from ..storage import authorization_requests

    return authorization_requests.load(request_id)


def finish_request(request: PendingRequest) -> bool:
    """Delete a pending request exactly once; False when another tab already finished it."""
    from ..storage import authorization_requests

    return authorization_requests.finish(request.request_id)


def requested_resources(request: PendingRequest, settings: Settings) -> list:
    """The registrations of the request's resources, from this container's cache (on /authorize
    validate() has just read them). One deleted since the request was validated ends it."""
    try:
        return resources.registered(list(request.resources), max_age=settings.client_cache_seconds)
    except InvalidTarget as exc:
        raise RedirectableError(exc, request.redirect_uri, request.state) from None


def consent_wanted(request: PendingRequest, settings: Settings) -> dict[str, list[str]]:
    """Audience -> scopes this request asks the user to allow (see oauth/consent.py). Without
    resources, the audience the token endpoint will issue for this client (the issuer for an
    unverified one), recorded at validation, so consent is remembered for the `aud` actually issued."""
    return consent.per_audience(list(request.scopes), requested_resources(request, settings),
                                request.resource_less_audience or settings.default_audience)


def remember_consent(sub: str, client_id: str, granted: dict[str, list[str]]) -> None:
    """Record consent as (audience, scope) pairs, added to what was remembered before."""
    from ..storage import consents

    consents.remember(sub, client_id, consent.pairs(granted))


def always_ask(request: PendingRequest) -> bool:
    """RFC 8252 §8.6 / RFC 6749 §10.2: a public client whose redirect URI is not an https URL
    (loopback, private-use scheme) could be any program on the device, so consent is asked every
    time rather than remembered."""
    return request.client_public and not request.redirect_uri.startswith("https://")


def fresh_login_required(request: PendingRequest) -> bool:
    """Only a sign-in for this very request will do: prompt=login, and max_age=0, which OIDC Core
    (errata set 2, §3.1.2.1) makes equivalent to it. Comparing elapsed whole seconds cannot say
    that: a session that signed in earlier in the same second has an elapsed time of 0."""
    return "login" in request.prompt or request.max_age == 0


def may_consent(request: PendingRequest, session) -> bool:
    """Can this session approve the request on the consent page as far as signing in goes? Only if
    it meets max_age, and for prompt=login or max_age=0 only if it is the session that signed in for
    this request (chalicelib/oauth/login.py marks it). How it signed in is `consent_gate`'s."""
    if not session_satisfies(request, session):
        return False
    return not fresh_login_required(request) or request.login_session_hash == session.session_hash


def session_satisfies(request: PendingRequest, session) -> bool:
    """Can this session be used without signing in again as far as max_age and the client's ways
    in go? (max_age=0 is `fresh_login_required`'s.)"""
    if session is None:
        return False
    if request.max_age and now() - session.auth_time > request.max_age:
        return False
    return way_in_allowed(request, session.connection_id)


def own_sign_in_allowed(request: PendingRequest) -> bool:
    """Whether the request's client takes our own sign-in (password, passkey): `way_in_allowed`."""
    return way_in_allowed(request, None)


def way_in_allowed(request: PendingRequest, connection_id: str | None) -> bool:
    """A client restricted to some connections (its `connections`, federation/home_realm.py) takes
    only sessions signed in through one of them, or through our own sign-in when "password" is
    among them: an SSO session from elsewhere must not slip past the restriction."""
    from ..federation.home_realm import allows

    return allows(request.client_connections, connection_id)


def authentication(request: PendingRequest, session, settings: Settings) -> acr.Outcome:
    """Does the session authenticate strongly enough for the request (acr_values, an essential acr,
    MFA_POLICY, the client's require_mfa)? From what the session keeps: no read. MFA_POLICY=off
    asks for no second factor whatever the user has."""
    policy = settings.mfa_policy
    factors = () if policy == "off" else session.factors
    return acr.needed(session_amr=session.amr, user_factors=factors, acr_values=request.acr_values,
                      essential_acr=request.essential_acr,
                      policy_requires_mfa=policy == "required" or (policy != "off" and request.client_requires_mfa))


def current_factors(session):
    """The session with the user's factor kinds as they are now. A session keeps the kinds its user
    had at sign-in (and changes made in it), so /authorize decides without a read; one added in
    another session since is missing. Before sending the user to set one up or refusing the request
    as unmet, the user is read (one GetItem, on those rare paths only) and the session brought up to
    date, so neither happens to a user who has the factor."""
    from dataclasses import replace

    from ..storage import factors
    from ..storage import sessions as session_store
    from ..storage.users import get_user

    user = get_user(session.sub)
    kinds = factors.kinds(user.factors) if user is not None else ()
    if tuple(kinds) == tuple(session.factors):
        return session
    session_store.set_factors(session.session_hash, kinds)
    return replace(session, factors=tuple(kinds))


def consent_gate(request: PendingRequest, session, settings: Settings) -> str | None:
    """What must happen before this session may approve the request on the consent page: None, or
    the decide() action whose page comes first ("login", "mfa", "enroll"). The consent page never
    satisfies max_age, prompt=login or a step-up by itself. Raises RedirectableError when an
    essential acr cannot be met."""
    if not may_consent(request, session):
        return "login"
    return step_up_needed(request, session, settings)[0]


def step_up_needed(request: PendingRequest, session, settings: Settings):
    """(the decide() action a step-up needs, "mfa" or "enroll", or None; the session, its factor
    kinds brought up to date when that was needed to decide: `current_factors`). Raises
    RedirectableError when an essential acr cannot be met."""
    outcome = authentication(request, session, settings)
    if outcome.action in ("enroll", "unmet"):
        session = current_factors(session)
        outcome = authentication(request, session, settings)
    return _step_up_action(request, outcome), session


def _step_up_action(request: PendingRequest, outcome: acr.Outcome) -> str | None:
    if outcome.action == "unmet":
        raise RedirectableError(UnmetAuthenticationRequirements("the requested authentication level cannot be met"),
                                request.redirect_uri, request.state)
    return {"verify": "mfa", "enroll": "enroll"}.get(outcome.action)


def decide(request: PendingRequest, session, *, just_signed_in: bool,
           settings: Settings, stored: bool = True) -> Decision:
    """Next step for a request given the browser's session. A request that needs no page is
    answered at once and never stored (`stored=False`): fewer writes on the SSO fast path.

    Whether consent is remembered is not read first: the transaction that issues the code checks it
    (with the session and the user), so a signed-in, consented request costs the session read and
    that one write; a refusal names what failed and the request goes to the page it needs."""
    prompt = list(request.prompt)
    # A fresh sign-in is this request's own: just made, or recorded on the stored request (then
    # stepped up on /mfa, which comes back here with the same session).
    own_sign_in = just_signed_in or (session is not None and request.login_session_hash == session.session_hash)
    needs_login = not session_satisfies(request, session) or (fresh_login_required(request) and not own_sign_in)
    if not needs_login and settings.require_verified_email and email_unverified(session):
        if "none" in prompt:
            raise RedirectableError(InteractionRequired("the user must verify their email address"),
                                    request.redirect_uri, request.state)
        return Decision("verify", request)
    # A step-up is decided from the session alone (its amr and factor kinds). The /mfa and
    # /account/security pages load the session with its user checked, as every page does.
    step_up = None
    if not needs_login:
        step_up, session = step_up_needed(request, session, settings)
    if step_up is not None:
        if "none" in prompt:
            raise RedirectableError(InteractionRequired("the user must authenticate with another factor"),
                                    request.redirect_uri, request.state)
        return Decision(step_up, request)
    if not needs_login and not ("consent" in prompt or always_ask(request)):
        outcome = issue_code(request, session, settings, stored=stored,
                             consent_pairs=consent.pairs(consent_wanted(request, settings)))
        if isinstance(outcome, str):
            return Decision("redirect", request, outcome)
        needs_login = outcome.reason in ("session", "user")
    elif not needs_login and not session.user_checked and not sessions.user_allows(session):
        needs_login = True  # the page would be shown to a session its user no longer backs
    if needs_login:
        if "none" in prompt:
            raise RedirectableError(LoginRequired("the user must sign in"), request.redirect_uri, request.state)
        return Decision("login", request)
    if "none" in prompt:
        raise RedirectableError(ConsentRequired("the user must consent"), request.redirect_uri, request.state)
    return Decision("consent", request)


def email_unverified(session) -> bool:
    """REQUIRE_VERIFIED_EMAIL's question, answered from the claims the session keeps (no read):
    False when unknown (a session from before claims were kept), since the transaction that issues
    the code checks the user's `email_verified` itself (storage/codes.issue)."""
    claims = getattr(session, "user_claims", None)
    return claims is not None and not claims.get("email_verified")


def issue_code(request: PendingRequest, session, settings: Settings, *, stored: bool = True,
               consent_pairs: set[str] | None = None):
    """Create the grant and its code in one transaction; return the redirect Location, or the
    storage refusal (codes.NotIssued: "session", "user" or "consent"), which decide() turns into a
    page; after the consent page (`consent_pairs` None) an ended session is login_required.

    The code is 256 bits of randomness, stored as its SHA-256, bound to everything the token
    request must match and carrying everything the token response needs. The transaction
    (chalicelib/storage/codes.issue) finishes a stored request (so a double submit yields one
    code), adds the grant to the session's `grant_ids` under the condition that the session is still
    live (sign-out reads that set back from the update that revokes the session, so a grant is
    either in it or was never made), and checks that the user is enabled and not signed out
    everywhere since the session signed in (so a grant never outlives a disable or a sign-out
    everywhere that revoked its user's grants first). `consent_pairs`: remembered consent must
    cover these (None: the user has just consented on the page).
    """
    from ..storage import codes, grants

    code = new_secret()
    at = now()
    user_claims = _user_claims(session)
    # OIDC Core §5.5.1.1: the acr claimed is one of those requested when the session meets one.
    claimed = acr.claimed(session.amr, request.essential_acr or request.acr_values)
    grant = grants.Grant(sub=session.sub, grant_id=new_grant_id(), client_id=request.client_id,
                         scopes=tuple(request.scopes), resources=tuple(request.resources), created_at=at,
                         expires_at=at + settings.refresh_token_absolute_ttl, auth_time=session.auth_time,
                         session_hash=session.session_hash, session_generation=session.session_generation,
                         user_claims=user_claims, amr=tuple(session.amr), acr=claimed)
    record = codes.Code(
        code_hash=sha256_hex(code), client_id=request.client_id, redirect_uri=request.redirect_uri,
        code_challenge=request.code_challenge, code_challenge_method=request.code_challenge_method,
        scopes=tuple(request.scopes), resources=tuple(request.resources), nonce=request.nonce, sub=session.sub,
        auth_time=session.auth_time, session_hash=session.session_hash, grant_id=grant.grant_id,
        user_claims=user_claims, amr=tuple(session.amr), acr=claimed, created_at=at,
        expires_at=at + settings.code_ttl, dpop_jkt=request.dpop_jkt)
    refused = codes.issue(record, grant, session_hash=session.session_hash,
                          session_generation=session.session_generation, consent_pairs=consent_pairs,
                          request_id=request.request_id if stored else None, at=at,
                          require_verified_email=settings.require_verified_email)
    if refused is None:
        log.info("authorization code issued", extra={"client_id": request.client_id, "grant_id": grant.grant_id})
        return redirect_location(request.redirect_uri, settings, code=code, state=request.state)
    log.info("code not issued", extra={"client_id": request.client_id, "reason": refused.reason})
    if refused.reason == "request":
        raise RedirectableError(InvalidRequest("this authorization request was already completed"),
                                request.redirect_uri, request.state)
    if consent_pairs is None:
        # After the consent page: the user acted, and the session (or its user) ended meanwhile.
        raise RedirectableError(LoginRequired("the session ended; sign in again"), request.redirect_uri,
                                request.state)
    return refused


def _user_claims(session) -> dict:
    """The ID-token claims of the session's user, as kept with the session at sign-in; sessions from
    before that read the user once here."""
    from ..storage.users import get_user
    from ..tokens.issue import user_attributes

    claims = getattr(session, "user_claims", None)
    if claims is not None:
        return dict(claims)
    user = get_user(session.sub)
    return user_attributes(user) if user is not None else {}


def new_grant_id() -> str:
    # token_urlsafe's alphabet has no ".", so a refresh token can carry it as "<grant_id>.<secret>".
    return new_secret(16)


def redirect_location(redirect_uri: str, settings: Settings, **params) -> str:
    """Add response parameters to the redirect URI's query, keeping any query it already has,
    and always `iss` (RFC 9207 §2)."""
    parts = urlsplit(redirect_uri)
    extra = urlencode({k: v for k, v in {**params, "iss": settings.issuer}.items() if v is not None})
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def error_location(exc: RedirectableError, settings: Settings) -> str:
    return redirect_location(exc.redirect_uri, settings, error=exc.oauth_error.error,
                             error_description=exc.oauth_error.description or None, state=exc.state)
