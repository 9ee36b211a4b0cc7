"""The authorization endpoint and the hosted pages: sign-in, consent, sign-out, errors.

No CORS anywhere here: these pages are cookie-authenticated and must only ever be used top-level
by a browser on our own origin. Every state-changing form checks a CSRF token bound to the
session cookie and the request's Origin / Sec-Fetch-Site.
"""
from __future__ import annotations

import functools
from urllib.parse import urlencode, urlsplit

from chalice import Blueprint, Response

from .. import pages
from ..config import settings
from ..errors import (
    AccessDenied,
    DocumentError,
    LoginFailed,
    LoginThrottled,
    OAuthError,
    RedirectableError,
    TemporarilyUnavailable,
    UntrustedRequest,
)
from ..log import get_logger, request_id as current_request_id
from ..pages import messages
from ..web import FORM, client_ip, cookie, cookie_values, form_params, query_params, route

bp = Blueprint(__name__)
log = get_logger("idp.pages")

FORM_OR_NONE = [FORM, "application/json"]  # GET carries no body; Chalice then assumes JSON


# Responses ----------------------------------------------------------------------------------------

def _base() -> str:
    """The issuer's path ("" or "/tenant"): links must stay under it, because behind an API Gateway
    base path mapping only URLs below the issuer reach us."""
    return urlsplit(settings().issuer).path.rstrip("/")


def _page_url(page: str, request_id: str) -> str:
    return f"{_base()}{page}?{urlencode({'request_id': request_id})}"


def _page(template: str, status: int = 200, *, form_targets=None, cookies=(), **context) -> Response:
    headers = pages.security_headers(form_targets)
    if cookies:
        headers["Set-Cookie"] = list(cookies)
    return Response(body=pages.render(template, base=_base(), **context), status_code=status, headers=headers)


def error_page(message: str, error: str, status: int = 400, *, description: str = "", detail: str = "",
               cookies=()) -> Response:
    """The error page: the fixed text of `message` (an id in chalicelib/pages/messages.py), the OAuth
    error code, and the request id as a reference for support.

    `description` and `detail` say what went wrong and may quote the request or a client's document:
    they are logged under that same request id, never shown. A page on our domain must not say
    what a stranger chose.
    """
    log.info("error page", extra={"page": message, "error": error, "status": status, "description": description,
                                  "detail": detail})
    return _page("error.html", status, cookies=cookies, message=messages.MESSAGES[message], error=error,
                 reference=current_request_id.get())


def _unavailable_page(exc: TemporarilyUnavailable) -> Response:
    """A dependency fault on a hosted page (chalicelib/web.py calls this): the error page, 503 with
    Retry-After. Nothing single-use was spent, so reloading or going back to the app works."""
    response = error_page(messages.TEMPORARILY_UNAVAILABLE, exc.error, exc.status, description=exc.description,
                          detail=exc.detail)
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


def _page_route(path: str, methods: list[str], **kwargs):
    """A hosted page's route: as web.route, with the HTML page for a 503."""
    return route(bp, path, methods, unavailable_page=_unavailable_page, **kwargs)


def _exception_page(exc: OAuthError) -> Response:
    """The page for an error found before the request can be redirected: what an UntrustedRequest's
    kind calls for, and anything else (a repeated parameter, a body that is not a form) is malformed."""

    message = exc.kind if isinstance(exc, UntrustedRequest) else messages.MALFORMED_REQUEST
    return error_page(message, exc.error, exc.status, description=exc.description, detail=exc.detail)


def _shows_errors(view):
    """A hosted page answers a malformed request with the error page: the JSON error of the API
    endpoints would be shown to the user as text, quoting the request."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        try:
            return view(*args, **kwargs)
        except OAuthError as exc:
            return _exception_page(exc)

    return wrapper


def _redirect(location: str, cookies=()) -> Response:
    headers = {"Location": location, "Cache-Control": "no-store", "Pragma": "no-cache",
               "Referrer-Policy": "no-referrer"}
    if cookies:
        headers["Set-Cookie"] = list(cookies)
    return Response(body="", status_code=302, headers=headers)


def _deliver_error(exc, *, hold: bool, cookies=()) -> Response:
    """Send an authorization error to the client's (validated) redirect URI: at once, or, with
    `hold`, through a notice page on our domain that names the host and waits for a click.

    RFC 9700 §4.11.2: anyone may register (or publish a document for) a client whose redirect URI
    is their own site, then send people to /authorize with a broken request: an immediate error
    redirect would make our domain an open redirector to it. So errors of unverified clients found
    before the user interacted are held; admin-created clients, and errors after the user acted
    (Deny on the consent page), get the immediate redirect of RFC 6749 §4.1.2.1. The page is fixed
    text: nothing the requester chose appears on it but the host (escaped) and the link itself.
    """
    from ..oauth import authorization

    location = authorization.error_location(exc, settings())
    if not hold:
        return _redirect(location, cookies)
    # A link, not a form: CSP form-action does not govern it, and a GET form would drop the
    # query string that carries the error, state and iss.
    return _page("redirect_notice.html", 400, cookies=cookies, location=location, error=exc.oauth_error.error,
                 host=urlsplit(location).netloc)


def _origin(uri: str) -> str:
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else f"{parts.scheme}:"


# Browser helpers ----------------------------------------------------------------------------------

def _session_cookie():
    """(our cookie's value or None, Set-Cookie headers).

    Our cookie's name sent twice means another cookie of that name (a parent domain's, a longer
    path's, or a browser quirk) travels with ours, and the header cannot say which is which.
    Neither is trusted: the request has no session and ours is cleared. Picking one would let
    whoever planted the other sign the browser in as themselves (login CSRF).
    """
    from ..oauth import sessions

    s = settings()
    values = cookie_values(bp.current_request, sessions.cookie_name(s))
    if len(values) > 1:
        return None, [sessions.clear_cookie_header(s)]
    return (values[0] if values else None), []


def _browser_cookie():
    """(cookie value, Set-Cookie headers): an anonymous secret is minted on first visit, and
    whenever the cookie is ambiguous, since CSRF tokens are keyed by it and a planted value is
    known to whoever planted it. The new cookie replaces ours."""
    from ..oauth import sessions

    s = settings()
    value, _ = _session_cookie()
    if value and 20 <= len(value) <= 100:
        return value, []
    value = sessions.new_browser_secret()
    return value, [sessions.cookie_header(s, value)]


def _same_origin_post() -> bool:
    """Fetch Metadata, else Origin: defence in depth next to the CSRF token.

    `Sec-Fetch-Site` comes first: browsers set it and pages cannot forge it. Our pages send
    `Referrer-Policy: no-referrer`, under which browsers post `Origin: null` even from our own
    forms, so Origin only decides for browsers without Fetch Metadata, and there `null` is refused.
    With neither header (not a browser), the CSRF token alone decides.
    """
    headers = bp.current_request.headers
    site = headers.get("sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    origin = headers.get("origin")
    if origin is not None:
        return origin == _origin(settings().issuer)
    return True


def _trusted_post(cookie_value: str | None, purpose: str, form: dict) -> bool:
    """A form post we accept: same-origin, with the CSRF token of this browser's cookie. (A browser
    that arrived without a cookie was just given a fresh one, which no submitted token matches.)"""
    from ..oauth import sessions

    return _same_origin_post() and sessions.csrf_valid(cookie_value, purpose, form.get("csrf_token"))


def _forbidden_post(cookies=()) -> Response:
    return error_page(messages.FORBIDDEN_POST, "access_denied", 403, cookies=cookies,
                      description="cross-site form post or CSRF token not valid for this browser")


def _expired(cookies=()) -> Response:
    return error_page(messages.EXPIRED_REQUEST, "invalid_request", cookies=cookies,
                      description="authorization request unknown, expired or already finished")


def _client_of(pending):
    """The client of a pending request, for display (None if it has gone since)."""
    from ..oauth.clients import find_client

    try:
        return find_client(pending.client_id, settings(), source_ip=client_ip(bp.current_request))
    except DocumentError:
        return None


def _advance(pending, session, *, just_signed_in: bool, stored: bool = True, cookies=(),
             hold_errors: bool = False) -> Response:
    """Redirect to the client, or store the request (if new) and send the browser to a page.
    `hold_errors`: show errors on the notice page rather than redirecting (see _deliver_error)."""
    from ..oauth import authorization

    s = settings()
    try:
        decision = authorization.decide(pending, session, just_signed_in=just_signed_in, settings=s, stored=stored)
    except RedirectableError as exc:
        if stored:
            authorization.finish_request(pending)
        return _deliver_error(exc, hold=hold_errors, cookies=cookies)
    if decision.action == "redirect":
        return _redirect(decision.location, cookies)
    if not stored:
        authorization.store(pending)
    return _redirect(_page_url("/login" if decision.action == "login" else "/consent", pending.request_id), cookies)


# /authorize ---------------------------------------------------------------------------------------

@_page_route("/authorize", ["GET", "POST"], content_types=FORM_OR_NONE)
def authorize():
    from ..oauth import authorization, sessions

    request = bp.current_request
    s = settings()
    try:
        params = query_params(request) if request.method == "GET" else form_params(request)
        client, redirect_uri = authorization.trusted_client_and_redirect(params, s, source_ip=client_ip(request))
    except OAuthError as exc:
        return _exception_page(exc)
    try:
        pending = authorization.validate(params, client, redirect_uri, s)
    except RedirectableError as exc:
        return _deliver_error(exc, hold=client.registered_dynamically)
    cookie_value, cleared = _session_cookie()
    # The user behind the session is checked by the write that issues the code (or before a page).
    session = sessions.load(cookie_value, check_user=False)
    # Errors here (prompt=none's login_required, consent_required) come before any interaction.
    return _advance(pending, session, just_signed_in=False, stored=False, cookies=cleared,
                    hold_errors=client.registered_dynamically)


# Sign-in ------------------------------------------------------------------------------------------

def _login_page(pending, browser_value, cookies, *, status=200, message=None, username=None) -> Response:
    from ..oauth import sessions

    client = _client_of(pending)
    return _page("login.html", status, cookies=cookies, form_targets=[_origin(pending.redirect_uri)],
                 client_name=client.client_name if client else pending.client_id, request_id=pending.request_id,
                 # Whoever registered or published a client chose its name: marked as on the consent page.
                 unverified=client is None or client.registered_dynamically,
                 csrf_token=sessions.csrf_token(browser_value, "login"), message=message,
                 login_hint=username if username is not None else pending.login_hint)


@_page_route("/login", ["GET", "POST"], content_types=FORM_OR_NONE)
@_shows_errors
def login():
    from ..oauth import authorization, login as login_core, sessions

    request = bp.current_request
    s = settings()
    browser_value, cookies = _browser_cookie()
    if request.method == "GET":
        pending = authorization.load_pending(query_params(request).get("request_id"))
        return _login_page(pending, browser_value, cookies) if pending else _expired()

    form = form_params(request)
    if not _trusted_post(browser_value, "login", form):
        return _forbidden_post()
    username = form.get("username", "")
    attempt = login_core.begin(s, username, client_ip(request), form.get("request_id"))
    pending = attempt.request
    if pending is None:
        return _expired()
    try:
        user = login_core.authenticate(s, attempt, form.get("password", ""),
                                       cookie(request, login_core.device_cookie_name(s)))
    except LoginThrottled as exc:
        message = messages.ACCOUNT_UNDER_ATTACK if exc.scope == "account" else messages.TOO_MANY_ATTEMPTS
        response = _login_page(pending, browser_value, cookies, status=429, username=username, message=message)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except LoginFailed:
        return _login_page(pending, browser_value, cookies, status=401, username=username,
                           message=messages.WRONG_CREDENTIALS)
    signed_in = login_core.finish(s, attempt, user)
    # This browser becomes (again) a known device of the user: it may still sign in while someone
    # else's guesses hold the account over its limit (chalicelib/oauth/login.py).
    signed_in_cookies = [sessions.cookie_header(s, signed_in.session_cookie, max_age=s.session_ttl),
                         login_core.device_cookie_header(s, signed_in.device_cookie)]
    if signed_in.request_finished:  # by another tab while the password was checked: signed in all the same
        return _expired(signed_in_cookies)
    return _advance(pending, signed_in.session, just_signed_in=True, cookies=signed_in_cookies)


# Consent ------------------------------------------------------------------------------------------

def _ended(pending, exc) -> Response:
    """A pending request that can no longer go on: finish it and tell the client why."""
    from ..oauth import authorization

    authorization.finish_request(pending)
    return _redirect(authorization.error_location(exc, settings()))


@_page_route("/consent", ["GET", "POST"], content_types=FORM_OR_NONE)
@_shows_errors
def consent():
    from ..oauth import authorization, consent as consent_core, scopes, sessions
    from ..oauth.client_documents import is_document_client_id
    from ..storage.users import get_user

    request = bp.current_request
    s = settings()
    cookie_value, cleared = _session_cookie()
    session = sessions.load(cookie_value)
    if request.method == "GET":
        pending = authorization.load_pending(query_params(request).get("request_id"))
        if pending is None:
            return _expired()
        if not authorization.may_consent(pending, session):
            return _redirect(_page_url("/login", pending.request_id), cleared)
        try:
            targets = authorization.requested_resources(pending, s)
        except RedirectableError as exc:
            return _ended(pending, exc)
        about_you, apis = consent_core.page_sections(list(pending.scopes), targets)
        client = _client_of(pending)
        user = get_user(session.sub)
        return _page("consent.html", form_targets=[_origin(pending.redirect_uri)],
                     client_name=client.client_name if client else pending.client_id,
                     unverified=client is None or client.registered_dynamically,
                     # A metadata-document client is whoever controls this host (the draft's §6).
                     client_host=urlsplit(pending.client_id).hostname if is_document_client_id(pending.client_id)
                     else None,
                     scopes=scopes.describe(about_you),
                     apis=[(name, scopes.describe(granted)) for name, granted in apis],
                     redirect_host=urlsplit(pending.redirect_uri).netloc or pending.redirect_uri,
                     email=user.email if user else session.sub, request_id=pending.request_id,
                     csrf_token=sessions.csrf_token(cookie_value, "consent"))

    form = form_params(request)
    if session is None or not _trusted_post(cookie_value, "consent", form):
        return _forbidden_post(cleared)
    pending = authorization.load_pending(form.get("request_id"))
    if pending is None:
        return _expired()
    if not authorization.may_consent(pending, session):
        return _redirect(_page_url("/login", pending.request_id))
    if form.get("decision") != "allow":
        return _ended(pending, RedirectableError(
            AccessDenied("the user denied the request"), pending.redirect_uri, pending.state))
    try:
        wanted = authorization.consent_wanted(pending, s)
    except RedirectableError as exc:
        return _ended(pending, exc)
    authorization.remember_consent(session.sub, pending.client_id, wanted)
    try:
        location = authorization.issue_code(pending, session, s)
    except RedirectableError as exc:
        return _redirect(authorization.error_location(exc, s))
    return _redirect(location)


# Sign-out -----------------------------------------------------------------------------------------

@_page_route("/logout", ["GET", "POST"], content_types=FORM_OR_NONE)
@_shows_errors
def logout():
    from ..oauth import sessions

    request = bp.current_request
    s = settings()
    cookie_value, cookies = _browser_cookie()
    if request.method == "GET":
        return _page("logout.html", cookies=cookies, signed_out=False,
                     csrf_token=sessions.csrf_token(cookie_value, "logout"))
    form = form_params(request)
    if not _trusted_post(cookie_value, "logout", form):
        return _forbidden_post()
    sessions.end(cookie_value)
    return _page("logout.html", cookies=[sessions.clear_cookie_header(s)], signed_out=True)


@route(bp, "/assets/idp.css", ["GET"])
def stylesheet():
    return Response(body=pages.stylesheet(), status_code=200,
                    headers={"Content-Type": "text/css; charset=utf-8", "Cache-Control": "public, max-age=86400",
                             "X-Content-Type-Options": "nosniff"})
