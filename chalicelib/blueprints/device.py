"""The device page (/device, RFC 8628 §3.3): the user, on a phone or computer, signs in, enters (or
confirms) the code their device shows, sees which device client asks for what, and allows or
denies. Then "you can return to your device".

1. GET /device[?user_code=...]: signed in? else to the account sign-in (/account/login), which
   comes back here with the code. The form shows the code from `verification_uri_complete`
   filled in, never submitted by the link itself: a link someone else sent must not approve their
   device in one click (RFC 8628 §5.4 remote phishing).
2. POST /device: the code is looked up. Each code submitted counts, per session and per client
   address (DEVICE_USER_CODE_ATTEMPTS per LOGIN_THROTTLE_WINDOW), since user codes are short
   enough to guess at (§5.1). Found: the consent page, naming the device client.
3. POST /device/consent: allow (the grant and the approval in one transaction) or deny. The
   consent form's CSRF token is bound to the code looked up in step 2, so this step cannot be used
   to try codes unthrottled.

Every form carries a CSRF token bound to the browser's cookie and is checked for Sec-Fetch-Site /
Origin (blueprints/hosted.trusted_post), as every other form.
"""
from __future__ import annotations

from urllib.parse import urlencode

from chalice import Blueprint

from ..config import settings
from ..log import get_logger
from ..pages import messages
from ..web import client_ip, form_params, query_params
from . import hosted
from .hosted import FORM_OR_NONE

bp = Blueprint(__name__)
log = get_logger("idp.pages")

PURPOSE = "device"


def _consent_purpose(user_code: str) -> str:
    """The consent form's CSRF purpose: valid only for the code this browser looked up."""
    return f"device-consent#{user_code}"


def _to_sign_in(user_code: str | None, cookies=()):
    from ..oauth import device_flow

    query = {"continue": "device", **({"user_code": device_flow.display(user_code)} if user_code else {})}
    return hosted.redirect(f"{hosted.base()}/account/login?{urlencode(query)}", cookies)


def _entry_page(cookie_value: str, session, *, user_code: str | None = None, status: int = 200, message=None,
                retry_after: int | None = None):
    from ..oauth import device_flow, sessions

    response = hosted.page("device.html", status, csrf_token=sessions.csrf_token(cookie_value, PURPOSE),
                           user_code=device_flow.display(user_code) if user_code else "",
                           email=_email(session), message=message)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def _email(session) -> str:
    claims = session.user_claims or {}
    return claims.get("email") or session.sub


@hosted.page_route(bp, "/device", ["GET", "POST"], content_types=FORM_OR_NONE)
@hosted.shows_errors
def device():
    from ..oauth import device_flow, sessions

    request = bp.current_request
    cookie_value, cleared = hosted.session_cookie(request)
    session = sessions.load(cookie_value)
    if request.method == "GET":
        typed = device_flow.normalise(query_params(request).get("user_code"))
        if session is None:
            return _to_sign_in(typed, cleared)
        return _entry_page(cookie_value, session, user_code=typed)
    form = form_params(request)
    if session is None:
        # The session ended (or never was): sign in again and come back with the code typed.
        if not hosted.same_origin_post(request):
            return hosted.forbidden_post(cleared)
        return _to_sign_in(device_flow.normalise(form.get("user_code")), cleared)
    if not hosted.trusted_post(request, cookie_value, PURPOSE, form):
        return hosted.forbidden_post()
    return _look_up(cookie_value, session, form.get("user_code"))


def _look_up(cookie_value: str, session, typed: str | None):
    from ..oauth import device_authorization, device_flow

    s = settings()
    user_code = device_flow.normalise(typed)
    if user_code is None:  # cannot be a code: nothing to guess with, nothing read or counted
        return _entry_page(cookie_value, session, status=400, message=messages.DEVICE_CODE_MALFORMED)
    retry_after = _throttled(session)
    if retry_after is not None:
        return _entry_page(cookie_value, session, user_code=user_code, status=429,
                           message=messages.TOO_MANY_ATTEMPTS, retry_after=retry_after)
    shown = device_authorization.lookup(user_code, s, source_ip=client_ip(bp.current_request))
    if shown is None:
        return _entry_page(cookie_value, session, user_code=user_code, status=400, message=messages.DEVICE_CODE_UNKNOWN)
    if not device_authorization.session_fits(shown.client, session, s):
        return _entry_page(cookie_value, session, user_code=user_code, status=403,
                           message=messages.DEVICE_NEEDS_STRONGER_SIGN_IN)
    return _consent_page(cookie_value, session, shown)


def _throttled(session) -> int | None:
    """Count this code against the session's and the address's limits (one transaction, both or
    neither); seconds to wait when either is spent, else None."""
    from ..log import now
    from ..oauth import throttle
    from ..storage.throttles import Counter, add_to_all

    s = settings()
    window, limit = s.login_throttle_window, s.device_user_code_attempts
    counters = [Counter(throttle.window_key("device-ip", throttle.address_key(client_ip(bp.current_request)), window),
                        limit),
                Counter(throttle.window_key("device-session", session.session_hash, window), limit)]
    if not add_to_all(counters, window):
        return None
    log.info("device user codes throttled", extra={"sub": session.sub})
    return window - now() % window


def _consent_page(cookie_value: str, session, shown):
    from ..oauth import consent, device_flow, resources, scopes, sessions

    s = settings()
    targets = resources.registered(list(shown.resources), max_age=s.client_cache_seconds)
    about_you, apis = consent.page_sections(list(shown.scopes), targets)
    return hosted.page("device_consent.html", client_name=shown.client.client_name,
                       unverified=shown.client.registered_dynamically, scopes=scopes.describe(about_you),
                       apis=[(name, scopes.describe(granted)) for name, granted in apis],
                       user_code=device_flow.display(shown.user_code), email=_email(session),
                       csrf_token=sessions.csrf_token(cookie_value, _consent_purpose(shown.user_code)))


@hosted.page_route(bp, "/device/consent", ["POST"], content_types=FORM_OR_NONE)
@hosted.shows_errors
def device_consent():
    from ..oauth import device_authorization, device_flow, sessions

    request = bp.current_request
    s = settings()
    cookie_value, cleared = hosted.session_cookie(request)
    form = form_params(request)
    user_code = device_flow.normalise(form.get("user_code"))
    if user_code is None or not hosted.trusted_post(request, cookie_value, _consent_purpose(user_code), form):
        return hosted.forbidden_post(cleared)
    session = sessions.load(cookie_value)
    if session is None:
        return _to_sign_in(user_code, cleared)
    shown = device_authorization.lookup(user_code, s, source_ip=client_ip(request))
    if shown is None:  # expired, or decided meanwhile (another tab)
        return _entry_page(cookie_value, session, status=400, message=messages.DEVICE_CODE_UNKNOWN)
    if form.get("decision") != "allow":
        device_authorization.deny(shown)
        return hosted.page("device_done.html", approved=False, client_name=shown.client.client_name)
    if not device_authorization.session_fits(shown.client, session, s):  # as at the look-up: /authorize's rules
        return _entry_page(cookie_value, session, user_code=user_code, status=403,
                           message=messages.DEVICE_NEEDS_STRONGER_SIGN_IN)
    refused = device_authorization.approve(shown, session, s)
    if refused in ("session", "user"):
        return _to_sign_in(user_code, [sessions.clear_cookie_header(s)])
    if refused is not None:
        return _entry_page(cookie_value, session, status=400, message=messages.DEVICE_CODE_UNKNOWN)
    return hosted.page("device_done.html", approved=True, client_name=shown.client.client_name)
