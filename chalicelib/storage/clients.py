"""OAuth client registry (RFC 6749 §2): metadata validation and the ClientModel repository.

Metadata names follow RFC 7591 §2 (client_name, redirect_uris, grant_types, response_types,
token_endpoint_auth_method). A confidential client's secret is a 256-bit random value stored only
as its SHA-256 (chalicelib/hashing.py); the raw secret is returned once, by create_client.
"""
from __future__ import annotations

import re
import secrets
import unicodedata
from urllib.parse import urlsplit

from pynamodb.exceptions import DoesNotExist

from ..hashing import new_secret, sha256_hex
from ..log import now
from .cache import ContainerCache
from .models import ClientModel, conditionally

CLIENT_TYPES = ("confidential", "public")
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
CONFIDENTIAL_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
MAX_REDIRECT_URIS = 20
MAX_NAME_LENGTH = 200
# urlsplit() reports "[::1]" as "::1".
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]+")
# RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")


class InvalidClientMetadata(ValueError):
    """Client metadata breaks a registration rule; the message says which one."""


def validate_client_metadata(*, client_name: str, client_type: str = "confidential", redirect_uris=(),
                             grant_types=None, scopes=None, token_endpoint_auth_method=None, resources=(),
                             introspects=()) -> dict:
    """Check and normalise client metadata; returns the ClientModel fields it determines."""
    if client_type not in CLIENT_TYPES:
        raise InvalidClientMetadata(f"client_type must be one of {', '.join(CLIENT_TYPES)}, got {client_type!r}")
    if introspects and client_type != "confidential":
        # RFC 7662 §2.1: the introspection endpoint requires authorization; only secrets prove it.
        raise InvalidClientMetadata("only confidential clients may introspect tokens")
    grants = _unique(["authorization_code"] if grant_types is None else grant_types)
    uris = _unique(redirect_uris)
    return {
        "client_name": _client_name(client_name),
        "client_type": client_type,
        "token_endpoint_auth_method": _auth_method(client_type, token_endpoint_auth_method),
        "grant_types": _grant_types(client_type, grants),
        "redirect_uris": _redirect_uris(uris, required="authorization_code" in grants),
        # RFC 7591 §2.1: the "code" response type goes with the authorization_code grant.
        "response_types": ["code"] if "authorization_code" in grants else [],
        "scopes": _scopes(["openid"] if scopes is None else scopes),
        "resources": _resources(resources),
        "introspection": bool(introspects),
        "introspects": _resources(introspects),
    }


def _resources(resources) -> list[str]:
    from .resources import InvalidResource, check_resource_uri, get_resource

    resources = _unique(resources)
    for uri in resources:
        try:
            check_resource_uri(uri)
        except InvalidResource as exc:
            raise InvalidClientMetadata(str(exc)) from None
        if get_resource(uri) is None:
            raise InvalidClientMetadata(f"resource {uri!r} is not registered; register it first")
    return resources


def _unique(values) -> list[str]:
    return list(dict.fromkeys(values))


def _client_name(name: str) -> str:
    name = (name or "").strip()
    if not 1 <= len(name) <= MAX_NAME_LENGTH:
        raise InvalidClientMetadata(f"client_name must be 1 to {MAX_NAME_LENGTH} characters")
    if any(unicodedata.category(c) == "Cc" for c in name):
        raise InvalidClientMetadata("client_name must not contain control characters")
    return name


def _auth_method(client_type: str, method: str | None) -> str:
    # RFC 6749 §2.3.1 / RFC 7591 §2: confidential clients authenticate with their secret; public
    # clients cannot keep a secret and use "none" (PKCE protects their codes instead).
    if client_type == "public":
        if method not in (None, "none"):
            raise InvalidClientMetadata("public clients have no secret: token_endpoint_auth_method must be 'none'")
        return "none"
    method = method or "client_secret_basic"
    if method not in CONFIDENTIAL_AUTH_METHODS:
        raise InvalidClientMetadata(
            f"token_endpoint_auth_method must be one of {', '.join(CONFIDENTIAL_AUTH_METHODS)}, got {method!r}")
    return method


def _grant_types(client_type: str, grants: list[str]) -> list[str]:
    if not grants:
        raise InvalidClientMetadata("at least one grant type is required")
    unknown = [g for g in grants if g not in GRANT_TYPES]
    if unknown:
        raise InvalidClientMetadata(f"unsupported grant type {unknown[0]!r}; supported: {', '.join(GRANT_TYPES)}")
    # RFC 6749 §4.4: "The client credentials grant type MUST only be used by confidential clients."
    if client_type == "public" and "client_credentials" in grants:
        raise InvalidClientMetadata("public clients cannot use the client_credentials grant")
    # Refresh tokens come only from the code flow (RFC 6749 §4.4.3: not with client_credentials).
    if "refresh_token" in grants and "authorization_code" not in grants:
        raise InvalidClientMetadata("the refresh_token grant requires the authorization_code grant")
    return grants


def _redirect_uris(uris: list[str], *, required: bool) -> list[str]:
    if required and not uris:
        raise InvalidClientMetadata("at least one redirect URI is required for the authorization_code grant")
    if len(uris) > MAX_REDIRECT_URIS:
        raise InvalidClientMetadata(f"at most {MAX_REDIRECT_URIS} redirect URIs are allowed")
    for uri in uris:
        _check_redirect_uri(uri)
    return uris


def _check_redirect_uri(uri: str) -> None:
    # Redirect URIs are compared by exact string match (OAuth 2.1 §2.3.1), so a pattern is never valid.
    if "*" in uri:
        raise InvalidClientMetadata(f"redirect URI must not contain wildcards: {uri!r}")
    if any(c.isspace() or unicodedata.category(c) == "Cc" for c in uri):
        raise InvalidClientMetadata(f"redirect URI must not contain whitespace or control characters: {uri!r}")
    # RFC 6749 §3.1.2: "The redirection endpoint URI MUST be an absolute URI ... MUST NOT include a
    # fragment component."
    if "#" in uri:
        raise InvalidClientMetadata(f"redirect URI must not contain a fragment: {uri!r}")
    scheme, _, rest = uri.partition(":")
    if not rest or not SCHEME.fullmatch(scheme):
        raise InvalidClientMetadata(f"redirect URI must be an absolute URI: {uri!r}")
    scheme = scheme.lower()
    if scheme in ("https", "http"):
        try:
            host = urlsplit(uri).hostname
        except ValueError as exc:  # e.g. an unbalanced "[" in the host
            raise InvalidClientMetadata(f"redirect URI is malformed: {uri!r}") from exc
        if not host:
            raise InvalidClientMetadata(f"redirect URI must be an absolute URI: {uri!r}")
        # RFC 8252 §7.3: plain http only for the loopback interface, where nothing leaves the device.
        if scheme == "http" and host not in LOOPBACK_HOSTS:
            raise InvalidClientMetadata(f"http redirect URIs are allowed only for loopback hosts: {uri!r}")
    elif "." not in scheme:
        # RFC 8252 §7.1: native apps use a private-use scheme based on a domain name they control,
        # in reverse order (com.example.app:/callback); a dot-less scheme is not one.
        raise InvalidClientMetadata(
            f"redirect URI must use https, http on a loopback host, or a reverse-domain private-use scheme: {uri!r}")


def _scopes(scopes) -> list[str]:
    scopes = _unique(scopes)
    for scope in scopes:
        if not SCOPE_TOKEN.fullmatch(scope):
            raise InvalidClientMetadata(f"invalid scope {scope!r}: not an RFC 6749 §3.3 scope-token")
    return scopes


def create_client(**metadata) -> tuple[ClientModel, str | None]:
    """Register a client (arguments as for validate_client_metadata).

    Returns the stored client and, for a confidential client, its raw secret: shown once, never stored.
    """
    fields = validate_client_metadata(**metadata)
    secret = new_secret() if fields["client_type"] == "confidential" else None
    at = now()
    # An opaque public identifier (RFC 6749 §2.2); hex never starts with "-", so it is safe as a CLI argument.
    client = ClientModel(client_id=secrets.token_hex(16), secret_hash=sha256_hex(secret) if secret else None,
                         created_at=at, updated_at=at, **fields)
    client.save(condition=ClientModel.client_id.does_not_exist())
    return client, secret


def get_client(client_id: str) -> ClientModel | None:
    # DynamoDB refuses keys over 2048 bytes with an error; such an id is simply unknown.
    if not client_id or len(client_id.encode("utf-8")) > 1024:
        return None
    try:
        return ClientModel.get(client_id, consistent_read=True)
    except DoesNotExist:
        return None


# The token endpoint authenticates the same few clients over and over; caching their registration
# for CLIENT_CACHE_SECONDS saves a DynamoDB read per request.
_cache: ContainerCache[ClientModel] = ContainerCache(lambda client_id: get_client(client_id))


def get_client_cached(client_id: str, max_age: int) -> ClientModel | None:
    """A client as this container last read it, at most `max_age` seconds ago."""
    return _cache.get(client_id, max_age)


def forget_cached_clients() -> None:
    _cache.clear()


def list_clients() -> list[ClientModel]:
    return sorted(ClientModel.scan(consistent_read=True), key=lambda c: (c.created_at, c.client_id))


def delete_client(client_id: str) -> bool:
    """Delete a client and revoke its grants; False when there was none (one conditional delete)."""
    from .grants import revoke_grants_of

    if not client_id:
        return False
    if not conditionally(lambda: ClientModel(client_id).delete(condition=ClientModel.client_id.exists())):
        return False
    revoke_grants_of(client_id=client_id, reason="client deleted")
    return True


def set_client_disabled(client_id: str, disabled: bool) -> bool:
    """Disable or re-enable a client; disabling revokes its grants. False when there is no such client.
    Containers that cached the client notice within CLIENT_CACHE_SECONDS; its grants die at once."""
    from .grants import revoke_grants_of

    if not client_id or not conditionally(lambda: ClientModel(client_id).update(
            actions=[ClientModel.disabled.set(disabled), ClientModel.updated_at.set(now())],
            condition=ClientModel.client_id.exists())):
        return False
    if disabled:
        revoke_grants_of(client_id=client_id, reason="client disabled")
    return True
