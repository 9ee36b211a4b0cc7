"""Redirect URI matching: exact string comparison (OAuth 2.1 §2.3.1, RFC 9700 §4.1.3), except that a
loopback IP redirect URI may use any port (RFC 8252 §7.3), because native apps bind an ephemeral one."""
from __future__ import annotations

from urllib.parse import urlsplit

_LOOPBACK_IPS = ("127.0.0.1", "[::1]")


def _without_port(uri: str):
    parts = urlsplit(uri)
    host = parts.netloc.rsplit("@", 1)[-1]
    if host.startswith("["):
        hostname = host[: host.index("]") + 1]
    else:
        hostname = host.split(":", 1)[0]
    return parts.scheme, hostname, parts.path, parts.query, parts.fragment, parts.username, parts.password


def is_loopback_http(uri: str) -> bool:
    scheme, hostname, *_ = _without_port(uri)
    return scheme == "http" and hostname in _LOOPBACK_IPS


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
