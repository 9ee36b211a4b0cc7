"""The connections table: upstream identity providers, read and written as `Connection` records
(chalicelib/federation/connections.py, which validates them before anything reaches this module).

Connections are few and change rarely, and the sign-in page needs all the enabled ones: the API
reads them with one Scan per container per CLIENT_CACHE_SECONDS (`enabled_connections`), never
per request. The operator's CLI reads and writes them one by one, consistently.
"""
from __future__ import annotations

import json

from pynamodb.exceptions import DoesNotExist

from .. import caches
from ..federation.connections import CONNECTION_FIELDS, CONNECTION_ID, Connection
from .cache import ContainerCache
from .models import ConnectionModel, conditionally

_MAPPINGS = ("claim_mapping", "acr_mapping")


def _record(item: ConnectionModel) -> Connection:
    values = {name: getattr(item, name) for name in CONNECTION_FIELDS}
    for name in _MAPPINGS:
        values[name] = json.loads(values[name] or "{}")
    return Connection(**{name: tuple(value) if isinstance(value, list) else value for name, value in values.items()})


def _item(connection: Connection) -> ConnectionModel:
    values = {name: getattr(connection, name) for name in CONNECTION_FIELDS}
    for name in _MAPPINGS:
        values[name] = json.dumps(values[name], sort_keys=True)
    return ConnectionModel(**{name: list(value) if isinstance(value, tuple) else value
                              for name, value in values.items()})


def add_connection(connection: Connection) -> bool:
    """Store a new connection; False (nothing written) when its id is taken. Unlike a client's
    random id, an operator chooses this one, and two creates of the same connection in one second
    look identical: a refusal is never taken for our own write seen again."""
    item = _item(connection)
    written = conditionally(lambda: item.save(condition=ConnectionModel.connection_id.does_not_exist()))
    forget_cached_connections()
    return written


def get_connection(connection_id: str) -> Connection | None:
    if not isinstance(connection_id, str) or not CONNECTION_ID.fullmatch(connection_id):
        return None  # never a stored id: no call
    try:
        return _record(ConnectionModel.get(connection_id, consistent_read=True))
    except DoesNotExist:
        return None


def update_connection(connection: Connection) -> bool:
    """Replace a connection's fields (one conditional PutItem); False when it does not exist."""
    item = _item(connection)
    written = conditionally(lambda: item.save(condition=ConnectionModel.connection_id.exists()))
    forget_cached_connections()
    return written


def delete_connection(connection_id: str) -> bool:
    """Delete a connection (one conditional delete); False when there was none. Its secret is the
    caller's (tools/admin.py deletes it after the record, so no stored connection lacks one)."""
    if not isinstance(connection_id, str) or not CONNECTION_ID.fullmatch(connection_id):
        return False
    written = conditionally(lambda: ConnectionModel(connection_id).delete(
        condition=ConnectionModel.connection_id.exists()))
    forget_cached_connections()
    return written


def list_connections() -> list[Connection]:
    """Every connection, by id (one consistent Scan: the operator's listing, and the HRD check)."""
    return sorted((_record(item) for item in ConnectionModel.scan(consistent_read=True)),
                  key=lambda c: c.connection_id)


def _load_enabled(_key: str) -> tuple[Connection, ...]:
    return tuple(sorted((_record(item) for item in ConnectionModel.scan(ConnectionModel.enabled == True)),  # noqa: E712
                        key=lambda c: (c.display_name.casefold(), c.connection_id)))


_enabled: ContainerCache[tuple[Connection, ...]] = ContainerCache(_load_enabled)
caches.register("connections", _enabled.clear)


def enabled_connections(cache_seconds: int) -> tuple[Connection, ...]:
    """The enabled connections, ordered by display name (the sign-in page's button order), as this
    container last scanned them, at most `cache_seconds` ago (CLIENT_CACHE_SECONDS): a connection
    added, changed or disabled reaches every container within that."""
    return _enabled.get("enabled", cache_seconds)


def forget_cached_connections() -> None:
    _enabled.clear()

