"""Client ID metadata documents (draft-ietf-oauth-client-id-metadata-document; MCP 2025-11-25).

A client_id that is an https URL names a JSON document describing the client. We fetch it, check
that its `client_id` is exactly that URL, and treat it as a public client (no secret) whose
redirect URIs are the document's. Fetching a URL chosen by a stranger is a server-side request
forgery risk, so the fetch goes through chalicelib/outbound.py (public addresses only, pinned to the
address checked, no redirects, one deadline for DNS, connect, TLS and reads) and, on top:
- allows https on port 443 only (plain http and other ports only to loopback in the local stage),
  and never our own host, which would have us call our own endpoints in a loop,
- reads at most MAX_DOCUMENT_BYTES and finishes within FETCH_TIMEOUT seconds all told,
- fetches at most CLIENT_DOCUMENT_FETCHES_PER_IP documents a minute for one client address and
  CLIENT_DOCUMENT_FETCHES_PER_HOST from one host, so it cannot be used to send traffic elsewhere,
- says only which rule failed, never what the target answered (its status, size or body go to the
  log): the error must not turn us into an oracle for hosts the caller cannot reach itself.
Documents are cached in DynamoDB for the response's max-age, clamped to [MIN_CACHE, MAX_CACHE].

A cached copy past its lifetime is refreshed; if the refresh cannot happen (the fetch budget is spent,
the host is unreachable, times out or answers 5xx/429: DocumentUnavailable), the stale copy is served
for up to MAX_STALE more seconds, retried at most every STALE_RETRY seconds, and logged. Otherwise
anyone could lock a document client out by spending its host's fetch budget on junk URLs just as its
copy expires. What the host deliberately answers is final: a 404 or 410 (the client withdrew its
document), any other non-200, or a document that is now invalid ends the client at once and drops the
copy. A refresh of a URL we hold a copy of is also counted apart from first fetches, so junk URLs
(which never get cached) cannot spend the budget that keeps a host's real clients fresh.

An operator blocks a document client with `idp-admin clients disable URL`
(chalicelib/storage/client_documents.py): the block lives in the same item, so it costs no extra read.
"""
from __future__ import annotations

import json
from urllib.parse import urlsplit

from .. import outbound
from ..capabilities import LOOPBACK_HOSTS
from ..config import Settings
from ..errors import DocumentError, DocumentUnavailable
from ..log import get_logger, now
from ..storage import client_documents as cache
from ..storage.clients import Client

log = get_logger("idp.client_documents")

MAX_DOCUMENT_BYTES = 5120
FETCH_TIMEOUT = 3.0
MIN_CACHE, MAX_CACHE = 300, 86400
#: Fetch rate limits count per minute (CLIENT_DOCUMENT_FETCHES_PER_IP / _PER_HOST).
FETCH_RATE_WINDOW = 60
#: How long past its lifetime a cached copy may stand in for a refresh that could not happen, and how
#: often such a refresh is tried again meanwhile. One day: long enough to ride out an outage or a
#: fetch-budget attack, short enough that a client that lost its host does not live on for long.
MAX_STALE, STALE_RETRY = 86400, FETCH_RATE_WINDOW

UNFETCHABLE = (f"the client_id document could not be fetched: its URL must answer HTTP 200 with at most "
               f"{MAX_DOCUMENT_BYTES} bytes of JSON, without redirects, within {FETCH_TIMEOUT:g} seconds")
NOT_PUBLIC = "the client_id host is not a public address (or does not resolve)"
TOO_MANY_FETCHES = "too many client_id documents were fetched recently; try again in a minute"


def is_document_client_id(client_id: str | None) -> bool:
    return bool(client_id) and client_id.startswith(("https://", "http://"))


# The URL ---------------------------------------------------------------------------------------

def _check_url(url: str, settings: Settings) -> tuple[str, str, int]:
    """The draft's URL rules: https, a path, no fragment, no credentials, no dot segments; and not us."""
    if len(url) > 1024 or not url.isascii():
        # ASCII only (hosts in punycode, paths percent-encoded): it also keeps DynamoDB keys small.
        raise DocumentError("the client_id URL must be ASCII and at most 1024 characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise DocumentError("the client_id is not a valid URL") from None
    local_http = parts.scheme == "http" and settings.stage == "local" and parts.hostname in LOOPBACK_HOSTS
    if parts.scheme != "https" and not local_http:
        raise DocumentError("a client_id URL must use https")
    if not parts.hostname or parts.username or parts.password or parts.fragment:
        raise DocumentError("a client_id URL needs a host and no credentials or fragment")
    if not parts.path or parts.path == "/" or any(seg in (".", "..") for seg in parts.path.split("/")):
        raise DocumentError("a client_id URL needs a path without dot segments")
    if port not in (None, 443) and settings.stage != "local":
        # Other ports would let the fetcher probe arbitrary services on public hosts.
        raise DocumentError("a client_id URL must use the default https port")
    port = port or outbound.default_port(parts.scheme)
    if outbound.is_this_server(parts.hostname, port, settings):
        raise DocumentError("a client_id URL must not point at this server")
    return parts.scheme, parts.hostname, port


def fetch(url: str, settings: Settings) -> tuple[dict, int]:
    """GET the document under the SSRF guard (chalicelib/outbound.py); returns (document, seconds to
    cache it)."""
    _check_url(url, settings)
    try:
        answer = outbound.send("GET", url, settings, max_bytes=MAX_DOCUMENT_BYTES, timeout=FETCH_TIMEOUT,
                               headers={"Accept": "application/json"})
    except outbound.NotPublic:
        raise DocumentError(NOT_PUBLIC) from None
    except outbound.DidNotResolve:
        raise DocumentUnavailable(NOT_PUBLIC) from None
    except outbound.OutboundError:
        raise DocumentUnavailable(UNFETCHABLE) from None
    status, body = answer.status, answer.body
    if status >= 500 or status == 429:  # the host is failing or busy, not disowning the document
        log.info("client document host unavailable", extra={"url": url, "status": status})
        raise DocumentUnavailable(UNFETCHABLE)
    # Redirects included: a document must be served at its own URL.
    if status != 200 or answer.too_big:
        log.info("client document refused", extra={"url": url, "status": status, "bytes": len(body)})
        raise DocumentError(UNFETCHABLE)
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        log.info("client document is not JSON", extra={"url": url})
        raise DocumentError(UNFETCHABLE) from None
    return document, _cache_seconds(answer.headers.get("cache-control", ""))


def _limit_fetches(url: str, source_ip: str | None, settings: Settings, *, refresh: bool = False) -> None:
    """Count a real fetch (never a cache hit) against the caller's address and the target host; refuse
    past either limit, before any DNS lookup or connection. Without this, anyone could make us send
    requests wherever they like, as fast as they like. Refreshes of URLs we hold a copy of have a
    host budget of their own: first fetches of URLs nobody has seen (junk that never gets cached)
    cannot spend it."""
    from . import throttle

    host = urlsplit(url).hostname.rstrip(".")
    subject = throttle.address_key(source_ip or "unknown")
    for key, limit in ((throttle.window_key("docfetch-ip", subject, FETCH_RATE_WINDOW),
                        settings.client_document_fetches_per_ip),
                       (throttle.window_key("docrefresh-host" if refresh else "docfetch-host", host,
                                            FETCH_RATE_WINDOW),
                        settings.client_document_fetches_per_host)):
        if throttle.add(key, FETCH_RATE_WINDOW) > limit:
            log.warning("client document fetches throttled", extra={"key": key, "url": url})
            raise DocumentUnavailable(TOO_MANY_FETCHES)


def _cache_seconds(cache_control: str) -> int:
    return outbound.max_age(cache_control, minimum=MIN_CACHE, maximum=MAX_CACHE)


def to_client(url: str, document, settings: Settings) -> Client:
    """Validate a document and express it as an (unsaved) public client."""
    from ..errors import InvalidClientMetadata
    from .client_metadata import validate_registration
    from .clients import unverified_scope_ceiling

    if not isinstance(document, dict):
        raise DocumentError("the client_id document must be a JSON object")
    if document.get("client_id") != url:
        raise DocumentError("the document's client_id is not the URL it was fetched from")
    if document.get("client_name") is None:  # its value is judged by the shared rules below
        raise DocumentError("the client_id document needs a client_name")
    if document.get("token_endpoint_auth_method", "none") != "none":
        raise DocumentError("client_id documents are supported for public clients (auth method none) only")
    try:
        fields = validate_registration(
            {"grant_types": ["authorization_code"], **document, "token_endpoint_auth_method": "none"},
            unverified_scope_ceiling(settings))
    except InvalidClientMetadata as exc:  # InvalidRedirectUri too
        raise DocumentError(f"the client_id document is invalid: {exc.description}") from None
    fields.pop("client_type")
    return Client(client_id=url, client_type="public", registered_dynamically=True, created_at=now(),
                  updated_at=now(), **{name: tuple(value) if isinstance(value, list) else value
                                       for name, value in fields.items()})


def allowed_by_policy(url: str, settings: Settings) -> bool:
    """CLIENT_ID_DOCUMENTS: "any", "off", or an allow-list of exact hosts (no subdomains: a listed
    host does not vouch for every name under it). A document client is self-registered, so the
    default follows REGISTRATION_MODE: with registration closed, a URL must not open it again."""
    if settings.client_id_documents in ("any", "off"):
        return settings.client_id_documents == "any"
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return False
    return host in settings.client_id_document_hosts


def resolve(url: str, settings: Settings, *, source_ip: str | None = None) -> Client | None:
    """The client a document URL describes: from the cache while fresh, else fetched (or, when the
    fetch cannot happen, from a stale copy: see the module docstring). None when CLIENT_ID_DOCUMENTS
    does not allow the URL (checked first, so nothing is read or fetched) or an operator blocked it
    (known from the one read that also finds the cached copy, before any fetch)."""
    if not allowed_by_policy(url, settings):
        return None
    _check_url(url, settings)  # before any lookup: the URL is also the cache's DynamoDB key
    at = now()
    cached = cache.cached_document(url)
    if cached is not None and cached.blocked:
        log.info("blocked document client refused", extra={"url": url})
        return None
    copy = cached if cached is not None and cached.document is not None else None
    if copy is not None and _fresh_until(copy) > at:
        return to_client(url, json.loads(copy.document), settings)
    try:
        _limit_fetches(url, source_ip, settings, refresh=copy is not None)  # source_ip: the requester's
        document, max_age = fetch(url, settings)
        client = to_client(url, document, settings)
    except DocumentUnavailable as exc:
        if copy is None or (copy.expires_at or 0) <= at:
            raise
        return _serve_stale(url, copy, at, exc, settings)
    except DocumentError:
        if copy is not None:
            cache.forget_document(copy)  # withdrawn, refused or now invalid: no later outage may bring it back
        raise
    if not cache.save_document(url, json.dumps(document), fetched_at=at, fresh_until=at + max_age,
                               keep_until=at + max_age + MAX_STALE):
        log.warning("document client blocked while its document was fetched", extra={"url": url})
        return None
    log.info("client document fetched", extra={"url": url, "cache_seconds": max_age})
    return client


def _fresh_until(copy) -> int:
    # Copies cached before fresh_until existed are fresh until expires_at and have no stale time.
    return copy.fresh_until if copy.fresh_until is not None else (copy.expires_at or 0)


def _serve_stale(url: str, copy, at: int, reason: DocumentError, settings: Settings) -> Client:
    """The cached copy, past its lifetime, while a refresh cannot happen; bounded by its expires_at
    (MAX_STALE past the lifetime its last successful fetch gave it)."""
    client = to_client(url, json.loads(copy.document), settings)
    log.warning("stale client document served", extra={
        "url": url, "reason": str(reason), "stale_seconds": at - _fresh_until(copy),
        "served_until": copy.expires_at})
    cache.postpone_refresh(copy, min(at + STALE_RETRY, copy.expires_at))
    return client
