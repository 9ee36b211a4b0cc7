"""The one OAuth/OIDC error hierarchy.

Each error knows its RFC error code, HTTP status and headers; `to_response()` returns a neutral
(status, body, headers) triple that only the HTTP layer turns into a Chalice Response. The public
`description` is safe to show a client; `detail` is for the log only (RFC 6749 §5.2 lets us be terse,
and terse is right when the detail would help an attacker, e.g. why a code failed).
"""
from __future__ import annotations

import json

#: RFC 6749 §5.1 / RFC 6750 §3: error responses must not be cached.
NO_STORE_HEADERS = {"Cache-Control": "no-store", "Pragma": "no-cache"}
#: Longest error_description sent. Ours are a sentence; anything longer can only be an echo of the
#: request, and a request must not get back (or redirect a browser with) an unbounded copy of itself.
MAX_DESCRIPTION = 256
#: Longest piece of a request quoted in a description (`echo`).
MAX_ECHO = 40


def echo(value: object, limit: int = MAX_ECHO) -> str:
    """A value from the request, fit to quote in an error_description: cut to `limit` characters
    (marked with "..."), and every character RFC 6749 §5.2 does not allow there (outside %x20-21 /
    %x23-5B / %x5D-7E) replaced by "?". Descriptions are for developers; they never need more."""
    text = str(value)
    cut = text[:limit]
    cleaned = "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in cut)
    return cleaned + ("..." if len(text) > limit else "")


class OAuthError(Exception):
    error = "server_error"
    status = 400

    def __init__(self, description: str = "", *, detail: str = "", headers: dict | None = None):
        if len(description) > MAX_DESCRIPTION:
            description = description[:MAX_DESCRIPTION - 3] + "..."
        super().__init__(description or self.error)
        self.description = description
        self.detail = detail
        self.extra_headers = dict(headers or {})

    def body(self) -> dict:
        body = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        return body

    def headers(self) -> dict:
        return {"Content-Type": "application/json", **NO_STORE_HEADERS, **self.extra_headers}

    def to_response(self) -> tuple[int, str, dict]:
        return self.status, json.dumps(self.body()), self.headers()


# RFC 6749 §5.2 (token endpoint) and §4.1.2.1 (authorization endpoint) ---------------------------

class InvalidRequest(OAuthError):
    error = "invalid_request"


class InvalidClient(OAuthError):
    """RFC 6749 §5.2: 401, with WWW-Authenticate naming the scheme the client tried."""

    error = "invalid_client"
    status = 401

    def __init__(self, description: str = "client authentication failed", *, scheme: str | None = None,
                 **kwargs):
        super().__init__(description, **kwargs)
        if scheme:
            self.extra_headers.setdefault("WWW-Authenticate", f'{scheme} realm="token"')


class InvalidGrant(OAuthError):
    error = "invalid_grant"


class UnauthorizedClient(OAuthError):
    error = "unauthorized_client"


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"


class UnsupportedResponseType(OAuthError):
    error = "unsupported_response_type"


class InvalidScope(OAuthError):
    error = "invalid_scope"


class AccessDenied(OAuthError):
    error = "access_denied"
    status = 403


class InvalidTarget(OAuthError):
    """RFC 8707 §2."""

    error = "invalid_target"


# RFC 7591 §3.2.2: dynamic registration errors -----------------------------------------------------

class InvalidClientMetadata(OAuthError):
    error = "invalid_client_metadata"


class InvalidRedirectUri(InvalidClientMetadata):
    """A redirect URI breaks a rule: its own error code, and still client metadata to any `except`."""

    error = "invalid_redirect_uri"


class TooManyRequests(OAuthError):
    """Rate limited; the caller should wait (Retry-After). RFC 6749's code for "try later"."""

    error = "temporarily_unavailable"
    status = 429


class ServerError(OAuthError):
    error = "server_error"
    status = 500


# RFC 6750 §3.1: bearer-token errors carry the error in WWW-Authenticate too ---------------------

class BearerError(OAuthError):
    """RFC 6750 §3 errors: the challenge repeats the error, and may name the scope needed and,
    for resource servers, where their protected resource metadata lives (RFC 9728 §5.1)."""

    #: RFC 6750 §3.1: a request with no credentials at all gets a challenge without an error code.
    challenge_only = False

    def __init__(self, description: str = "", *, realm: str = "idp", scope: str | None = None,
                 resource_metadata: str | None = None, **kwargs):
        super().__init__(description, **kwargs)
        self.realm, self.scope, self.resource_metadata = realm, scope, resource_metadata

    def headers(self) -> dict:
        parts = [f'realm="{_quote(self.realm)}"']
        if not self.challenge_only:
            parts.append(f'error="{self.error}"')
            if self.description:
                parts.append(f'error_description="{_quote(self.description)}"')
        if self.scope:
            parts.append(f'scope="{_quote(self.scope)}"')
        if self.resource_metadata:
            parts.append(f'resource_metadata="{_quote(self.resource_metadata)}"')
        return {**super().headers(), "WWW-Authenticate": "Bearer " + ", ".join(parts)}


class InvalidToken(BearerError):
    error = "invalid_token"
    status = 401


class MissingToken(InvalidToken):
    challenge_only = True


class InsufficientScope(BearerError):
    error = "insufficient_scope"
    status = 403


# HTTP-level errors, rendered in the same JSON shape -----------------------------------------------

class NotFound(OAuthError):
    error = "not_found"
    status = 404


class MethodNotAllowed(OAuthError):
    error = "method_not_allowed"
    status = 405

    def __init__(self, allowed: list[str], **kwargs):
        super().__init__("method not allowed for this endpoint", **kwargs)
        self.extra_headers["Allow"] = ", ".join(sorted(allowed))


class PayloadTooLarge(OAuthError):
    error = "invalid_request"
    status = 413


def _quote(value: str) -> str:
    # RFC 6750 §3: error_description and scope are quoted-strings; keep them to safe characters.
    return value.replace("\\", "\\\\").replace('"', "'")
