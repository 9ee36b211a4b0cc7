"""Fault injection on private_key_jwt client authentication, as tests/faults/test_fault_injection.py
does for the OAuth endpoints: every AWS call of a POST /token (client_credentials) and a POST
/introspect authenticated by a client assertion is failed in turn (throttled, failing, timed out, a
write's answer lost), with Secrets Manager and with KMS keys. Each time the answer is a JSON 503 with
Retry-After, or the normal answer when the fault was absorbed (the used-jti PutItem re-sent after
its answer was lost is recognised as ours, not as a replay), never a 500; and the client's retry
succeeds.

The retry signs a new assertion, as clients do for every request (RFC 7523 §3 item 7: a jti is for
one use; Authlib signs one per request). A fault after the jti was spent leaves only that used-jti
item, which nothing else reads and which expires with the assertion: unlike a code or a refresh
token, a spent assertion revokes nothing when presented again, so there is nothing to put back.
"""
from __future__ import annotations

import json
import secrets
import time
from urllib.parse import urlencode

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from tests.faults.test_fault_injection import Injector, _current, _hook, error_kinds
from tests.routes.flow import FORM

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
NOTES = "https://notes.example.com/api"


class AssertionInjector(Injector):
    """test_fault_injection's injector, registered under its own hook ids: pytest imports that module
    under another name than this one's import of it, and a hook id taken by one copy would silence
    the other's."""

    def install(self):
        from chalicelib import aws

        _current[:] = [self]
        for service in ("dynamodb", "secretsmanager", "kms"):
            client = aws.client(service)
            client.meta.events.register("before-call", _hook(client), unique_id=f"assertion-fault-injector-{service}")


@pytest.fixture
def world(keys, api_resources, request):
    from chalice.test import Client

    from app import app
    from chalicelib.oauth.clients import create_client

    key = ec.generate_private_key(ec.SECP256R1())
    client, _ = create_client(client_name="Key job", grant_types=["client_credentials"], scopes=["notes:read"],
                              token_endpoint_auth_method="private_key_jwt", introspects=[NOTES],
                              jwks={"keys": [{**ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": "k1"}]})
    with Client(app, stage_name="local") as test_client:
        yield test_client.http, client, key


def send(world, path: str):
    http, client, key = world
    at = int(time.time())
    client_assertion = jwt.encode({"iss": client.client_id, "sub": client.client_id, "aud": "http://localhost:8000",
                                   "exp": at + 60, "jti": secrets.token_urlsafe(12)}, key, algorithm="ES256",
                                  headers={"kid": "k1"})
    params = {"grant_type": "client_credentials", "resource": NOTES} if path == "/token" else {"token": "x"}
    return http.post(path, headers=FORM, body=urlencode({
        **params, "client_assertion_type": ASSERTION_TYPE, "client_assertion": client_assertion}).encode())


# Only /token signs, so only it runs with KMS keys too (a kms:Sign per token).
@pytest.mark.parametrize("path, backend", [("/token", "secretsmanager"), ("/token", "kms"),
                                           ("/introspect", "secretsmanager")])
def test_no_fault_of_any_call_answers_500_and_the_retry_succeeds(world, monkeypatch, path, backend):
    from tests.conftest import select_key_backend

    if backend == "kms":
        from chalicelib.keys import keyring

        select_key_backend(monkeypatch, "kms")
        keyring.ensure_keys()
    injector = AssertionInjector()
    baseline = injector.run(lambda: send(world, path))
    assert baseline.status_code == 200, baseline.body
    calls = list(injector.calls)
    assert "dynamodb.PutItem" in calls, "the jti is spent with a conditional put"
    exercised = 0
    for index, call in enumerate(calls):
        for kind in error_kinds(call):
            response = injector.run(lambda: send(world, path), fail_at=index, kind=kind)
            where = f"{path} {call} {kind}"
            assert injector.calls[index] == call, where
            if kind == "lost-response":
                assert response.status_code == 200, f"{where}: {response.status_code} {response.body[:300]!r}"
            else:
                assert response.status_code == 503, f"{where}: {response.status_code} {response.body[:300]!r}"
                assert response.headers["Retry-After"].isdigit(), where
                assert json.loads(response.body)["error"] == "temporarily_unavailable", where
            retry = injector.run(lambda: send(world, path))
            assert retry.status_code == 200, f"retry after {where}: {retry.status_code} {retry.body[:300]!r}"
            exercised += 1
    assert exercised >= 4
