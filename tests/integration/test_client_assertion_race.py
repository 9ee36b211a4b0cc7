"""32 concurrent uses of one private_key_jwt client assertion: exactly one authenticates.

RFC 7523 §3 item 7 lets the server refuse a replayed `jti`; we do, with one conditional PutItem
(chalicelib/storage/used_jtis.py). As in test_concurrency.py, the race runs twice against a running
stack: 32 POST /token requests through its HTTP server, each on its own kept-alive connection, and
32 threads of this process calling client_assertions.verify against the stack's moto server. Each
proves the race reached DynamoDB: the moto server's recording holds 32 PutItems for the jti's key.
"""
from __future__ import annotations

import secrets
import time

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from tests.integration.hosted_flow import TIMEOUT
from tests.integration.test_concurrency import RACE_TIMEOUT, RACERS, race
from tests.integration.moto_recording import requests_of

pytestmark = pytest.mark.integration

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def key_client(stack):
    """A client_credentials client registered with its public key (use_stack first); (client, key)."""
    from chalicelib.oauth.clients import create_client

    key = ec.generate_private_key(ec.SECP256R1())
    jwk = {**ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": "k1"}
    client, secret = create_client(client_name="Racing job", grant_types=["client_credentials"],
                                   token_endpoint_auth_method="private_key_jwt", jwks={"keys": [jwk]})
    assert secret is None
    return client, key


def assertion(stack, client_id: str, key, jti: str) -> str:
    at = int(time.time())
    return jwt.encode({"iss": client_id, "sub": client_id, "aud": f"{stack.base_url}/token", "iat": at,
                       "exp": at + 120, "jti": jti}, key, algorithm="ES256", headers={"kid": "k1"})


def put_items_for(stack, client_id: str, jti: str) -> int:
    """How many PutItem requests on this jti's used-jti item the stack's moto server has served."""
    from chalicelib.storage import used_jtis
    from chalicelib.storage.models import UsedJtiModel

    key = {"S": used_jtis.key("client_assertion", client_id, jti)}
    return sum(request["TableName"] == UsedJtiModel.Meta.table_name and request["Item"]["jti"] == key
               for request in requests_of(stack, "PutItem"))


def test_32_concurrent_token_requests_with_one_assertion_over_http_exactly_one_authenticates(idp, use_stack):
    use_stack(idp)
    client, key = key_client(idp)
    sessions = [requests.Session() for _ in range(RACERS)]
    for session in sessions:  # one connection per racer, opened beforehand (see test_concurrency.py)
        assert session.get(f"{idp.base_url}/jwks", timeout=TIMEOUT).status_code == 200
    form = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE}
    warm_up = requests.post(f"{idp.base_url}/token", timeout=TIMEOUT, data={
        **form, "client_assertion": assertion(idp, client.client_id, key, secrets.token_urlsafe(8))})
    assert warm_up.status_code == 200, warm_up.text
    jti = secrets.token_urlsafe(16)
    body = {**form, "client_assertion": assertion(idp, client.client_id, key, jti)}

    results = race(lambda i: sessions[i].post(f"{idp.base_url}/token", data=body, timeout=RACE_TIMEOUT))

    outcomes = sorted((r.status_code, r.json().get("error_description", "issued")) for r in results)
    assert outcomes == [(200, "issued")] + [(401, "the client assertion was already used")] * (RACERS - 1), outcomes
    assert put_items_for(idp, client.client_id, jti) == RACERS, "every request raced the conditional write"
    for session in sessions:
        session.close()


def test_32_threads_verifying_one_assertion_against_the_moto_server_exactly_one_wins(idp, use_stack):
    from chalicelib.config import settings
    from chalicelib.errors import InvalidClient
    from chalicelib.oauth import client_assertions
    from chalicelib.storage.models import UsedJtiModel

    use_stack(idp)
    client, key = key_client(idp)
    jti = secrets.token_urlsafe(16)
    presented = assertion(idp, client.client_id, key, jti)

    def attempt(_):
        try:
            client_assertions.verify(presented, client, settings())
            return "authenticated"
        except InvalidClient as exc:
            return exc.description

    UsedJtiModel._get_connection().connection.client  # noqa: B018 - build the client before the race
    outcomes = race(attempt)

    assert sorted(outcomes) == ["authenticated"] + ["the client assertion was already used"] * (RACERS - 1), outcomes
    assert put_items_for(idp, client.client_id, jti) == RACERS, "every thread sent its own conditional write"
