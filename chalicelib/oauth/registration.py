"""Dynamic client registration (RFC 7591) and its management protocol (RFC 7592).

MCP clients register themselves here with no human involved, so validation is strict and the
results are marked: such clients show as "unverified" on the consent page. What a registration may
ask for:
- redirect_uris: https, or http on a loopback host (RFC 8252 §7.3); no fragments or wildcards.
- grant_types ⊆ {authorization_code, refresh_token}, response_types ⊆ {code}, consistent.
- token_endpoint_auth_method: none (public: native apps and agents), client_secret_basic
  (the RFC 7591 default) or client_secret_post.
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

import re
import unicodedata
from urllib.parse import urlsplit

from ..config import Settings
from ..errors import InvalidClientMetadata, InvalidRedirectUri, InvalidToken, echo
from ..hashing import matches_hash, new_secret, sha256_hex
from ..log import get_logger, now
from ..storage.models import ClientModel, conditionally

log = get_logger("idp.registration")

MAX_BODY_BYTES = 8192
MAX_REDIRECT_URIS = 10
AUTH_METHODS = ("none", "client_secret_basic", "client_secret_post")
GRANT_TYPES = ("authorization_code", "refresh_token")
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]+")
_LOOPBACK = ("127.0.0.1", "::1", "localhost")


def _strings(metadata: dict, name: str, default: list[str]) -> list[str]:
    value = metadata.get(name, default)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidClientMetadata(f"{name} must be an array of strings")
    return list(dict.fromkeys(value))


def _redirect_uri(uri: str) -> str:
    try:
        parts = urlsplit(uri)
    except ValueError:
        raise InvalidRedirectUri(f"redirect URI is malformed: '{echo(uri)}'") from None
    if "#" in uri or "*" in uri or any(c.isspace() or unicodedata.category(c) == "Cc" for c in uri):
        raise InvalidRedirectUri(f"redirect URI must be exact: no fragment, wildcard or whitespace: '{echo(uri)}'")
    if parts.username or parts.password:
        raise InvalidRedirectUri(f"redirect URI must not contain credentials: '{echo(uri)}'")
    if parts.scheme == "https" and parts.hostname:
        return uri
    if parts.scheme == "http" and parts.hostname in _LOOPBACK:
        return uri
    raise InvalidRedirectUri(f"redirect URI must use https, or http on a loopback host: '{echo(uri)}'")


def _optional_https_url(metadata: dict, name: str) -> str | None:
    value = metadata.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 512:
        raise InvalidClientMetadata(f"{name} must be a URL of at most 512 characters")
    try:
        parts = urlsplit(value)
    except ValueError:
        raise InvalidClientMetadata(f"{name} is not a valid URL") from None
    if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in _LOOPBACK):
        raise InvalidClientMetadata(f"{name} must be an https URL")
    return value


def validate(metadata, ceiling: tuple[str, ...]) -> dict:
    """RFC 7591 §2 metadata -> ClientModel fields, with `ceiling` (the scopes an unverified client
    may ask for) as its scopes. Raises InvalidClientMetadata / InvalidRedirectUri."""
    if not isinstance(metadata, dict):
        raise InvalidClientMetadata("the registration request must be a JSON object")
    method = metadata.get("token_endpoint_auth_method", "client_secret_basic")  # RFC 7591 §2 default
    if method not in AUTH_METHODS:
        raise InvalidClientMetadata(f"token_endpoint_auth_method must be one of {', '.join(AUTH_METHODS)}")
    grant_types = _strings(metadata, "grant_types", ["authorization_code"])
    unsupported = [g for g in grant_types if g not in GRANT_TYPES]
    if unsupported or not grant_types:
        raise InvalidClientMetadata(f"grant_types must be a non-empty subset of {', '.join(GRANT_TYPES)}")
    if "authorization_code" not in grant_types:
        raise InvalidClientMetadata("grant_types must include authorization_code (refresh tokens come from it)")
    response_types = _strings(metadata, "response_types", ["code"])
    if response_types != ["code"]:
        # RFC 7591 §2.1: authorization_code goes with "code", and "code" is all we serve.
        raise InvalidClientMetadata('response_types must be ["code"] for the authorization_code grant')
    redirect_uris = _strings(metadata, "redirect_uris", [])
    if not redirect_uris:
        raise InvalidRedirectUri("redirect_uris is required")
    if len(redirect_uris) > MAX_REDIRECT_URIS:
        raise InvalidRedirectUri(f"at most {MAX_REDIRECT_URIS} redirect URIs may be registered")
    redirect_uris = [_redirect_uri(uri) for uri in redirect_uris]
    name = metadata.get("client_name")
    if name is not None and (not isinstance(name, str) or not 1 <= len(name.strip()) <= 200
                             or any(unicodedata.category(c) == "Cc" for c in name)):
        raise InvalidClientMetadata("client_name must be 1 to 200 printable characters")
    scope = metadata.get("scope")
    if scope is not None:
        if not isinstance(scope, str):
            raise InvalidClientMetadata("scope must be a space-separated string")
        # One message for a scope no API defines and a private API's scope: no existence oracle.
        refused = [s for s in scope.split(" ") if s and (not _SCOPE_TOKEN.fullmatch(s) or s not in ceiling)]
        if refused:
            raise InvalidClientMetadata(f"scope not available to self-registered clients: {refused[0]!r}")
    return {
        "client_name": (name or "").strip() or f"App at {urlsplit(redirect_uris[0]).hostname}",
        "client_type": "public" if method == "none" else "confidential",
        "token_endpoint_auth_method": method,
        "redirect_uris": redirect_uris,
        "grant_types": grant_types,
        "response_types": response_types,
        "scopes": list(ceiling),
        "client_uri": _optional_https_url(metadata, "client_uri"),
    }


def register(metadata, settings: Settings) -> dict:
    """Create a client; the response carries its secret and registration token, shown once."""
    from .clients import unverified_scope_ceiling

    fields = validate(metadata, unverified_scope_ceiling(settings))
    secret = new_secret() if fields["client_type"] == "confidential" else None
    registration_token = new_secret()
    at = now()
    client = ClientModel(client_id=new_secret(16), secret_hash=sha256_hex(secret) if secret else None,
                         registered_dynamically=True, registration_token_hash=sha256_hex(registration_token),
                         created_at=at, updated_at=at, **fields)
    client.save(condition=ClientModel.client_id.does_not_exist())
    log.info("client registered", extra={"client_id": client.client_id, "auth": fields["token_endpoint_auth_method"]})
    response = information(client, settings, registration_token)
    if secret:
        response.update(client_secret=secret, client_secret_expires_at=0)
    return response


def information(client: ClientModel, settings: Settings, registration_token: str) -> dict:
    """RFC 7591 §3.2.1 / RFC 7592 §3 client information response."""
    from .clients import allowed_scopes

    info = {
        "client_id": client.client_id,
        "client_id_issued_at": client.created_at,
        "client_name": client.client_name,
        "redirect_uris": list(client.redirect_uris),
        "grant_types": list(client.grant_types),
        "response_types": list(client.response_types),
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "scope": " ".join(allowed_scopes(client, settings)),
        "registration_access_token": registration_token,
        "registration_client_uri": f"{settings.issuer}/register/{client.client_id}",
    }
    if client.client_uri:
        info["client_uri"] = client.client_uri
    return info


def authorize_management(client_id: str, token: str) -> ClientModel:
    """RFC 7592 §2: the registration access token must match (constant time); any failure is the
    same 401 invalid_token, so client ids cannot be probed."""
    from ..storage.clients import get_client

    client = get_client(client_id)
    stored = client.registration_token_hash if client is not None and client.registered_dynamically else None
    if not matches_hash(token, stored) or client.disabled:
        raise InvalidToken("the registration access token is not valid for this client")
    return client


def rotate_token(client: ClientModel, **updates) -> str:
    """Swap the registration token (and apply `updates`) only if nobody rotated it meanwhile."""
    new_token = new_secret()
    actions = [ClientModel.registration_token_hash.set(sha256_hex(new_token)), ClientModel.updated_at.set(now())]
    actions += [getattr(ClientModel, name).set(value) if value is not None else getattr(ClientModel, name).remove()
                for name, value in updates.items()]
    if not conditionally(lambda: client.update(
            actions=actions, condition=ClientModel.registration_token_hash == client.registration_token_hash)):
        # Another request rotated the registration token first: this one's token is spent.
        raise InvalidToken("the registration access token is not valid for this client")
    return new_token


def update(client: ClientModel, metadata, settings: Settings) -> dict:
    """RFC 7592 §2.2: the request replaces the metadata; client_id must match, a secret must match."""
    if not isinstance(metadata, dict) or metadata.get("client_id") != client.client_id:
        raise InvalidClientMetadata("the request must carry this client's client_id")
    if "client_secret" in metadata and not matches_hash(str(metadata["client_secret"]), client.secret_hash):
        raise InvalidClientMetadata("client_secret does not match")
    from .clients import unverified_scope_ceiling

    fields = validate(metadata, unverified_scope_ceiling(settings))
    if fields["client_type"] != client.client_type:
        raise InvalidClientMetadata("token_endpoint_auth_method cannot switch between public and confidential")
    token = rotate_token(client, **{k: v for k, v in fields.items() if k != "client_type"})
    client.refresh(consistent_read=True)
    return information(client, settings, token)
