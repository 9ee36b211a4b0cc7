"""OAuth client registry (RFC 6749 §2): the ClientModel repository.

Metadata names follow RFC 7591 §2 (client_name, redirect_uris, grant_types, response_types,
token_endpoint_auth_method); their rules live in chalicelib/oauth/client_metadata.py. A confidential client's secret is a 256-bit random value stored only
as its SHA-256 (chalicelib/hashing.py); the raw secret is returned once, by create_client.
"""
from __future__ import annotations

import secrets

from pynamodb.exceptions import DoesNotExist

from .. import caches
from ..hashing import new_secret, sha256_hex
from ..log import now
from .cache import ContainerCache
from .models import ClientModel, conditionally


def create_client(**metadata) -> tuple[ClientModel, str | None]:
    """Register an administrator's client (arguments as for oauth.client_metadata.validate_client_metadata,
    whose InvalidClientMetadata it raises before anything is written).

    Returns the stored client and, for a confidential client, its raw secret: shown once, never stored.
    """
    from ..oauth.client_metadata import validate_client_metadata  # the rules are the core's, not storage's

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
caches.register("clients", _cache.clear)


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
