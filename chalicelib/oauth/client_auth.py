"""Client authentication at the token endpoint (RFC 6749 §2.3, OAuth 2.1 §2.4).

Exactly one method per request (RFC 6749 §2.3: "MUST NOT use more than one"), and it must be the
method the client registered, and one the profile allows (chalicelib/profiles.py: PROFILE=fapi2 takes
private_key_jwt only). Secrets are compared as SHA-256 hashes in constant time; a
private_key_jwt client assertion (RFC 7523 §2.2) is checked by oauth/client_assertions.py.
"""
from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING
from urllib.parse import unquote_plus

from ..capabilities import CLIENT_ASSERTION_TYPE, PRIVATE_KEY_JWT
from ..errors import InvalidClient, InvalidRequest, echo
from ..hashing import matches_hash, sha256_hex
from ..profiles import client_auth_methods

if TYPE_CHECKING:
    from ..storage.clients import Client

#: A hash no secret matches, compared against for unknown clients so they cost the same.
_NO_SECRET_HASH = sha256_hex("")


def _basic_credentials(authorization: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
        client_id, secret = decoded.split(":", 1)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidClient("malformed Basic credentials", scheme="Basic") from None
    # RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
    return unquote_plus(client_id), unquote_plus(secret)


def authenticate(headers, form: dict, settings, *, source_ip: str | None = None) -> tuple[Client, str]:
    """Return (client, method used). Raises InvalidClient / InvalidRequest. `source_ip` (the caller's
    address) rate-limits fetching a client ID metadata document."""
    authorization = headers.get("authorization") or ""
    uses_basic = authorization[:6].lower() == "basic "
    if authorization and not uses_basic:
        raise InvalidClient("unsupported client authentication scheme", scheme="Basic")
    if "client_assertion" in form or "client_assertion_type" in form:
        if uses_basic or "client_secret" in form:
            raise InvalidRequest("use exactly one client authentication method")
        return _by_assertion(form, settings, source_ip), PRIVATE_KEY_JWT
    if uses_basic:
        if "client_secret" in form:
            raise InvalidRequest("use exactly one client authentication method")
        client_id, secret = _basic_credentials(authorization)
        if form.get("client_id") not in (None, client_id):
            raise InvalidRequest("client_id in the body does not match the authenticated client")
        method, scheme = "client_secret_basic", "Basic"
    elif "client_secret" in form:
        client_id, secret, method, scheme = form.get("client_id"), form["client_secret"], "client_secret_post", None
    else:
        client_id, secret, method, scheme = form.get("client_id"), None, "none", None
    allowed = client_auth_methods(settings)
    if method not in allowed:
        # PROFILE=fapi2 (FAPI 2.0 §5.3.2.1 items 3 and 6): private_key_jwt only, so neither secrets nor
        # public clients. Refused before the client is looked up: the answer is the same for all.
        raise InvalidClient(f"client authentication must use {', '.join(allowed)}", scheme=scheme,
                            detail=f"method {method}")
    if not client_id:
        raise InvalidClient("client authentication is required", scheme=scheme)
    client = _find(client_id, settings, source_ip)
    if method == "none":
        if client is None or client.token_endpoint_auth_method != "none":
            raise InvalidClient("client authentication failed", detail=f"client {client_id} needs a secret")
        return client, method
    secret_ok = matches_hash(secret, client.secret_hash if client else _NO_SECRET_HASH)
    if client is None or not secret_ok or client.token_endpoint_auth_method != method:
        raise InvalidClient("client authentication failed", scheme=scheme,
                            detail=f"client {client_id} method {method}")
    return client, method


def _by_assertion(form: dict, settings, source_ip: str | None) -> Client:
    """RFC 7523 §2.2: client_assertion_type names the JWT profile, client_assertion carries the JWT
    whose sub is the client_id; a client_id in the body is optional, and must then be the same."""
    from . import client_assertions

    if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
        raise InvalidClient(f"client_assertion_type must be {CLIENT_ASSERTION_TYPE}")
    assertion = form.get("client_assertion")
    if not assertion:
        raise InvalidRequest("client_assertion is required with client_assertion_type")
    client_id = client_assertions.claimed_client_id(assertion)
    if form.get("client_id") not in (None, client_id):
        raise InvalidRequest("client_id in the body does not match the client assertion")
    client = _find(client_id, settings, source_ip)
    if client is None or client.token_endpoint_auth_method != PRIVATE_KEY_JWT:
        raise InvalidClient("client authentication failed", detail=f"client {echo(client_id)} method {PRIVATE_KEY_JWT}")
    client_assertions.verify(assertion, client, settings)
    return client


def _find(client_id: str, settings, source_ip: str | None) -> Client | None:
    from ..errors import DocumentError
    from .clients import find_client

    try:
        return find_client(client_id, settings, cache_seconds=settings.client_cache_seconds, source_ip=source_ip)
    except DocumentError:
        return None
