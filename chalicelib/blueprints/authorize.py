"""The authorization endpoint and its hosted pages: sign-in, consent, sign-out.

What every hosted page shares (rendering, the error page, cookies, the CSRF and Sec-Fetch-Site /
Origin checks on every state-changing form) is in chalicelib/blueprints/hosted.py.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from chalice import Blueprint, Response

from .. import i18n, pages
from ..config import settings
from ..errors import AccessDenied, DocumentError, LoginFailed, LoginThrottled, OAuthError, RedirectableError
from ..log import get_logger
from ..accounts.signup import enabled as signup_enabled
from ..pages import messages
from ..undo import undone_on_failure
from ..web import client_ip, cookie, form_params, query_params, route
from . import hosted
from .hosted import FORM_OR_NONE

bp = Blueprint(__name__)
log = get_logger("idp.pages")

#: The page each authorization.decide action sends the browser to ("verify": REQUIRE_VERIFIED_EMAIL,
#: chalicelib/blueprints/signup.py; "mfa": a step-up to a stronger factor, chalicelib/blueprints/mfa.py;
#: "enroll": MFA required and the user has no second factor yet, the account page's security section).
PAGES = {"login": "/login", "verify": "/check-email", "mfa": "/mfa", "enroll": "/account/security",
         "consent": "/consent"}


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
        return hosted.deliver_error(exc, hold=hold_errors, cookies=cookies)
    if decision.action == "redirect":
        return hosted.redirect(decision.location, cookies)
    if not stored:
        authorization.store(pending)
    return hosted.redirect(hosted.page_url(PAGES[decision.action], pending.request_id), cookies)


# /authorize ---------------------------------------------------------------------------------------

@hosted.page_route(bp, "/authorize", ["GET", "POST"], content_types=FORM_OR_NONE)
def authorize():
    from ..oauth import pushed_authorization

    request = bp.current_request
    try:
        params = query_params(request) if request.method == "GET" else form_params(request)
        # RFC 9126 §4: a request_uri names a pushed request, spent here (oauth/pushed_authorization.py).
        pushed = pushed_authorization.redeem(params) if pushed_authorization.is_pushed(params) else None
    except OAuthError as exc:
        return hosted.exception_page(exc)
    if pushed is None:
        return _authorize(params)
    # A fault from here on (DynamoDB, a client document) puts the request back, so a reload works.
    with undone_on_failure(pushed.release, what="pushed authorization request", refusals=()):
        return _authorize(pushed.params, pushed=True)


def _authorize(params: dict, *, pushed: bool = False) -> Response:
    """The authorization request `params`, from the front channel or (`pushed`) from /par."""
    from ..oauth import authorization, sessions

    request = bp.current_request
    s = settings()
    try:
        # OIDC Core §3.1.2.1: the app's preferred languages for the pages (this request's error pages
        # included), before Accept-Language.
        i18n.prefer(i18n.from_ui_locales(params.get("ui_locales")))
        client, redirect_uri = authorization.trusted_client_and_redirect(params, s, source_ip=client_ip(request))
    except OAuthError as exc:
        return hosted.exception_page(exc)
    try:
        pending = authorization.validate(params, client, redirect_uri, s, pushed=pushed)
    except RedirectableError as exc:
        return hosted.deliver_error(exc, hold=client.registered_dynamically)
    cookie_value, cleared = hosted.session_cookie(bp.current_request)
    # The user behind the session is checked by the write that issues the code (or before a page).
    session = sessions.load(cookie_value, check_user=False)
    upstream = _home_realm(client, params, pending, session)
    if upstream is not None:
        return upstream
    # Errors here (prompt=none's login_required, consent_required) come before any interaction.
    return _advance(pending, session, just_signed_in=False, stored=False, cookies=cleared,
                    hold_errors=client.registered_dynamically)


def _home_realm(client, params, pending, session) -> Response | None:
    """Home-realm discovery at /authorize (issue 15): with no session that could answer the
    request, an `idp_hint` naming a connection allowed for the client, or a `login_hint` whose
    domain such a connection claims, skips our sign-in page and goes to that upstream (the request
    is stored first, as for the sign-in page). None: our own pages decide. Without either hint
    nothing is read."""
    from ..federation import home_realm, sign_in
    from ..oauth import authorization
    from .federation import go_upstream

    hint, login_hint = params.get("idp_hint"), pending.login_hint
    if not hint and not login_hint:
        return None
    if "none" in pending.prompt or (session is not None and authorization.session_satisfies(pending, session)
                                    and not authorization.fresh_login_required(pending)):
        return None
    allowed = home_realm.connections_for(client, sign_in.enabled(settings()))
    conn = (home_realm.by_hint(hint, allowed) if hint else None) or \
        (home_realm.by_email(login_hint, allowed) if login_hint else None)
    if conn is None:
        return None
    authorization.store(pending)
    return go_upstream(pending, conn)


# Sign-in ------------------------------------------------------------------------------------------

#: Notices the sign-in page shows when sent back with ?notice=<name> (the user cancelled at an upstream).
LOGIN_NOTICES = {"upstream_cancelled": messages.FEDERATION_CANCELLED}

#: The CSRF purpose of the sign-in form, and the purpose its passkey challenges are bound to.
LOGIN_PURPOSE = "login"


def _passkey_options(browser_value: str, purpose: str) -> dict | None:
    """Request options for "Sign in with a passkey" (a discoverable credential, user verification
    required), or None when passkeys are off. No I/O: the challenge is stateless."""
    from ..accounts import passkeys

    if settings().mfa_policy == "off":
        return None
    return passkeys.authentication_options(browser_value, purpose=purpose)


def _connections(client) -> list:
    """The upstream sign-ins the sign-in page offers for `client` (federation/home_realm.py: enabled
    and allowed for it), from the container's cache of connections."""
    from ..federation import home_realm, sign_in

    return home_realm.connections_for(client, sign_in.enabled(settings())) if client is not None else []


def _login_page(pending, browser_value, cookies, *, status=200, message=None, username=None) -> Response:
    from ..federation.sign_in import page_sources
    from ..oauth import sessions
    from ..oauth.authorization import own_sign_in_allowed

    client = _client_of(pending)
    connections = _connections(client)
    targets, images = page_sources(connections)
    own = own_sign_in_allowed(pending)
    return hosted.page("login.html", status, cookies=cookies, form_targets=[hosted.origin(pending.redirect_uri), *targets],
                 image_sources=images, connections=connections, password_allowed=own,
                 # Without our own sign-in, the address field stays only for home-realm discovery.
                 home_realm=any(c.domains for c in connections),
                 client_name=client.client_name if client else pending.client_id, request_id=pending.request_id,
                 # Whoever registered or published a client chose its name: marked as on the consent page.
                 unverified=client is None or client.registered_dynamically,
                 csrf_token=sessions.csrf_token(browser_value, "login"), message=message,
                 login_hint=username if username is not None else pending.login_hint,
                 passkey_options=_passkey_options(browser_value, LOGIN_PURPOSE) if own else None,
                 signup_url=hosted.page_url("/signup", pending.request_id) if own and signup_enabled(settings()) else None)


@hosted.page_route(bp, "/login", ["GET", "POST"], content_types=FORM_OR_NONE)
@hosted.shows_errors
def login():
    from ..oauth import authorization, login as login_core, sessions

    request = bp.current_request
    s = settings()
    browser_value, cookies = hosted.browser_cookie(bp.current_request)
    if request.method == "GET":
        query = query_params(request)
        pending = hosted.pending_request(query.get("request_id"))
        if pending is None:
            return hosted.expired()
        # A fixed notice the page may be sent back with (never text from the URL itself).
        return _login_page(pending, browser_value, cookies, message=LOGIN_NOTICES.get(query.get("notice", "")))

    form = form_params(request)
    if not hosted.trusted_post(bp.current_request, browser_value, LOGIN_PURPOSE, form):
        return hosted.forbidden_post()
    if form.get("method") == "passkey":
        return _passkey_login(form, browser_value, cookies)
    username = form.get("username", "")
    upstream = _login_home_realm(username, form.get("request_id"), cookies)
    if upstream is not None:
        return upstream
    attempt = login_core.begin(s, username, client_ip(request), form.get("request_id"))
    pending = attempt.request
    if pending is None:
        return hosted.expired()
    i18n.prefer(pending.ui_locale)
    if not authorization.own_sign_in_allowed(pending):  # the client takes only its connections
        return _login_page(pending, browser_value, cookies, status=403, username=username,
                           message=messages.USE_A_CONNECTION)
    if not form.get("password"):  # the field is optional for home-realm addresses: no guess to count
        return _login_page(pending, browser_value, cookies, status=400, username=username,
                           message=messages.ENTER_PASSWORD)
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
    if isinstance(signed_in, login_core.SecondStep):  # the user has a second factor: /mfa asks for it
        return hosted.redirect(f"{hosted.base()}/mfa", [login_core.step_cookie_header(s, signed_in.cookie)])
    # This browser becomes (again) a known device of the user: it may still sign in while someone
    # else's guesses hold the account over its limit (chalicelib/oauth/login.py).
    signed_in_cookies = [sessions.cookie_header(s, signed_in.session_cookie, max_age=s.session_ttl),
                         login_core.device_cookie_header(s, signed_in.device_cookie)]
    if signed_in.request_finished:  # by another tab while the password was checked: signed in all the same
        return hosted.expired(signed_in_cookies)
    return _advance(pending, signed_in.session, just_signed_in=True, cookies=signed_in_cookies)


def _login_home_realm(username: str, request_id: str | None, cookies) -> Response | None:
    """Home-realm discovery on the sign-in form (issue 15): an address whose domain a connection
    allowed for the client claims goes straight to that upstream with it as login_hint; no
    password is checked and nothing is counted. None for any other address, decided from the
    container's cached connections without a read."""
    from ..federation import home_realm, sign_in
    from .federation import go_upstream

    conn = home_realm.by_email(username, sign_in.enabled(settings()))
    if conn is None:
        return None
    pending = hosted.pending_request(request_id)
    if pending is None:
        return hosted.expired()
    client = _client_of(pending)
    if client is None or conn not in home_realm.connections_for(client, [conn]):
        return None
    return go_upstream(pending, conn, cookies, login_hint=username.strip())


def _passkey_login(form, browser_value, cookies) -> Response:
    """A passkey alone (chalicelib/oauth/passkey_login.py): one read, one transaction, then on like
    a password sign-in. Every refusal gets one message: which check failed is for the log."""
    from ..accounts.passkeys import PasskeyRefused
    from ..oauth import authorization, login as login_core, passkey_login, sessions

    s = settings()
    credential = form.get("credential", "")
    found = passkey_login.read(credential, form.get("request_id"), with_request=True)
    pending = found.request
    if pending is None:
        return hosted.expired()
    i18n.prefer(pending.ui_locale)
    if not authorization.own_sign_in_allowed(pending):  # the client takes only its connections
        return _login_page(pending, browser_value, cookies, status=403, message=messages.USE_A_CONNECTION)
    try:
        signed_in = passkey_login.finish(s, browser_value, credential, found, purpose=LOGIN_PURPOSE)
    except PasskeyRefused as exc:
        log.info("passkey sign-in refused", extra={"reason": exc.reason})
        return _login_page(pending, browser_value, cookies, status=401, message=messages.PASSKEY_SIGN_IN_FAILED)
    signed_in_cookies = [sessions.cookie_header(s, signed_in.session_cookie, max_age=s.session_ttl),
                         login_core.device_cookie_header(s, signed_in.device_cookie)]
    if signed_in.request_finished:
        return hosted.expired(signed_in_cookies)
    return _advance(pending, signed_in.session, just_signed_in=True, cookies=signed_in_cookies)


# Consent ------------------------------------------------------------------------------------------

def _ended(pending, exc) -> Response:
    """A pending request that can no longer go on: finish it and tell the client why."""
    from ..oauth import authorization

    authorization.finish_request(pending)
    return hosted.redirect(authorization.error_location(exc, settings()))


def _consent_gate(pending, session, cookies=()) -> Response | None:
    """The page to go to first when the session may not approve the request yet: a sign-in
    (max_age, prompt=login), a second factor or enrolment (acr_values, an essential acr, MFA
    policy); an essential acr that cannot be met ends the request. None: it may."""
    from ..oauth import authorization

    try:
        action = authorization.consent_gate(pending, session, settings())
    except RedirectableError as exc:
        return _ended(pending, exc)
    return None if action is None else hosted.redirect(hosted.page_url(PAGES[action], pending.request_id), cookies)


@hosted.page_route(bp, "/consent", ["GET", "POST"], content_types=FORM_OR_NONE)
@hosted.shows_errors
def consent():
    from ..oauth import authorization, consent as consent_core, scopes, sessions
    from ..oauth.client_documents import is_document_client_id
    from ..storage.users import get_user

    request = bp.current_request
    s = settings()
    cookie_value, cleared = hosted.session_cookie(bp.current_request)
    session = sessions.load(cookie_value)
    if request.method == "GET":
        pending = hosted.pending_request(query_params(request).get("request_id"))
        if pending is None:
            return hosted.expired()
        if not authorization.may_consent(pending, session):
            return hosted.redirect(hosted.page_url("/login", pending.request_id), cleared)
        if s.require_verified_email and authorization.email_unverified(session):
            return hosted.redirect(hosted.page_url(PAGES["verify"], pending.request_id), cleared)
        gate = _consent_gate(pending, session, cleared)
        if gate is not None:
            return gate
        try:
            targets = authorization.requested_resources(pending, s)
        except RedirectableError as exc:
            return _ended(pending, exc)
        about_you, apis = consent_core.page_sections(list(pending.scopes), targets)
        client = _client_of(pending)
        user = get_user(session.sub)
        return hosted.page("consent.html", form_targets=[hosted.origin(pending.redirect_uri)],
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
    if session is None or not hosted.trusted_post(bp.current_request, cookie_value, "consent", form):
        return hosted.forbidden_post(cleared)
    pending = hosted.pending_request(form.get("request_id"))
    if pending is None:
        return hosted.expired()
    gate = _consent_gate(pending, session)
    if gate is not None:
        return gate
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
        return hosted.redirect(authorization.error_location(exc, s))
    return hosted.redirect(location)


# Sign-out -----------------------------------------------------------------------------------------

@hosted.page_route(bp, "/logout", ["GET", "POST"], content_types=FORM_OR_NONE)
@hosted.shows_errors
def logout():
    """The sign-out page, and the end-session endpoint of OpenID Connect RP-Initiated Logout 1.0
    (GET or POST, chalicelib/oauth/rp_initiated_logout.py says what is checked). Our confirmation
    form posts back here with its CSRF token and the app's checked parameters, which are checked
    again. Signing out only enqueues the back-channel notifications (oauth/sessions.end)."""
    from ..oauth import rp_initiated_logout as rp_logout, sessions

    request = bp.current_request
    s = settings()
    cookie_value, cookies = hosted.browser_cookie(bp.current_request)
    params = query_params(request) if request.method == "GET" else form_params(request)
    # OIDC RP-Initiated Logout §2: the app's preferred languages for the pages, before Accept-Language.
    i18n.prefer(i18n.from_ui_locales(params.get("ui_locales")))
    confirmed = request.method == "POST" and "csrf_token" in params
    if confirmed and not hosted.trusted_post(bp.current_request, cookie_value, "logout", params):
        return hosted.forbidden_post()
    end = rp_logout.parse(params, s, source_ip=client_ip(request)) \
        if rp_logout.is_end_session_request(params) else rp_logout.EndSessionRequest()
    if not confirmed:
        # Live or already ended: a retry after a fault mid-sign-out must finish it (sessions.record).
        session = sessions.record(cookie_value) if end.hint_sid else None
        if not end.current_session(session):
            return _logout_page(end, cookie_value, cookies)
    sessions.end(cookie_value)
    cleared = [sessions.clear_cookie_header(s)]
    if end.location:
        return hosted.redirect(end.location, cleared)
    return hosted.page("logout.html", cookies=cleared, signed_out=True)


def _logout_page(end, cookie_value: str, cookies) -> Response:
    """"Sign out?" with the app's checked parameters carried along, naming where the browser goes
    afterwards (a confirmation by a signed-in user; a browser without a session gets the same
    question, so that nothing leaves for the app's address without a click)."""
    from ..oauth import sessions

    client = end.client
    return hosted.page("logout.html", cookies=cookies, signed_out=False,
                       form_targets=[hosted.origin(end.location)] if end.location else None,
                       csrf_token=sessions.csrf_token(cookie_value, "logout"), carried=end.carried,
                       return_host=end.return_host,
                       client_name=client.client_name if client is not None else None,
                       unverified=client is not None and client.registered_dynamically)


@route(bp, "/assets/idp.css", ["GET"])
def stylesheet():
    return Response(body=pages.stylesheet(), status_code=200,
                    headers={"Content-Type": "text/css; charset=utf-8", "Cache-Control": "public, max-age=86400",
                             "X-Content-Type-Options": "nosniff"})


@route(bp, "/assets/passkeys.js", ["GET"])
def passkeys_script():
    """The passkey ceremony's script (static, the same for everyone: cacheable like the stylesheet)."""
    return Response(body=pages.script("passkeys.js"), status_code=200,
                    headers={"Content-Type": "text/javascript; charset=utf-8",
                             "Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"})
