"""The account page (/account, issue 12 §4) and its forms: profile, password, email address, sign
out everywhere, apps, deletion; its own sign-in (/account/login); the email-change link
(/account/email/confirm). What each action does is decided in chalicelib/accounts/account.py.

Signing in to the account page. /login belongs to an authorization request (it finishes one), and
the account page is not an OAuth client of itself. So /account/login is a second form on the same
sign-in core (oauth/login.py: `begin`, `authenticate`, `finish` with no request): the same
throttles, known devices and session, and /authorize's path is untouched. Signing in there signs
the browser in for the apps too (one SSO session), as signing in through an app does.

Every form posts to a route that checks the CSRF token bound to the browser's cookie and
Sec-Fetch-Site / Origin (blueprints/hosted.trusted_post). A form post without a live session goes
to the sign-in page; it changes nothing.
"""
from __future__ import annotations

from chalice import Blueprint

from ..config import settings
from ..errors import LoginFailed, LoginThrottled
from ..hashing import sha256_hex
from ..log import get_logger
from ..pages import messages
from ..web import FORM, client_ip, cookie, form_params, query_params
from . import hosted
from .hosted import FORM_OR_NONE

bp = Blueprint(__name__)
log = get_logger("idp.pages")

PURPOSE = "account"
LOGIN_PURPOSE = "account-login"
CONFIRM_PURPOSE = "email-change"


def _to_sign_in(done: str | None = None, cookies=()):
    suffix = f"?done={done}" if done else ""
    return hosted.redirect(f"{hosted.base()}/account/login{suffix}", cookies)


def _device(request) -> str | None:
    from ..oauth import login

    return cookie(request, login.device_cookie_name(settings()))


def _account_page(session, user, cookie_value, *, status=200, section=None, message=None, done=None,
                  retry_after=None):
    from ..accounts import account, account_passkeys, identities
    from ..oauth import sessions

    from ..federation.sign_in import page_sources

    linking = identities.page_context(settings(), user)
    targets, images = page_sources(linking["linkable"])
    response = hosted.page(
        "account.html", status, form_targets=targets, image_sources=images, user=user, apps=account.apps(user.pk), methods=account.sign_in_methods(settings(), user),
        csrf_token=sessions.csrf_token(cookie_value, PURPOSE), section=section, message=message,
        notice=messages.ACCOUNT_DONE.get(done or ""),
        **account_passkeys.page_context(settings(), user, cookie_value), **linking)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


@hosted.page_route(bp, "/account", ["GET"], content_types=FORM_OR_NONE)
@hosted.shows_errors
def account_page():
    from ..accounts import account

    cookie_value, cleared = hosted.session_cookie(bp.current_request)
    found = account.signed_in(cookie_value)
    if found is None:
        return _to_sign_in(cookies=cleared)
    return _account_page(*found, cookie_value, done=query_params(bp.current_request).get("done"))


# Sign-in to the account page ---------------------------------------------------------------------------

def _login_page(browser_value, cookies, *, status=200, message=None, notice=None, username=None):
    from ..oauth import sessions

    from .authorize import _passkey_options

    return hosted.page("account_login.html", status, cookies=cookies, message=message, notice=notice,
                       csrf_token=sessions.csrf_token(browser_value, LOGIN_PURPOSE), username=username,
                       passkey_options=_passkey_options(browser_value, LOGIN_PURPOSE),
                       login_action=f"{hosted.base()}/account/login{_continuing(bp.current_request)[0]}")


def _continuing(request) -> tuple[str, str]:
    return hosted.continuation(query_params(request))


@hosted.page_route(bp, "/account/login", ["GET", "POST"], content_types=FORM_OR_NONE)
@hosted.shows_errors
def account_login():
    from ..oauth import login as login_core, sessions

    request = bp.current_request
    s = settings()
    browser_value, cookies = hosted.browser_cookie(request)
    if request.method == "GET":
        return _login_page(browser_value, cookies,
                           notice=messages.ACCOUNT_DONE.get(query_params(request).get("done") or ""))
    form = form_params(request)
    if not hosted.trusted_post(request, browser_value, LOGIN_PURPOSE, form):
        return hosted.forbidden_post()
    if form.get("method") == "passkey":
        return _passkey_login(form, browser_value, cookies)
    username = form.get("username", "")
    attempt = login_core.begin(s, username, client_ip(request), None)
    try:
        user = login_core.authenticate(s, attempt, form.get("password", ""), _device(request))
    except LoginThrottled as exc:
        message = messages.ACCOUNT_UNDER_ATTACK if exc.scope == "account" else messages.TOO_MANY_ATTEMPTS
        response = _login_page(browser_value, cookies, status=429, message=message, username=username)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except LoginFailed:
        return _login_page(browser_value, cookies, status=401, message=messages.WRONG_CREDENTIALS, username=username)
    signed_in = login_core.finish(s, attempt, user)
    if isinstance(signed_in, login_core.SecondStep):  # the user has a second factor: /mfa asks for it
        return hosted.redirect(f"{hosted.base()}/mfa{_continuing(request)[0]}",
                               [login_core.step_cookie_header(s, signed_in.cookie)])
    return hosted.redirect(_continuing(request)[1], [
        sessions.cookie_header(s, signed_in.session_cookie, max_age=s.session_ttl),
        login_core.device_cookie_header(s, signed_in.device_cookie)])


def _passkey_login(form, browser_value, cookies):
    """The account page's sign-in with a passkey alone (chalicelib/oauth/passkey_login.py, for no
    authorization request)."""
    from ..accounts.passkeys import PasskeyRefused
    from ..oauth import login as login_core, passkey_login, sessions

    s = settings()
    credential = form.get("credential", "")
    try:
        signed_in = passkey_login.finish(s, browser_value, credential,
                                         passkey_login.read(credential, None, with_request=False),
                                         purpose=LOGIN_PURPOSE)
    except PasskeyRefused as exc:
        log.info("passkey sign-in refused", extra={"reason": exc.reason})
        return _login_page(browser_value, cookies, status=401, message=messages.PASSKEY_SIGN_IN_FAILED)
    return hosted.redirect(_continuing(bp.current_request)[1], [
        sessions.cookie_header(s, signed_in.session_cookie, max_age=s.session_ttl),
        login_core.device_cookie_header(s, signed_in.device_cookie)])


# The forms ---------------------------------------------------------------------------------------------

def _signed_in_post():
    """(session, user, cookie value, form) of a trusted form post by a signed-in browser, or the
    response to send instead (the sign-in page, or 403 for a cross-site or token-less post)."""
    from ..accounts import account

    request = bp.current_request
    cookie_value, cleared = hosted.session_cookie(request)
    form = form_params(request)
    if not hosted.trusted_post(request, cookie_value, PURPOSE, form):
        return hosted.forbidden_post(cleared)
    found = account.signed_in(cookie_value)
    if found is None:
        return _to_sign_in(cookies=cleared)
    return (*found, cookie_value, form)


def _action(section: str, act):
    """Run `act(session, user, form)` for a trusted post; its Refused re-renders the page with the
    message in `section`; its result (a Response) or, by default, a redirect to the page is sent."""
    from ..accounts.account import Refused

    checked = _signed_in_post()
    if not isinstance(checked, tuple):
        return checked
    session, user, cookie_value, form = checked
    try:
        return act(session, user, form)
    except Refused as exc:
        return _account_page(session, user, cookie_value, status=exc.status, section=section, message=exc.message,
                             retry_after=exc.retry_after)


def _done(done: str, *, sign_in_again: bool = False):
    from ..oauth import sessions

    if sign_in_again:
        return _to_sign_in(done, [sessions.clear_cookie_header(settings())])
    return hosted.redirect(f"{hosted.base()}/account" + (f"?done={done}" if done else ""))


@hosted.page_route(bp, "/account/profile", ["POST"], content_types=[FORM])
@hosted.shows_errors
def profile():
    from ..accounts import account

    def act(session, user, form):
        account.update_profile(session, user, form)
        return _done("profile")

    return _action("profile", act)


@hosted.page_route(bp, "/account/password", ["POST"], content_types=[FORM])
@hosted.shows_errors
def password():
    from ..accounts import account

    request = bp.current_request

    def act(session, user, form):
        account.change_password(settings(), user, form.get("current_password", ""), form.get("new_password", ""),
                                ip=client_ip(request), device=_device(request))
        return _done("password", sign_in_again=True)

    return _action("password", act)


@hosted.page_route(bp, "/account/email", ["POST"], content_types=[FORM])
@hosted.shows_errors
def email():
    from ..accounts import account

    request = bp.current_request

    def act(session, user, form):
        account.request_email_change(settings(), user, form.get("new_email", ""), form.get("current_password", ""),
                                     ip=client_ip(request), device=_device(request))
        return _done("email_sent")

    return _action("email", act)


@hosted.page_route(bp, "/account/signout", ["POST"], content_types=[FORM])
@hosted.shows_errors
def sign_out_everywhere():
    from ..accounts import account

    def act(session, user, form):
        account.sign_out_everywhere(user.pk)
        return _done("signed_out", sign_in_again=True)

    return _action("sessions", act)


@hosted.page_route(bp, "/account/apps/revoke", ["POST"], content_types=[FORM])
@hosted.shows_errors
def revoke_app():
    from ..accounts import account

    def act(session, user, form):
        account.revoke_app(user.pk, form.get("client_id", ""))
        return _done("app_revoked")

    return _action("apps", act)


@hosted.page_route(bp, "/account/delete", ["POST"], content_types=[FORM])
@hosted.shows_errors
def delete():
    from ..accounts import account
    from ..oauth import sessions

    request = bp.current_request

    def act(session, user, form):
        account.delete_account(settings(), session, user, form.get("current_password", ""), ip=client_ip(request),
                               device=_device(request))
        return hosted.page("account_notice.html", cookies=[sessions.clear_cookie_header(settings())],
                           title=messages.ACCOUNT_DELETED, message=messages.ACCOUNT_DELETED)

    return _action("delete", act)


# Two-step verification: TOTP and recovery codes ----------------------------------------------------------
# Every change asks for the current password (accounts/totp.py, recovery_codes.py). With MFA_POLICY=off
# the section is hidden and these routes only lead back to the account page.

def _mfa_off() -> bool:
    return settings().mfa_policy == "off"


def _totp_page(user, cookie_value, *, status=200, message=None, request_id=None):
    """The enrolment page of the user's pending TOTP, or None when there is none (or it expired)."""
    from ..accounts import totp
    from ..oauth import sessions

    enrolment = totp.pending(settings(), sha256_hex(cookie_value), user)
    if enrolment is None:
        return None
    return hosted.page("account_totp.html", status, enrolment=enrolment, message=message, request_id=request_id,
                       csrf_token=sessions.csrf_token(cookie_value, PURPOSE))


def _codes_page(codes, cookie_value, *, notice=None, request_id=None):
    from ..oauth import sessions

    return hosted.page("account_recovery_codes.html", codes=codes, notice=notice, request_id=request_id,
                       csrf_token=sessions.csrf_token(cookie_value, PURPOSE))


@hosted.page_route(bp, "/account/totp/start", ["POST"], content_types=[FORM])
@hosted.shows_errors
def totp_start():
    from ..accounts import totp

    request = bp.current_request

    def act(session, user, form):
        if not _mfa_off():
            totp.start(settings(), session, user, form.get("current_password", ""), ip=client_ip(request),
                       device=_device(request))
            return hosted.redirect(f"{hosted.base()}/account/totp")
        return _done("")

    return _action("totp", act)


@hosted.page_route(bp, "/account/totp", ["GET", "POST"], content_types=FORM_OR_NONE)
@hosted.shows_errors
def totp_enrolment():
    """GET: the pending enrolment (QR code, key, URI); POST: its first code."""
    from ..accounts import account, totp

    request = bp.current_request
    if request.method == "GET":
        cookie_value, cleared = hosted.session_cookie(request)
        found = account.signed_in(cookie_value)
        if found is None:
            return _to_sign_in(cookies=cleared)
        page = None if _mfa_off() else _totp_page(found[1], cookie_value)
        return page or hosted.redirect(f"{hosted.base()}/account")
    checked = _signed_in_post()
    if not isinstance(checked, tuple):
        return checked
    session, user, cookie_value, form = checked
    if _mfa_off():
        return _done("")
    try:
        codes = totp.confirm(settings(), session, user, form.get("code", ""))
    except account.Refused as exc:
        page = _totp_page(user, cookie_value, status=exc.status, message=exc.message) \
            if exc.message == messages.TOTP_CODE_WRONG else None
        return page or _account_page(session, user, cookie_value, status=exc.status, section="totp",
                                     message=exc.message)
    if codes:
        return _codes_page(codes, cookie_value, notice=messages.ACCOUNT_DONE["totp_added"])
    return _done("totp_added")


@hosted.page_route(bp, "/account/totp/remove", ["POST"], content_types=[FORM])
@hosted.shows_errors
def totp_remove():
    from ..accounts import totp

    request = bp.current_request

    def act(session, user, form):
        if _mfa_off():
            return _done("")
        totp.remove(settings(), session, user, form.get("current_password", ""), ip=client_ip(request),
                    device=_device(request))
        return _done("totp_removed")

    return _action("totp", act)


@hosted.page_route(bp, "/account/recovery-codes", ["POST"], content_types=[FORM])
@hosted.shows_errors
def recovery_codes():
    """New recovery codes, shown on this response only (a POST: nothing shows them again)."""
    from ..accounts import recovery_codes as codes

    request = bp.current_request

    def act(session, user, form):
        if _mfa_off():
            return _done("")
        made = codes.regenerate(settings(), session, user, form.get("current_password", ""), ip=client_ip(request),
                                device=_device(request))
        return _codes_page(made, hosted.session_cookie(request)[0])

    return _action("recovery", act)


# Enrolment that a sign-in requires ------------------------------------------------------------------------

def _security_page(pending, user, cookie_value, *, status=200, message=None):
    from ..oauth import sessions
    from ..storage import factors

    ready = bool(set(factors.kinds(user.factors)) - {factors.RECOVERY})
    if not ready and message is None:
        page = _totp_page(user, cookie_value, request_id=pending.request_id)
        if page is not None:
            return page
    return hosted.page("account_security.html", status, ready=ready, message=message, email=user.email,
                       request_id=pending.request_id, csrf_token=sessions.csrf_token(cookie_value, PURPOSE))


def _security_context(request_id: str | None):
    """(pending request, session, user, cookie value) for /account/security, or the response to send
    instead: the expired page, or the sign-in page of the request."""
    from ..accounts import account

    cookie_value, cleared = hosted.session_cookie(bp.current_request)
    pending = hosted.pending_request(request_id)
    if pending is None:
        return hosted.expired(cleared)
    found = account.signed_in(cookie_value)
    if found is None:
        return hosted.redirect(hosted.page_url("/login", pending.request_id), cleared)
    return pending, *found, cookie_value


@hosted.page_route(bp, "/account/security", ["GET", "POST"], content_types=FORM_OR_NONE)
@hosted.shows_errors
def security():
    """MFA_POLICY=required (or the client's require_mfa) and no second factor: the sign-in continues
    here (?request_id=) to set up TOTP, then resumes the authorization request."""
    from ..accounts import account, totp

    request = bp.current_request
    if request.method == "GET":
        found = _security_context(query_params(request).get("request_id"))
        if not isinstance(found, tuple):
            return found
        pending, session, user, cookie_value = found
        return _security_page(pending, user, cookie_value)
    form = form_params(request)
    cookie_value, cleared = hosted.session_cookie(request)
    if not hosted.trusted_post(request, cookie_value, PURPOSE, form):
        return hosted.forbidden_post(cleared)
    found = _security_context(form.get("request_id"))
    if not isinstance(found, tuple):
        return found
    pending, session, user, cookie_value = found
    try:
        if form.get("step") == "start":
            totp.start(settings(), session, user, form.get("current_password", ""), ip=client_ip(request),
                       device=_device(request))
            return hosted.redirect(hosted.page_url("/account/security", pending.request_id))
        codes = totp.confirm(settings(), session, user, form.get("code", ""), step_up=True)
    except account.Refused as exc:
        if exc.message == messages.TOTP_CODE_WRONG:
            page = _totp_page(user, cookie_value, status=exc.status, message=exc.message,
                              request_id=pending.request_id)
            if page is not None:
                return page
        response = _security_page(pending, user, cookie_value, status=exc.status, message=exc.message)
        if exc.retry_after is not None:
            response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if codes:
        return _codes_page(codes, cookie_value, notice=messages.ACCOUNT_DONE["totp_added"],
                           request_id=pending.request_id)
    return hosted.redirect(hosted.page_url("/account/security", pending.request_id))


@hosted.page_route(bp, "/account/security/continue", ["POST"], content_types=[FORM])
@hosted.shows_errors
def security_continue():
    """Resume the authorization request, as /verify-email/continue does: /authorize's decision runs
    again on the (now stepped-up) session."""
    from .authorize import _advance

    request = bp.current_request
    form = form_params(request)
    cookie_value, cleared = hosted.session_cookie(request)
    if not hosted.trusted_post(request, cookie_value, PURPOSE, form):
        return hosted.forbidden_post(cleared)
    found = _security_context(form.get("request_id"))
    if not isinstance(found, tuple):
        return found
    pending, session = found[0], found[1]
    return _advance(pending, session, just_signed_in=False)


# The email-change link -----------------------------------------------------------------------------------

@hosted.page_route(bp, "/account/email/confirm", ["GET", "POST"], content_types=FORM_OR_NONE)
@hosted.shows_errors
def confirm_email():
    """GET shows the new address and a button, and never uses the link (mail scanners fetch links);
    the POST uses it. No session needed: the link proves the new address, and it was asked for by
    the account's signed-in owner with their password."""
    from ..accounts import account
    from ..oauth import sessions

    request = bp.current_request
    browser_value, cookies = hosted.browser_cookie(request)
    if request.method == "GET":
        token = query_params(request).get("token", "")
        try:
            new_email = account.email_change_link(token)
        except account.Refused as exc:
            return hosted.page("account_notice.html", 400, cookies=cookies, message=exc.message)
        return hosted.page("account_email_confirm.html", cookies=cookies, token=token, new_email=new_email,
                           csrf_token=sessions.csrf_token(browser_value, CONFIRM_PURPOSE))
    form = form_params(request)
    if not hosted.trusted_post(request, browser_value, CONFIRM_PURPOSE, form):
        return hosted.forbidden_post()
    try:
        account.confirm_email_change(form.get("token", ""))
    except account.Refused as exc:
        return hosted.page("account_notice.html", exc.status, message=exc.message)
    return hosted.page("account_notice.html", message=messages.ACCOUNT_DONE["email_changed"], account_link=True)


# Passkeys (chalicelib/accounts/account_passkeys.py) ------------------------------------------------------

@hosted.page_route(bp, "/account/passkeys/add", ["POST"], content_types=[FORM])
@hosted.shows_errors
def add_passkey():
    from ..accounts import account_passkeys

    request = bp.current_request

    def act(session, user, form):
        cookie_value, _ = hosted.session_cookie(request)
        account_passkeys.add(settings(), session, user, cookie_value, form, ip=client_ip(request),
                             device=_device(request))
        return _done("passkey_added")

    return _action("passkeys", act)


@hosted.page_route(bp, "/account/passkeys/rename", ["POST"], content_types=[FORM])
@hosted.shows_errors
def rename_passkey():
    from ..accounts import account_passkeys

    def act(session, user, form):
        account_passkeys.rename(session, user, form)
        return _done("passkey_renamed")

    return _action("passkeys", act)


@hosted.page_route(bp, "/account/passkeys/delete", ["POST"], content_types=[FORM])
@hosted.shows_errors
def delete_passkey():
    from ..accounts import account_passkeys

    request = bp.current_request

    def act(session, user, form):
        account_passkeys.remove(settings(), session, user, form, ip=client_ip(request), device=_device(request))
        return _done("passkey_removed")

    return _action("passkeys", act)


# The email-change link -----------------------------------------------------------------------------------
