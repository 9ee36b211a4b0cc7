"""Requests to URLs that someone else chose, under a guard against server-side request forgery.

Client ID metadata documents (chalicelib/oauth/client_documents.py), upstream identity providers
(chalicelib/federation/) and relying parties' back-channel logout endpoints are all URLs we did not
write ourselves: a stranger (or a careless registration) could point them at the cloud metadata
service, at a private network, or back at us. Every such request goes through `send`, which:
- resolves the host itself and refuses it unless every address is globally reachable according to
  the IANA special-purpose address registries (no private, loopback, link-local, cloud metadata,
  multicast or reserved address, nor an IPv6 form that carries an IPv4 address), then connects to
  the address it checked, so a DNS answer cannot change between check and use; loopback is allowed
  in the local stage only, where test and development servers run;
- follows no redirects, reads at most `max_bytes` (one byte more, so the caller can tell "too big"),
  and finishes within `timeout` seconds all told: DNS, connect, TLS handshake and every read share
  one deadline, enforced by a watchdog that cuts a server dripping one byte at a time;
- checks the certificate against the URL's host (https), whatever address it dialled.
`check_url` holds the URL rules common to these callers (https, a host, no credentials or fragment,
the default port outside the local stage, never this server). Callers add their own (a document
URL needs a path) and their own rate limits, and turn the errors below into theirs; none of them
may show what the target answered, which would make us an oracle for hosts the caller cannot reach.
"""
from __future__ import annotations

import concurrent.futures
import http.client
import ipaddress
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .capabilities import LOOPBACK_HOSTS
from .config import Settings
from .errors import (  # callers say outbound.Refused etc.
    OutboundDidNotResolve as DidNotResolve,
    OutboundError,
    OutboundNotPublic as NotPublic,
    OutboundRefused as Refused,
    OutboundUnreachable as Unreachable,
)
from .log import get_logger

log = get_logger("idp.outbound")

__all__ = ["Answer", "DidNotResolve", "NotPublic", "OutboundError", "Refused", "Unreachable", "allowed_address",
           "check_url", "default_port", "is_this_server", "send"]


@dataclass(frozen=True)
class Answer:
    status: int
    #: At most max_bytes + 1 bytes: more than max_bytes means the body was too big (see `too_big`).
    body: bytes
    #: Response headers, names lower-cased.
    headers: dict = field(default_factory=dict)
    max_bytes: int = 0

    @property
    def too_big(self) -> bool:
        return len(self.body) > self.max_bytes


# The URL ---------------------------------------------------------------------------------------

#: API Gateway's generated names: our API answers on its execute-api name too, with a valid certificate,
#: so a URL there could be us under another name.
_AWS_API_HOST = re.compile(r"[a-z0-9-]+\.execute-api\.[a-z0-9-]+(\.vpce)?\.amazonaws\.com(\.cn)?")


def default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def is_this_server(host: str, port: int, settings: Settings) -> bool:
    """Whether host:port is (or may be) our own endpoint. Requests to ourselves would let one request
    nest a URL inside another (/authorize?client_id=https://us/authorize?client_id=...), each level
    holding a Lambda while it waits for the next."""
    from urllib.parse import urlsplit as split

    issuer = split(settings.issuer)

    def same_name(name: str) -> str:
        name = name.rstrip(".")
        return "loopback" if name in LOOPBACK_HOSTS else name

    if same_name(host) == same_name(issuer.hostname) and port == (issuer.port or default_port(issuer.scheme)):
        return True
    return bool(_AWS_API_HOST.fullmatch(host.rstrip(".")))


def check_url(url: str, settings: Settings, *, what: str = "the URL") -> tuple[str, str, int]:
    """(scheme, host, port) of a URL we may send to, or Refused naming the rule: https (plain http
    only to loopback in the local stage), a host, no credentials or fragment, ASCII and at most 2048
    characters, the default port outside the local stage (other ports would let us probe arbitrary
    services on public hosts), and not this server."""
    if len(url) > 2048 or not url.isascii():
        raise Refused(f"{what} must be ASCII and at most 2048 characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise Refused(f"{what} is not a valid URL") from None
    local_http = parts.scheme == "http" and settings.stage == "local" and parts.hostname in LOOPBACK_HOSTS
    if parts.scheme != "https" and not local_http:
        raise Refused(f"{what} must use https")
    if not parts.hostname or parts.username or parts.password or parts.fragment:
        raise Refused(f"{what} needs a host and no credentials or fragment")
    if port not in (None, 443) and settings.stage != "local":
        raise Refused(f"{what} must use the default https port")
    port = port or default_port(parts.scheme)
    if is_this_server(parts.hostname, port, settings):
        raise Refused(f"{what} must not point at this server")
    return parts.scheme, parts.hostname, port


def max_age(cache_control: str, *, minimum: int, maximum: int) -> int:
    """Seconds to keep a fetched document: its Cache-Control max-age (RFC 9111 §5.2.2.1) clamped to
    [minimum, maximum], the minimum when it says no-store/no-cache or nothing. The floor keeps a
    host that forbids caching from making us fetch on every request; the ceiling lets a withdrawn
    document or a rotated key go out of use within a day whatever the host said."""
    directives = cache_control.lower()
    if "no-store" in directives or "no-cache" in directives:
        return minimum
    match = re.search(r"max-age=(\d+)", directives)
    return min(maximum, max(minimum, int(match.group(1)) if match else minimum))


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


def _remaining(deadline: float) -> float:
    """Seconds left until `deadline` (a time.monotonic() value); TimeoutError once it has passed."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the outbound request's deadline has passed")
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

    threading.Thread(target=lookup, name="outbound-dns", daemon=True).start()
    return answer.result(timeout=_remaining(deadline))


def _resolve(host: str, port: int, settings: Settings, deadline: float) -> str:
    try:
        infos = _getaddrinfo(host, port, deadline)
    except (OSError, UnicodeError) as exc:  # gaierror, TimeoutError, IDNA errors
        log.info("outbound host did not resolve", extra={"host": host, "reason": repr(exc)})
        raise DidNotResolve(host) from None
    addresses = [info[4][0] for info in infos]
    # Every answer must be acceptable: otherwise a round-robin name could slip a private one in.
    if not addresses or not all(allowed_address(a, settings) for a in addresses):
        log.warning("outbound host refused", extra={"host": host, "addresses": addresses})
        raise NotPublic(host)
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


def send(method: str, url: str, settings: Settings, *, max_bytes: int, timeout: float, body: bytes | None = None,
         headers: dict | None = None) -> Answer:
    """One request to `url`, whose rules the caller has checked (check_url, or its own), under the
    guard above. Any status is an Answer; NotPublic, DidNotResolve or Unreachable otherwise."""
    parts = urlsplit(url)
    scheme, host = parts.scheme, parts.hostname
    port = parts.port or default_port(scheme)
    # One deadline for everything: resolving, connecting, the TLS handshake and every read.
    deadline = time.monotonic() + timeout
    address = _resolve(host, port, settings, deadline)
    connection_class = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(host, address, port, deadline)
    # Socket timeouts bound each operation by the time left; this watchdog bounds their sum, so a
    # server that drips one byte at a time cannot hold the Lambda until its own timeout.
    watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), _abort, args=(connection,))
    watchdog.start()
    try:
        connection.request(method, (parts.path or "/") + (f"?{parts.query}" if parts.query else ""), body=body,
                           headers={"User-Agent": "serverless-idp", **(headers or {})})
        connection.time_left()
        response = connection.getresponse()
        connection.time_left()
        content = response.read(max_bytes + 1)
        # The watchdog may have cut the body short: what was still arriving at the deadline is not used.
        _remaining(deadline)
        answer = Answer(response.status, content, {name.lower(): value for name, value in response.getheaders()},
                        max_bytes)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        log.info("outbound request failed", extra={"url": url, "reason": repr(exc)})
        raise Unreachable(url) from None
    finally:
        watchdog.cancel()
        connection.close()
    return answer
