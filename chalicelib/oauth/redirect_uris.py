"""Redirect URIs: which may be registered, and how a request's is matched against them.

Every way a client comes to exist (the admin CLI, RFC 7591 registration, a client ID metadata
document) registers its redirect URIs through `check_all`, so one rule set decides everywhere:
- an absolute ASCII URI, at most MAX_LENGTH characters, without fragment (RFC 6749 §3.1.2), wildcard,
  whitespace or control characters: it is compared by exact string match (OAuth 2.1 §2.3.1), so a
  pattern or a character a browser would rewrite can never be what a request sends;
- no credentials (user:password@): RFC 3986 §3.2.1 deprecates them, and a browser shows the part
  before "@" as if it were the host (https://app.example@evil.example/cb);
- https; plain http only on a loopback host (RFC 8252 §7.3), where nothing leaves the device; or a
  private-use scheme based on a reverse domain name (com.example.app:/cb, RFC 8252 §7.1), which is
  how native apps receive the response; a dot-less scheme (javascript:, data:, myapp:) is not one.

Matching is exact string comparison (OAuth 2.1 §2.3.1, RFC 9700 §4.1.3), except that a loopback IP
redirect URI may use any port (RFC 8252 §7.3), because native apps bind an ephemeral one.
"""
from __future__ import annotations

import re
import unicodedata
from urllib.parse import urlsplit

from ..capabilities import LOOPBACK_HOSTS, LOOPBACK_IPS
from ..errors import InvalidRedirectUri, echo

#: Per client; enough for a few environments, few enough for the consent page and the item size.
MAX_REDIRECT_URIS = 10
#: The authorization endpoint refuses longer parameters (MAX_PARAM_LENGTH), so a longer URI could never be used.
MAX_LENGTH = 2048
# RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")


def check_all(uris: list[str], *, required: bool) -> list[str]:
    """The redirect URIs a client registers, de-duplicated in order. `required`: the client uses
    the authorization_code grant, which needs at least one (RFC 6749 §3.1.2.2)."""
    uris = list(dict.fromkeys(uris))
    if required and not uris:
        raise InvalidRedirectUri("at least one redirect URI is required for the authorization_code grant")
    if len(uris) > MAX_REDIRECT_URIS:
        raise InvalidRedirectUri(f"at most {MAX_REDIRECT_URIS} redirect URIs are allowed")
    for uri in uris:
        check(uri)
    return uris


def check(uri: str) -> str:
    """One redirect URI a client may register (the rules are in the module docstring)."""
    def refuse(rule: str):
        return InvalidRedirectUri(f"redirect URI {rule}: '{echo(uri)}'")

    if not uri.isascii() or len(uri) > MAX_LENGTH:
        raise refuse(f"must be ASCII (hosts in punycode, paths percent-encoded) and at most {MAX_LENGTH} characters")
    if "*" in uri:
        raise refuse("must not contain wildcards")
    if any(c.isspace() or unicodedata.category(c) == "Cc" for c in uri):
        raise refuse("must not contain whitespace or control characters")
    # RFC 6749 §3.1.2: "The endpoint URI MUST NOT include a fragment component."
    if "#" in uri:
        raise refuse("must not contain a fragment")
    scheme, _, rest = uri.partition(":")
    if not rest or not _SCHEME.fullmatch(scheme):
        raise refuse("must be an absolute URI")
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 -- raises ValueError on a port that is not a number in range
    except ValueError:  # e.g. an unbalanced "[" in the host
        raise refuse("is malformed") from None
    if "@" in parts.netloc:
        raise refuse("must not contain credentials")
    scheme = scheme.lower()
    if scheme in ("https", "http"):
        if not parts.hostname:
            raise refuse("must be an absolute URI")
        if scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
            raise InvalidRedirectUri(f"http redirect URIs are allowed only for loopback hosts: '{echo(uri)}'")
    elif "." not in scheme:
        raise refuse("must use https, http on a loopback host, or a reverse-domain private-use scheme")
    return uri


def _without_port(uri: str):
    parts = urlsplit(uri)
    host = parts.netloc.rsplit("@", 1)[-1]
    if host.startswith("["):
        hostname = host[1: host.index("]")]
    else:
        hostname = host.split(":", 1)[0]
    return parts.scheme, hostname, parts.path, parts.query, parts.fragment, parts.username, parts.password


def is_loopback_http(uri: str) -> bool:
    scheme, hostname, *_ = _without_port(uri)
    return scheme == "http" and hostname in LOOPBACK_IPS


def matches(requested: str, registered: list[str]) -> bool:
    if requested in registered:
        return True
    try:
        if not is_loopback_http(requested):
            return False
        # "localhost" is deliberately not port-flexible (RFC 8252 §8.3 prefers the IP literal).
        wanted = _without_port(requested)
        return any(is_loopback_http(r) and _without_port(r) == wanted for r in registered)
    except ValueError:  # not a parseable URI (e.g. "http://[::1/cb"): it matches nothing
        return False
