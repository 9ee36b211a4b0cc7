"""Several items, of any tables, in one DynamoDB round trip (BatchGetItem).

A request that needs items whose keys it already knows reads them together rather than one
GetItem after another: each round trip is about as much botocore CPU as the rest of a fast request,
plus the network latency, and Lambda bills the wall time. Reads are strongly consistent, like the
GetItems they replace: single-use records (authorization requests) and anything a revocation
changes must be read as last written.
"""
from __future__ import annotations

import time
from typing import Sequence

from .. import aws
from ..errors import StorageIncomplete
from .connection import Model

#: BatchGetItem may answer only part of a request (UnprocessedKeys) when a table is throttled; the
#: rest is asked again, after a short pause, a few times before giving up.
UNPROCESSED_ATTEMPTS = 4


def consistent_batch_get(keys: Sequence[tuple[type[Model], str]]) -> list[Model | None]:
    """The item of each (model, hash key), or None where there is none, in the order asked: one
    strongly consistent BatchGetItem (more only while DynamoDB leaves keys unprocessed)."""
    names: dict[str, str] = {}  # table -> its key attribute (models sharing a table share it)
    wanted: dict[str, list[dict]] = {}
    for model, hash_key in keys:
        attribute = model._hash_key_attribute()
        names[model.Meta.table_name] = attribute.attr_name
        key = {attribute.attr_name: {attribute.attr_type: attribute.serialize(hash_key)}}
        table_keys = wanted.setdefault(model.Meta.table_name, [])
        if key not in table_keys:  # BatchGetItem refuses a key named twice
            table_keys.append(key)
    found: dict[tuple[str, str], dict] = {}
    request = {table: {"Keys": table_keys, "ConsistentRead": True} for table, table_keys in wanted.items()}
    for attempt in range(UNPROCESSED_ATTEMPTS):
        response = aws.client("dynamodb").batch_get_item(RequestItems=request)
        for table, items in response.get("Responses", {}).items():
            for item in items:
                (value,) = item[names[table]].values()
                found[(table, value)] = item
        request = response.get("UnprocessedKeys") or {}
        if not request:
            break
        time.sleep(0.02 * 2 ** attempt)
    else:
        raise StorageIncomplete(f"keys of {sorted(request)} left unprocessed")
    items = [found.get((model.Meta.table_name, model._hash_key_attribute().serialize(hash_key)))
             for model, hash_key in keys]
    return [model.from_raw_data(item) if item is not None else None for (model, _), item in zip(keys, items)]
