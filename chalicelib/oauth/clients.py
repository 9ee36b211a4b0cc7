"""Finding the client a request names: a registered client by id, or a client ID metadata document
by URL (chalicelib/oauth/client_documents.py); what scopes a client may ask for; and adding a client,
the administrator's (tools/admin.py) or a self-registered one (oauth/registration.py)."""
from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from ..config import Settings
from ..hashing import new_secret, sha256_hex
from ..log import now

if TYPE_CHECKING:
    from ..storage.clients import Client


def create_client(**metadata) -> tuple[Client, str | None]:
    """Register an administrator's client (arguments as for client_metadata.validate_client_metadata,
    whose InvalidClientMetadata it raises before anything is written).

    Returns the stored client and, for a client authenticating with a secret, its raw secret: shown
    once, never stored.
    """
    from .client_metadata import validate_client_metadata

    fields = validate_client_metadata(**metadata)
    # An opaque public identifier (RFC 6749 §2.2); hex never starts with "-", so it is safe as a CLI argument.
    return add_client(secrets.token_hex(16), fields)


def add_client(client_id: str, fields: dict, **stored) -> tuple[Client, str | None]:
    """Store a client whose metadata `fields` were validated (plus `stored` attributes such as
    registered_dynamically); returns it and, for a client authenticating with a secret, its new raw
    secret."""
    from ..storage.clients import Client, add_client as store

    from ..capabilities import CONFIDENTIAL_AUTH_METHODS

    # A private_key_jwt client proves itself with its own key: a secret would be a second, weaker way in.
    secret = new_secret() if fields["token_endpoint_auth_method"] in CONFIDENTIAL_AUTH_METHODS else None
    at = now()
    client = Client(client_id=client_id, secret_hash=sha256_hex(secret) if secret else None,
                    created_at=at, updated_at=at, **stored,
                    **{name: tuple(value) if isinstance(value, list) else value for name, value in fields.items()})
    if not store(client):
        # 128 random bits: never in practice, and then a server error rather than two clients in one.
        raise RuntimeError("a freshly generated client_id is already taken")
    return client, secret


def find_client(client_id: str | None, settings: Settings, *, cache_seconds: int = 0,
                source_ip: str | None = None) -> Client | None:
    """The active client for `client_id`, or None. A document URL that CLIENT_ID_DOCUMENTS does not
    allow is None too (an unknown client). Raises client_documents.DocumentError when the id is an
    allowed document URL that cannot be used (the reason is logged, never shown). `source_ip` is the
    address of the request, against which document fetches are rate limited."""
    from ..storage.clients import get_client, get_client_cached
    from .client_documents import is_document_client_id, resolve

    if not client_id:
        return None
    if is_document_client_id(client_id):
        return resolve(client_id, settings, source_ip=source_ip)
    client = get_client_cached(client_id, cache_seconds) if cache_seconds else get_client(client_id)
    return None if client is None or client.disabled else client


def unverified_scope_ceiling(settings: Settings) -> tuple[str, ...]:
    """Every scope an unverified client may ask for: UNVERIFIED_CLIENT_SCOPES, else the identity
    scopes and those of public resources (from this container's cache, not a Scan per request)."""
    from ..storage.resources import public_scopes
    from ..capabilities import IDENTITY_SCOPES

    if settings.unverified_client_scopes is not None:
        return settings.unverified_client_scopes
    return tuple(dict.fromkeys([*IDENTITY_SCOPES, *public_scopes(settings.client_cache_seconds)]))


def allowed_scopes(client: Client, settings: Settings) -> list[str]:
    """The scopes `client` may ask for, wherever a request or a grant is checked against them.

    An admin-created client may ask for its registered scopes. A client nobody vetted (registered
    at /register or described by a metadata document: `registered_dynamically`) may ask for the
    unverified-client ceiling as it is now, whatever it was registered with: MCP clients step up to
    scopes beyond their first request, publishing an API reaches agents already registered, and
    withdrawing one (or registrations made before the ceiling existed) takes effect at once.
    """
    if client.registered_dynamically:
        return list(unverified_scope_ceiling(settings))
    return list(client.scopes)


def change_authentication(client: Client, method: str, *, jwks=None, jwks_uri: str | None = None,
                          ) -> tuple[Client, str | None]:
    """An operator's change to how a confidential client authenticates (tools/admin.py `clients
    update`): to private_key_jwt with new keys (its secret, if any, is removed: RFC 6749 §2.3 allows
    one method per client, and a leftover secret would be a way in nobody watches), new keys for a
    private_key_jwt client (rotation), or to a secret method (a new secret when it had none, returned
    to be shown once; keys removed). InvalidClientMetadata before anything is written."""
    from ..capabilities import CONFIDENTIAL_AUTH_METHODS
    from ..errors import InvalidClientMetadata
    from ..storage.clients import set_client_authentication
    from .client_metadata import check_auth_method, client_keys

    if client.client_type != "confidential":
        raise InvalidClientMetadata("public clients authenticate with no secret and no key")
    method = check_auth_method("confidential", method)
    keys = client_keys(method, jwks, jwks_uri)
    uses_secret = method in CONFIDENTIAL_AUTH_METHODS
    secret = new_secret() if uses_secret and not client.secret_hash else None
    secret_hash = (sha256_hex(secret) if secret else client.secret_hash) if uses_secret else None
    written = set_client_authentication(client.client_id, token_endpoint_auth_method=method,
                                        secret_hash=secret_hash, **keys)
    if written is None:
        raise InvalidClientMetadata(f"no client with client_id {client.client_id!r}")
    return written, secret
