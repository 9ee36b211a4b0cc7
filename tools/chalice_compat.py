"""Make chalice's local gateway match greedy `{proxy+}` routes the way API Gateway does.

chalice local (and chalice.test.Client, which uses the same matcher) only matches routes segment
by segment, so our catch-all 404 route never fires locally and unknown paths get the gateway's
403 "Missing Authentication Token". API Gateway itself falls back to the greedy resource when no
specific one matches; this patch teaches the local matcher that one rule and nothing else.
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


def install() -> None:
    local.RouteMatcher.match_route = _match_with_greedy_fallback
