"""A KMS fault after a code or refresh token was spent (issue 11 §1): the client's retry succeeds and
revokes nothing; a replay with no fault behind it is still an attack and still revokes."""
from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from tests.routes.flow import FORM, Browser, query_of, redeem, sign_in_and_consent

SCOPE = "openid email offline_access"


@pytest.fixture
def kms_http(aws, monkeypatch):
    """The app with KMS signing keys: every token signature is a kms:Sign call."""
    from chalice.test import Client

    from app import app
    from chalicelib.keys import keyring
    from tests.conftest import reset_process_state

    monkeypatch.setenv("KEY_BACKEND", "kms")
    reset_process_state(endpoint_changed=False)
    keyring.ensure_keys()
    with Client(app, stage_name="local") as client:
        yield client.http


@pytest.fixture
def app_client(aws, alice):
    from chalicelib.oauth.clients import create_client

    client, _ = create_client(client_name="App", client_type="public", redirect_uris=["http://127.0.0.1:5000/cb"],
                              grant_types=["authorization_code", "refresh_token"],
                              scopes=["openid", "email", "offline_access"])
    return client


@pytest.fixture
def kms_throttled_once(monkeypatch):
    """The next kms:Sign is throttled (after botocore's retries); later ones are not."""
    from botocore.exceptions import ClientError

    from chalicelib.keys.backends import KmsSigner

    real, pending = KmsSigner.sign, [True]

    def sign(self, signing_input):
        if pending and pending.pop():
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "Sign")
        return real(self, signing_input)

    monkeypatch.setattr(KmsSigner, "sign", sign)
    return pending


def grant_of(code: str):
    from chalicelib.hashing import sha256_hex
    from chalicelib.storage import grants
    from chalicelib.storage.models import AuthorizationCodeModel

    item = AuthorizationCodeModel.get(sha256_hex(code), consistent_read=True)
    return item, grants.get(item.sub, item.grant_id)


def refresh(http, client_id, token):
    return http.post("/token", headers=FORM, body=urlencode(
        {"grant_type": "refresh_token", "refresh_token": token, "client_id": client_id}).encode())


def test_a_kms_throttle_at_redemption_leaves_the_code_unused_so_the_retry_succeeds(kms_http, app_client,
                                                                                     kms_throttled_once):
    code = query_of(sign_in_and_consent(Browser(kms_http), app_client.client_id, scope=SCOPE))["code"]

    faulted = redeem(kms_http, app_client.client_id, code)
    assert faulted.status_code == 503 and faulted.headers["Retry-After"].isdigit()
    assert json.loads(faulted.body)["error"] == "temporarily_unavailable"
    item, grant = grant_of(code)
    assert item.consumed_at is None and grant.status == "active" and grant.token_hash is None

    retried = redeem(kms_http, app_client.client_id, code)
    assert retried.status_code == 200
    _, grant = grant_of(code)
    assert grant.status == "active"
    assert refresh(kms_http, app_client.client_id, json.loads(retried.body)["refresh_token"]).status_code == 200


def test_a_replayed_code_still_revokes_its_grant_after_a_fault_was_recovered(kms_http, app_client,
                                                                              kms_throttled_once):
    code = query_of(sign_in_and_consent(Browser(kms_http), app_client.client_id, scope=SCOPE))["code"]
    assert redeem(kms_http, app_client.client_id, code).status_code == 503
    assert redeem(kms_http, app_client.client_id, code).status_code == 200

    replay = redeem(kms_http, app_client.client_id, code)

    assert json.loads(replay.body)["error"] == "invalid_grant"
    assert grant_of(code)[1].status == "revoked"


def test_a_kms_throttle_at_refresh_puts_the_family_back_so_the_retry_rotates_it(kms_http, app_client,
                                                                                kms_throttled_once):
    code = query_of(sign_in_and_consent(Browser(kms_http), app_client.client_id, scope=SCOPE))["code"]
    kms_throttled_once.clear()
    token = json.loads(redeem(kms_http, app_client.client_id, code).body)["refresh_token"]
    before = grant_of(code)[1]
    kms_throttled_once.append(True)

    faulted = refresh(kms_http, app_client.client_id, token)
    assert faulted.status_code == 503 and json.loads(faulted.body)["error"] == "temporarily_unavailable"
    assert grant_of(code)[1] == before  # exactly as it was: current token, expiry, slots, last use

    retried = refresh(kms_http, app_client.client_id, token)
    assert retried.status_code == 200
    successor = json.loads(retried.body)["refresh_token"]
    assert grant_of(code)[1].status == "active"
    assert refresh(kms_http, app_client.client_id, successor).status_code == 200


def test_a_reused_refresh_token_still_revokes_the_family_after_a_fault_was_recovered(kms_http, app_client,
                                                                                     kms_throttled_once):
    code = query_of(sign_in_and_consent(Browser(kms_http), app_client.client_id, scope=SCOPE))["code"]
    kms_throttled_once.clear()
    token = json.loads(redeem(kms_http, app_client.client_id, code).body)["refresh_token"]
    kms_throttled_once.append(True)
    assert refresh(kms_http, app_client.client_id, token).status_code == 503
    assert refresh(kms_http, app_client.client_id, token).status_code == 200

    reuse = refresh(kms_http, app_client.client_id, token)

    assert json.loads(reuse.body)["error"] == "invalid_grant"
    assert grant_of(code)[1].status == "revoked"


def test_a_secrets_manager_fault_loading_the_key_spends_nothing(http, app_client, monkeypatch):
    """The signer is loaded before the code is consumed: the code is never touched."""
    from botocore.exceptions import ClientError

    from chalicelib.keys import keyring

    code = query_of(sign_in_and_consent(Browser(http), app_client.client_id, scope=SCOPE))["code"]
    keyring.clear_caches()
    real = keyring.current_signer

    def unavailable():
        raise ClientError({"Error": {"Code": "InternalServiceError", "Message": "try again"},
                           "ResponseMetadata": {"HTTPStatusCode": 500}}, "GetSecretValue")

    monkeypatch.setattr(keyring, "current_signer", unavailable)
    assert redeem(http, app_client.client_id, code).status_code == 503
    assert grant_of(code)[0].consumed_at is None
    monkeypatch.setattr(keyring, "current_signer", real)
    assert redeem(http, app_client.client_id, code).status_code == 200
