"""Every DynamoDB call a route test's requests make must be allowed to the API function's role.

The role's DynamoDB statements are rendered from chalicelib/storage/access.py; this checks that
declaration against what the code does: a botocore hook on the container's DynamoDB client records
each call made while the app handles a request (not the fixtures' seeding, which stands for the
admin CLI and its operator credentials), and the test fails if the prod stage's API policy would
deny any of them. A request path that starts calling something new fails here, not in production
as an AccessDeniedException.
"""
from __future__ import annotations

import functools
import threading

import pytest

from tests.deploy.iam import allows, needs

_handling = threading.local()
ACCOUNT_TABLES = "arn:aws:dynamodb:eu-west-1:123456789012:table/"


@functools.lru_cache(maxsize=1)
def api_policy() -> dict:
    """The prod stage's API policy, its references to the stack's tables resolved to ARNs."""
    from infra import policy
    from infra.stage import load
    from infra.tables import logical_id, specs_by_suffix

    arns = {logical_id(suffix): f"{ACCOUNT_TABLES}{suffix}" for suffix in specs_by_suffix()}

    def resolve(resource):
        if "Fn::GetAtt" in resource:
            return arns[resource["Fn::GetAtt"][0]]
        table, _, rest = resource["Fn::Sub"].removeprefix("${").partition(".Arn}")
        return arns[table] + rest

    statements = [{**s, "Resource": [resolve(r) for r in (s["Resource"] if isinstance(s["Resource"], list)
                                                          else [s["Resource"]])]}
                  for s in policy.api_policy(load("prod"))["Statement"] if s["Sid"].startswith("Table")]
    return {"Statement": statements}


def table_arn(kind: str, name: str) -> str:
    from infra.tables import table_suffix

    assert kind == "table", kind
    return ACCOUNT_TABLES + table_suffix(name)


@pytest.fixture(autouse=True)
def api_role_allows_every_dynamodb_call(monkeypatch):
    from chalice.local import LocalGateway

    from chalicelib import aws

    calls: list[dict] = []
    handle_request = LocalGateway.handle_request

    def handling(self, *args, **kwargs):
        _handling.active = True
        try:
            return handle_request(self, *args, **kwargs)
        finally:
            _handling.active = False

    def record(model, params, **_):
        if getattr(_handling, "active", False):
            calls.append({"service": "dynamodb", "operation": model.name, "params": dict(params)})

    monkeypatch.setattr(LocalGateway, "handle_request", handling)
    events = aws.client("dynamodb").meta.events
    events.register("before-parameter-build.dynamodb", record)
    yield calls
    events.unregister("before-parameter-build.dynamodb", record)
    denied = sorted({str(need) for call in calls for need in needs(call, table_arn, "eu-west-1")
                     if not allows(api_policy(), need)})
    assert not denied, ("the API role (chalicelib/storage/access.py) does not allow what these requests did: "
                        f"{denied}")
