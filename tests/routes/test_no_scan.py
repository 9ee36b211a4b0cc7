"""No request path scans a table, cold or warm, and a warm /jwks makes no DynamoDB call at all (issue 10).

Every call is seen where it leaves: a botocore hook on the container's one DynamoDB client.
"""
from __future__ import annotations

import collections
import json
from urllib.parse import urlencode

import pytest

from tests.conftest import basic_auth, reset_process_state
from tests.routes.flow import FORM, authorize_query, query_of, redeem, sign_in_and_consent

NOTES = "https://notes.example.com/api"


@pytest.fixture
def dynamodb_calls(http):
    """The DynamoDB operations made since the last `.clear()`, by name."""
    from chalicelib import aws

    calls: collections.Counter = collections.Counter()

    def count(event_name, **_):
        calls[event_name.rsplit(".", 1)[-1]] += 1

    events = aws.client("dynamodb").meta.events
    events.register("before-call.dynamodb", count)
    yield calls
    events.unregister("before-call.dynamodb", count)


def cold_container():
    """Forget every per-container cache (keys, clients, resources) but keep the AWS clients and the hook."""
    reset_process_state(endpoint_changed=False)


def test_no_token_request_scans_a_table_cold_or_warm(http, browser, alice, public_client, service_client,
                                                     dynamodb_calls):
    client, secret = service_client
    cc = urlencode({"grant_type": "client_credentials", "resource": NOTES}).encode()
    headers = {**FORM, "Authorization": basic_auth(client.client_id, secret)}
    for _ in ("cold", "warm"):
        assert http.post("/token", body=cc, headers=headers).status_code == 200
    code = query_of(sign_in_and_consent(browser, public_client.client_id, scope="openid email"))["code"]
    dynamodb_calls.clear()
    cold_container()

    assert redeem(http, public_client.client_id, code).status_code == 200
    cold_container()
    assert http.post("/token", body=cc, headers=headers).status_code == 200

    assert dynamodb_calls["Scan"] == 0, dict(dynamodb_calls)
    dynamodb_calls.clear()
    assert http.post("/token", body=cc, headers=headers).status_code == 200
    assert dict(dynamodb_calls) == {}, "a warm client_credentials token makes no call"


def test_a_refresh_scans_nothing_in_a_cold_container(http, browser, alice, keys, dynamodb_calls):
    from chalicelib.oauth.clients import create_client

    app, _ = create_client(client_name="App", client_type="public", redirect_uris=["http://127.0.0.1:5000/cb"],
                           grant_types=["authorization_code", "refresh_token"], scopes=["openid", "offline_access"])
    code = query_of(sign_in_and_consent(browser, app.client_id, scope="openid offline_access"))["code"]
    refresh_token = json.loads(redeem(http, app.client_id, code).body)["refresh_token"]
    cold_container()
    dynamodb_calls.clear()

    refreshed = http.post("/token", headers=FORM, body=urlencode(
        {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": app.client_id}).encode())

    assert refreshed.status_code == 200 and dynamodb_calls["Scan"] == 0, dict(dynamodb_calls)


def test_jwks_is_one_get_item_cold_and_no_call_warm(http, dynamodb_calls):
    cold_container()
    dynamodb_calls.clear()
    cold = http.get("/jwks")
    assert cold.status_code == 200 and dict(dynamodb_calls) == {"GetItem": 1}

    dynamodb_calls.clear()
    warm = http.get("/jwks")

    assert warm.status_code == 200 and dict(dynamodb_calls) == {}
    assert json.loads(warm.body) == json.loads(cold.body) and len(json.loads(warm.body)["keys"]) == 2
    assert warm.headers["Cache-Control"] == cold.headers["Cache-Control"]


def test_authorize_for_a_self_registered_client_scans_nothing_in_a_cold_container(http, browser, public_api,
                                                                                  dynamodb_calls):
    from tests.routes.test_unverified_clients import MCP, register

    agent = register(http)["client_id"]
    cold_container()
    dynamodb_calls.clear()

    response = browser.get("/authorize?" + authorize_query(agent, scope="openid mcp:read", resource=MCP,
                                                           redirect_uri="http://127.0.0.1/cb"))

    assert response.status_code == 302 and dynamodb_calls["Scan"] == 0, dict(dynamodb_calls)


def test_a_deployment_from_before_the_key_ring_summary_serves_requests_until_the_rotation_builds_it(
        http, dynamodb_calls):
    """The API role cannot write the key ring: it falls back to the key items (a Scan) and the next
    rotation run (every deploy runs it) builds the summary, after which requests read only it."""
    from chalicelib.keys import keyring
    from chalicelib.storage.models import KeyRingModel
    from chalicelib.storage.signing_keys import KEY_RING

    KeyRingModel(KEY_RING).delete()
    cold_container()
    dynamodb_calls.clear()
    assert len(json.loads(http.get("/jwks").body)["keys"]) == 2
    assert dynamodb_calls == {"GetItem": 1, "Scan": 1}
    assert keyring.ensure_keys() == []
    cold_container()
    dynamodb_calls.clear()

    assert len(json.loads(http.get("/jwks").body)["keys"]) == 2
    assert dynamodb_calls == {"GetItem": 1}
