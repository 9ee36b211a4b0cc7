"""Make chalice's local gateway behave like API Gateway in the two ways the IdP relies on.

1. Greedy `{proxy+}` routes. chalice local (and chalice.test.Client, which uses the same matcher)
   only matches routes segment by segment, so our catch-all 404 route never fires locally and
   unknown paths get the gateway's 403 "Missing Authentication Token". API Gateway falls back to
   the greedy resource when no specific one matches; the patched matcher does too.
2. Base path mappings. An issuer with a path (https://login.example.com/tenant) is deployed as a
   custom-domain base path mapping: API Gateway strips "/tenant" before the request reaches the
   Lambda. Locally, when ISSUER has a path, the gateway strips it the same way; requests outside
   it (such as RFC 8414's /.well-known/oauth-authorization-server/tenant) pass unchanged.
"""
from __future__ import annotations

from chalice import local

_GREEDY = "/{proxy+}"
_original_match = local.RouteMatcher.match_route


def _match_with_greedy_fallback(self, url):
    try:
        return _original_match(self, url)
    except ValueError:
        if _GREEDY not in self.route_urls:
            raise
        path = url.split("?", 1)[0]
        query = local.parse_qs(local.urlparse(url).query, keep_blank_values=True)
        return local.MatchResult(_GREEDY, {"proxy": path.lstrip("/")}, query)


_original_handle = local.LocalGateway.handle_request


def _base_path() -> str:
    import os
    from urllib.parse import urlsplit

    return urlsplit(os.environ.get("ISSUER", "")).path.rstrip("/")


def _handle_under_base_path(self, method, path, headers, body):
    base = _base_path()
    if base and (path == base or path.startswith(base + "/") or path.startswith(base + "?")):
        path = path[len(base):] or "/"
        if path.startswith("?"):
            path = "/" + path
    return _original_handle(self, method, path, headers, body)


def install() -> None:
    local.RouteMatcher.match_route = _match_with_greedy_fallback
    local.LocalGateway.handle_request = _handle_under_base_path
