"""Client ID metadata documents (draft-ietf-oauth-client-id-metadata-document; MCP 2025-11-25).

A client_id that is an https URL names a JSON document describing the client. We fetch it, check
that its `client_id` is exactly that URL, and treat it as a public client (no secret) whose
redirect URIs are the document's. Fetching a URL chosen by a stranger is a server-side request
forgery risk, so the fetcher:
- allows https on port 443 only (plain http and other ports only to loopback in the local stage),
  and never our own host, which would have us call our own endpoints in a loop,
- resolves the host itself and refuses it unless every address is globally reachable according to
  the IANA special-purpose address registries (no private, loopback, link-local, cloud metadata,
  multicast or reserved address, nor an IPv6 form that carries an IPv4 address), then connects to
  the address it checked, so a DNS answer cannot change between check and use,
- follows no redirects, reads at most MAX_DOCUMENT_BYTES, and finishes within FETCH_TIMEOUT seconds
  all told: DNS, connect, TLS handshake and every read share one deadline,
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

import concurrent.futures
import http.client
import ipaddress
import json
import re
import socket
import ssl
import threading
import time
from urllib.parse import urlsplit

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

#: API Gateway's generated names: our API answers on its execute-api name too, with a valid certificate,
#: so a document URL there could be us under another name.
_AWS_API_HOST = re.compile(r"[a-z0-9-]+\.execute-api\.[a-z0-9-]+(\.vpce)?\.amazonaws\.com(\.cn)?")


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _is_this_server(host: str, port: int, settings: Settings) -> bool:
    """Whether host:port is (or may be) our own endpoint. Fetching from ourselves would let one request
    nest a document URL inside another (/authorize?client_id=https://us/authorize?client_id=...), each
    level holding a Lambda while it fetches the next."""
    issuer = urlsplit(settings.issuer)

    def same_name(name: str) -> str:
        name = name.rstrip(".")
        return "loopback" if name in LOOPBACK_HOSTS else name

    if same_name(host) == same_name(issuer.hostname) and port == (issuer.port or _default_port(issuer.scheme)):
        return True
    return bool(_AWS_API_HOST.fullmatch(host.rstrip(".")))


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
    port = port or _default_port(parts.scheme)
    if _is_this_server(parts.hostname, port, settings):
        raise DocumentError("a client_id URL must not point at this server")
    return parts.scheme, parts.hostname, port


# The addresses ---------------------------------------------------------------------------------

def _networks(*entries: tuple[str, bool | None]) -> tuple:
    return tuple((ipaddress.ip_network(prefix), reachable) for prefix, reachable in entries)


#: The IANA IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890, updated by RFC 8190), every
#: entry with its "Globally Reachable" column: True, False, or None where the cell is blank or N/A.
#: Only True lets us connect (when in doubt, refuse); the most specific entry containing an address
#: decides, so the reachable anycast /32s inside 192.0.0.0/24 and 2001::/23 stay reachable.
SPECIAL_PURPOSE = _networks(
    # IPv4 (https://www.iana.org/assignments/iana-ipv4-special-registry)
    ("0.0.0.0/8", False),  # "This network": RFC 791 §3.2
    ("0.0.0.0/32", False),  # "This host on this network": RFC 1122 §3.2.1.3
    ("10.0.0.0/8", False),  # Private-Use: RFC 1918
    ("100.64.0.0/10", False),  # Shared Address Space (carrier-grade NAT): RFC 6598
    ("127.0.0.0/8", False),  # Loopback: RFC 1122 §3.2.1.3
    ("169.254.0.0/16", False),  # Link Local: RFC 3927
    ("172.16.0.0/12", False),  # Private-Use: RFC 1918
    ("192.0.0.0/24", False),  # IETF Protocol Assignments: RFC 6890 §2.1
    ("192.0.0.0/29", False),  # IPv4 Service Continuity Prefix: RFC 7335
    ("192.0.0.8/32", False),  # IPv4 dummy address: RFC 7600
    ("192.0.0.9/32", True),  # Port Control Protocol Anycast: RFC 7723
    ("192.0.0.10/32", True),  # Traversal Using Relays around NAT Anycast: RFC 8155
    ("192.0.0.170/32", False),  # NAT64/DNS64 Discovery: RFC 8880, RFC 7050 §2.2
    ("192.0.0.171/32", False),  # NAT64/DNS64 Discovery: RFC 8880, RFC 7050 §2.2
    ("192.0.2.0/24", False),  # Documentation (TEST-NET-1): RFC 5737
    ("192.31.196.0/24", True),  # AS112-v4: RFC 7535
    ("192.52.193.0/24", True),  # AMT: RFC 7450
    ("192.88.99.0/24", None),  # Deprecated (6to4 Relay Anycast): RFC 7526; terminated, cells blank
    ("192.88.99.2/32", False),  # 6a44-relay anycast address: RFC 6751
    ("192.168.0.0/16", False),  # Private-Use: RFC 1918
    ("192.175.48.0/24", True),  # Direct Delegation AS112 Service: RFC 7534
    ("198.18.0.0/15", False),  # Benchmarking: RFC 2544
    ("198.51.100.0/24", False),  # Documentation (TEST-NET-2): RFC 5737
    ("203.0.113.0/24", False),  # Documentation (TEST-NET-3): RFC 5737
    ("240.0.0.0/4", False),  # Reserved: RFC 1112 §4
    ("255.255.255.255/32", False),  # Limited Broadcast: RFC 8190, RFC 919 §7
    # IPv6 (https://www.iana.org/assignments/iana-ipv6-special-registry)
    ("::1/128", False),  # Loopback Address: RFC 4291
    ("::/128", False),  # Unspecified Address: RFC 4291
    ("::ffff:0:0/96", False),  # IPv4-mapped Address: RFC 4291
    ("64:ff9b::/96", True),  # IPv4-IPv6 Translation (NAT64 well-known prefix): RFC 6052; see EMBEDDED_IPV4
    ("64:ff9b:1::/48", False),  # IPv4-IPv6 Translation (local-use NAT64): RFC 8215
    ("100::/64", False),  # Discard-Only Address Block: RFC 6666
    ("100:0:0:1::/64", False),  # Dummy IPv6 Prefix: RFC 9780
    ("2001::/23", False),  # IETF Protocol Assignments: RFC 2928
    ("2001::/32", None),  # TEREDO: RFC 4380, RFC 8190; N/A
    ("2001:1::1/128", True),  # Port Control Protocol Anycast: RFC 7723
    ("2001:1::2/128", True),  # Traversal Using Relays around NAT Anycast: RFC 8155
    ("2001:1::3/128", True),  # DNS-SD Service Registration Protocol Anycast: RFC 9665
    ("2001:2::/48", False),  # Benchmarking: RFC 5180, RFC Errata 1752
    ("2001:3::/32", True),  # AMT: RFC 7450
    ("2001:4:112::/48", True),  # AS112-v6: RFC 7535
    ("2001:10::/28", None),  # Deprecated (previously ORCHID): RFC 4843; terminated, cells blank
    ("2001:20::/28", True),  # ORCHIDv2: RFC 7343
    ("2001:30::/28", True),  # Drone Remote ID Protocol Entity Tags (DETs) Prefix: RFC 9374
    ("2001:db8::/32", False),  # Documentation: RFC 3849
    ("2002::/16", None),  # 6to4: RFC 3056; N/A
    ("2620:4f:8000::/48", True),  # Direct Delegation AS112 Service: RFC 7534
    ("3fff::/20", False),  # Documentation: RFC 9637
    ("5f00::/16", False),  # Segment Routing (SRv6) SIDs: RFC 9602
    ("fc00::/7", False),  # Unique-Local: RFC 4193, RFC 8190
    ("fe80::/10", False),  # Link-Local Unicast: RFC 4291
)

#: IPv6 forms that carry an IPv4 address: a translator or tunnel can turn them into any IPv4 destination,
#: private ones included, so none is fetched from whatever the registry says of the prefix itself.
EMBEDDED_IPV4 = tuple(ipaddress.ip_network(prefix) for prefix in (
    "::/96",  # IPv4-compatible (deprecated): RFC 4291 §2.5.5.1
    "::ffff:0:0/96",  # IPv4-mapped: RFC 4291 §2.5.5.2
    "::ffff:0:0:0/96",  # IPv4-translated (SIIT): RFC 2765 §2.1
    "64:ff9b::/96",  # NAT64 well-known prefix: RFC 6052 §2.1
    "64:ff9b:1::/48",  # NAT64 local-use prefix: RFC 8215
    "2001::/32",  # Teredo: RFC 4380 §4
    "2002::/16",  # 6to4: RFC 3056 §2
))

#: Not in the special-purpose registries, and never a document host.
ALSO_REFUSED = tuple(ipaddress.ip_network(prefix) for prefix in (
    "224.0.0.0/4",  # IPv4 multicast: RFC 5771
    "ff00::/8",  # IPv6 multicast: RFC 4291 §2.7
    "fec0::/10",  # IPv6 site-local, deprecated but still routed internally by old stacks: RFC 3879
    # Cloud metadata services (already inside link-local, shared or unique-local space; named here so
    # no future exception can reopen them): AWS IMDS, ECS task metadata, Alibaba Cloud.
    "169.254.169.254/32", "169.254.170.2/32", "fd00:ec2::254/128", "100.100.100.200/32",
))

#: IANA's IPv6 Address Space registry allocates only 2000::/3 as global unicast (RFC 4291 §2.4);
#: the rest is reserved, so an address there is refused rather than guessed at.
_IPV6_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")


def allowed_address(address: str, settings: Settings) -> bool:
    """Whether the fetcher may connect to `address`: globally reachable per the tables above, or
    loopback in the local stage (where test and development document servers run)."""
    ip = ipaddress.ip_address(address)
    if ip.is_loopback and settings.stage == "local":
        return True
    if any(ip in network for network in EMBEDDED_IPV4 + ALSO_REFUSED):
        return False
    special = [(network, reachable) for network, reachable in SPECIAL_PURPOSE if ip in network]
    if special:
        return max(special, key=lambda entry: entry[0].prefixlen)[1] is True
    return ip.version == 4 or ip in _IPV6_GLOBAL_UNICAST


# The fetch -------------------------------------------------------------------------------------

def _remaining(deadline: float) -> float:
    """Seconds left until `deadline` (a time.monotonic() value); TimeoutError once it has passed."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the client document deadline has passed")
    return left


def _getaddrinfo(host: str, port: int, deadline: float) -> list:
    """socket.getaddrinfo, abandoned at the deadline. It takes no timeout and cannot be interrupted,
    so it runs on a daemon thread that we stop waiting for; a hung lookup ends with the resolver's
    own timeout, holding only its thread."""
    answer: concurrent.futures.Future = concurrent.futures.Future()

    def lookup():
        try:
            answer.set_result(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except BaseException as exc:  # handed to the waiting caller, which decides
            answer.set_exception(exc)

    threading.Thread(target=lookup, name="client-document-dns", daemon=True).start()
    return answer.result(timeout=_remaining(deadline))


def _resolve(host: str, port: int, settings: Settings, deadline: float) -> str:
    try:
        infos = _getaddrinfo(host, port, deadline)
    except (OSError, UnicodeError) as exc:  # gaierror, TimeoutError, IDNA errors
        log.info("client document host did not resolve", extra={"host": host, "reason": repr(exc)})
        raise DocumentUnavailable(NOT_PUBLIC) from None
    addresses = [info[4][0] for info in infos]
    # Every answer must be acceptable: otherwise a round-robin name could slip a private one in.
    if not addresses or not all(allowed_address(a, settings) for a in addresses):
        log.warning("client document host refused", extra={"host": host, "addresses": addresses})
        raise DocumentError(NOT_PUBLIC)
    return addresses[0]


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Dials the address we checked, not a fresh DNS answer, within the fetch's deadline."""

    def __init__(self, host: str, address: str, port: int, deadline: float, **kwargs):
        super().__init__(host, port, **kwargs)
        self._address, self._deadline = address, deadline
        # http.client forgets self.sock once a response says the connection will close, while the
        # body is still to be read from it: the deadline keeps its own hold on the socket.
        self.live_socket = None

    def connect(self):
        self.sock = self.live_socket = socket.create_connection((self._address, self.port),
                                                                _remaining(self._deadline))

    def time_left(self) -> None:
        """Before each read: the socket may wait only for what is left of the deadline."""
        left = _remaining(self._deadline)
        if self.live_socket.fileno() != -1:  # http.client closes it as soon as a body is complete
            self.live_socket.settimeout(left)


class _PinnedHTTPSConnection(_PinnedHTTPConnection, http.client.HTTPSConnection):
    def __init__(self, host: str, address: str, port: int, deadline: float):
        super().__init__(host, address, port, deadline, context=ssl.create_default_context())

    def connect(self):
        super().connect()  # the watchdog can shut this socket down during the handshake
        # The timeout covers the whole handshake, so a server that never finishes it (or drips it) is
        # cut at the deadline. The certificate is checked against the URL's host, not the address dialled.
        self.time_left()
        self.sock = self.live_socket = self._context.wrap_socket(self.sock, server_hostname=self.host)


def _abort(connection: _PinnedHTTPConnection) -> None:
    if connection.live_socket is not None:
        try:
            connection.live_socket.shutdown(socket.SHUT_RDWR)  # wakes a blocked read; close() would not
        except OSError:
            pass


def _get(connection: _PinnedHTTPConnection, target, deadline: float) -> tuple[int, bytes, str]:
    """GET the target: (status, at most MAX_DOCUMENT_BYTES + 1 bytes of body, Cache-Control)."""
    connection.request("GET", (target.path or "/") + (f"?{target.query}" if target.query else ""),
                       headers={"Accept": "application/json", "User-Agent": "serverless-idp"})
    connection.time_left()
    response = connection.getresponse()
    if response.status != 200:  # redirects included: a document must be served at its own URL
        return response.status, b"", ""
    connection.time_left()
    body = response.read(MAX_DOCUMENT_BYTES + 1)
    # The watchdog may have cut the body short: what was still arriving at the deadline is not used.
    _remaining(deadline)
    return response.status, body, response.getheader("Cache-Control") or ""


def fetch(url: str, settings: Settings) -> tuple[dict, int]:
    """GET the document under the SSRF guard; returns (document, seconds to cache it)."""
    scheme, host, port = _check_url(url, settings)
    # One deadline for everything: resolving, connecting, the TLS handshake and every read.
    deadline = time.monotonic() + FETCH_TIMEOUT
    address = _resolve(host, port, settings, deadline)
    connection_class = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(host, address, port, deadline)
    # Socket timeouts bound each operation by the time left; this watchdog bounds their sum, so a
    # server that drips one byte at a time cannot hold the Lambda until its own timeout.
    watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), _abort, args=(connection,))
    watchdog.start()
    try:
        status, body, cache_control = _get(connection, urlsplit(url), deadline)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        log.info("client document fetch failed", extra={"url": url, "reason": repr(exc)})
        raise DocumentUnavailable(UNFETCHABLE) from None
    finally:
        watchdog.cancel()
        connection.close()
    if status >= 500 or status == 429:  # the host is failing or busy, not disowning the document
        log.info("client document host unavailable", extra={"url": url, "status": status})
        raise DocumentUnavailable(UNFETCHABLE)
    if status != 200 or len(body) > MAX_DOCUMENT_BYTES:
        log.info("client document refused", extra={"url": url, "status": status, "bytes": len(body)})
        raise DocumentError(UNFETCHABLE)
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        log.info("client document is not JSON", extra={"url": url})
        raise DocumentError(UNFETCHABLE) from None
    return document, _cache_seconds(cache_control)


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
    directives = cache_control.lower()
    if "no-store" in directives or "no-cache" in directives:
        return MIN_CACHE
    match = re.search(r"max-age=(\d+)", directives)
    return min(MAX_CACHE, max(MIN_CACHE, int(match.group(1)) if match else MIN_CACHE))


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
