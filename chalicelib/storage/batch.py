"""Several items, of any tables, in one strongly consistent BatchGetItem.

pynamodb batches per model only; a request that needs a user and a grant (or an email claim and an
authorization request) would pay two round trips for what DynamoDB answers in one.
"""
from __future__ import annotations

import time

from .. import aws

#: Unprocessed keys (DynamoDB's answer under throttling) are asked for again this many times.
ATTEMPTS = 4


def _key(model, values: tuple) -> dict:
    names = [model._hash_key_attribute().attr_name]
    if model._range_key_attribute() is not None:
        names.append(model._range_key_attribute().attr_name)
    return {name: {"S": str(value)} for name, value in zip(names, values, strict=True)}


def get_many(wanted: list[tuple[type, tuple]]) -> list:
    """For each (model class, key values) the model instance, or None when there is no such item,
    in the order asked. Keys are strings (every table here is keyed by strings)."""
    keys = [_key(model, values) for model, values in wanted]
    request: dict = {}
    for (model, _), key in zip(wanted, keys):
        table = request.setdefault(model.Meta.table_name, {"Keys": [], "ConsistentRead": True})
        if key not in table["Keys"]:
            table["Keys"].append(key)
    found: dict = {}
    for attempt in range(ATTEMPTS):
        response = aws.client("dynamodb").batch_get_item(RequestItems=request)
        for table_name, items in response.get("Responses", {}).items():
            for item in items:
                found[(table_name, _identity(item, request[table_name]["Keys"][0]))] = item
        request = response.get("UnprocessedKeys") or {}
        if not request:
            break
        if attempt + 1 == ATTEMPTS:
            raise RuntimeError("DynamoDB left keys unprocessed after retries")
        time.sleep(0.02 * (attempt + 1))
    result = []
    for (model, _), key in zip(wanted, keys):
        item = found.get((model.Meta.table_name, _identity(key, key)))
        result.append(model.from_raw_data(item) if item is not None else None)
    return result


def _identity(item: dict, key_shape: dict) -> tuple:
    """The key attributes of `item`, as a hashable value, using the names of a key of its table."""
    return tuple((name, item[name]["S"]) for name in sorted(key_shape))
