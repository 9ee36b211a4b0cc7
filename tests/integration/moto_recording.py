"""What a stack's moto server was asked: its recording (moto-recording.jsonl in the stack's state
directory) read back, so a race test can count the conditional writes one item received."""
from __future__ import annotations

import base64
import json


def requests_of(stack, operation: str):
    """The JSON bodies of every DynamoDB `operation` ("UpdateItem", "PutItem", ...) the stack's moto
    server has served, in order."""
    with open(stack.state_dir / "moto-recording.jsonl") as recording:
        for line in recording:
            entry = json.loads(line)
            headers = {k.lower(): v for k, v in entry.get("headers", {}).items()}
            if headers.get("x-amz-target") != f"DynamoDB_20120810.{operation}":
                continue
            yield json.loads(base64.b64decode(entry["body"]) if entry.get("body_encoded") else entry["body"])


def update_items(stack, table_name: str, key: dict) -> int:
    """How many UpdateItem requests on the item `key` (DynamoDB JSON) of `table_name` the stack's
    moto server has served."""
    return sum(request["TableName"] == table_name and request["Key"] == key
               for request in requests_of(stack, "UpdateItem"))
