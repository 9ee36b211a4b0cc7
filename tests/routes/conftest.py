"""Every route test runs behind both front doors, and every DynamoDB call its requests make must be
allowed to the API function's role.

Front doors (chalicelib/front_door.py): chalice.test.Client builds REST API events, naming the
matched route; with the "http" parameter each is re-shaped into what an HTTP API's `$default`
route sends with payload format 1.0 (resource "$default", the real path, no path parameters) before
the app sees it, so the app's own adapter must find the route. Same test, same assertions. Both
shapes double the suite's time, so by default the HTTP shape runs for the modules that cover every
endpoint and every error path (HTTP_SHAPE_MODULES); FRONT_DOORS=all runs every route test behind both.

Role:

The role's DynamoDB statements are rendered from chalicelib/storage/access.py; this checks that
declaration against what the code does: a botocore hook on the container's DynamoDB client records
each call made while the app handles a request (not the fixtures' seeding, which stands for the
admin CLI and its operator credentials), and the test fails if the prod stage's API policy would
deny any of them. A request path that starts calling something new fails here, not in production
as an AccessDeniedException.
"""
from __future__ import annotations

import functools
import os
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


def as_http_api_event(event: dict) -> dict:
    """A REST proxy event as an HTTP API `$default` route sends it (payload format 1.0): the
    route is not named, the path is the real one, stage "$default"."""
    context = event["requestContext"]
    return {**event, "version": "1.0", "resource": "$default", "path": context["path"], "pathParameters": None,
            "requestContext": {**context, "resourcePath": "$default", "stage": "$default", "routeKey": "$default"}}


#: Between them: discovery, JWKS, /authorize, /login, /token (every grant), /userinfo, /introspect,
#: /revoke, registration, and malformed input to every endpoint (including unknown paths).
HTTP_SHAPE_MODULES = {"test_wellknown", "test_authorize", "test_token", "test_userinfo", "test_revoke_introspect",
                      "test_registration", "test_malformed_input", "test_refresh"}


def pytest_generate_tests(metafunc):
    if "front_door" in metafunc.fixturenames:
        module = metafunc.module.__name__.rsplit(".", 1)[-1]
        both = os.environ.get("FRONT_DOORS") == "all" or module in HTTP_SHAPE_MODULES
        metafunc.parametrize("front_door", ["rest", "http"] if both else ["rest"], indirect=True)


@pytest.fixture(autouse=True)
def front_door(request, monkeypatch):
    if request.param == "http":
        from chalice.local import LambdaEventConverter

        create = LambdaEventConverter.create_lambda_event
        monkeypatch.setattr(LambdaEventConverter, "create_lambda_event",
                            lambda self, *args, **kwargs: as_http_api_event(create(self, *args, **kwargs)))
    return request.param


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
