"""Client ID metadata documents (draft-ietf-oauth-client-id-metadata-document; MCP 2025-11-25).

A client_id that is an https URL names a JSON document describing the client. We fetch it, check
that its `client_id` is exactly that URL, and treat it as a public client (no secret) whose
redirect URIs are the document's. Fetching a URL chosen by a stranger is a server-side request
forgery risk, so the fetcher:
- allows https on port 443 only (plain http and other ports only to loopback in the local stage),
- resolves the host itself and refuses any address that is not globally routable (private,
  loopback, link-local, the cloud metadata service, reserved), then connects to the address it
  checked, so a DNS answer cannot change between check and use,
- follows no redirects, waits at most FETCH_TIMEOUT seconds, reads at most MAX_DOCUMENT_BYTES.
Documents are cached in DynamoDB for the response's max-age, clamped to [MIN_CACHE, MAX_CACHE].
"""
from __future__ import annotations

import http.client
import ipaddress
import json
import re
import socket
import ssl
import threading
from urllib.parse import urlsplit

from ..config import Settings
from ..log import get_logger, now
from ..storage.models import ClientDocumentModel, ClientModel

log = get_logger("idp.client_documents")

MAX_DOCUMENT_BYTES = 5120
FETCH_TIMEOUT = 3.0
MIN_CACHE, MAX_CACHE = 300, 86400
_METADATA_ADDRESSES = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
#: IPv6 ranges that carry an IPv4 address inside (NAT64, 6to4, Teredo, IPv4-compatible): Python
#: calls some "global", but they can reach private IPv4 space through a translator.
_EMBEDDED_IPV4 = [ipaddress.ip_network(n) for n in ("64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "2001::/32",
                                                    "::/96")]


class DocumentError(Exception):
    """The client ID metadata document could not be used; the message says why, and may quote the
    document or the fetch, so it goes to the log, never onto a page."""


def is_document_client_id(client_id: str | None) -> bool:
    return bool(client_id) and client_id.startswith(("https://", "http://"))


def _check_url(url: str, settings: Settings) -> tuple[str, str, int]:
    """The draft's URL rules: https, a path, no fragment, no credentials, no dot segments."""
    if len(url) > 1024 or not url.isascii():
        # ASCII only (hosts in punycode, paths percent-encoded): it also keeps DynamoDB keys small.
        raise DocumentError("the client_id URL must be ASCII and at most 1024 characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise DocumentError("the client_id is not a valid URL") from None
    local_http = parts.scheme == "http" and settings.stage == "local" and parts.hostname in ("127.0.0.1", "localhost")
    if parts.scheme != "https" and not local_http:
        raise DocumentError("a client_id URL must use https")
    if not parts.hostname or parts.username or parts.password or parts.fragment:
        raise DocumentError("a client_id URL needs a host and no credentials or fragment")
    if not parts.path or parts.path == "/" or any(seg in (".", "..") for seg in parts.path.split("/")):
        raise DocumentError("a client_id URL needs a path without dot segments")
    if port not in (None, 443) and settings.stage != "local":
        # Other ports would let the fetcher probe arbitrary services on public hosts.
        raise DocumentError("a client_id URL must use the default https port")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def allowed_address(address: str, settings: Settings) -> bool:
    ip = ipaddress.ip_address(address)
    if getattr(ip, "ipv4_mapped", None):
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return settings.stage == "local"
    if ip.version == 6 and any(ip in network for network in _EMBEDDED_IPV4):
        return False
    return ip.is_global and ip not in _METADATA_ADDRESSES and not ip.is_multicast


def _resolve(host: str, port: int, settings: Settings) -> str:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise DocumentError("the client_id host does not resolve") from None
    addresses = [info[4][0] for info in infos]
    # Every answer must be acceptable: otherwise a round-robin name could slip a private one in.
    if not addresses or not all(allowed_address(a, settings) for a in addresses):
        log.warning("client document host refused", extra={"host": host, "addresses": addresses})
        raise DocumentError("the client_id host is not a public address")
    return addresses[0]


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, address: str, port: int, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self):
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, address: str, port: int, timeout: float):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self):
        sock = socket.create_connection((self._address, self.port), self.timeout)
        # The certificate is checked against the URL's host name, not the address we dialled.
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def _abort(connection) -> None:
    if connection.sock is not None:
        try:
            connection.sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked read; close() would not
        except OSError:
            pass


def fetch(url: str, settings: Settings) -> tuple[dict, int]:
    """GET the document under the SSRF guard; returns (document, seconds to cache it)."""
    scheme, host, port = _check_url(url, settings)
    address = _resolve(host, port, settings)
    connection_class = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(host, address, port, FETCH_TIMEOUT)
    # FETCH_TIMEOUT bounds each socket operation; this bounds the whole fetch, so a server that
    # drips one byte at a time cannot hold the Lambda until its own timeout.
    deadline = threading.Timer(FETCH_TIMEOUT, _abort, args=(connection,))
    deadline.start()
    try:
        target = urlsplit(url)
        connection.request("GET", (target.path or "/") + (f"?{target.query}" if target.query else ""),
                           headers={"Accept": "application/json", "User-Agent": "serverless-idp"})
        response = connection.getresponse()
        if response.status != 200:
            # Redirects included: a document must be served at its own URL.
            raise DocumentError(f"fetching the client_id document answered HTTP {response.status}")
        body = response.read(MAX_DOCUMENT_BYTES + 1)
        cache_control = response.getheader("Cache-Control") or ""
    except (OSError, http.client.HTTPException, ValueError) as exc:
        log.info("client document fetch failed", extra={"url": url, "reason": str(exc)})
        raise DocumentError("the client_id document could not be fetched") from None
    finally:
        deadline.cancel()
        connection.close()
    if len(body) > MAX_DOCUMENT_BYTES:
        raise DocumentError(f"the client_id document is larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise DocumentError("the client_id document is not JSON") from None
    return document, _cache_seconds(cache_control)


def _cache_seconds(cache_control: str) -> int:
    directives = cache_control.lower()
    if "no-store" in directives or "no-cache" in directives:
        return MIN_CACHE
    match = re.search(r"max-age=(\d+)", directives)
    return min(MAX_CACHE, max(MIN_CACHE, int(match.group(1)) if match else MIN_CACHE))


def to_client(url: str, document, settings: Settings) -> ClientModel:
    """Validate a document and express it as an (unsaved) public client."""
    from ..errors import InvalidClientMetadata, InvalidRedirectUri
    from .clients import unverified_scope_ceiling
    from .registration import validate

    if not isinstance(document, dict):
        raise DocumentError("the client_id document must be a JSON object")
    if document.get("client_id") != url:
        raise DocumentError("the document's client_id is not the URL it was fetched from")
    if not isinstance(document.get("client_name"), str) or not document.get("client_name", "").strip():
        raise DocumentError("the client_id document needs a client_name")
    if document.get("token_endpoint_auth_method", "none") != "none":
        raise DocumentError("client_id documents are supported for public clients (auth method none) only")
    try:
        fields = validate({"grant_types": ["authorization_code"], **document, "token_endpoint_auth_method": "none"},
                          unverified_scope_ceiling(settings))
    except (InvalidClientMetadata, InvalidRedirectUri) as exc:
        raise DocumentError(f"the client_id document is invalid: {exc.description}") from None
    fields.pop("client_type")
    return ClientModel(client_id=url, client_type="public", registered_dynamically=True,
                       created_at=now(), updated_at=now(), **fields)


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


def resolve(url: str, settings: Settings) -> ClientModel | None:
    """The client a document URL describes: from the cache while fresh, else fetched. None when
    CLIENT_ID_DOCUMENTS does not allow the URL: checked first, so nothing is read or fetched."""
    if not allowed_by_policy(url, settings):
        return None
    _check_url(url, settings)  # before any lookup: the URL is also the cache's DynamoDB key
    at = now()
    try:
        cached = ClientDocumentModel.get(url, consistent_read=False)
        if cached.expires_at > at:
            return to_client(url, json.loads(cached.document), settings)
    except ClientDocumentModel.DoesNotExist:
        pass
    document, max_age = fetch(url, settings)
    client = to_client(url, document, settings)
    ClientDocumentModel(url=url, document=json.dumps(document), fetched_at=at, expires_at=at + max_age).save()
    log.info("client document fetched", extra={"url": url, "cache_seconds": max_age})
    return client
