"""Sign-up and email verification pages (issue 12 §1-§2).

- GET/POST /signup: the form, and the "check your email" page it always answers
  (chalicelib/accounts/signup.py says why every case looks the same);
- GET /check-email: the same page for a signed-in user whose address is not verified yet, when
  REQUIRE_VERIFIED_EMAIL holds their authorization request (authorization.decide's "verify");
- GET /verify-email?token=...: a page with a Confirm button; it never consumes the link (mail
  scanners and previewers fetch links);
- POST /verify-email: consumes the link, or the code typed on the "check your email" page;
- POST /verify-email/resend: a new link (accounts/limits.py "resend");
- POST /verify-email/continue: the tab that waited goes on once the address was verified elsewhere.

Every form carries the CSRF token of this browser's cookie and passes the Sec-Fetch-Site / Origin
check (blueprints/hosted.py), like the sign-in form.
"""
from __future__ import annotations

from chalice import Blueprint

from ..config import settings
from ..errors import SignupLimited, SignupRefused
from ..pages import messages
from ..web import client_ip, form_params, query_params
from . import hosted
from .hosted import FORM_OR_NONE

bp = Blueprint(__name__)

CSRF_SIGNUP = "signup"
CSRF_VERIFY = "verify-email"


def _verify_url() -> str:
    return f"{settings().issuer}/verify-email"


def _targets(pending) -> list[str]:
    """form-action: a form here may end in the redirect to the client (its code)."""
    return [hosted.origin(pending.redirect_uri)] if pending else []


def _signup_page(pending, browser_value, cookies=(), *, status=200, message=None, email="", name=""):
    from ..oauth import sessions
    from ..password_policy import MIN_LENGTH

    return hosted.page("signup.html", status, cookies=cookies, request_id=pending.request_id,
                       csrf_token=sessions.csrf_token(browser_value, CSRF_SIGNUP), message=message, email=email,
                       name=name, min_length=MIN_LENGTH, login_url=hosted.page_url("/login", pending.request_id))


def check_email_page(pending, browser_value, email: str, cookies=(), *, status=200, message=None,
                     request_id: str | None = None):
    """The "check your email" page: the code field, Resend and Continue. Everything on it is what
    the browser sent or its own tokens, never whether an account exists."""
    from ..oauth import sessions

    return hosted.page("check_email.html", status, cookies=cookies, form_targets=_targets(pending), email=email,
                       request_id=pending.request_id if pending else (request_id or ""),
                       csrf_token=sessions.csrf_token(browser_value, CSRF_VERIFY), message=message)


def _closed():
    return hosted.error_page(messages.SIGNUP_CLOSED, "access_denied", 403,
                             description=f"SIGNUP_MODE={settings().signup_mode}")


def _limited(pending, browser_value, email, retry_after, cookies=()):
    response = check_email_page(pending, browser_value, email, cookies, status=429, message=messages.TOO_MANY_REQUESTS)
    response.headers["Retry-After"] = str(retry_after)
    return response


# /signup ------------------------------------------------------------------------------------------

@hosted.page_route(bp, "/signup", ["GET", "POST"], content_types=FORM_OR_NONE)
@hosted.shows_errors
def signup():
    from ..accounts import signup as rules
    from ..oauth import authorization, login as login_core, sessions

    request = bp.current_request
    s = settings()
    browser_value, cookies = hosted.browser_cookie(request)
    if request.method == "GET":
        if not rules.enabled(s):
            return _closed()
        pending = authorization.load_pending(query_params(request).get("request_id"))
        return _signup_page(pending, browser_value, cookies) if pending else hosted.expired(cookies)

    if not rules.enabled(s):
        return _closed()
    form = form_params(request)
    if not hosted.trusted_post(request, browser_value, CSRF_SIGNUP, form):
        return hosted.forbidden_post()
    pending = authorization.load_pending(form.get("request_id"))
    if pending is None:
        return hosted.expired()
    try:
        checked = rules.check_form(s, form.get("email", ""), form.get("password", ""), form.get("name"))
    except SignupRefused as exc:
        return _signup_page(pending, browser_value, status=400, message=exc.message, email=form.get("email", ""),
                            name=form.get("name", ""))
    # Every case sets fresh cookie values that no record has (a session and a known device are
    # only made when the address is confirmed in this browser): the follow-up requests of a new
    # and of an existing account's address are alike. The link is bound to the new cookie.
    browser_secret, device_secret = sessions.new_browser_secret(), sessions.new_browser_secret()
    try:
        rules.sign_up(s, checked, ip=client_ip(request), request_id=pending.request_id, verify_url=_verify_url(),
                      browser=browser_secret)
    except SignupLimited as exc:
        return _limited(pending, browser_value, checked.email, exc.retry_after)
    new_cookies = [sessions.cookie_header(s, browser_secret, max_age=s.session_ttl),
                   login_core.device_cookie_header(s, device_secret)]
    return check_email_page(pending, browser_secret, checked.email, new_cookies)


# The "check your email" page ----------------------------------------------------------------------

@hosted.page_route(bp, "/check-email", ["GET"])
@hosted.shows_errors
def check_email():
    from ..oauth import authorization, sessions

    request = bp.current_request
    pending = authorization.load_pending(query_params(request).get("request_id"))
    if pending is None:
        return hosted.expired()
    cookie_value, cleared = hosted.session_cookie(request)
    session = sessions.load(cookie_value, check_user=False)
    if session is None:
        return hosted.redirect(hosted.page_url("/login", pending.request_id), cleared)
    return check_email_page(pending, cookie_value, (session.user_claims or {}).get("email", ""))


@hosted.page_route(bp, "/verify-email/resend", ["POST"], content_types=FORM_OR_NONE)
@hosted.shows_errors
def resend():
    from ..accounts import limits
    from ..accounts.verification import send_verification
    from ..oauth import authorization
    from ..storage.users import find_user_by_email, normalise_email

    request = bp.current_request
    browser_value, _ = hosted.browser_cookie(request)
    form = form_params(request)
    if not hosted.trusted_post(request, browser_value, CSRF_VERIFY, form):
        return hosted.forbidden_post()
    email = normalise_email(form.get("email", ""))
    pending = authorization.load_pending(form.get("request_id"))
    retry_after = limits.allow("resend", email=email, ip=client_ip(request))
    if retry_after is not None:
        return _limited(pending, browser_value, email, retry_after)
    user = find_user_by_email(email)
    # Only an address still waiting for verification gets mail; the page is the same either way.
    if user is not None and not user.email_verified and not user.disabled:
        send_verification(settings(), user, browser=browser_value,
                          request_id=pending.request_id if pending else None, verify_url=_verify_url())
    return check_email_page(pending, browser_value, email, message=messages.EMAIL_RESENT)


@hosted.page_route(bp, "/verify-email/continue", ["POST"], content_types=FORM_OR_NONE)
@hosted.shows_errors
def continue_request():
    from ..accounts.verification import refresh_session_claims
    from ..oauth import authorization, sessions
    from ..storage.users import get_user
    from .authorize import _advance

    request = bp.current_request
    cookie_value, cleared = hosted.session_cookie(request)
    form = form_params(request)
    if not hosted.trusted_post(request, cookie_value, CSRF_VERIFY, form):
        return hosted.forbidden_post(cleared)
    pending = authorization.load_pending(form.get("request_id"))
    if pending is None:
        return hosted.expired()
    session = sessions.load(cookie_value)
    if session is None:
        return hosted.redirect(hosted.page_url("/login", pending.request_id), cleared)
    user = get_user(session.sub)
    if settings().require_verified_email and not user.email_verified:
        return check_email_page(pending, cookie_value, user.email, message=messages.NOT_VERIFIED_YET)
    return _advance(pending, refresh_session_claims(session, user), just_signed_in=False)


# /verify-email ------------------------------------------------------------------------------------

_REFUSALS = {"used": messages.VERIFY_LINK_USED, "expired": messages.VERIFY_LINK_EXPIRED}


def _confirm_page(token, link, browser_value, cookies=(), *, status=200, message=None):
    """The page a verification link opens: a Confirm button, and in a browser other than the one
    that signed up also the account's password (accounts/verification.py says why)."""
    from ..accounts.verification import same_browser
    from ..oauth import sessions

    return hosted.page("verify_email.html", status, cookies=cookies, token=token, email=link.email,
                       password_required=not same_browser(link, browser_value), message=message,
                       csrf_token=sessions.csrf_token(browser_value, CSRF_VERIFY))


def _refused_page(refused, cookies=()):
    return hosted.error_page(_REFUSALS.get(refused.reason, messages.LINK_INVALID), "invalid_request", 400,
                             cookies=cookies, description=f"verification link {refused.reason}")


@hosted.page_route(bp, "/verify-email", ["GET", "POST"], content_types=FORM_OR_NONE)
@hosted.shows_errors
def verify_email():
    from ..accounts import verification
    from ..oauth import authorization
    from ..storage import links

    request = bp.current_request
    browser_value, cookies = hosted.browser_cookie(request)
    if request.method == "GET":
        token = links.normalise(query_params(request).get("token", ""))
        link = verification.peek(token)
        if isinstance(link, links.Refused):
            return _refused_page(link, cookies)
        return _confirm_page(token, link, browser_value, cookies)

    form = form_params(request)
    if not hosted.trusted_post(request, browser_value, CSRF_VERIFY, form):
        return hosted.forbidden_post()
    typed = "code" in form  # from the "check your email" page, rather than the link's page
    token = links.normalise((form.get("code") if typed else form.get("token")) or "")

    def code_refused():
        pending = authorization.load_pending(form.get("request_id"))
        return check_email_page(pending, browser_value, form.get("email", ""), status=400,
                                message=messages.CODE_NOT_VALID, request_id=form.get("request_id"))

    link = verification.peek(token)
    if isinstance(link, links.Refused):
        return code_refused() if typed else _refused_page(link)
    # Link or typed code alike: outside the browser the link is bound to, only the account's
    # password confirms (accounts/verification.py: pre-account hijacking).
    if not verification.same_browser(link, browser_value):
        if typed and "password" not in form:
            return _confirm_page(token, link, browser_value)
        confirms = verification.password_confirms(token, link, form.get("password") or "")
        if not confirms:
            message = messages.VERIFY_WRONG_PASSWORD if confirms is False else messages.TOO_MANY_ATTEMPTS
            return _confirm_page(token, link, browser_value, status=401 if confirms is False else 429,
                                 message=message)
    outcome = verification.confirm(token)
    if isinstance(outcome, links.Refused):
        return code_refused() if typed else _refused_page(outcome)
    from ..undo import undone_on_failure

    # A fault while going on (the session's claims, the request) must not leave the link spent: the
    # user's retry of this POST would be told it was already used.
    with undone_on_failure(lambda: verification.put_back(outcome), what="verification link", refusals=()):
        return _after_verification(outcome, browser_value)


def _after_verification(confirmed, cookie_value):
    """In the browser that asked for the link, with the request still pending: sign in (if this
    browser is not signed in as the user already) and go on with the request. Anywhere else:
    "you can close this tab" (there, the first tab's Continue leads to the sign-in page).

    Signing in needs no password here: this browser typed it at sign-up, the link is bound to this
    browser's cookie and to the user's session generation (a new sign-up for the address since
    voids it), and the link proves the mailbox. The session's auth_time is the link's creation, when
    the password was typed, so max_age counts from then."""
    from ..accounts.verification import refresh_session_claims, same_browser
    from ..oauth import authorization, sessions
    from ..storage.sign_ins import record_sign_in
    from ..tokens.issue import user_attributes
    from .authorize import _advance

    link, user = confirmed.link, confirmed.user
    if not same_browser(link, cookie_value):
        return hosted.page("email_confirmed.html")
    pending = authorization.load_pending(link.request_id) if link.request_id else None
    session = sessions.load(cookie_value, check_user=False)
    if session is not None and session.sub == user.pk:
        session, cookies = refresh_session_claims(session, user), []
    else:
        from ..oauth import login as login_core

        s = settings()
        signed_in = record_sign_in(user, amr=["pwd"], user_claims=user_attributes(user), session_ttl=s.session_ttl,
                                   device_ttl=s.known_device_ttl, request_id=None, mark_request=False, take_back=[],
                                   window_seconds=s.login_throttle_window, auth_time=link.created_at)
        session = signed_in.session
        cookies = [sessions.cookie_header(s, signed_in.session_cookie, max_age=s.session_ttl),
                   login_core.device_cookie_header(s, signed_in.device_cookie)]
    if pending is None:
        return hosted.page("email_confirmed.html", cookies=cookies)
    return _advance(pending, session, just_signed_in=False, cookies=cookies)
