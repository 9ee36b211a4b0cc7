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


# RFC 8628 §3.5: the device access token response's errors (400, as every token endpoint error) ----

class AuthorizationPending(OAuthError):
    """The user has not yet approved or denied: poll again after the interval."""

    error = "authorization_pending"


class SlowDown(OAuthError):
    """Still pending, and polled too early: the interval grew by 5 seconds."""

    error = "slow_down"


class ExpiredToken(OAuthError):
    """The device code expired: start over with a new device authorization request."""

    error = "expired_token"


class DeviceAccessDenied(AccessDenied):
    """The user denied the device; at the token endpoint a 400 like every RFC 6749 §5.2 error
    (AccessDenied's 403 is for pages)."""

    status = 400


# OIDC Core §3.1.2.6: authorization errors; OIDC Core §6.1/§6.2 request objects ------------------------

class LoginRequired(OAuthError):
    error = "login_required"


class InteractionRequired(OAuthError):
    """OIDC Core §3.1.2.6: the user must do something on our pages first (verify their email)."""
    error = "interaction_required"


class ConsentRequired(OAuthError):
    error = "consent_required"


class UnmetAuthenticationRequirements(OAuthError):
    """OpenID Connect Unmet Authentication Requirements 1.0 §2: the essential `acr` asked for
    (OIDC Core §5.5.1.1) is one this user cannot reach, or none we support."""
    error = "unmet_authentication_requirements"


class RequestNotSupported(OAuthError):
    error = "request_not_supported"


class RequestUriNotSupported(OAuthError):
    error = "request_uri_not_supported"


# RFC 9449 §5, §8: DPoP proofs at the token endpoint (and /par); resource servers answer in their
# WWW-Authenticate challenge instead (chalicelib/verifier.py) -----------------------------------

class InvalidDpopProof(OAuthError):
    error = "invalid_dpop_proof"


class UseDpopNonce(OAuthError):
    """RFC 9449 §8: the proof lacks the nonce this server demands (or has a stale one). The response
    carries the nonce to use in `DPoP-Nonce`; the client retries once with it."""

    error = "use_dpop_nonce"

    def __init__(self, description: str = "", *, nonce: str, **kwargs):
        super().__init__(description or "a DPoP nonce from this server is required", **kwargs)
        self.extra_headers["DPoP-Nonce"] = nonce


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


class TemporarilyUnavailable(OAuthError):
    """A dependency (DynamoDB, Secrets Manager, KMS) throttled, failed or timed out after botocore's
    retries: 503 with Retry-After (RFC 9110 §15.6.4), and RFC 6749 §4.1.2.1's code for "try again
    later". Nothing single-use was spent, so the client's retry may succeed (chalicelib/faults.py
    decides which failures are these)."""

    error = "temporarily_unavailable"
    status = 503

    def __init__(self, description: str = "", *, retry_after: int, **kwargs):
        super().__init__(description, **kwargs)
        self.retry_after = retry_after
        self.extra_headers["Retry-After"] = str(retry_after)


class EmailNotSent(TemporarilyUnavailable):
    """Amazon SES did not take a message (refused, throttled or unreachable): the user is told the
    email could not be sent and to try again; nothing that needed the email was kept
    (chalicelib/mail.py)."""

    def __init__(self, description: str = "", *, retry_after: int = 2, **kwargs):
        super().__init__(description, retry_after=retry_after, **kwargs)


# RFC 6750 §3.1: bearer-token errors carry the error in WWW-Authenticate too ---------------------

class BearerError(OAuthError):
    """RFC 6750 §3 errors: the challenge repeats the error, and may name the scope needed and,
    for resource servers, where their protected resource metadata lives (RFC 9728 §5.1).

    `schemes`: the challenges to send, one per authentication scheme (RFC 9110 §11.6.1): "Bearer"
    by default; "DPoP" when the request used DPoP (RFC 9449 §7.1), or both for a request with no
    credentials at a resource that takes either (§7.2). A DPoP challenge also names the proof
    algorithms the resource accepts (`algs`, a space-separated list: RFC 9449 §7.1)."""

    #: RFC 6750 §3.1: a request with no credentials at all gets a challenge without an error code.
    challenge_only = False

    def __init__(self, description: str = "", *, realm: str = "idp", scope: str | None = None,
                 resource_metadata: str | None = None, schemes: tuple[str, ...] = ("Bearer",),
                 algs: str | None = None, **kwargs):
        super().__init__(description, **kwargs)
        self.realm, self.scope, self.resource_metadata = realm, scope, resource_metadata
        self.schemes, self.algs = tuple(schemes), algs

    def auth_params(self) -> list[str]:
        """The challenge's parameters, whatever its scheme."""
        parts = [f'realm="{_quote(self.realm)}"']
        if not self.challenge_only:
            parts.append(f'error="{self.error}"')
            if self.description:
                parts.append(f'error_description="{_quote(self.description)}"')
        if self.scope:
            parts.append(f'scope="{_quote(self.scope)}"')
        if self.resource_metadata:
            parts.append(f'resource_metadata="{_quote(self.resource_metadata)}"')
        return parts

    def challenges(self) -> list[str]:
        params = self.auth_params()
        return [f"{scheme} " + ", ".join(params + ([f'algs="{_quote(self.algs)}"'] if scheme == "DPoP" and self.algs
                                                   else []))
                for scheme in self.schemes]

    def headers(self) -> dict:
        return {**super().headers(), "WWW-Authenticate": ", ".join(self.challenges())}


class InvalidToken(BearerError):
    error = "invalid_token"
    status = 401


class MissingToken(InvalidToken):
    challenge_only = True


class UnknownKey(InvalidToken):
    """The token's kid is not in the JWK Set a verifier holds (maybe a key it has not fetched yet)."""


class InsufficientScope(BearerError):
    error = "insufficient_scope"
    status = 403


class InsufficientUserAuthentication(BearerError):
    """RFC 9470 §3: the token's authentication is too weak (`acr`) or too old (`auth_time`) for this
    resource. The challenge names what would do, so the client re-authorizes with those as
    `acr_values` and `max_age` (RFC 9470 §4)."""

    error = "insufficient_user_authentication"
    status = 401

    def __init__(self, description: str = "", *, acr_values: str | None = None, max_age: int | None = None,
                 **kwargs):
        super().__init__(description, **kwargs)
        self.acr_values, self.max_age = acr_values, max_age

    def auth_params(self) -> list[str]:
        return super().auth_params() \
            + ([f'acr_values="{_quote(self.acr_values)}"'] if self.acr_values else []) \
            + ([f"max_age={int(self.max_age)}"] if self.max_age is not None else [])

    def www_authenticate(self) -> str:
        """The challenge, for a resource server that builds its own response."""
        return self.headers()["WWW-Authenticate"]


# RFC 9449 §7.1, §9: DPoP at a resource server: 401s whose DPoP challenge carries the error -------------

class InvalidDpopProofChallenge(BearerError):
    """The DPoP proof sent with a DPoP-bound access token fails RFC 9449 §4.3 (its `ath`, `htm`,
    `htu`, `iat`, signature, ...) or was used before (§11.1). The token endpoint's counterpart is
    InvalidDpopProof (400, no challenge)."""

    error = "invalid_dpop_proof"
    status = 401

    def __init__(self, description: str = "", **kwargs):
        kwargs.setdefault("schemes", ("DPoP",))
        super().__init__(description, **kwargs)


class UseDpopNonceChallenge(BearerError):
    """RFC 9449 §9: the resource server demands a nonce of its own in the proof; `DPoP-Nonce` carries
    the one to use, and the client retries once with it."""

    error = "use_dpop_nonce"
    status = 401

    def __init__(self, description: str = "", *, nonce: str, **kwargs):
        kwargs.setdefault("schemes", ("DPoP",))
        super().__init__(description or "a DPoP nonce from this resource is required", **kwargs)
        self.extra_headers["DPoP-Nonce"] = nonce


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


# The authorization endpoint: where an error goes depends on what is trusted (RFC 6749 §4.1.2.1) --------

class UntrustedRequest(OAuthError):
    """An error found before the client and redirect URI are trusted: rendered, never redirected.

    The page says what `kind` names, in fixed words (chalicelib/pages/messages.py); the description
    and detail, which may quote the request or a client's document, are for the log only.
    """

    error = "invalid_request"
    #: The kinds, each a message id of the error page.
    KINDS = ("missing_client_id", "unknown_client", "unverified_client", "missing_redirect_uri",
             "unregistered_redirect_uri", "invalid_logout_request", "invalid_request_uri",
             "request_uri_with_parameters")

    def __init__(self, kind: str, description: str, **kwargs):
        super().__init__(description, **kwargs)
        self.kind = kind


class InvalidRequestUri(UntrustedRequest):
    """RFC 9126 §4 / RFC 9101 (OIDC Core §3.1.2.6's `invalid_request_uri`): the request_uri at
    /authorize names no pushed request this client may use now (unknown, expired, already used, or
    pushed by another client). Nothing about the request is trusted yet, so it is never redirected."""

    error = "invalid_request_uri"

    def __init__(self, description: str, **kwargs):
        super().__init__("invalid_request_uri", description, **kwargs)


class RedirectableError(Exception):
    """An OAuth error to deliver to a validated redirect URI."""

    def __init__(self, error: OAuthError, redirect_uri: str, state: str | None):
        super().__init__(error.error)
        self.oauth_error = error
        self.redirect_uri = redirect_uri
        self.state = state


# Outcomes of the hosted pages and of operator tools: not OAuth errors, never rendered as one ----------

class LoginFailed(Exception):
    """Wrong email or password (deliberately indistinguishable)."""


class LoginThrottled(Exception):
    """Too many recent failures for this IP, or for this account from a device it does not know."""

    def __init__(self, scope: str, retry_after: int):
        super().__init__(scope)
        #: "account" or "ip" (a known device of the account still may try), or "device" (that known
        #: device has used up its own attempts).
        self.scope = scope
        #: Seconds until the window ends (HTTP Retry-After, RFC 9110 §10.2.3).
        self.retry_after = retry_after


class PasskeyRefused(Exception):
    """A WebAuthn assertion or registration that must not be accepted (chalicelib/accounts/passkeys.py):
    a challenge not ours or expired, another origin or RP ID, a bad signature, a user handle naming
    someone else, no user verification where required, a counter that did not grow. `reason` is for
    the log only: the pages say one generic thing whatever it is."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


class SecondFactorFailed(Exception):
    """The second factor (a TOTP or recovery code, a passkey) was wrong, malformed, not the user's, or
    already used (chalicelib/oauth/second_factor.py). `reason` is for the log, never the page."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


class ItemsRefused(Exception):
    """A storage transaction was cancelled by the conditions of these items (labels); nothing was
    written (chalicelib/storage/transactions.py, where it is known as Refused). The caller says what
    that means: a code already spent, a step already completed."""

    def __init__(self, labels):
        self.labels = frozenset(labels)
        super().__init__(", ".join(sorted(self.labels)))


class SignupRefused(Exception):
    """The sign-up form breaks a rule: it is shown again with `message`, a fixed text of
    pages/messages.py or chalicelib/password_policy.py; nothing was written or counted."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class SignupLimited(Exception):
    """Too many sign-ups (chalicelib/accounts/limits.py): 429 with Retry-After, on the page a
    sign-up always answers."""

    def __init__(self, retry_after: int):
        super().__init__(retry_after)
        self.retry_after = retry_after


class AccountActionRefused(Exception):
    """An action of the account page was refused for a reason the page shows (chalicelib/accounts/account.py):
    `message` is a fixed text of pages/messages.py, `status` the page's HTTP status, `retry_after`
    set for a throttle's 429."""

    def __init__(self, message: str, *, status: int = 400, retry_after: int | None = None):
        super().__init__(message)
        self.message, self.status, self.retry_after = message, status, retry_after


class InvalidProfile(ValueError):
    """A profile claim breaks a rule (chalicelib/accounts/profile.py): `field` says which; the
    message is fixed text, never the input."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class InvalidConnection(ValueError):
    """An upstream identity provider's connection breaks a rule (chalicelib/federation/connections.py):
    an operator's bad input to the admin CLI, refused before anything is written; the message says
    which rule."""


class DocumentError(Exception):
    """The client ID metadata document could not be used. The message is fixed text naming the rule
    that failed; what the target answered, or anything quoted from the document, is logged, never
    put on a page."""


class DocumentUnavailable(DocumentError):
    """The document could not be fetched just now (fetch budget spent, DNS or network failure, timeout,
    HTTP 5xx or 429): says nothing about the client, so a recently cached copy may stand in."""


class OutboundError(Exception):
    """A request to a URL someone else chose (chalicelib/outbound.py) could not be made or completed.
    The message names the rule or the failure class, never what the target answered."""


class OutboundRefused(OutboundError):
    """The URL breaks a rule (scheme, port, credentials, this server): final."""


class OutboundNotPublic(OutboundRefused):
    """The host resolves to an address we may not connect to: final."""


class OutboundUnreachable(OutboundError):
    """A network failure, timeout or broken HTTP answer: may succeed later."""


class OutboundDidNotResolve(OutboundUnreachable):
    """The host name did not resolve (or not in time)."""


class UpstreamFailed(Exception):
    """A sign-in through an upstream identity provider could not be completed (chalicelib/federation/
    upstream.py): a state or issuer mismatch (RFC 9207), an ID token that fails OpenID Connect Core
    §3.1.3.7, a token endpoint that refused the code, an answer too big or not JSON. `reason` is a
    short machine code for the log ("state", "iss", "aud", "nonce", "signature", "expired",
    "token_endpoint", ...); `message` is a fixed text of pages/messages.py for the page and `kind`
    its message id there. Nothing the upstream said is ever put on a page as it said it."""

    kind = "upstream_failed"

    def __init__(self, reason: str, message: str, *, detail: str = ""):
        Exception.__init__(self, reason)
        self.reason, self.message, self.detail = reason, message, detail


class UpstreamRefused(UpstreamFailed):
    """The upstream answered the authorization request with `error=` (RFC 6749 §4.1.2.1): the user
    cancelled, or the upstream would not sign them in. `upstream_error` is its error code and
    `upstream_description` its error_description, both cut short and reduced to printable ASCII, for
    the log and for deciding what to do (`access_denied` sends the user back to our sign-in page)."""

    kind = "upstream_refused"

    def __init__(self, upstream_error: str, message: str, *, upstream_description: str = ""):
        super().__init__("upstream_error", message, detail=upstream_description)
        self.upstream_error, self.upstream_description = upstream_error, upstream_description


class UpstreamUnavailable(UpstreamFailed, TemporarilyUnavailable):
    """The upstream could not be reached, timed out, or answered 5xx/429: a 503 page with Retry-After,
    like any dependency fault; trying again later may work."""

    kind = "upstream_unavailable"

    def __init__(self, reason: str, message: str, *, detail: str = "", retry_after: int = 5):
        UpstreamFailed.__init__(self, reason, message, detail=detail)
        TemporarilyUnavailable.__init__(self, "the upstream identity provider is unavailable",
                                        retry_after=retry_after, detail=detail)
        self.reason, self.message = reason, message


class UntrustedJwt(Exception):
    """A JWT from another issuer that chalicelib/federation/trusted_issuers.verify does not accept: its
    issuer is not trusted for the purpose, or its `typ`, algorithm, signature or times fail. `reason`
    is a short code for the log ("untrusted_issuer", "typ", "alg", "signature", "expired", "own", ...);
    `description` a fixed text fit for an error_description; the caller picks the OAuth error
    (invalid_grant for an authorization grant, invalid_request for a token-exchange subject token)."""

    def __init__(self, reason: str, description: str, *, detail: str = ""):
        Exception.__init__(self, reason)
        self.reason, self.description, self.detail = reason, description, detail


class KeyRingError(Exception):
    """A key-ring operation cannot proceed (e.g. no current key, next key published too recently)."""


class KeyRingChanged(KeyRingError):
    """A concurrent change to the key ring (another rotation, a prune) committed first, so this
    change's transaction was cancelled and wrote nothing. Retrying reads the new state."""


class DeadlineExceeded(Exception):
    """The request's time for AWS calls is spent (chalicelib/aws.py): no further attempt is started,
    so the answer (a 503) leaves before the Lambda timeout cuts the request off with nothing."""


class StorageIncomplete(Exception):
    """DynamoDB kept leaving part of a read undone (BatchGetItem's UnprocessedKeys while a table is
    throttled), past the retries: a throttle that outlasted them, answered with a 503 like any other
    dependency fault (chalicelib/faults.py)."""


def _quote(value: str) -> str:
    # RFC 6750 §3: error_description and scope are quoted-strings; keep them to safe characters.
    return value.replace("\\", "\\\\").replace('"', "'")


class SealBroken(Exception):
    """A value sealed with KMS (chalicelib/secret_box.py) that does not open with its encryption
    context: copied from another record, altered, or sealed under a key that is gone (the local
    stack's KMS keys do not survive a restart). A bug or tampering, never the user's mistake."""


class FederationRefused(Exception):
    """A sign-in through an upstream cannot go on for a reason of ours (chalicelib/federation/sign_in.py:
    state replayed or from another browser, no verified email to provision with, an identity linked
    elsewhere, ...): `message` names the error page's fixed text (pages/messages.MESSAGES, or an
    alert of the link page), `reason` is for the log, `status` the page's HTTP status."""

    def __init__(self, message: str, reason: str, *, status: int = 400):
        super().__init__(reason)
        self.message, self.reason, self.status = message, reason, status


# Logout (chalicelib/oauth/rp_initiated_logout.py, backchannel_logout.py, chalicelib/logout_queue.py) ----

class InvalidIdTokenHint(Exception):
    """An end-session request's id_token_hint is not an ID token we issued (OpenID Connect
    RP-Initiated Logout 1.0 §2): bad signature, unknown key, another issuer or type, malformed."""


class LogoutDeliveryFailed(Exception):
    """A back-channel logout token could not be delivered now (OpenID Connect Back-Channel Logout
    1.0 §2.5): the relying party answered non-2xx, timed out or was unreachable. Raised out of the
    delivery function so that SQS delivers the message again."""


class LogoutQueueRefused(Exception):
    """SQS refused some messages of a batch (SendMessageBatch's `Failed`)."""


class AssertionRefused(Exception):
    """A private_key_jwt client assertion failed a check (chalicelib/oauth/client_assertions.py), which
    turns this into invalid_client (RFC 7523 §3.2) at the client-authenticated endpoints, or into
    invalid_request for a token exchange's actor_token (RFC 8693 §2.2.2). `description` is for the
    client, `detail` for the log only."""

    def __init__(self, description: str, detail: str = ""):
        super().__init__(description)
        self.description, self.detail = description, detail


class DpopProofRefused(Exception):
    """A DPoP proof failed a check of RFC 9449 §4.3 (chalicelib/oauth/dpop.py). The token endpoint
    turns it into invalid_dpop_proof (or use_dpop_nonce when `nonce_needed`); a resource server into
    its 401 challenge. `description` is for the client, `detail` for the log only."""

    def __init__(self, description: str, detail: str = "", *, nonce_needed: bool = False):
        super().__init__(description)
        self.description, self.detail, self.nonce_needed = description, detail, nonce_needed
