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


def consistent_batch_get(keys: Sequence[tuple[type[Model], str | tuple[str, str]]], *,
                         projections: dict[type[Model], Sequence[str]] | None = None) -> list[Model | None]:
    """The item of each (model, key), or None where there is none, in the order asked: one
    strongly consistent BatchGetItem (more only while DynamoDB leaves keys unprocessed). A key is
    the hash key, or (hash key, range key) for a table that has one (grants). `projections`: only
    these attributes of that model's items (the key attributes are always read)."""
    names: dict[str, tuple[str, ...]] = {}  # table -> its key attributes (models sharing a table share them)
    wanted: dict[str, list[dict]] = {}
    serialized = []
    for model, key_values in keys:
        key = _key(model, key_values)
        serialized.append(tuple(next(iter(v.values())) for v in key.values()))
        names[model.Meta.table_name] = tuple(key)
        table_keys = wanted.setdefault(model.Meta.table_name, [])
        if key not in table_keys:  # BatchGetItem refuses a key named twice
            table_keys.append(key)
    found: dict[tuple, dict] = {}
    request = {table: {"Keys": table_keys, "ConsistentRead": True} for table, table_keys in wanted.items()}
    for model, attributes in (projections or {}).items():
        # Expression names throughout: some attribute names ("status") are DynamoDB reserved words.
        names_used = dict.fromkeys([*names[model.Meta.table_name], *attributes])
        request[model.Meta.table_name].update(
            ProjectionExpression=", ".join(f"#p{i}" for i in range(len(names_used))),
            ExpressionAttributeNames={f"#p{i}": name for i, name in enumerate(names_used)})
    for attempt in range(UNPROCESSED_ATTEMPTS):
        response = aws.client("dynamodb").batch_get_item(RequestItems=request)
        for table, items in response.get("Responses", {}).items():
            for item in items:
                found[(table, tuple(next(iter(item[name].values())) for name in names[table]))] = item
        request = response.get("UnprocessedKeys") or {}
        if not request:
            break
        time.sleep(0.02 * 2 ** attempt)
    else:
        raise StorageIncomplete(f"keys of {sorted(request)} left unprocessed")
    items = [found.get((model.Meta.table_name, values)) for (model, _), values in zip(keys, serialized)]
    return [model.from_raw_data(item) if item is not None else None for (model, _), item in zip(keys, items)]


def _key(model: type[Model], key_values) -> dict:
    values = key_values if isinstance(key_values, tuple) else (key_values,)
    attributes = [model._hash_key_attribute()] + ([model._range_key_attribute()] if len(values) == 2 else [])
    return {a.attr_name: {a.attr_type: a.serialize(v)} for a, v in zip(attributes, values, strict=True)}
