"""Bootstrap over real HTTP against a moto server, as `make run` and the admin CLI do it."""
from __future__ import annotations

import jwt
import pytest
import requests

from chalicelib.keys import keyring
from chalicelib.tokens import jwt as jwt_encode

pytestmark = pytest.mark.integration

#: Where each backend's key material would be if it existed; ensure_keys must notice it does not.
MISSING_KEY_REFS = {
    "secretsmanager": "idp/test/signing-keys/vanished",
    "kms": "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000",
}


@pytest.fixture(params=["secretsmanager", "kms"])
def backend(request, aws_server, monkeypatch):
    from tests.conftest import reset_process_state

    monkeypatch.setenv("KEY_BACKEND", request.param)
    reset_process_state()
    return request.param


def verify_with_jwks(token: str) -> dict:
    kid = jwt.get_unverified_header(token)["kid"]
    jwk = next(k for k in keyring.jwks()["keys"] if k["kid"] == kid)
    return jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=[jwk["alg"]], audience="rs")


def test_bootstrap_creates_every_table_once(aws_server):
    from chalicelib.storage.tables import bootstrap_tables, table_specs

    requests.post(f"{aws_server}/moto-api/reset", timeout=10).raise_for_status()

    assert sorted(bootstrap_tables()) == sorted(spec["TableName"] for spec in table_specs())
    assert bootstrap_tables() == []


def test_bootstrapped_tables_are_on_demand_with_ttl_where_the_model_declares_it(aws_server):
    from chalicelib.aws import client
    from chalicelib.storage.tables import bootstrap_tables, table_specs

    bootstrap_tables()  # a second run over the fixture's must change nothing
    dynamodb = client("dynamodb")
    for spec in table_specs():
        table = dynamodb.describe_table(TableName=spec["TableName"])["Table"]
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        assert table["KeySchema"] == spec["KeySchema"]
        ttl = dynamodb.describe_time_to_live(TableName=spec["TableName"])["TimeToLiveDescription"]
        if spec["TtlAttribute"]:
            assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": spec["TtlAttribute"]}, spec["TableName"]
        else:
            assert ttl["TimeToLiveStatus"] == "DISABLED", spec["TableName"]


def test_ensure_keys_creates_a_current_and_a_next_key_once_and_they_sign(backend):
    created = keyring.ensure_keys()

    assert sorted(k.state for k in created) == ["current", "next"]
    assert {k.backend for k in created} == {backend}
    assert keyring.ensure_keys() == []
    token = jwt_encode.encode({"sub": "alice", "aud": "rs"}, keyring.current_signer())
    assert verify_with_jwks(token)["sub"] == "alice"


def test_ensure_keys_replaces_a_current_key_whose_material_vanished(backend):
    from chalicelib.storage.models import SigningKeyModel

    keyring.ensure_keys()
    lost = next(k for k in keyring.all_keys() if k.state == "current")
    # What a restarted local stack sees for KMS: the row survives, the key it names does not.
    SigningKeyModel(lost.kid).update(actions=[SigningKeyModel.key_ref.set(MISSING_KEY_REFS[backend])])
    keyring.clear_caches()

    created = keyring.ensure_keys()

    assert [k.state for k in created] == ["current"]
    assert {k.kid: k.state for k in keyring.all_keys()}[lost.kid] == "retired"
    assert lost.kid not in {k["kid"] for k in keyring.jwks()["keys"]}
    token = jwt_encode.encode({"sub": "bob", "aud": "rs"}, keyring.current_signer())
    assert verify_with_jwks(token)["sub"] == "bob"
