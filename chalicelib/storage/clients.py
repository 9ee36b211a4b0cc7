"""OAuth client registry (RFC 6749 §2): the clients table, read and written as `Client` records.

Metadata names follow RFC 7591 §2 (client_name, redirect_uris, grant_types, response_types,
token_endpoint_auth_method); their rules are the core's (chalicelib/oauth/client_metadata.py), which
validates before anything reaches this module. A confidential client's secret is stored only as its
SHA-256 (chalicelib/hashing.py), and so is a self-registered client's RFC 7592 registration token.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

from pynamodb.exceptions import DoesNotExist

from .. import caches
from ..log import now
from .cache import ContainerCache
from .models import ClientModel, conditionally


@dataclass(frozen=True)
class Client:
    """A registered client as the core sees it (the ClientModel item, or a client ID metadata document
    expressed as a client, which is never stored). Frozen, with tuples: a cached record is shared by
    every request a container serves, so nothing may change it in place."""

    client_id: str
    client_name: str
    client_type: str  # "confidential" | "public"
    token_endpoint_auth_method: str
    secret_hash: str | None = None
    redirect_uris: tuple[str, ...] = ()
    grant_types: tuple[str, ...] = ()
    response_types: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    #: RFC 8707 resources this client may request; empty means any registered resource.
    resources: tuple[str, ...] = ()
    #: May call /introspect, for tokens whose audience is one of `introspects`.
    introspection: bool = False
    introspects: tuple[str, ...] = ()
    #: Nobody vetted it (POST /register, or a metadata document): "unverified" on the consent page.
    registered_dynamically: bool = False
    registration_token_hash: str | None = None
    client_uri: str | None = None
    disabled: bool = False
    #: Its users must sign in with a second factor (an operator's setting; MFA_POLICY=off overrides).
    require_mfa: bool = False
    #: How its users may sign in: connection ids and "password"; empty: every enabled connection and
    #: the password form (an operator's setting: chalicelib/federation/home_realm.py).
    connections: tuple[str, ...] = ()
    created_at: int = 0
    updated_at: int = 0
    #: OpenID Connect RP-Initiated Logout 1.0 §3.1 / Back-Channel Logout 1.0 §2.2 metadata
    #: (chalicelib/oauth/client_metadata.py checks them).
    post_logout_redirect_uris: tuple[str, ...] = ()
    backchannel_logout_uri: str | None = None
    backchannel_logout_session_required: bool = False
    #: private_key_jwt (RFC 7523 §2.2): its public keys, a JWK Set as JSON text, or where to fetch it.
    jwks: str | None = None
    jwks_uri: str | None = None
    #: JSON text of its exchange policies (chalicelib/oauth/exchange_policy.py parses and checks them).
    exchange_policies: str | None = None
    #: RFC 9449 §5.2: every access token it gets must be DPoP-bound (token requests without a proof fail).
    dpop_bound_access_tokens: bool = False
    #: RFC 9126 §6: its authorization requests must come through /par.
    require_pushed_authorization_requests: bool = False


_FIELDS = tuple(f.name for f in fields(Client))


def _record(item: ClientModel) -> Client:
    values = {name: getattr(item, name) for name in _FIELDS}
    return Client(**{name: tuple(value) if isinstance(value, list) else value for name, value in values.items()})


def _item_values(client: Client) -> dict:
    return {name: list(value) if isinstance(value, tuple) else value for name, value in
            ((name, getattr(client, name)) for name in _FIELDS)}


def add_client(client: Client) -> bool:
    """Store a new client; False (nothing written) when its client_id is taken.

    When botocore sends the PutItem again because the answer to the first was lost, the second
    finds the client the first wrote: on a refusal the item is read (only then), and finding
    exactly this client means it was written, by us."""
    item = ClientModel(**_item_values(client))
    if conditionally(lambda: item.save(condition=ClientModel.client_id.does_not_exist())):
        return True
    return get_client(client.client_id) == client


def get_client(client_id: str) -> Client | None:
    # DynamoDB refuses keys over 2048 bytes with an error; such an id is simply unknown.
    if not client_id or len(client_id.encode("utf-8")) > 1024:
        return None
    try:
        return _record(ClientModel.get(client_id, consistent_read=True))
    except DoesNotExist:
        return None


# The token endpoint authenticates the same few clients over and over; caching their registration
# for CLIENT_CACHE_SECONDS saves a DynamoDB read per request.
_cache: ContainerCache[Client] = ContainerCache(lambda client_id: get_client(client_id))
caches.register("clients", _cache.clear)


def get_client_cached(client_id: str, max_age: int) -> Client | None:
    """A client as this container last read it, at most `max_age` seconds ago."""
    return _cache.get(client_id, max_age)


def forget_cached_clients() -> None:
    _cache.clear()


def list_clients() -> list[Client]:
    return sorted((_record(item) for item in ClientModel.scan(consistent_read=True)),
                  key=lambda c: (c.created_at, c.client_id))


def rotate_registration_token(client_id: str, *, expected_hash: str | None, new_hash: str,
                              **updates) -> Client | None:
    """RFC 7592: swap the registration token's hash from `expected_hash` to `new_hash` and apply
    `updates` (attribute -> value; None removes it), as one conditional UpdateItem, which returns the
    client as written. None (nothing written) when the stored hash is no longer `expected_hash`: a
    concurrent request rotated it first, or the client is gone."""
    actions = [ClientModel.registration_token_hash.set(new_hash), ClientModel.updated_at.set(now())]
    actions += [getattr(ClientModel, name).set(list(value) if isinstance(value, tuple) else value)
                if value is not None else getattr(ClientModel, name).remove()
                for name, value in updates.items()]
    item = ClientModel(client_id)
    if not conditionally(lambda: item.update(
            actions=actions, condition=ClientModel.registration_token_hash == expected_hash)):
        # Refused: another request rotated first, or this one did and botocore re-sent the write
        # after its answer was lost. Only we know `new_hash` (a fresh random token's): finding it
        # stored means the write was ours. Read only on this refusal path.
        current = get_client(client_id)
        return current if current is not None and current.registration_token_hash == new_hash else None
    return _record(item)  # pynamodb read the item as written (ALL_NEW) back into `item`


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


def set_client_require_mfa(client_id: str, require_mfa: bool) -> bool:
    """Set whether the client's users must sign in with a second factor. False when there is no such
    client. Containers that cached the client notice within CLIENT_CACHE_SECONDS."""
    return bool(client_id) and conditionally(lambda: ClientModel(client_id).update(
        actions=[ClientModel.require_mfa.set(require_mfa), ClientModel.updated_at.set(now())],
        condition=ClientModel.client_id.exists()))


def set_client_require_par(client_id: str, required: bool) -> bool:
    """Set whether the client's authorization requests must be pushed (RFC 9126 §6
    `require_pushed_authorization_requests`). False when there is no such client. Containers that
    cached the client notice within CLIENT_CACHE_SECONDS."""
    return bool(client_id) and conditionally(lambda: ClientModel(client_id).update(
        actions=[ClientModel.require_pushed_authorization_requests.set(required), ClientModel.updated_at.set(now())],
        condition=ClientModel.client_id.exists()))


def set_client_dpop_bound_access_tokens(client_id: str, bound: bool) -> bool:
    """Set whether every token request of the client needs a DPoP proof (RFC 9449 §5.2). False when
    there is no such client. Containers that cached the client notice within CLIENT_CACHE_SECONDS."""
    return bool(client_id) and conditionally(lambda: ClientModel(client_id).update(
        actions=[ClientModel.dpop_bound_access_tokens.set(bound), ClientModel.updated_at.set(now())],
        condition=ClientModel.client_id.exists()))


def set_client_connections(client_id: str, connections: tuple[str, ...]) -> bool:
    """Set how the client's users may sign in (connection ids and "password"; empty: any). False
    when there is no such client. Containers that cached the client notice within CLIENT_CACHE_SECONDS."""
    return bool(client_id) and conditionally(lambda: ClientModel(client_id).update(
        actions=[ClientModel.connections.set(list(connections)), ClientModel.updated_at.set(now())],
        condition=ClientModel.client_id.exists()))


def set_client_exchange_policies(client_id: str, text: str | None, *, expected: str | None) -> bool:
    """Replace the client's exchange policies (JSON text, chalicelib/oauth/exchange_policy.dump; None
    removes them), on condition that they are still `expected`: one conditional UpdateItem, so two
    operators editing at once cannot silently drop each other's rule. False when the client is gone
    or its policies changed since they were read. Containers that cached the client notice within
    CLIENT_CACHE_SECONDS."""
    unchanged = (ClientModel.exchange_policies.does_not_exist() if expected is None
                 else ClientModel.exchange_policies == expected)
    action = ClientModel.exchange_policies.set(text) if text is not None else ClientModel.exchange_policies.remove()
    return bool(client_id) and conditionally(lambda: ClientModel(client_id).update(
        actions=[action, ClientModel.updated_at.set(now())], condition=ClientModel.client_id.exists() & unchanged))


def set_client_authentication(client_id: str, *, token_endpoint_auth_method: str, secret_hash: str | None,
                              jwks: str | None, jwks_uri: str | None) -> Client | None:
    """Set how the client authenticates (its method, and its secret's hash or its keys; None removes
    one), as one conditional UpdateItem, which returns the client as written. None when there is no
    such client. Containers that cached the client notice within CLIENT_CACHE_SECONDS."""
    values = {"token_endpoint_auth_method": token_endpoint_auth_method, "secret_hash": secret_hash,
              "jwks": jwks, "jwks_uri": jwks_uri}
    actions = [ClientModel.updated_at.set(now())]
    actions += [getattr(ClientModel, name).set(value) if value is not None else getattr(ClientModel, name).remove()
                for name, value in values.items()]
    item = ClientModel(client_id)
    if not client_id or not conditionally(lambda: item.update(actions=actions,
                                                              condition=ClientModel.client_id.exists())):
        return None
    return _record(item)
