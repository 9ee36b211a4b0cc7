"""The pages of a forgotten password and of an invitation: /forgot-password, /reset-password, /invitation.

What they decide is in chalicelib/accounts/recovery.py and accounts/invitations.py; here is the
HTTP around it, defended like every hosted form (blueprints/hosted.py: CSRF token bound to the
browser cookie, Sec-Fetch-Site / Origin). The links' pages follow issue 12 §6: a GET only reads the
link (`links.peek`) and shows a form, so mail scanners and link previewers that fetch it spend
nothing; the form's POST consumes it. The password is checked against the policy before the link is
consumed, so a refused password leaves the link usable.
"""
from __future__ import annotations

from chalice import Blueprint, Response

from ..config import settings
from ..log import get_logger
from ..pages import messages
from ..web import client_ip, form_params, query_params
from . import hosted
from .hosted import FORM_OR_NONE

bp = Blueprint(__name__)
log = get_logger("idp.pages")

REFUSED = {"unknown": messages.LINK_UNKNOWN, "used": messages.LINK_USED, "expired": messages.LINK_EXPIRED}


def _link_refused(refused, *, ask_again: bool) -> Response:
    """The page of a link that cannot be used: fixed text for why, never what the link said.
    `ask_again`: offer to request a new one (a reset; an invitation comes from an operator)."""
    log.info("link refused", extra={"reason": refused.reason})
    message = messages.MESSAGES[REFUSED[refused.reason]]
    return hosted.page("link_refused.html", 400, message=message, ask_again=ask_again)


def _peek(token: str | None, purpose: str):
    from ..log import now
    from ..storage import links

    return links.peek(token or "", purpose, now())


# Forgot password ----------------------------------------------------------------------------------

@hosted.page_route(bp, "/forgot-password", ["GET", "POST"], content_types=FORM_OR_NONE)
@hosted.shows_errors
def forgot_password():
    from ..accounts import recovery
    from ..oauth import sessions

    request = bp.current_request
    browser_value, cookies = hosted.browser_cookie(request)
    if request.method == "GET":
        return hosted.page("forgot_password.html", cookies=cookies, csrf_token=sessions.csrf_token(browser_value, "forgot"),
                           request_id=query_params(request).get("request_id") or "")
    form = form_params(request)
    if not hosted.trusted_post(request, browser_value, "forgot", form):
        return hosted.forbidden_post()
    request_id = form.get("request_id") or None
    # SES refusing raises EmailNotSent, which hosted.page_route answers with the "couldn't send" page.
    retry_after = recovery.request_reset(form.get("email", ""), ip=client_ip(request), request_id=request_id)
    # One page whether or not the address has an account (accounts/recovery.py); refused by a
    # limit, the same page with the alert, so the limit says nothing about the account either.
    back = hosted.page_url("/login", request_id) if request_id else None
    if retry_after is None:
        return hosted.page("forgot_sent.html", back=back)
    response = hosted.page("forgot_sent.html", 429, back=back, message=messages.TOO_MANY_ATTEMPTS)
    response.headers["Retry-After"] = str(retry_after)
    return response


# Reset password -----------------------------------------------------------------------------------

def _reset_form(link, token: str, browser_value: str, cookies=(), *, status=200, message=None) -> Response:
    from ..oauth import sessions

    return hosted.page("reset_password.html", status, cookies=cookies, token=token, email=link.email,
                       message=message, csrf_token=sessions.csrf_token(browser_value, "reset"))


@hosted.page_route(bp, "/reset-password", ["GET", "POST"], content_types=FORM_OR_NONE)
@hosted.shows_errors
def reset_password():
    from .. import password_policy
    from ..accounts import recovery
    from ..oauth import authorization
    from ..storage import links
    from ..storage.users import InvalidUser

    request = bp.current_request
    browser_value, cookies = hosted.browser_cookie(request)
    if request.method == "GET":
        token = query_params(request).get("token") or ""
        link = _peek(token, recovery.PURPOSE)
        if isinstance(link, links.Refused):
            return _link_refused(link, ask_again=True)
        return _reset_form(link, token, browser_value, cookies)

    form = form_params(request)
    if not hosted.trusted_post(request, browser_value, "reset", form):
        return hosted.forbidden_post()
    token, password = form.get("token", ""), form.get("password", "")
    link = _peek(token, recovery.PURPOSE)
    if isinstance(link, links.Refused):
        return _link_refused(link, ask_again=True)
    problem = password_policy.problem(password, link.email)
    if problem:  # before the consume: a refused password spends nothing
        return _reset_form(link, token, browser_value, status=400, message=problem)
    try:
        outcome = recovery.reset_password(token, password)
    except InvalidUser as exc:  # the policy again, inside storage: the same fixed text
        return _reset_form(link, token, browser_value, status=400, message=str(exc))
    if isinstance(outcome, links.Refused):  # another tab won the race, or the account changed
        return _link_refused(outcome, ask_again=True)
    # Back to the sign-in of the request the user came from, if it is still waiting.
    pending = authorization.load_pending(outcome.request_id) if outcome.request_id else None
    return hosted.page("password_changed.html",
                       sign_in=hosted.page_url("/login", pending.request_id) if pending else None)


# Invitations --------------------------------------------------------------------------------------

def _invitation_form(link, token: str, browser_value: str, cookies=(), *, status=200, message=None,
                     name=None) -> Response:
    from ..oauth import sessions

    return hosted.page("invitation.html", status, cookies=cookies, token=token, email=link.email,
                       name=name if name is not None else link.data.get("name") or "", message=message,
                       csrf_token=sessions.csrf_token(browser_value, "invitation"))


@hosted.page_route(bp, "/invitation", ["GET", "POST"], content_types=FORM_OR_NONE)
@hosted.shows_errors
def invitation():
    from .. import password_policy
    from ..accounts import invitations
    from ..oauth import sessions
    from ..oauth.login import device_cookie_header
    from ..storage import links
    from ..storage.users import InvalidUser, UserExists, checked_name

    request = bp.current_request
    s = settings()
    browser_value, cookies = hosted.browser_cookie(request)
    if request.method == "GET":
        token = query_params(request).get("token") or ""
        link = _peek(token, invitations.PURPOSE)
        if isinstance(link, links.Refused):
            return _link_refused(link, ask_again=False)
        return _invitation_form(link, token, browser_value, cookies)

    form = form_params(request)
    if not hosted.trusted_post(request, browser_value, "invitation", form):
        return hosted.forbidden_post()
    token, password, name = form.get("token", ""), form.get("password", ""), form.get("name", "")
    link = _peek(token, invitations.PURPOSE)
    if isinstance(link, links.Refused):
        return _link_refused(link, ask_again=False)
    try:
        checked_name(name)
    except InvalidUser:
        return _invitation_form(link, token, browser_value, status=400, name=name, message=messages.NAME_INVALID)
    problem = password_policy.problem(password, link.email)
    if problem:  # before the consume: a refused password spends nothing
        return _invitation_form(link, token, browser_value, status=400, name=name, message=problem)
    try:
        outcome = invitations.accept(token, password, name)
    except UserExists:
        return hosted.error_page(messages.ACCOUNT_EXISTS, "invalid_request", 409,
                                 description="invitation for an address that has an account; link put back")
    except InvalidUser:  # checked above; only fixed texts may reach the page
        return _invitation_form(link, token, browser_value, status=400, name=name,
                                message=password_policy.problem(password, link.email) or messages.NAME_INVALID)
    if isinstance(outcome, links.Refused):
        return _link_refused(outcome, ask_again=False)
    signed_in = outcome.signed_in
    session_cookies = [sessions.cookie_header(s, signed_in.session_cookie, max_age=s.session_ttl),
                       device_cookie_header(s, signed_in.device_cookie)] if signed_in else []
    return hosted.page("account_ready.html", cookies=session_cookies, email=outcome.user.email,
                       signed_in=signed_in is not None, home=s.home_url or None)
