"""Dynamic client registration (RFC 7591) and its management protocol (RFC 7592).

MCP clients register themselves here with no human involved, so validation is strict and the
results are marked: such clients show as "unverified" on the consent page. What a registration may
ask for (the rules are oauth/client_metadata.py's, shared with admin-created clients):
- redirect_uris: https, http on a loopback host (RFC 8252 §7.3) or a reverse-domain private-use
  scheme (RFC 8252 §7.1); no credentials, fragments or wildcards (oauth/redirect_uris.py).
- grant_types ⊆ {authorization_code, refresh_token}, response_types ⊆ {code}, consistent.
- token_endpoint_auth_method: none (public: native apps and agents), client_secret_basic
  (the RFC 7591 default), client_secret_post, or private_key_jwt (RFC 7523 §2.2) with exactly one of
  jwks (public keys only) and jwks_uri (https; fetched through the outbound guard). A private_key_jwt
  client gets no secret.
- scope: optional (Claude-style requests omit it); every scope named must be within the
  unverified-client ceiling (UNVERIFIED_CLIENT_SCOPES, by default the identity scopes and those of
  resources registered with --public). A scope outside it gets the same error whether or not any
  API defines it, and the response lists only the ceiling, so anonymous callers cannot enumerate
  the scopes of private APIs. The client is allowed the whole ceiling either way (the live one,
  see oauth/clients.allowed_scopes): MCP clients step up to scopes beyond their first request (a
  403 insufficient_scope names them), and the user's consent, not the registration, grants a scope.
The registration access token is 256-bit random, stored as its SHA-256, and rotated on every
read or update (RFC 7592 §3 lets the server issue a new one; we cannot return the old one).
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING

from ..capabilities import PRIVATE_KEY_JWT
from ..config import Settings
from ..errors import InvalidClientMetadata, InvalidToken
from ..hashing import matches_hash, new_secret, sha256_hex
from ..log import get_logger
from .client_metadata import validate_registration

if TYPE_CHECKING:
    from ..storage.clients import Client

log = get_logger("idp.registration")

MAX_BODY_BYTES = 8192


def register(metadata, settings: Settings) -> dict:
    """Create a client; the response carries its secret and registration token, shown once."""
    from .clients import add_client, unverified_scope_ceiling

    fields = validate_registration(metadata, unverified_scope_ceiling(settings))
    registration_token = new_secret()
    client, secret = add_client(new_secret(16), fields, registered_dynamically=True,
                                registration_token_hash=sha256_hex(registration_token))
    log.info("client registered", extra={"client_id": client.client_id, "auth": fields["token_endpoint_auth_method"]})
    response = information(client, settings, registration_token)
    if secret:
        response.update(client_secret=secret, client_secret_expires_at=0)
    return response


def information(client: Client, settings: Settings, registration_token: str, scopes: list[str] | None = None) -> dict:
    """RFC 7591 §3.2.1 / RFC 7592 §3 client information response. `scopes`: the client's allowed
    scopes, when read before the registration token was rotated (`read`, `update`)."""
    from .clients import allowed_scopes

    info = {
        "client_id": client.client_id,
        "client_id_issued_at": client.created_at,
        "client_name": client.client_name,
        "redirect_uris": list(client.redirect_uris),
        "grant_types": list(client.grant_types),
        "response_types": list(client.response_types),
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "scope": " ".join(scopes if scopes is not None else allowed_scopes(client, settings)),
        "registration_access_token": registration_token,
        "registration_client_uri": f"{settings.issuer}/register/{client.client_id}",
    }
    if client.client_uri:
        info["client_uri"] = client.client_uri
    if client.post_logout_redirect_uris:
        info["post_logout_redirect_uris"] = list(client.post_logout_redirect_uris)
    if client.jwks:
        info["jwks"] = json.loads(client.jwks)
    if client.jwks_uri:
        info["jwks_uri"] = client.jwks_uri
    if client.require_pushed_authorization_requests:
        info["require_pushed_authorization_requests"] = True
    if client.backchannel_logout_uri:
        info["backchannel_logout_uri"] = client.backchannel_logout_uri
        info["backchannel_logout_session_required"] = client.backchannel_logout_session_required
    if client.dpop_bound_access_tokens:
        info["dpop_bound_access_tokens"] = True
    return info


def authorize_management(client_id: str, token: str) -> Client:
    """RFC 7592 §2: the registration access token must match (constant time); any failure is the
    same 401 invalid_token, so client ids cannot be probed."""
    from ..storage.clients import get_client

    client = get_client(client_id)
    stored = client.registration_token_hash if client is not None and client.registered_dynamically else None
    if not matches_hash(token, stored) or client.disabled:
        raise InvalidToken("the registration access token is not valid for this client")
    return client


def read(client: Client, settings: Settings) -> dict:
    """RFC 7592 §2.1: the client's information, under a new registration token (§3: every read
    rotates it). Whatever the answer needs is read before the rotation: once the old token is
    replaced, a fault that kept the answer (and so the new token) from the client would leave it
    with no token that works."""
    from .clients import allowed_scopes

    scopes = allowed_scopes(client, settings)
    written, token = rotate_token(client)
    return information(written, settings, token, scopes)


def rotate_token(client: Client, **updates) -> tuple[Client, str]:
    """Swap the registration token (and apply `updates`, None removing an attribute) only if nobody
    rotated it meanwhile: one conditional write (storage.clients.rotate_registration_token). Returns
    the client as written and the new token."""
    from ..storage.clients import rotate_registration_token

    new_token = new_secret()
    written = rotate_registration_token(client.client_id, expected_hash=client.registration_token_hash,
                                        new_hash=sha256_hex(new_token), **updates)
    if written is None:
        # Another request rotated the registration token first: this one's token is spent.
        raise InvalidToken("the registration access token is not valid for this client")
    return written, new_token


def delete(client: Client) -> None:
    """RFC 7592 §2.3: deprovision the client; its grants are revoked with it."""
    from ..storage.clients import delete_client

    delete_client(client.client_id)


def update(client: Client, metadata, settings: Settings) -> dict:
    """RFC 7592 §2.2: the request replaces the metadata; client_id must match, a secret must match."""
    if not isinstance(metadata, dict) or metadata.get("client_id") != client.client_id:
        raise InvalidClientMetadata("the request must carry this client's client_id")
    if "client_secret" in metadata and not matches_hash(str(metadata["client_secret"]), client.secret_hash):
        raise InvalidClientMetadata("client_secret does not match")
    from .clients import unverified_scope_ceiling

    fields = validate_registration(metadata, unverified_scope_ceiling(settings))
    if fields["client_type"] != client.client_type:
        raise InvalidClientMetadata("token_endpoint_auth_method cannot switch between public and confidential")
    uses_key = fields["token_endpoint_auth_method"] == PRIVATE_KEY_JWT
    if uses_key != (client.token_endpoint_auth_method == PRIVATE_KEY_JWT):
        # A switch to a key would leave a secret behind, one to a secret would need a new secret.
        raise InvalidClientMetadata("token_endpoint_auth_method cannot switch between a secret and private_key_jwt")
    from .clients import allowed_scopes

    # Read before the rotation (see `read`). The update keeps the client dynamically registered, and
    # such a client's allowed scopes are the live ceiling, not its registration's.
    scopes = allowed_scopes(client, settings)
    written, token = rotate_token(client, **{k: v for k, v in fields.items() if k != "client_type"})
    return information(written, settings, token, scopes)
