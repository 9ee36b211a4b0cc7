"""Signing in through an upstream identity provider (issue 15): the buttons' start, the
callback, the page that links an identity after proof, and the account page's linked sign-ins.
What it all means is decided in chalicelib/federation/sign_in.py and linking.py.

- POST /federation/start: a sign-in page button (CSRF, the pending request, the connection): the
  state record, the binding cookie, then 303 to the upstream.
- GET /federation/callback: the upstream's answer (query response mode). POST (response_mode
  form_post, Apple) arrives cross-site, where SameSite=Lax cookies are not sent, so it is answered
  with a 303 to the GET with the same parameters, which then carries the binding cookie.
  Upstream errors are shown on our error page in our own words, never redirected to the app;
  the user cancelling at the upstream (access_denied) returns to our sign-in page.
- GET|POST /federation/link: prove the local account (password, or an emailed link / its code).
- POST /account/identities/link and /account/identities/remove: the account page's section.
"""
from __future__ import annotations

from urllib.parse import urlencode

from chalice import Blueprint, Response

from .. import i18n
from ..config import settings
from ..errors import LoginFailed, LoginThrottled, TemporarilyUnavailable, UpstreamFailed, UpstreamRefused
from ..log import get_logger
from ..pages import messages
from ..web import FORM, client_ip, cookie, form_params, query_params
from . import hosted
from .hosted import FORM_OR_NONE

bp = Blueprint(__name__)
log = get_logger("idp.pages")

LINK_PURPOSE = "federation-link"
#: What the form_post callback passes on to the GET: the parameters of an authorization response
#: (RFC 6749 §4.1.2, §4.1.2.1; RFC 9207 `iss`) and Apple's `user` (the name, sent once).
CALLBACK_PARAMS = ("code", "state", "iss", "error", "error_description", "error_uri", "user")


def _see_other(location: str, cookies=()) -> Response:
    response = hosted.redirect(location, cookies)
    response.status_code = 303  # RFC 9110 §15.4.4: the next request is a GET, whatever this one was
    return response


def _refused(exc, cookies=()) -> Response:
    return hosted.error_page(exc.message, "access_denied", exc.status, description=exc.reason, cookies=cookies)


# Start ---------------------------------------------------------------------------------------------

def _allowed(pending, connection_id: str | None):
    """The connection, if enabled and allowed for the pending request's client (its
    `connections`: federation/home_realm.connections_for), else None."""
    from ..federation import home_realm, sign_in
    from .authorize import _client_of

    client = _client_of(pending)
    if client is None:
        return None
    return next((c for c in home_realm.connections_for(client, sign_in.enabled(settings()))
                 if c.connection_id == connection_id), None)


def go_upstream(pending, conn, cookies=(), *, login_hint: str | None = None) -> Response:
    """Send the browser to the upstream for `pending` (the sign-in page's button, and home-realm
    discovery): the state record, the binding cookie, 303."""
    from ..federation import sign_in

    s = settings()
    started = sign_in.begin(s, conn, request=pending, login_hint=login_hint)
    return _see_other(started.location, [*cookies, sign_in.binding_cookie_header(s, hosted.base(), started.binding)])


@hosted.page_route(bp, "/federation/start", ["POST"], content_types=[FORM])
@hosted.shows_errors
def start():
    from .authorize import LOGIN_PURPOSE

    request = bp.current_request
    browser_value, cookies = hosted.browser_cookie(request)
    form = form_params(request)
    if not hosted.trusted_post(request, browser_value, LOGIN_PURPOSE, form):
        return hosted.forbidden_post()
    pending = hosted.pending_request(form.get("request_id"))
    if pending is None:
        return hosted.expired()
    conn = _allowed(pending, form.get("connection"))
    if conn is None:
        return hosted.error_page(messages.FEDERATION_UNKNOWN_CONNECTION, "invalid_request",
                                 description="connection unknown, disabled or not allowed for the client")
    return go_upstream(pending, conn, cookies)


# Callback ------------------------------------------------------------------------------------------

@hosted.page_route(bp, "/federation/callback", ["GET", "POST"], content_types=FORM_OR_NONE)
@hosted.shows_errors
def callback():
    from ..federation import sign_in

    request = bp.current_request
    s = settings()
    if request.method == "POST":
        form = form_params(request)
        passed = {name: form[name] for name in CALLBACK_PARAMS if name in form}
        return _see_other(f"{hosted.base()}/federation/callback?{urlencode(passed)}")
    params = query_params(request)
    # The binding is spent with the state, whatever happens next.
    cleared = [sign_in.binding_cookie_header(s, hosted.base(), "", max_age=0)]
    if not params.get("state"):
        return hosted.error_page(messages.FEDERATION_STATE, "invalid_request", cookies=cleared,
                                 description="callback without state")
    try:
        state = sign_in.consume_state(params.get("state"), cookie(request, sign_in.binding_cookie_name(s)))
    except sign_in.Refusal as exc:
        return _refused(exc, cleared)
    if state.link_sub is not None and not _still_signed_in_as(state.link_sub):
        # Started on the account page: the user who asked must still be the one signed in here (a
        # shared browser may have changed hands), or another person's identity lands on their account.
        return _refused(sign_in.Refusal(messages.FEDERATION_STATE, "account link: another user signed in now"),
                        cleared)
    try:
        outcome = sign_in.finish(s, state, params)
    except sign_in.Refusal as exc:
        return _refused(exc, cleared)
    except UpstreamFailed as exc:
        if isinstance(exc, TemporarilyUnavailable):
            raise
        return _upstream_failed(exc, state, cleared)
    return _after(outcome, cleared)


def _still_signed_in_as(sub: str) -> bool:
    """Whether this browser's session (one GetItem, its user checked) is `sub`'s."""
    from ..oauth import sessions

    cookie_value, _ = hosted.session_cookie(bp.current_request)
    session = sessions.load(cookie_value)
    return session is not None and session.sub == sub


def _upstream_failed(exc: UpstreamFailed, state, cookies) -> Response:
    """The upstream's refusal on our page: the user's cancelling (access_denied) back to the
    sign-in page of the request, anything else the error page. The upstream's words are logged
    (shortened), never shown."""

    upstream_error = exc.upstream_error if isinstance(exc, UpstreamRefused) else None
    log.info("upstream sign-in failed", extra={"reason": exc.reason, "upstream_error": (upstream_error or "")[:100],
                                               "detail": str(getattr(exc, "detail", ""))[:200]})
    if upstream_error == "access_denied" and state.request_id:
        # Back to the request's sign-in page at its own URL (a reload there works), with the notice.
        return hosted.redirect(hosted.page_url("/login", state.request_id) + "&notice=upstream_cancelled", cookies)
    if state.link_sub and upstream_error == "access_denied":
        return hosted.redirect(f"{hosted.base()}/account", cookies)
    # upstream.py's fixed words for what went wrong (refused there, or an answer we could not accept).
    page_message = exc.kind if exc.kind in messages.MESSAGES else messages.FEDERATION_FAILED
    return hosted.error_page(page_message, "access_denied", 400, cookies=cookies,
                             description=f"upstream sign-in failed: {exc.reason}")


def _after(outcome, cookies) -> Response:
    """Where a finished callback or link proof sends the browser."""
    from ..federation import sign_in
    from ..oauth import login, sessions
    from .authorize import _advance

    s = settings()
    if outcome.kind == "linked":
        return hosted.redirect(f"{hosted.base()}/account?done=identity_linked", cookies)
    if outcome.kind == "prove":
        return hosted.redirect(f"{hosted.base()}/federation/link", [
            *cookies, sign_in.link_cookie_header(s, hosted.base(), outcome.link_cookie)])
    if outcome.kind == "step":
        return hosted.redirect(f"{hosted.base()}/mfa", [*cookies, login.step_cookie_header(s, outcome.step_cookie)])
    signed_in = outcome.signed_in
    signed_in_cookies = [*cookies, sessions.cookie_header(s, signed_in.session_cookie, max_age=s.session_ttl),
                         login.device_cookie_header(s, signed_in.device_cookie)]
    if outcome.request is None:
        return hosted.redirect(f"{hosted.base()}/account", signed_in_cookies)
    if signed_in.request_finished:
        return hosted.expired(signed_in_cookies)
    i18n.prefer(outcome.request.ui_locale)
    return _advance(outcome.request, signed_in.session, just_signed_in=True, cookies=signed_in_cookies)


# Linking after proof -------------------------------------------------------------------------------

def _link_page(link, browser_value, cookies=(), *, status=200, message=None, notice=None, code="") -> Response:
    from ..federation import sign_in
    from ..oauth import sessions
    from ..storage.users import get_user

    conn = sign_in.connection(settings(), link.connection_id)
    user = get_user(link.sub)
    # The proof may end in a redirect straight to the app (consent remembered): Chromium checks it
    # against form-action, so the app's origin is named (one read, on this rare page only).
    pending = hosted.pending_request(link.request_id) if link.request_id else None
    return hosted.page("federation_link.html", status, cookies=cookies, message=message, notice=notice,
                       form_targets=[hosted.origin(pending.redirect_uri)] if pending is not None else None,
                       provider=conn.display_name if conn else link.connection_id, email=link.email,
                       has_password=bool(user is not None and user.password_hash), code=code,
                       csrf_token=sessions.csrf_token(browser_value, LINK_PURPOSE))


@hosted.page_route(bp, "/federation/link", ["GET", "POST"], content_types=FORM_OR_NONE)
@hosted.shows_errors
def link():
    from ..federation import linking, sign_in
    from ..storage import federation_states

    request = bp.current_request
    s = settings()
    browser_value, cookies = hosted.browser_cookie(request)
    pending_link = federation_states.read_pending_link(cookie(request, sign_in.link_cookie_name(s)))
    if request.method == "GET":
        token = query_params(request).get("token")
        if token is not None and (pending_link is None or not linking.link_for(token, pending_link)):
            # The emailed link opened where no upstream sign-in waits for it: it does nothing.
            return hosted.error_page(messages.FEDERATION_LINK_OTHER_BROWSER, "access_denied", 403, cookies=cookies,
                                     description="link opened without its pending link")
        if pending_link is None:
            return hosted.error_page(messages.FEDERATION_LINK_EXPIRED, "invalid_request", cookies=cookies,
                                     description="no pending link in this browser")
        return _link_page(pending_link, browser_value, cookies, code=token or "")
    form = form_params(request)
    if not hosted.trusted_post(request, browser_value, LINK_PURPOSE, form):
        return hosted.forbidden_post()
    if pending_link is None:
        return hosted.error_page(messages.FEDERATION_LINK_EXPIRED, "invalid_request",
                                 description="no pending link in this browser")
    done = [sign_in.link_cookie_header(s, hosted.base(), "", max_age=0)]
    action = form.get("action")
    try:
        if action == "password":
            outcome = linking.with_password(s, pending_link, form.get("password", ""), ip=client_ip(request),
                                            device=cookie(request, _device_cookie_name()))
        elif action == "email":
            retry_after = linking.send_link(s, pending_link, ip=client_ip(request), base_url=s.issuer)
            if retry_after is not None:
                response = _link_page(pending_link, browser_value, status=429, message=messages.TOO_MANY_REQUESTS)
                response.headers["Retry-After"] = str(retry_after)
                return response
            return _link_page(pending_link, browser_value, notice=messages.LINK_SENT)
        elif action == "code":
            outcome = linking.with_token(s, pending_link, form.get("code", ""))
        else:
            return _link_page(pending_link, browser_value, status=400, message=messages.LINK_CODE_WRONG)
    except LoginThrottled as exc:
        response = _link_page(pending_link, browser_value, status=429, message=messages.TOO_MANY_ATTEMPTS)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except LoginFailed:
        return _link_page(pending_link, browser_value, status=401, message=messages.VERIFY_WRONG_PASSWORD)
    except sign_in.Refusal as exc:
        if exc.message not in messages.MESSAGES:  # an alert of this page (a wrong code)
            return _link_page(pending_link, browser_value, status=exc.status, message=exc.message)
        return _refused(exc, done)
    return _after(outcome, done)


def _device_cookie_name() -> str:
    from ..oauth import login

    return login.device_cookie_name(settings())


# The account page's linked sign-ins ------------------------------------------------------------------

@hosted.page_route(bp, "/account/identities/link", ["POST"], content_types=[FORM])
@hosted.shows_errors
def link_another():
    """Start an upstream sign-in that links its identity to the signed-in user. A linked identity
    is a way in that outlives the session (a password change ends sessions, not links) and may
    skip the second factor (a connection's acr_mapping), so, as adding a passkey does, it needs the
    current password when the user has one: a stolen or unattended session cannot add one."""
    from ..accounts.account import check_password
    from ..federation import sign_in
    from .account import _action, _device

    request = bp.current_request

    def act(session, user, form):
        s = settings()
        conn = sign_in.connection(s, form.get("connection"))
        if conn is None:
            return hosted.error_page(messages.FEDERATION_UNKNOWN_CONNECTION, "invalid_request",
                                     description="connection unknown or disabled")
        if user.password_hash:
            check_password(s, user, form.get("current_password", ""), ip=client_ip(request),
                           device=_device(request))
        started = sign_in.begin(s, conn, link_sub=user.pk)
        return _see_other(started.location, [sign_in.binding_cookie_header(s, hosted.base(), started.binding)])

    return _action("identities", act)


@hosted.page_route(bp, "/account/identities/remove", ["POST"], content_types=[FORM])
@hosted.shows_errors
def remove_identity():
    from ..accounts import identities
    from .account import _action, _device, _done

    request = bp.current_request

    def act(session, user, form):
        identities.remove(settings(), user, form.get("identity", ""), form.get("current_password", ""),
                          ip=client_ip(request), device=_device(request))
        return _done("identity_removed")

    return _action("identities", act)
