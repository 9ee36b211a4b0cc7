"""Discovery, JWKS, and the JSON 404/405/500 behaviour of the HTTP layer."""
from __future__ import annotations

import json

import pytest

DISCOVERY_PATHS = ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"]


@pytest.mark.parametrize("path", DISCOVERY_PATHS)
def test_discovery_document_names_the_issuer_and_jwks(http, path):
    response = http.get(path)
    assert response.status_code == 200
    doc = json.loads(response.body)
    assert doc["issuer"] == "http://localhost:8000"
    assert doc["jwks_uri"] == "http://localhost:8000/jwks"
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_both_well_known_urls_serve_the_same_document(http):
    first, second = (json.loads(http.get(p).body) for p in DISCOVERY_PATHS)
    assert first == second


def test_jwks_publishes_every_non_expired_key_with_cache_max_age(http, keys):
    response = http.get("/jwks")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "public, max-age=300"
    assert response.headers["Content-Type"] == "application/jwk-set+json"
    kids = {k["kid"] for k in json.loads(response.body)["keys"]}
    assert kids == {k.kid for k in keys}


def test_unknown_route_is_a_json_404(http):
    response = http.get("/no/such/thing")
    assert response.status_code == 404
    assert json.loads(response.body)["error"] == "not_found"
    assert response.headers["Cache-Control"] == "no-store"


def test_wrong_method_is_a_json_405_with_allow(http):
    response = http.post("/jwks", body=b"{}", headers={"Content-Type": "application/json"})
    assert response.status_code == 405
    assert json.loads(response.body)["error"] == "method_not_allowed"
    assert response.headers["Allow"] == "GET"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"


def test_unexpected_exception_is_server_error_without_internals(http, monkeypatch, caplog):
    from chalicelib.keys import keyring

    def explode(*_a, **_k):
        raise RuntimeError("secret internal detail /var/task/chalicelib")

    monkeypatch.setattr(keyring, "jwks", explode)
    response = http.get("/jwks")
    assert response.status_code == 500
    body = json.loads(response.body)
    assert body == {"error": "server_error", "error_description": "the server encountered an unexpected condition"}
    assert "secret internal detail" not in response.body.decode()
    assert response.headers["Cache-Control"] == "no-store"


@pytest.fixture
def issuer_with_path(monkeypatch):
    from chalicelib.config import settings

    monkeypatch.setenv("ISSUER", "http://localhost:8000/tenant")
    settings.cache_clear()
    yield "http://localhost:8000/tenant"
    settings.cache_clear()


@pytest.mark.parametrize("path", [
    "/.well-known/oauth-authorization-server/tenant",   # RFC 8414 §3.1 path insertion
    "/.well-known/openid-configuration/tenant",         # tried by MCP clients
    "/tenant/.well-known/openid-configuration",         # OIDC Discovery §4 (under the base path mapping)
    "/tenant/.well-known/oauth-authorization-server",
])
def test_issuer_with_a_path_is_discoverable_at_every_well_known_form(http, issuer_with_path, path):
    response = http.get(path)
    assert response.status_code == 200, response.body
    doc = json.loads(response.body)
    assert doc["issuer"] == issuer_with_path
    assert doc["authorization_endpoint"] == issuer_with_path + "/authorize"
    assert doc["jwks_uri"] == issuer_with_path + "/jwks"


def test_endpoints_under_the_issuer_path_are_served(http, issuer_with_path):
    assert http.get("/tenant/jwks").status_code == 200


def test_other_issuer_paths_are_unknown(http, issuer_with_path):
    assert http.get("/.well-known/oauth-authorization-server/other").status_code == 404
    assert http.get("/.well-known/oauth-authorization-server/tenant2").status_code == 404


def test_hosted_pages_stay_under_the_issuer_path(browser, public_client, issuer_with_path):
    from tests.routes.flow import authorize_query

    response = browser.get("/tenant/authorize?" + authorize_query(public_client.client_id))
    assert response.status_code == 302 and response.headers["Location"].startswith("/tenant/login?request_id=")
    page = browser.get(response.headers["Location"])
    assert b'action="/tenant/login"' in page.body and b'href="/tenant/assets/idp.css"' in page.body
