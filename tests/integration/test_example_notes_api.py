"""The example resource server (examples/notes_api) against a running IdP: audience binding,
scopes and RFC 6750 challenges, with the verifier fetching discovery and JWKS over real HTTP."""
from __future__ import annotations

import base64
import json

import pytest
import requests

pytestmark = pytest.mark.integration

NOTES, BILLING = "https://notes.example.com/api", "https://billing.example.com/api"


@pytest.fixture
def notes_api(idp, monkeypatch):
    monkeypatch.setenv("IDP_ISSUER", idp.base_url)
    monkeypatch.setenv("API_AUDIENCE", NOTES)
    from chalice.test import Client

    from examples.notes_api import app as example

    example.verifier.cache_clear()
    with Client(example.app) as client:
        yield client.http
    example.verifier.cache_clear()


@pytest.fixture
def job(idp, use_stack):
    use_stack(idp)
    from chalicelib.oauth.clients import create_client
    from chalicelib.storage.resources import register_resource

    register_resource(NOTES, "Notes API", ["notes:read", "notes:write"])
    register_resource(BILLING, "Billing API", ["billing:read"])
    return create_client(client_name="Notes job", grant_types=["client_credentials"],
                         scopes=["notes:read", "billing:read"])


def token(idp, job, **params) -> str:
    client, secret = job
    basic = base64.b64encode(f"{client.client_id}:{secret}".encode()).decode()
    response = requests.post(f"{idp.base_url}/token", data={"grant_type": "client_credentials", **params},
                             headers={"Authorization": f"Basic {basic}"}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def test_token_for_the_notes_api_is_accepted(idp, job, notes_api):
    response = notes_api.get("/notes", headers={"Authorization": f"Bearer {token(idp, job, resource=NOTES)}"})
    assert response.status_code == 200
    assert json.loads(response.body)["owner"] == job[0].client_id


def test_token_for_another_resource_is_rejected(idp, job, notes_api):
    other = token(idp, job, resource=BILLING)
    response = notes_api.get("/notes", headers={"Authorization": f"Bearer {other}"})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_missing_scope_is_403_naming_it(idp, job, notes_api):
    read_only = token(idp, job, resource=NOTES, scope="notes:read")
    response = notes_api.post("/notes", body=b'{"text": "x"}',
                              headers={"Authorization": f"Bearer {read_only}", "Content-Type": "application/json"})
    assert response.status_code == 403
    assert 'scope="notes:write"' in response.headers["WWW-Authenticate"]


def test_no_token_is_a_401_challenge_naming_the_scope(notes_api):
    response = notes_api.get("/notes")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api", scope="notes:read"'
