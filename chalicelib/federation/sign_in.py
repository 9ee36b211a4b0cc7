"""Signing in through an upstream identity provider: the browser flow around the relying-party
protocol (chalicelib/federation/upstream.py), and what the upstream's answer means for local
accounts (issue 15, DESIGN15 "Branch i15-flow").

Start (`begin`): upstream.start makes the state, nonce and PKCE verifier (RFC 7636); they are
kept in a state record "fed#<SHA-256 of state>" (storage/federation_states.py, 10 minutes) with
the SHA-256 of a fresh *binding* secret, which goes to the browser as the idp_fed cookie
(HttpOnly, SameSite=Lax, path /federation). The state alone travels through the upstream.

Callback (`finish`): the state record is consumed by one conditional delete (a state works once),
the binding cookie must match it (constant time): a callback URL made in one browser (an attacker's
own upstream sign-in) and opened in another is refused, the login CSRF that RFC 6749 §10.12 and
RFC 9700 §4.7 describe. Then upstream.finish checks the upstream's answer, and ONE BatchGetItem
reads the identity's claim, the email claim of the upstream's email and the pending request
(storage/federated_identities.read_for_sign_in). The rules (`decide`):

1. the identity is linked: its user signs in (refused when disabled or deleted);
2. not linked, no email the upstream asserted verified: refused, whether or not an account has
   the address (so the answer tells nobody which addresses have accounts; an unverified address
   would also let anyone squat someone else's email claim). The owner can link such a sign-in
   from the account page;
3. not linked, a local account has the verified email: linked at once only when its domain is one
   the connection is trusted for (`trusted_email_domains`); otherwise the owner proves the local
   account first (password or emailed link: chalicelib/federation/linking.py). Never linked
   without proof;
4. no local account: just-in-time provisioning: the user (no password), its email claim, the
   identity claim and the session in one transaction.

Coming from the account page ("link another sign-in", the state names the signed-in user), the
identity is linked to that user unless it is linked elsewhere already.

A second factor still applies: a user with one goes to /mfa (storage/sign_in_steps.py) unless the
upstream's acr, mapped by the connection's `acr_mapping`, reaches the mfa level. The session's amr
is ["fed"] (RFC 8176 §2), plus "mfa" when the mapped acr is mfa-level or higher.
"""
from __future__ import annotations

import hmac
import json
from dataclasses import dataclass

from ..config import Settings
from ..errors import FederationRefused
from ..hashing import new_secret, sha256_hex
from ..log import get_logger, now
from ..oauth.sessions import host_cookie_header, host_cookie_name
from ..pages import messages

log = get_logger("idp.federation")

#: How long an upstream sign-in may take, start to callback (seconds).
STATE_TTL = 600
#: How long a pending link waits for proof of the local account (seconds).
LINK_TTL = 900
#: KMS encrypts at most 4096 bytes: a larger token response is not kept.
MAX_SEALED_TOKENS = 4096


#: The upstream sign-in cannot go on (errors.FederationRefused: message, reason, status).
Refusal = FederationRefused


# Cookies --------------------------------------------------------------------------------------------

# __Host- (Secure, Path=/, host-only) like the session cookie: a __Secure- cookie scoped to a path
# could be planted from a sibling subdomain, and a planted idp_fedlink would have the victim prove
# their password for the attacker's pending link. Path=/ costs a few bytes on other requests.

def binding_cookie_name(settings: Settings) -> str:
    return host_cookie_name(settings, "idp_fed")


def binding_cookie_header(settings: Settings, base: str, value: str, *, max_age: int = STATE_TTL) -> str:
    """The browser binding of an upstream sign-in. SameSite=Lax: the upstream's redirect back is a
    top-level GET, which carries it; a cross-site POST does not (the form_post callback answers it
    with a redirect to the GET, chalicelib/blueprints/federation.py). `base` is unused: the cookie
    is for every path."""
    return host_cookie_header(settings, "idp_fed", value, same_site="Lax", max_age=max_age)


def link_cookie_name(settings: Settings) -> str:
    return host_cookie_name(settings, "idp_fedlink")


def link_cookie_header(settings: Settings, base: str, value: str, *, max_age: int = LINK_TTL) -> str:
    return host_cookie_header(settings, "idp_fedlink", value, same_site="Lax", max_age=max_age)


def callback_uri(settings: Settings) -> str:
    """The redirect URI registered at every upstream."""
    return f"{settings.issuer}/federation/callback"


# Connections ----------------------------------------------------------------------------------------

def enabled(settings: Settings) -> list:
    """The enabled connections (storage/connections.enabled_connections: one Scan per container per
    CLIENT_CACHE_SECONDS, none per request)."""
    from ..storage.connections import enabled_connections

    return list(enabled_connections(settings.client_cache_seconds))


def connection(settings: Settings, connection_id: str | None):
    """The enabled connection `connection_id`, or None."""
    if not connection_id:
        return None
    return next((c for c in enabled(settings) if c.connection_id == connection_id and c.enabled), None)


def page_sources(connections) -> tuple[list[str], list[str]]:
    """(CSP form-action origins, img-src origins) for a page with a button for each connection:
    the post to /federation/start (or a home-realm address) ends in a redirect to the upstream,
    which Chromium checks against form-action; an icon is an image from the operator's URL."""
    from urllib.parse import urlsplit

    from .upstream import authorization_origin

    targets = {authorization_origin(c) for c in connections} - {""}
    images = {f"{urlsplit(c.icon_url).scheme}://{urlsplit(c.icon_url).netloc}" for c in connections if c.icon_url}
    return sorted(targets), sorted(images)


# Start ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Started:
    """Where to send the browser, and the binding cookie's value to set."""

    location: str
    binding: str


def begin(settings: Settings, conn, *, request=None, link_sub: str | None = None,
          login_hint: str | None = None) -> Started:
    """Start an upstream sign-in through connection `conn`: for the pending authorization request
    `request` (its prompt=login / max_age go upstream too: the user must really authenticate
    there), or for the signed-in user `link_sub` linking another sign-in (account page). One
    PutItem (the state record)."""
    from ..storage import federation_states
    from . import upstream

    prompt = max_age = None
    if request is not None:
        from ..oauth.authorization import fresh_login_required

        prompt = "login" if fresh_login_required(request) else None
        max_age = request.max_age
        login_hint = login_hint or request.login_hint
    started = upstream.start(conn, settings, redirect_uri=callback_uri(settings), login_hint=login_hint,
                             prompt=prompt, max_age=max_age)
    binding = new_secret()
    federation_states.save_state(started.state, connection_id=conn.connection_id, nonce=started.nonce,
                                 code_verifier=started.code_verifier,
                                 request_id=request.request_id if request is not None else None,
                                 link_sub=link_sub, binding_hash=sha256_hex(binding), ttl=STATE_TTL)
    return Started(started.url, binding)


# The decision ---------------------------------------------------------------------------------------

def email_domain(email: str | None) -> str:
    return (email or "").rpartition("@")[2].lower()


def decide(*, identity_sub: str | None, email_sub: str | None, email: str | None, email_verified: bool,
           trusted_domains, link_sub: str | None = None) -> str:
    """What an upstream identity means here (pure; the module docstring's rules):
    "sign_in", "auto_link", "prove", "provision", "unverified" (no JIT without a verified email);
    from the account page: "link", "already_linked", "linked_elsewhere"."""
    if link_sub is not None:
        if identity_sub is None:
            return "link"
        return "already_linked" if identity_sub == link_sub else "linked_elsewhere"
    if identity_sub is not None:
        return "sign_in"
    if not (email and email_verified):
        # Whether or not an account has this address: answering "prove it's yours" only where one
        # exists would tell anyone who can make an upstream assert an address (unverified) which
        # addresses have accounts here. The owner links such a sign-in from the account page.
        return "unverified"
    if email_sub is not None:
        trusted = {domain.lower() for domain in trusted_domains or ()}
        return "auto_link" if email_domain(email) in trusted else "prove"
    return "provision"


def authentication(conn, profile) -> tuple[list[str], bool]:
    """(the session's amr, whether it reaches the mfa level): ["fed"], with "mfa" when the
    connection maps the upstream's acr to the mfa level or higher (its `acr_mapping`; an unmapped
    or unknown acr counts as a password)."""
    from ..oauth import acr

    mapped = (getattr(conn, "acr_mapping", None) or {}).get(profile.acr) if profile.acr else None
    strong = (acr.level(mapped) or 0) >= acr.level(acr.MFA_ACR)
    return ([acr.FED, acr.MFA] if strong else [acr.FED]), strong


# The callback ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    """What the callback did: "session" (`signed_in`), "step" (the second factor is next:
    `step_cookie`), "prove" (the link page is next: `link_cookie`), "linked" (account page: linked,
    or "already_linked")."""

    kind: str
    request: object | None = None
    request_id: str | None = None
    signed_in: object | None = None
    step_cookie: str | None = None
    link_cookie: str | None = None


def consume_state(state_value: str | None, binding: str | None):
    """The state record of this callback, consumed (one conditional DeleteItem); Refusal when there
    is none (replayed, expired, forged) or this browser did not start it."""
    from ..storage import federation_states

    state = federation_states.consume_state(state_value)
    if state is None:
        raise Refusal(messages.FEDERATION_STATE, "state unknown, used or expired")
    if not binding or not binding.isascii() or not hmac.compare_digest(sha256_hex(binding), state.binding_hash):
        raise Refusal(messages.FEDERATION_STATE, "state started in another browser", status=403)
    return state


def finish(settings: Settings, state, params: dict) -> Outcome:
    """After `consume_state`: the upstream's answer checked (upstream.finish), then the rules."""
    from ..storage import federated_identities as identities
    from ..storage.users import get_user, is_valid_email
    from . import upstream

    conn = connection(settings, state.connection_id)
    if conn is None:
        raise Refusal(messages.FEDERATION_UNKNOWN_CONNECTION, "connection gone or disabled")
    result = upstream.finish(conn, settings, params=params, state=state_value(params), nonce=state.nonce,
                             code_verifier=state.code_verifier, redirect_uri=callback_uri(settings))
    profile = result.profile
    if not profile.subject or len(profile.subject) > identities.MAX_SUBJECT_LENGTH:
        raise Refusal(messages.FEDERATION_FAILED, "upstream subject missing or too long")
    email = upstream_email(profile.email)
    email = email if email and is_valid_email(email) else None
    found = identities.read_for_sign_in(conn.connection_id, profile.subject, email, state.request_id)
    request = found.request
    if state.request_id is not None and request is None:
        raise Refusal(messages.EXPIRED_REQUEST, "authorization request gone")
    action = decide(identity_sub=found.identity_sub, email_sub=found.email_sub, email=email,
                    email_verified=bool(profile.email_verified),
                    trusted_domains=getattr(conn, "trusted_email_domains", ()), link_sub=state.link_sub)
    amr, strong = authentication(conn, profile)
    log.info("upstream sign-in", extra={"connection": conn.connection_id, "action": action,
                                        "email_verified": bool(profile.email_verified)})
    at = now()
    if action == "unverified":
        raise Refusal(messages.FEDERATION_UNVERIFIED_EMAIL, "no verified email for provisioning")
    if action == "linked_elsewhere":
        raise Refusal(messages.FEDERATION_LINKED_ELSEWHERE, "identity linked to another user", status=409)
    if action == "already_linked":
        return Outcome("linked")
    if action == "provision":
        return _provision(settings, conn, profile, result, email, amr, strong, request, at)
    sub = {"sign_in": found.identity_sub, "link": state.link_sub}.get(action, found.email_sub)
    user = get_user(sub)
    if user is None or user.disabled or user.deleted_at is not None:
        raise Refusal(messages.FEDERATION_ACCOUNT_UNUSABLE, "user disabled or deleted", status=403)
    if action == "auto_link" and not user.email_verified:
        # Pre-account hijacking (Sudhodanan & Paverd 2022, "classic-federated merge"): an address
        # nobody verified may be someone else's sign-up, whose password they keep. The upstream
        # vouches for the mailbox, not for that password: the owner proves the account instead.
        action = "prove"
    sealed = _sealed_tokens(conn, result, user.pk)
    if action == "prove":
        return _pending_link(conn, profile, user, email, amr, request, sealed, at)
    if action == "sign_in":
        extra = [identities.tokens_item(user.pk, conn.connection_id, profile.subject, sealed)] if sealed else []
        return _sign_in(settings, user, amr=amr, strong=strong, request=request, extra=extra, at=at,
                        connection_id=conn.connection_id)
    if action == "link":  # the account page: the signed-in user links another sign-in; no new session
        from ..storage.transactions import Refused, write

        try:
            write(identities.link_items(user.pk, conn.connection_id, profile.subject, email=email, at=at,
                                        sealed_tokens=sealed))
        except Refused as refused:
            raise _refusal(refused.labels) from None
        announce_link(user, conn)
        return Outcome("linked")
    link = pending_link(conn.connection_id, profile.subject, email=email, sealed_tokens=sealed)
    return _sign_in(settings, user, amr=amr, strong=strong, request=request, extra=[], at=at, link=link,
                    connection_id=conn.connection_id)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def upstream_email(raw: str | None) -> str | None:
    """The upstream's address in our normal form (storage/users.normalise_email), or None when
    normalising would make it another address than the one the upstream verified: str.lower maps
    some non-ASCII letters onto ASCII (KELVIN SIGN U+212A -> "k"), so "\u212aarl@acme.test" would
    match karl@acme.test's account and trusted domains. Only ASCII case may be ignored."""
    from ..storage.users import normalise_email

    if not raw:
        return None
    email = normalise_email(raw)
    return email if email == raw.strip().translate(_ASCII_LOWER) else None


def state_value(params: dict) -> str | None:
    return params.get("state")


def _refusal(labels) -> Refusal:
    """A link or provisioning transaction refused by a condition: which one says why."""
    if "identity" in labels:  # linked by a concurrent callback, maybe to someone else
        return Refusal(messages.FEDERATION_LINKED_ELSEWHERE, "identity linked meanwhile", status=409)
    if "pending_link" in labels:
        return Refusal(messages.FEDERATION_LINK_EXPIRED, "pending link used meanwhile")
    if "user" in labels:
        return Refusal(messages.FEDERATION_ACCOUNT_UNUSABLE, "user disabled or deleted meanwhile", status=403)
    return Refusal(messages.FEDERATION_FAILED, f"refused: {sorted(labels)}", status=409)


def _sealed_tokens(conn, result, sub: str) -> str | None:
    """The upstream's token response sealed for `sub` (secret_box purpose "upstream_tokens"), when
    the connection keeps tokens; else None. One kms:Encrypt."""
    if not getattr(conn, "store_tokens", False) or not result.tokens:
        return None
    from .. import secret_box

    text = json.dumps(result.tokens, separators=(",", ":"))
    if len(text.encode("utf-8")) > MAX_SEALED_TOKENS:
        log.warning("upstream tokens too large to keep", extra={"connection": conn.connection_id})
        return None
    return secret_box.seal(text, purpose="upstream_tokens", subject=sub)


def pending_link(connection_id: str, upstream_sub: str, *, email: str | None, sealed_tokens: str | None) -> dict:
    """An identity to link as part of a sign-in (`_sign_in`'s `link`)."""
    return {"connection_id": connection_id, "upstream_sub": upstream_sub, "email": email,
            "sealed_tokens": sealed_tokens}


def _sign_in(settings: Settings, user, *, amr, strong: bool, request, extra, at: int, connection_id: str,
             take_back=(), link: dict | None = None) -> Outcome:
    """The user signs in: the session (storage/sign_ins.record_sign_in), or, with a second factor
    to ask for, the half-done sign-in /mfa completes (storage/sign_in_steps.start); `extra` items
    (a provisioning, stored tokens, a pending link's use) in the same transaction.

    `link` (`pending_link`): an identity to link to `user`. With the session, in its transaction;
    with a second factor still to come, only in the transaction that completes it
    (oauth/second_factor.complete_sign_in): whoever has just the password (or just an upstream
    account asserting the address) must not attach an upstream account to the user, since a
    connection whose acr mapping reaches mfa would then sign them in without the second factor."""
    from ..oauth.login import marks_request, second_factor_needed
    from ..storage import sign_in_steps
    from ..storage.factors import kinds
    from ..storage.sign_ins import record_sign_in
    from ..storage.transactions import Refused
    from ..tokens.issue import user_attributes

    request_id = request.request_id if request is not None else None
    try:
        if second_factor_needed(settings, user) and not strong:
            cookie = sign_in_steps.start(user, amr=amr, auth_time=at, request_id=request_id, ttl=settings.mfa_step_ttl,
                                         take_back=take_back, window_seconds=settings.login_throttle_window,
                                         extra=extra, pending_link=link, connection_id=connection_id)
            return Outcome("step", request=request, request_id=request_id, step_cookie=cookie)
        if link:
            from ..storage.federated_identities import link_items

            extra = [*extra, *link_items(user.pk, link["connection_id"], link["upstream_sub"], email=link["email"],
                                         at=at, sealed_tokens=link["sealed_tokens"])]
        signed_in = record_sign_in(user, amr=amr, user_claims=user_attributes(user), session_ttl=settings.session_ttl,
                                   device_ttl=settings.known_device_ttl, request_id=request_id,
                                   mark_request=marks_request(request), take_back=take_back,
                                   window_seconds=settings.login_throttle_window, auth_time=at,
                                   factors=kinds(user.factors), extra=extra, connection_id=connection_id)
    except Refused as refused:
        raise _refusal(refused.labels) from None
    if link:
        announce_link_by_id(settings, user, link["connection_id"])
    return Outcome("session", request=request, request_id=request_id, signed_in=signed_in)


def _profile_fields(profile) -> dict:
    """The profile claims a new account takes from the upstream, each only if it passes our own
    rules (accounts/profile.py); one that does not is left out rather than refusing the sign-in."""
    from ..accounts import profile as rules

    fields = {}
    for name in ("name", "given_name", "family_name"):
        try:
            fields[name] = rules.check_name(name, getattr(profile, name, None))
        except rules.InvalidProfile:
            fields[name] = None
    try:
        fields["locale"] = rules.check_locale(getattr(profile, "locale", None))
    except rules.InvalidProfile:
        fields["locale"] = None
    return fields


def _provision(settings: Settings, conn, profile, result, email: str, amr, strong: bool, request, at: int) -> Outcome:
    """Rule 3: a new account (no password) for the upstream's verified email, with its identity,
    signed in, in one transaction."""
    from ..storage import federated_identities as identities

    sub = "u_" + new_secret(16)
    user = identities.new_user(sub=sub, email=email, connection_id=conn.connection_id, upstream_sub=profile.subject,
                               at=at, **_profile_fields(profile))
    items = identities.provision_items(user, conn.connection_id, profile.subject, at=at,
                                       sealed_tokens=_sealed_tokens(conn, result, sub))
    log.info("account provisioned", extra={"connection": conn.connection_id, "sub": sub})
    return _sign_in(settings, user, amr=amr, strong=strong, request=request, extra=items, at=at,
                    connection_id=conn.connection_id)


def _pending_link(conn, profile, user, email: str, amr, request, sealed, at: int) -> Outcome:
    """Rule 2 without trust: the identity waits (15 minutes, this browser only) for proof of the
    local account (chalicelib/federation/linking.py)."""
    from ..storage import federation_states

    cookie = new_secret()
    federation_states.save_pending_link(cookie, connection_id=conn.connection_id, upstream_sub=profile.subject,
                                        sub=user.pk, email=user.email, upstream_email=email, amr=amr, auth_time=at,
                                        request_id=request.request_id if request is not None else None,
                                        sealed_tokens=sealed, ttl=LINK_TTL)
    return Outcome("prove", request=request, request_id=request.request_id if request is not None else None,
                   link_cookie=cookie)


def announce_link(user, conn) -> None:
    """After the commit, best effort: the owner hears of every identity linked to their account
    (automatic or not): an unexpected one is theirs to remove."""
    from ..accounts.account import _best_effort, _mail

    _best_effort("identity_linked email", lambda: _mail(user.email, "identity_linked", user,
                                                        provider=conn.display_name))


def announce_link_by_id(settings: Settings, user, connection_id: str) -> None:
    """announce_link for a connection named by id (from the container's cache); a connection gone
    meanwhile is named by its id."""
    from types import SimpleNamespace

    conn = connection(settings, connection_id)
    announce_link(user, conn if conn is not None else SimpleNamespace(display_name=connection_id))
