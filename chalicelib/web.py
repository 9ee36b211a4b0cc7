"""The HTTP adapter: turns core results and OAuthErrors into Chalice responses.

Chalice middleware does not see exceptions raised by views of a REST API, so every view is wrapped
by `endpoint`, which is the one place errors become responses. Nothing below the blueprints imports
this module.
"""
from __future__ import annotations

import functools
import json
import uuid

from chalice import Response

from . import aws, faults, i18n
from .errors import NO_STORE_HEADERS, InvalidRequest, MethodNotAllowed, OAuthError, ServerError, echo
from .log import get_logger, request_id

log = get_logger("idp.web")

ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
#: Bodies a wrong-method request may carry; Chalice would answer anything else with its own 415.
ANY_BODY = ["application/json", "application/x-www-form-urlencoded", "text/plain", "multipart/form-data",
            "application/octet-stream"]


def json_response(body, status: int = 200, *, max_age: int | None = None, headers: dict | None = None):
    """A JSON response; `no-store` unless the caller opts into public caching with `max_age`."""
    cache = {"Cache-Control": f"public, max-age={max_age}"} if max_age is not None else dict(NO_STORE_HEADERS)
    return Response(
        body=json.dumps(body, separators=(",", ":")),
        status_code=status,
        headers={"Content-Type": "application/json", **cache, **(headers or {})},
    )


def error_response(exc: OAuthError) -> Response:
    status, body, headers = exc.to_response()
    return Response(body=body, status_code=status, headers=headers)


def _request_id_of(app) -> str:
    context = getattr(app, "lambda_context", None)
    rid = getattr(context, "aws_request_id", None)
    if not rid:
        request = getattr(app, "current_request", None)
        rid = ((request.context or {}).get("requestId") if request is not None else None)
    return rid or uuid.uuid4().hex


def _accept_language(app) -> str | None:
    request = getattr(app, "current_request", None)
    return request.headers.get("accept-language") if request is not None else None


def endpoint(app, *, unavailable_page=None):
    """Wrap a view: bind the request id to logs, the request's Accept-Language to the pages it
    renders (chalicelib/i18n.py) and the request's deadline to AWS calls, render
    OAuthErrors, answer a dependency fault with a 503 (chalicelib/faults.py decides which failures
    are one), hide every other unexpected exception behind a 500.

    `unavailable_page(exc)`: how a hosted page renders the 503 (the HTML error page); API endpoints
    answer JSON."""

    def decorate(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            token = request_id.set(_request_id_of(app))
            language = i18n.begin_request(_accept_language(app))
            deadline = aws.start_deadline()
            try:
                return view(*args, **kwargs)
            except OAuthError as exc:
                log.info("oauth error", extra={"error": exc.error, "status": exc.status, "detail": exc.detail})
                return error_response(exc)
            except Exception as exc:
                unavailable = faults.unavailable(exc)
                if unavailable is None:
                    log.exception("unhandled exception")
                    return error_response(ServerError("the server encountered an unexpected condition"))
                log.warning("dependency fault", extra={"error": unavailable.error, "status": unavailable.status,
                                                       "detail": unavailable.detail})
                return unavailable_page(unavailable) if unavailable_page else error_response(unavailable)
            finally:
                aws.end_deadline(deadline)
                i18n.end_request(language)
                request_id.reset(token)

        return wrapper

    return decorate


def route(app, path: str, methods: list[str], *, unavailable_page=None, **route_kwargs):
    """Register `view` for `methods`, and a JSON 405 with `Allow` for every other method.

    API Gateway (and chalice local, which emulates it) would otherwise answer an undeclared method
    with a 403 "Missing Authentication Token" that is neither OAuth-shaped nor truthful.
    `unavailable_page`: see `endpoint`.
    """

    def decorate(view):
        wrapped = endpoint(app, unavailable_page=unavailable_page)(view)
        app.route(path, methods=methods, **route_kwargs)(wrapped)
        others = [m for m in ALL_METHODS if m not in methods]
        if others:
            def not_allowed(**_params):
                raise MethodNotAllowed(methods)

            not_allowed.__name__ = f"{view.__name__}_method_not_allowed"
            app.route(path, methods=others, content_types=ANY_BODY)(endpoint(app)(not_allowed))
        return wrapped

    return decorate


# Requests ---------------------------------------------------------------------------------------

FORM = "application/x-www-form-urlencoded"


def form_params(request) -> dict[str, str]:
    """Parse an urlencoded body, refusing repeated parameters (RFC 6749 §3.1, §3.2)."""
    from urllib.parse import parse_qsl

    media_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if media_type != FORM:
        raise InvalidRequest(f"the request body must be {FORM}")
    try:
        pairs = parse_qsl((request.raw_body or b"").decode("utf-8"), keep_blank_values=True,
                          strict_parsing=False, max_num_fields=100)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequest("the request body is not valid form encoding") from exc
    return _unique(pairs)


def query_params(request) -> dict[str, str]:
    """Query parameters with repeats refused (Chalice's MultiDict would silently keep the last)."""
    params = request.query_params
    if not params:
        return {}
    return _unique((name, value) for name in params for value in params.getlist(name))


#: Parameters a request may repeat: RFC 8707 §2 lets `resource` appear more than once. Their values
#: are lists (absent means []); every other parameter is a string.
REPEATABLE = ("resource",)


def _unique(pairs) -> dict:
    result: dict = {}
    for name, value in pairs:
        if name in REPEATABLE:
            result.setdefault(name, []).append(value)
        elif name in result:
            raise InvalidRequest(f"parameter {echo(name)} is repeated")
        else:
            result[name] = value
    return result


def parse_cookie_header(header: str | None) -> list[tuple[str, str]]:
    """The (name, value) pairs of a Cookie header, in the order sent.

    Parsed the way RFC 6265 §5.2 parses a cookie's name-value-pair, applied to each pair of the
    Cookie header (§4.2.1: `cookie-pair *( ";" SP cookie-pair )`): split on ";" only, split each
    pair at its first "=", trim whitespace around name and value, and skip a pair with no "=" or
    an empty name. Whitespace inside a value is part of the value: `a=x idp_session=S` is one
    cookie named `a` (http.cookies split it into two, letting a cookie set by a sibling subdomain
    smuggle in a second session cookie), and a nameless pair does not spoil the rest of the header.
    """
    pairs = []
    for part in (header or "").split(";"):
        name, eq, value = part.partition("=")
        name = name.strip(" \t")
        if eq and name:
            pairs.append((name, value.strip(" \t")))
    return pairs


def _cookie_header(request) -> str:
    """Every Cookie header field of the request, joined as RFC 9113 §8.2.3 prescribes. API Gateway
    keeps only the last of repeated headers in `headers`, but all of them in `multiValueHeaders`."""
    fields = [value for name, values in (request.to_original_event().get("multiValueHeaders") or {}).items()
              if name.lower() == "cookie" for value in values or ()]
    return "; ".join(fields) if fields else (request.headers.get("cookie") or "")


def header_values(request, name: str) -> list[str]:
    """Every field of header `name` (lower case), in order: API Gateway keeps only the last of
    repeated headers in `headers`, all of them in `multiValueHeaders` (as for cookies above)."""
    fields = [value for key, values in (request.to_original_event().get("multiValueHeaders") or {}).items()
              if key.lower() == name for value in values or ()]
    if fields:
        return fields
    value = request.headers.get(name)
    return [value] if value is not None else []


def header_value(request, name: str) -> str | None:
    """Header `name` with every field of it the request carries, joined by ", " as RFC 9110 §5.3
    combines repeated fields: a header that must come once (a DPoP proof: RFC 9449 §4.3 item 1)
    sent twice then shows, where API Gateway's `headers` would keep only the last."""
    fields = header_values(request, name.lower())
    return ", ".join(fields) if fields else None


def cookie_values(request, name: str) -> list[str]:
    """Every value the request carries for cookie `name`. A browser sends several when other
    cookies of that name exist for a longer path or a parent domain (RFC 6265 §5.4); which one is
    ours cannot be told from the header."""
    return [value for key, value in parse_cookie_header(_cookie_header(request)) if key == name]


def cookie(request, name: str) -> str | None:
    """The value of cookie `name`, or None when it is absent or ambiguous (sent more than once):
    never guess which of two same-named cookies is ours."""
    values = cookie_values(request, name)
    return values[0] if len(values) == 1 else None


def client_ip(request) -> str:
    identity = (request.context or {}).get("identity") or {}
    return identity.get("sourceIp") or "unknown"
