"""HTTP toward an upstream identity provider, every request through the SSRF guard (chalicelib/outbound.py).

The upstream's URLs come from an operator's connection and from the upstream's own discovery document,
so each is checked (outbound.check_url) and sent (outbound.send) like any URL someone else chose. What
comes back is bounded: MAX_BYTES per answer, TIMEOUT per request. Outcomes map onto the three upstream
errors of chalicelib/errors.py: a network fault, a 5xx or a 429 is UpstreamUnavailable (503, try again);
a URL the guard refuses, a 4xx, an oversized or non-JSON answer is UpstreamFailed.

Discovery documents and JWK Sets are cached per container (`documents`), for their Cache-Control
max-age clamped to [MIN_CACHE, MAX_CACHE] (outbound.max_age): one sign-in through an upstream then
costs its token request (and userinfo) only, not two more round trips.
"""
from __future__ import annotations

import json

from .. import caches, outbound
from ..config import Settings
from ..errors import UpstreamFailed, UpstreamUnavailable, echo
from ..log import get_logger, now
from ..pages import messages

log = get_logger("idp.federation")

#: The biggest answer read from an upstream (discovery, JWKS, token, userinfo, GitHub's API): real ones
#: are a few KiB; a bigger one is a fault or an attack on our memory.
MAX_BYTES = 64 * 1024
#: Seconds per request, DNS to last byte: the user's browser waits for the callback.
TIMEOUT = 3.0
MIN_CACHE, MAX_CACHE = 300, 86400

#: url -> (fresh until, parsed JSON): discovery documents and JWK Sets.
documents: dict[str, tuple[int, dict]] = {}
caches.register("federation.documents", documents.clear)


def failed(reason: str, detail: str = "") -> UpstreamFailed:
    return UpstreamFailed(reason, messages.MESSAGES[messages.UPSTREAM_FAILED].body, detail=detail)


def unavailable(reason: str, detail: str = "") -> UpstreamUnavailable:
    return UpstreamUnavailable(reason, messages.MESSAGES[messages.UPSTREAM_UNAVAILABLE].body, detail=detail)


def send(method: str, url: str, settings: Settings, *, what: str, body: bytes | None = None,
         headers: dict | None = None) -> outbound.Answer:
    """One request to the upstream. `what` names it in failures ("token_endpoint", "jwks", ...)."""
    try:
        outbound.check_url(url, settings, what=what)
        answer = outbound.send(method, url, settings, max_bytes=MAX_BYTES, timeout=TIMEOUT, body=body,
                               headers=headers)
    except outbound.Refused as exc:  # NotPublic included: a private address is the operator's to fix
        raise failed("outbound", f"{what}: {exc}") from None
    except outbound.OutboundError as exc:
        raise unavailable("network", f"{what}: {exc!r}") from None
    if answer.status >= 500 or answer.status == 429:
        raise unavailable(what, f"HTTP {answer.status}")
    if answer.too_big:
        raise failed("too_big", f"{what}: more than {MAX_BYTES} bytes")
    return answer


def parse_json(answer: outbound.Answer, *, what: str, expect: type = dict):
    """The answer's JSON (an object unless `expect` says otherwise), or UpstreamFailed naming `what`
    (with the upstream's `error` code, cut short, in the log's detail when it sent one)."""
    try:
        document = json.loads(answer.body)
    except (ValueError, UnicodeDecodeError):
        document = None
    if answer.status != 200:
        code = document.get("error", "") if isinstance(document, dict) else ""
        raise failed(what, f"HTTP {answer.status} error={echo(code)}")
    if not isinstance(document, expect):
        raise failed(what, f"not a JSON {expect.__name__}")
    return document


def get_json(url: str, settings: Settings, *, what: str, headers: dict | None = None, expect: type = dict):
    answer = send("GET", url, settings, what=what, headers={"Accept": "application/json", **(headers or {})})
    return parse_json(answer, what=what, expect=expect)


def cached_json(url: str, settings: Settings, *, what: str, refresh: bool = False) -> dict:
    """A discovery document or JWK Set: from this container's cache while fresh (unless `refresh`),
    else fetched and kept for its max-age."""
    hit = documents.get(url)
    if hit is not None and not refresh and now() < hit[0]:
        return hit[1]
    answer = send("GET", url, settings, what=what, headers={"Accept": "application/json"})
    document = parse_json(answer, what=what)
    seconds = outbound.max_age(answer.headers.get("cache-control", ""), minimum=MIN_CACHE, maximum=MAX_CACHE)
    documents[url] = (now() + seconds, document)
    return document
