"""The moto server that `make run` starts: moto's own, with each DynamoDB action made atomic.

    python -m tools.moto_server -H 127.0.0.1 -p 4566     (arguments as for `python -m moto.server`)

moto's server handles requests in threads, and its DynamoDB backend checks a ConditionExpression
and then applies the write as separate steps with nothing held in between, so two concurrent
conditional writes to one item can both succeed: 32 concurrent redemptions of one authorization
code had two winners in about 2% of races (tests/integration/test_concurrency.py). DynamoDB itself
applies each conditional write atomically, and the IdP relies on that (single-use codes, email
uniqueness, key rotation), so here every DynamoDB action runs under one lock. Other services are
untouched; moto's own state handling is unchanged.
"""
from __future__ import annotations

import functools
import sys
import threading

_LOCK = threading.Lock()


def install() -> None:
    """Serialize moto's DynamoDB actions (idempotent)."""
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler.call_action
    if getattr(original, "serialized", False):
        return

    @functools.wraps(original)
    def call_action(self):
        with _LOCK:
            return original(self)

    call_action.serialized = True
    DynamoHandler.call_action = call_action


def main(argv: list[str] | None = None) -> None:
    from moto import server

    from tools import moto_apigatewayv2, moto_kms

    install()
    moto_kms.install()
    moto_apigatewayv2.install()
    server.main(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
