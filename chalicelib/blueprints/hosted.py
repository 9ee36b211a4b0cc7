"""What every hosted page shares: rendering with the security headers, the error page, redirects,
the browser's cookies, and the checks on a form post (CSRF token bound to the cookie, plus
Sec-Fetch-Site / Origin). The blueprints of the pages (authorize, and the account pages) use these,
so every form is defended the same way.

No CORS anywhere here: these pages are cookie-authenticated and must only ever be used top-level
by a browser on our own origin.
"""
from __future__ import annotations

import functools
from urllib.parse import urlencode, urlsplit

from chalice import Response

from .. import i18n, pages, profiles
from ..config import settings
from ..errors import OAuthError, TemporarilyUnavailable, UntrustedRequest
from ..log import get_logger, request_id as current_request_id
from ..pages import messages
from ..web import FORM, cookie_values, route

log = get_logger("idp.pages")

#: A page route's content types: forms, and for a GET (no body) the JSON Chalice then assumes.
FORM_OR_NONE = [FORM, "application/json"]


# Responses ----------------------------------------------------------------------------------------

def base() -> str:
    """The issuer's path ("" or "/tenant"): links must stay under it, because behind an API Gateway
    base path mapping only URLs below the issuer reach us."""
    return urlsplit(settings().issuer).path.rstrip("/")


def continuation(query: dict) -> tuple[str, str]:
    """A sign-in with no authorization request (the account page's: /account/login, then /mfa for a
    second factor) ends on the account page, or continues where it was asked to: (the query that keeps
    the continuation on each form's action, where the sign-in goes).

    The device page (/device, RFC 8628 §3.3) signs people in that way and continues with the code they
    came with: `?continue=device&user_code=...`. Only that fixed page is a continuation, never an
    address from the request (no open redirect), and the code is carried only once normalised."""
    from ..oauth import device_flow

    if query.get("continue") != "device":
        return "", f"{base()}/account"
    code = device_flow.normalise(query.get("user_code"))
    carried = {"user_code": device_flow.display(code)} if code else {}
    device = f"{base()}/device" + (f"?{urlencode(carried)}" if carried else "")
    return f"?{urlencode({'continue': 'device', **carried})}", device


def page_url(page: str, request_id: str) -> str:
    return f"{base()}{page}?{urlencode({'request_id': request_id})}"


def page(template: str, status: int = 200, *, form_targets=None, cookies=(), image_sources=None,
         **context) -> Response:
    # A page that carries WebAuthn options runs passkeys.js; no other page may run any script.
    headers = pages.security_headers(form_targets, scripts=context.get("passkey_options") is not None,
                                     image_sources=image_sources)
    if cookies:
        headers["Set-Cookie"] = list(cookies)
    return Response(body=pages.render(template, base=base(), **context), status_code=status, headers=headers)


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
    return page("error.html", status, cookies=cookies, message=messages.MESSAGES[message], error=error,
                 reference=current_request_id.get())


def unavailable_page(exc: TemporarilyUnavailable) -> Response:
    """A dependency fault on a hosted page (chalicelib/web.py calls this): the error page, 503 with
    Retry-After. Nothing single-use was spent, so reloading or going back to the app works."""
    from ..errors import EmailNotSent

    # An email that could not be sent gets its own words: the user retries the form, not a reload.
    message = messages.EMAIL_NOT_SENT if isinstance(exc, EmailNotSent) else messages.TEMPORARILY_UNAVAILABLE
    response = error_page(message, exc.error, exc.status, description=exc.description, detail=exc.detail)
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


def page_route(bp, path: str, methods: list[str], **kwargs):
    """A hosted page's route on blueprint `bp`: as web.route, with the HTML page for a 503."""
    return route(bp, path, methods, unavailable_page=unavailable_page, **kwargs)


def exception_page(exc: OAuthError) -> Response:
    """The page for an error found before the request can be redirected: what an UntrustedRequest's
    kind calls for, and anything else (a repeated parameter, a body that is not a form) is malformed."""

    message = exc.kind if isinstance(exc, UntrustedRequest) else messages.MALFORMED_REQUEST
    return error_page(message, exc.error, exc.status, description=exc.description, detail=exc.detail)


def shows_errors(view):
    """A hosted page answers a malformed request with the error page: the JSON error of the API
    endpoints would be shown to the user as text, quoting the request."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        try:
            return view(*args, **kwargs)
        except TemporarilyUnavailable as exc:  # raised as an error, e.g. mail.send's EmailNotSent
            return unavailable_page(exc)
        except OAuthError as exc:
            return exception_page(exc)

    return wrapper


def redirect(location: str, cookies=()) -> Response:
    """302, or under PROFILE=fapi2 303 (FAPI 2.0 §5.3.2.2 item 11: "should use HTTP 303", which says
    outright that the next request is a GET, whatever this one was: RFC 9110 §15.4.4)."""
    headers = {"Location": location, "Cache-Control": "no-store", "Pragma": "no-cache",
               "Referrer-Policy": "no-referrer"}
    if cookies:
        headers["Set-Cookie"] = list(cookies)
    return Response(body="", status_code=profiles.redirect_status(settings()), headers=headers)


def deliver_error(exc, *, hold: bool, cookies=()) -> Response:
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
        return redirect(location, cookies)
    # A link, not a form: CSP form-action does not govern it, and a GET form would drop the
    # query string that carries the error, state and iss.
    return page("redirect_notice.html", 400, cookies=cookies, location=location, error=exc.oauth_error.error,
                 host=urlsplit(location).netloc)


def origin(uri: str) -> str:
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else f"{parts.scheme}:"


# Browser helpers ----------------------------------------------------------------------------------

def session_cookie(request):
    """(our cookie's value or None, Set-Cookie headers).

    Our cookie's name sent twice means another cookie of that name (a parent domain's, a longer
    path's, or a browser quirk) travels with ours, and the header cannot say which is which.
    Neither is trusted: the request has no session and ours is cleared. Picking one would let
    whoever planted the other sign the browser in as themselves (login CSRF).
    """
    from ..oauth import sessions

    s = settings()
    values = cookie_values(request, sessions.cookie_name(s))
    if len(values) > 1:
        return None, [sessions.clear_cookie_header(s)]
    return (values[0] if values else None), []


def browser_cookie(request):
    """(cookie value, Set-Cookie headers): an anonymous secret is minted on first visit, and
    whenever the cookie is ambiguous, since CSRF tokens are keyed by it and a planted value is
    known to whoever planted it. The new cookie replaces ours."""
    from ..oauth import sessions

    s = settings()
    value, _ = session_cookie(request)
    if value and 20 <= len(value) <= 100 and value.isascii():  # ours are URL-safe base64
        return value, []
    value = sessions.new_browser_secret()
    return value, [sessions.cookie_header(s, value)]


def same_origin_post(request) -> bool:
    """Fetch Metadata, else Origin: defence in depth next to the CSRF token.

    `Sec-Fetch-Site` comes first: browsers set it and pages cannot forge it. Our pages send
    `Referrer-Policy: no-referrer`, under which browsers post `Origin: null` even from our own
    forms, so Origin only decides for browsers without Fetch Metadata, and there `null` is refused.
    With neither header (not a browser), the CSRF token alone decides.
    """
    headers = request.headers
    site = headers.get("sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    sent = headers.get("origin")
    if sent is not None:
        return sent == origin(settings().issuer)
    return True


def trusted_post(request, cookie_value: str | None, purpose: str, form: dict) -> bool:
    """A form post we accept: same-origin, with the CSRF token of this browser's cookie. (A browser
    that arrived without a cookie was just given a fresh one, which no submitted token matches.)"""
    from ..oauth import sessions

    return same_origin_post(request) and sessions.csrf_valid(cookie_value, purpose, form.get("csrf_token"))


def forbidden_post(cookies=()) -> Response:
    return error_page(messages.FORBIDDEN_POST, "access_denied", 403, cookies=cookies,
                      description="cross-site form post or CSRF token not valid for this browser")


def pending_request(request_id: str | None):
    """The pending authorization request `request_id` (None when unknown, expired or finished). The
    rest of this request speaks the language its ui_locales picked at /authorize (chalicelib/i18n.py),
    so every page of one sign-in flow is in one language."""
    from ..oauth import authorization

    pending = authorization.load_pending(request_id)
    if pending is not None:
        i18n.prefer(pending.ui_locale)
    return pending


def expired(cookies=()) -> Response:
    return error_page(messages.EXPIRED_REQUEST, "invalid_request", cookies=cookies,
                      description="authorization request unknown, expired or already finished")


