"""Pushed authorization requests (RFC 9126): the client POSTs its authorization request to /par,
authenticated, and sends the browser to /authorize with only `client_id` and the `request_uri` it
got back. The parameters never pass through the browser, so they can be neither read nor changed
there, and a client that authenticates proves who pushed them.

- `push` (RFC 9126 §2): the request is checked exactly as /authorize checks one (oauth/authorization.py),
  but every error is the JSON error of the endpoint (§2.3), never a redirect. The request_uri is
  PAR_REQUEST_URI_PREFIX + a 256-bit secret; only its SHA-256 is stored (storage/pushed_requests.py),
  with the parameters as pushed, for PAR_TTL seconds.
- `redeem` (RFC 9126 §4): at /authorize, `client_id` must be present and be the client that pushed
  it; the request_uri is spent by one conditional write, so it works once. RFC 9101 §5 (which §4
  builds on) has the server ignore other front-channel parameters; stricter, we refuse them: they
  would be parameters nobody authenticated, and a link carrying some is not what the client built.
  An unusable request_uri is `invalid_request_uri` (RFC 9101 / OIDC Core §3.1.2.6), shown on our
  error page: nothing about the request, its redirect_uri included, is trusted before it is read.
  Once read, the pushed parameters are checked again like any request (RFC 9126 §4: "MUST validate
  ... as it would any other"; the client may have changed since), and errors found from then on go
  to the pushed (registered) redirect_uri as usual (RFC 6749 §4.1.2.1).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..capabilities import PAR_REQUEST_URI_PREFIX
from ..config import Settings
from ..errors import InvalidDpopProof, InvalidRequestUri, RedirectableError, UntrustedRequest
from ..hashing import new_secret, sha256_hex
from ..log import get_logger, now

if TYPE_CHECKING:
    from ..storage.clients import Client

log = get_logger("idp.par")

#: Client authentication parameters (RFC 6749 §2.3.1, RFC 7523 §2.2): sent to /par next to the
#: authorization request, never part of it (RFC 9126 §2.1), so never stored.
CLIENT_AUTH_PARAMS = ("client_secret", "client_assertion", "client_assertion_type")
#: RFC 9126 §2.3: the bound on a pushed request's body (a 413 beyond it). Authorization requests are
#: small; the bound keeps every stored item far below DynamoDB's 400 KB and cheap to write.
MAX_BODY_BYTES = 16384
#: RFC 9126 §4: what /authorize takes with a request_uri.
FRONT_CHANNEL_PARAMS = frozenset({"client_id", "request_uri"})
#: The secret of our request_uris: new_secret()'s 43 URL-safe characters. Anything else is not ours
#: and is refused without a read.
_SECRET = re.compile(r"[A-Za-z0-9_-]{43}")


def push(form: dict, client: Client, settings: Settings, *, proof=None) -> dict:
    """RFC 9126 §2.1-§2.2: check the authorization request `form` pushed by the authenticated
    `client`, store it, and return the 201 response body. Raises OAuthError (the JSON error).

    `proof`: the request's checked DPoP proof (oauth/dpop.Proof), if any. RFC 9449 §10.1: it binds
    the code to its key, as a `dpop_jkt` parameter does; when both are sent they must agree."""
    from ..storage import pushed_requests
    from . import authorization

    params = {name: value for name, value in form.items() if name not in CLIENT_AUTH_PARAMS}
    # §2.1: client_id is required as in any authorization request; client authentication has
    # checked any the client sent against its credentials, so it is the authenticated client's.
    params["client_id"] = client.client_id
    if proof is not None:
        if params.get("dpop_jkt", proof.jkt) != proof.jkt:
            raise InvalidDpopProof("dpop_jkt does not name the DPoP proof's key")
        params["dpop_jkt"] = proof.jkt
    redirect_uri = authorization.trusted_redirect(params, client)
    try:
        authorization.validate(params, client, redirect_uri, settings, pushed=True)
    except RedirectableError as exc:
        raise exc.oauth_error from None
    secret, at = new_secret(), now()
    pushed_requests.store(pushed_requests.PushedRequest(
        secret_hash=sha256_hex(secret), client_id=client.client_id, params=params, created_at=at,
        expires_at=at + settings.par_ttl))
    log.info("authorization request pushed", extra={"client_id": client.client_id})
    return {"request_uri": PAR_REQUEST_URI_PREFIX + secret, "expires_in": settings.par_ttl}


@dataclass(frozen=True)
class Redeemed:
    """The parameters of a pushed request, spent; `release` puts it back (chalicelib/undo.py)."""

    params: dict
    secret_hash: str
    claim: str

    def release(self) -> bool:
        from ..storage import pushed_requests

        return pushed_requests.release(self.secret_hash, self.claim)


def is_pushed(params: dict) -> bool:
    """Does this /authorize request name a pushed request (RFC 9126 §4)?"""
    return "request_uri" in params


def redeem(params: dict) -> Redeemed:
    """RFC 9126 §4: spend the pushed request the /authorize `params` name and return its parameters.
    Raises UntrustedRequest (for the error page) before anything is read when the front channel
    carries more than client_id and request_uri, lacks client_id, or the request_uri is not one of
    ours; InvalidRequestUri when no pushed request of this client can be spent under it."""
    from ..storage import pushed_requests

    extra = sorted(set(params) - FRONT_CHANNEL_PARAMS)
    if extra:
        raise UntrustedRequest("request_uri_with_parameters", "with request_uri, only client_id may be sent",
                               detail=f"also sent: {', '.join(extra)[:200]}")
    client_id = params.get("client_id")
    if not client_id:
        raise UntrustedRequest("missing_client_id", "client_id is required")
    request_uri = params["request_uri"]
    secret = request_uri[len(PAR_REQUEST_URI_PREFIX):] if request_uri.startswith(PAR_REQUEST_URI_PREFIX) else ""
    if not _SECRET.fullmatch(secret):
        raise InvalidRequestUri("request_uri was not issued by this server's pushed authorization request endpoint",
                                detail=f"request_uri of {len(request_uri)} characters")
    secret_hash = sha256_hex(secret)
    consumed = pushed_requests.consume(secret_hash, client_id, now())
    if consumed is None:
        raise InvalidRequestUri("request_uri is unknown, expired, already used or was pushed by another client",
                                detail=f"client_id={client_id!r}")
    return Redeemed(params=consumed.params, secret_hash=secret_hash, claim=consumed.claim)
