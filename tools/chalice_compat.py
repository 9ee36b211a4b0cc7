"""Make chalice's local gateway behave like API Gateway in the two ways the IdP relies on.

1. Greedy `{proxy+}` routes. chalice local (and chalice.test.Client, which uses the same matcher)
   only matches routes segment by segment, so our catch-all 404 route never fires locally and
   unknown paths get the gateway's 403 "Missing Authentication Token". API Gateway falls back to
   the greedy resource when no specific one matches; the patched matcher does too. It is the
   matcher the Lambda entry point uses behind an HTTP API (chalicelib/front_door.py), so a path
   resolves to the same route locally, in the tests and behind either front door.
2. Base path mappings. An issuer with a path (https://login.example.com/tenant) is deployed as a
   custom-domain base path mapping: API Gateway strips "/tenant" before the request reaches the
   Lambda. Locally, when ISSUER has a path, the gateway strips it the same way; requests outside
   it (such as RFC 8414's /.well-known/oauth-authorization-server/tenant) pass unchanged.
"""
from __future__ import annotations

from chalice import local

from chalicelib.front_door import match_route, strip_base_path


def _match_with_greedy_fallback(self, url):
    parsed = local.urlparse(url)
    match = match_route(self.route_urls, parsed.path)
    if match is None:
        raise ValueError(f"No matching route found for: {url}")
    route, captured = match
    return local.MatchResult(route, captured, local.parse_qs(parsed.query, keep_blank_values=True))


_original_handle = local.LocalGateway.handle_request


def _base_path() -> str:
    import os
    from urllib.parse import urlsplit

    return urlsplit(os.environ.get("ISSUER", "")).path.rstrip("/")


def _handle_under_base_path(self, method, path, headers, body):
    # The same stripping as the Lambda entry's behind an HTTP API (chalicelib/front_door.py).
    route_path, separator, query = path.partition("?")
    return _original_handle(self, method, strip_base_path(route_path, _base_path()) + separator + query, headers,
                            body)


def install() -> None:
    local.RouteMatcher.match_route = _match_with_greedy_fallback
    local.LocalGateway.handle_request = _handle_under_base_path
