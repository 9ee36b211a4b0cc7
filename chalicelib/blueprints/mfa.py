"""/mfa: the second step of a sign-in, and stepping a signed-in session up (chalicelib/oauth/second_factor.py).

Two ways in:
- *sign-in*: the idp_mfa cookie names a half-done sign-in (the password was right; no session yet),
  set by POST /login or POST /account/login. Success writes the session, then the authorization
  request (if any) goes on as after a password sign-in.
- *step-up*: a signed-in browser whose pending authorization request needs more than its session
  proved (acr_values, a client's require_mfa, MFA_POLICY: authorization.decide sends it here with
  `request_id`). Success adds the factor to the session's amr.
"""
from __future__ import annotations

from chalice import Blueprint, Response

from .. import i18n
from ..config import settings
from ..errors import LoginThrottled
from ..log import get_logger
from ..pages import messages
from ..web import cookie, form_params, query_params
from . import hosted
from .hosted import FORM_OR_NONE

bp = Blueprint(__name__)
log = get_logger("idp.pages")

CSRF_PURPOSE = "mfa"
WEBAUTHN_PURPOSE = "mfa"


def _factor_ids(method: str, form: dict) -> list[str]:
    """The factor items a POST of `method` is checked against (read with the step or the user)."""
    from ..oauth.second_factor import PASSKEY
    from ..storage.factors import passkey_id

    if method == PASSKEY:
        from ..accounts import passkeys

        credential_id = passkeys.credential_id_of(form.get("credential") or "")
        return [passkey_id(credential_id)] if credential_id else []
    return [method] if method in ("totp", "recovery") else []


def _methods(state, pending) -> list[str]:
    """The user's factors this page offers. Stepping up, only those that reach the level the request
    needs (a TOTP code cannot make a session phishing-resistant: offering it would loop back here)."""
    from ..oauth import acr, authorization, second_factor

    s = settings()
    methods = second_factor.available(s, state.user.factors)
    if state.session is not None and pending is not None:
        needed = acr.level(authorization.authentication(pending, state.session, s).needed) or 0
        methods = [m for m in methods if acr.FACTOR_LEVELS[m] >= needed]
    return methods


def _page(state, pending, *, status: int = 200, message: str | None = None, cookies=()) -> Response:
    from ..oauth import second_factor, sessions

    methods = _methods(state, pending)
    options = None
    if second_factor.PASSKEY in methods:
        from ..accounts import passkeys
        from ..storage.factors import passkey_ids

        options = passkeys.authentication_options(state.browser_value, purpose=WEBAUTHN_PURPOSE, sub=state.user.pk,
                                                  credential_ids=passkey_ids(state.user.factors),
                                                  user_verification="preferred")
    return hosted.page("mfa.html", status, cookies=[*state.cookies, *cookies], methods=methods,
                       passkey_options=options, request_id=state.request_id or "", step_up=state.session is not None,
                       continuation=hosted.continuation(query_params(bp.current_request))[0],
                       message=message, csrf_token=sessions.csrf_token(state.browser_value, CSRF_PURPOSE))


class _State:
    """Who is on the page: the half-done sign-in (step) or the signed-in session, its user, and the
    pending authorization request."""

    def __init__(self, *, browser_value, cookies, user, step=None, session=None, request_id=None, factors=None):
        self.browser_value, self.cookies, self.user = browser_value, cookies, user
        self.step, self.session, self.request_id = step, session, request_id
        self.factors = factors or {}


def _state(request, factor_ids=(), request_id: str | None = None):
    """The page's _State, or None (nothing to verify: expired, finished, signed out)."""
    from ..oauth import login, second_factor, sessions
    from ..storage import sign_in_steps
    from ..storage.factors import get
    from ..storage.users import get_user

    s = settings()
    step_cookie = cookie(request, login.step_cookie_name(s))
    if step_cookie:
        step, user, factors = sign_in_steps.read(step_cookie, factor_ids)
        if not second_factor.usable_step(step, user):
            return None
        # The page cookie for CSRF is the browser cookie (no session exists yet).
        browser_value, cookies = hosted.browser_cookie(request)
        return _State(browser_value=browser_value, cookies=cookies, user=user, step=step,
                      request_id=step.request_id, factors=factors)
    cookie_value, cleared = hosted.session_cookie(request)
    session = sessions.load(cookie_value, check_user=False)
    if session is None or not request_id:
        return None
    user = get_user(session.sub)
    if user is None or user.disabled or session.session_generation < int(user.session_generation or 0):
        return None
    found = {factor_id: factor for factor_id in factor_ids if (factor := get(user.pk, factor_id)) is not None}
    return _State(browser_value=cookie_value, cookies=cleared, user=user, session=session, request_id=request_id,
                  factors=found)


def _expired(cookies=()) -> Response:
    from ..oauth import login

    return hosted.error_page(messages.SIGN_IN_EXPIRED, "invalid_request", cookies=[
        login.step_cookie_header(settings(), "", max_age=0), *cookies],
        description="second step unknown, expired or finished")


@hosted.page_route(bp, "/mfa", ["GET", "POST"], content_types=FORM_OR_NONE)
@hosted.shows_errors
def second_step():
    from ..oauth import second_factor

    request = bp.current_request
    if request.method == "GET":
        state = _state(request, request_id=query_params(request).get("request_id"))
        if state is None:
            return _expired()
        pending = hosted.pending_request(state.request_id) if state.request_id else None
        if state.session is not None and pending is None:
            return hosted.expired(state.cookies)
        return _page(state, pending)

    form = form_params(request)
    method = form.get("method", "")
    state = _state(request, _factor_ids(method, form), request_id=form.get("request_id"))
    if state is None:
        return _expired()
    if not hosted.trusted_post(request, state.browser_value, CSRF_PURPOSE, form):
        return hosted.forbidden_post()
    pending = hosted.pending_request(state.request_id) if state.request_id else None
    if state.session is not None and pending is None:
        return hosted.expired(state.cookies)
    if pending is not None:
        i18n.prefer(pending.ui_locale)
    if method not in _methods(state, pending):
        return _page(state, pending, status=400, message=messages.WRONG_CODE)
    try:
        proof = _verify(state, method, form)
    except LoginThrottled as exc:
        response = _page(state, pending, status=429, message=messages.MFA_TOO_MANY_ATTEMPTS)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except second_factor.SecondFactorFailed as exc:
        log.info("second factor failed", extra={"method": method, "reason": exc.reason})
        return _page(state, pending, status=401, message=messages.PASSKEY_FAILED if method == "passkey"
                     else messages.WRONG_CODE)
    return _proved(state, proof, pending)


def _verify(state, method: str, form: dict):
    from ..oauth import second_factor

    if method == second_factor.PASSKEY:
        from ..accounts import passkeys

        factor = next(iter(state.factors.values()), None)
        if factor is None:
            raise second_factor.SecondFactorFailed("unknown_passkey")
        try:
            use = passkeys.verify_assertion(state.browser_value, form.get("credential") or "", factor,
                                            purpose=WEBAUTHN_PURPOSE, sub=state.user.pk, require_uv=False)
        except passkeys.PasskeyRefused as exc:
            raise second_factor.SecondFactorFailed(f"passkey: {exc}") from None
        return second_factor.Proof(method, tuple(use.amr), tuple(use.items))
    from ..oauth import login

    device = cookie(bp.current_request, login.device_cookie_name(settings()))
    return second_factor.check_code(settings(), state.user, method, form.get("code", ""), state.factors,
                                    device=device)


def _proved(state, proof, pending) -> Response:
    from ..oauth import login, second_factor, sessions
    from .authorize import _advance

    s = settings()
    if state.session is not None:  # step-up
        try:
            stepped = second_factor.step_up(state.session, proof)
        except second_factor.SecondFactorFailed:
            return _page(state, pending, status=401, message=messages.WRONG_CODE)
        if stepped is None:
            return hosted.expired(state.cookies)
        _announce(state, proof)
        return _advance(pending, stepped, just_signed_in=False, cookies=state.cookies)
    try:
        signed_in = second_factor.complete_sign_in(s, state.step, state.user, proof, pending)
    except second_factor.SecondFactorFailed as exc:
        if exc.reason == "step":
            return _expired()
        return _page(state, pending, status=401, message=messages.WRONG_CODE)
    _announce(state, proof)
    cookies = [login.step_cookie_header(s, "", max_age=0),
               sessions.cookie_header(s, signed_in.session_cookie, max_age=s.session_ttl),
               login.device_cookie_header(s, signed_in.device_cookie)]
    if state.request_id is None:  # the account page's own sign-in: /account, or the device page
        return hosted.redirect(hosted.continuation(query_params(bp.current_request))[1], cookies)
    if pending is None or signed_in.request_finished:
        return hosted.expired(cookies)
    return _advance(pending, signed_in.session, just_signed_in=True, cookies=cookies)


def _announce(state, proof) -> None:
    """A recovery code was used: the owner hears of it (a stolen code sheet shows up in their inbox)."""
    from ..oauth.second_factor import RECOVERY

    if proof.kind != RECOVERY:
        return
    from ..accounts import recovery_codes

    left = state.factors.get(RECOVERY)
    recovery_codes.announce_use(state.user, len(left.code_hashes) - 1 if left is not None else 0)
