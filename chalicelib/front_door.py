"""The Lambda entry point behind either API Gateway front door: REST API or HTTP API (payload 1.0).

Chalice dispatches on the route *pattern* API Gateway matched, `requestContext.resourcePath`
("/token", "/clients/{client_id}"), and takes the captured values from `pathParameters`. A REST API
has one resource per Chalice route, so its events name the pattern. An HTTP API has one `$default`
route for everything (docs/deploy.md, "Front door"): its payload-1.0 events have the REST proxy
shape (headers, multi-value query parameters, body) but name "$default" (or "/{proxy+}") as the
resource and only the real path in `path`. This module finds the Chalice route for that path with
the matcher API Gateway's REST API itself would use (specific routes first, the greedy "/{proxy+}"
last) and rewrites those two fields; nothing else of the event changes, so every endpoint behaves
the same behind both front doors (tests/routes runs each test with both event shapes).

The matcher is also what the local gateway uses (tools/chalice_compat.py), so `make run`, the
tests and Lambda resolve a path the same way.
"""
from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from chalice import Chalice

#: The catch-all route (chalicelib/blueprints/fallback.py): API Gateway falls back to it when no
#: specific resource matches.
GREEDY = "/{proxy+}"
#: Payload format 1.0 of an HTTP API says so in the event; REST API events carry no "version".
HTTP_API_PAYLOAD = "1.0"


def match_route(routes: Iterable[str], path: str) -> tuple[str, dict[str, str]] | None:
    """The route pattern `path` (no query string) resolves to and its captured parameters, or None.

    As API Gateway (and chalice local): a trailing slash is dropped except on "/"; literal segments
    win over "{captures}" (patterns are tried in sorted order, "{" sorting after letters); a capture
    takes exactly one segment; when nothing matches, GREEDY (if defined) takes the whole path.
    """
    if path != "/" and path.endswith("/"):
        path = path[:-1]
    parts = path.split("/")
    for route in sorted(routes):
        pattern = route.split("/")
        if len(pattern) != len(parts) or route == GREEDY:
            continue
        captured = {}
        for part, expected in zip(parts, pattern):
            if expected.startswith("{") and expected.endswith("}"):
                captured[expected[1:-1]] = part
            elif part != expected:
                break
        else:
            return route, captured
    if GREEDY in routes:
        return GREEDY, {"proxy": path.lstrip("/")}
    return None


def strip_base_path(path: str, base_path: str) -> str:
    """The path below the custom domain's API mapping key (ISSUER's path, e.g. "/tenant"): an HTTP
    API passes the request path with the mapping key in it, a REST API strips it."""
    base = base_path.rstrip("/")
    if base and (path == base or path.startswith(base + "/")):
        return path[len(base):] or "/"
    return path


def to_chalice_event(event: dict, routes: Iterable[str], base_path: str = "") -> dict:
    """An HTTP API payload-1.0 event rewritten to name its Chalice route; any other event unchanged.

    A path no route matches (and no greedy route) keeps its resource: Chalice then answers as it
    does for an unknown resource, which the catch-all route prevents in this app.
    """
    if event.get("version") != HTTP_API_PAYLOAD:
        return event
    path = strip_base_path(event.get("path") or "/", base_path)
    match = match_route(routes, path)
    if match is None:
        return event
    route, captured = match
    return {**event, "resource": route, "pathParameters": captured or None,
            "requestContext": {**event.get("requestContext", {}), "resourcePath": route}}


class FrontDoorChalice(Chalice):
    """Chalice, taking events from either front door (see the module docstring)."""

    def __call__(self, event, context):
        return super().__call__(to_chalice_event(event, self.routes, _issuer_path()), context)


def _issuer_path() -> str:
    from chalicelib.config import settings

    return urlsplit(settings().issuer).path
