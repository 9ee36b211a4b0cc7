"""Dynamic client registration (RFC 7591) and management (RFC 7592), with every validation failure."""
from __future__ import annotations

import json

import pytest

from tests.routes.flow import authorize_query, hidden, query_of, redeem, register_public_agent, sign_in_and_consent

JSON = {"Content-Type": "application/json"}
MCP = "https://mcp.example.com/mcp"
MCP_STYLE = {  # what an MCP client sends: no scope, public, loopback redirect
    "client_name": "Claude Desktop",
    "redirect_uris": ["http://127.0.0.1:33418/oauth/callback"],
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code"],
    "token_endpoint_auth_method": "none",
}


def register(http, metadata, headers=None):
    body = metadata if isinstance(metadata, bytes) else json.dumps(metadata).encode()
    return http.post("/register", body=body, headers={**JSON, **(headers or {})})


@pytest.fixture
def registered(http, api_resources, public_api):
    response = register(http, MCP_STYLE)
    assert response.status_code == 201, response.body
    return json.loads(response.body)


def test_open_registration_of_an_mcp_style_public_client(registered):
    assert registered["token_endpoint_auth_method"] == "none" and "client_secret" not in registered
    assert registered["redirect_uris"] == MCP_STYLE["redirect_uris"]
    assert registered["grant_types"] == ["authorization_code", "refresh_token"]
    assert isinstance(registered["client_id_issued_at"], int)
    assert registered["registration_client_uri"] == f"http://localhost:8000/register/{registered['client_id']}"
    assert len(registered["registration_access_token"]) >= 43
    # No scope requested: the unverified-client ceiling, identity scopes and public resources' only.
    assert registered["scope"].split() == ["openid", "profile", "email", "offline_access", "mcp:read", "mcp:write"]


@pytest.mark.parametrize("scope", ["notes:read", "no-such:scope"])
def test_a_private_apis_scope_is_refused_exactly_like_one_that_does_not_exist(http, api_resources, public_api, scope):
    """Anonymous callers must not learn which scopes private APIs define from /register."""
    from chalicelib.storage.models import ClientModel

    response = register(http, {**MCP_STYLE, "scope": f"openid {scope}"})
    assert response.status_code == 400
    assert json.loads(response.body) == {"error": "invalid_client_metadata",
                                         "error_description": f"scope not available to self-registered clients: "
                                                              f"{scope!r}"}
    assert ClientModel.count() == 0


def test_a_public_apis_scope_may_be_requested_at_registration(http, api_resources, public_api):
    response = register(http, {**MCP_STYLE, "scope": "openid mcp:read"})
    assert response.status_code == 201, response.body
    assert "notes:read" not in json.loads(response.body)["scope"].split()


def test_unverified_client_scopes_setting_replaces_the_default_ceiling(http, api_resources, public_api, monkeypatch):
    from chalicelib.config import settings

    monkeypatch.setenv("UNVERIFIED_CLIENT_SCOPES", "openid notes:read")
    settings.cache_clear()
    body = json.loads(register(http, MCP_STYLE).body)
    assert body["scope"] == "openid notes:read"
    refused = register(http, {**MCP_STYLE, "scope": "mcp:read"})
    assert json.loads(refused.body)["error"] == "invalid_client_metadata"


def test_confidential_registration_gets_a_secret_stored_as_a_hash(http, keys):
    from chalicelib.storage.models import ClientModel

    body = json.loads(register(http, {**MCP_STYLE, "token_endpoint_auth_method": "client_secret_basic"}).body)
    assert body["client_secret_expires_at"] == 0
    stored = ClientModel.get(body["client_id"])
    assert body["client_secret"] not in json.dumps(stored.attribute_values, default=str)
    assert body["registration_access_token"] not in json.dumps(stored.attribute_values, default=str)


@pytest.mark.parametrize("change, error", [
    ({"redirect_uris": []}, "invalid_redirect_uri"),
    ({"redirect_uris": ["http://evil.example/cb"]}, "invalid_redirect_uri"),
    ({"redirect_uris": ["https://app.example/cb#frag"]}, "invalid_redirect_uri"),
    ({"redirect_uris": ["https://*.example/cb"]}, "invalid_redirect_uri"),
    ({"redirect_uris": ["javascript:alert(1)"]}, "invalid_redirect_uri"),
    ({"redirect_uris": ["https://user:pw@app.example/cb"]}, "invalid_redirect_uri"),
    ({"redirect_uris": [f"https://app.example/{i}" for i in range(11)]}, "invalid_redirect_uri"),
    ({"redirect_uris": "https://app.example/cb"}, "invalid_client_metadata"),
    ({"token_endpoint_auth_method": "private_key_jwt"}, "invalid_client_metadata"),
    ({"grant_types": ["implicit"]}, "invalid_client_metadata"),
    ({"grant_types": ["client_credentials"]}, "invalid_client_metadata"),
    ({"grant_types": ["refresh_token"]}, "invalid_client_metadata"),
    ({"response_types": ["token"]}, "invalid_client_metadata"),
    ({"response_types": ["code", "id_token"]}, "invalid_client_metadata"),
    ({"scope": "openid admin:everything"}, "invalid_client_metadata"),
    ({"scope": ["openid"]}, "invalid_client_metadata"),
    ({"client_name": ""}, "invalid_client_metadata"),
    ({"client_name": "x" * 201}, "invalid_client_metadata"),
    ({"client_name": "bad\u0000name"}, "invalid_client_metadata"),
    ({"client_uri": "http://evil.example"}, "invalid_client_metadata"),
])
def test_each_invalid_field_is_refused_and_nothing_is_stored(http, keys, change, error):
    from chalicelib.storage.models import ClientModel

    before = ClientModel.count()
    response = register(http, {**MCP_STYLE, **change})
    assert response.status_code == 400, response.body
    assert json.loads(response.body)["error"] == error
    assert response.headers["Cache-Control"] == "no-store"
    assert ClientModel.count() == before


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'"string"'])
def test_non_object_bodies_are_invalid_client_metadata(http, keys, body):
    response = register(http, body)
    assert response.status_code == 400 and json.loads(response.body)["error"] == "invalid_client_metadata"


def test_oversized_request_is_refused(http, keys):
    response = register(http, {**MCP_STYLE, "client_name": "a", "padding": "x" * 9000})
    assert response.status_code == 413 and json.loads(response.body)["error"] == "invalid_request"


def test_registrations_are_rate_limited_per_ip(http, keys, monkeypatch):
    monkeypatch.setenv("REGISTRATION_MAX_PER_IP", "3")
    from chalicelib.config import settings

    settings.cache_clear()
    assert [register(http, MCP_STYLE).status_code for _ in range(4)] == [201, 201, 201, 429]


def test_an_ipv6_client_cannot_escape_the_registration_limit_by_rotating_within_its_64(http, keys, monkeypatch):
    from chalice.local import LambdaEventConverter

    from chalicelib.config import settings

    monkeypatch.setenv("REGISTRATION_MAX_PER_IP", "2")
    settings.cache_clear()
    answers = []
    for address in ("2001:db8:7:7::1", "2001:db8:7:7::2", "2001:db8:7:7:ffff::3", "2001:db8:7:8::1"):
        monkeypatch.setattr(LambdaEventConverter, "LOCAL_SOURCE_IP", address)
        answers.append(register(http, MCP_STYLE).status_code)
    assert answers == [201, 201, 429, 201], "the third address shares the /64; the fourth is another /64"


def test_initial_access_token_mode(http, keys, monkeypatch):
    from chalicelib.config import settings
    from chalicelib.hashing import sha256_hex

    monkeypatch.setenv("REGISTRATION_MODE", "token")
    monkeypatch.setenv("REGISTRATION_TOKEN_SHA256", sha256_hex("let-me-in"))
    settings.cache_clear()
    assert register(http, MCP_STYLE).status_code == 401
    assert register(http, MCP_STYLE, {"Authorization": "Bearer wrong"}).status_code == 401
    assert register(http, MCP_STYLE, {"Authorization": "Bearer let-me-in"}).status_code == 201


def test_registration_off_is_refused_and_not_advertised(http, keys, monkeypatch):
    from chalicelib.config import settings

    monkeypatch.setenv("REGISTRATION_MODE", "off")
    settings.cache_clear()
    assert register(http, MCP_STYLE).status_code == 403
    assert "registration_endpoint" not in json.loads(http.get("/.well-known/oauth-authorization-server").body)


def manage(http, method, registered, token=None, body=None):
    headers = {**JSON, "Authorization": f"Bearer {token or registered['registration_access_token']}"}
    path = f"/register/{registered['client_id']}"
    if method == "get":
        return http.get(path, headers=headers)
    if method == "delete":
        return http.delete(path, headers=headers)
    return http.put(path, body=json.dumps(body).encode(), headers=headers)


def test_read_returns_the_registration_and_rotates_the_token(http, registered):
    response = manage(http, "get", registered)
    assert response.status_code == 200
    body = json.loads(response.body)
    assert body["client_id"] == registered["client_id"] and body["redirect_uris"] == MCP_STYLE["redirect_uris"]
    assert body["registration_access_token"] != registered["registration_access_token"]
    assert manage(http, "get", registered).status_code == 401, "the old token was spent"
    assert manage(http, "get", registered, token=body["registration_access_token"]).status_code == 200


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_wrong_registration_token_is_401_invalid_token(http, registered, method):
    response = manage(http, method, registered, token="wrong-token", body={**MCP_STYLE})
    assert response.status_code == 401
    assert json.loads(response.body)["error"] == "invalid_token"
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_another_clients_registration_token_does_not_work(http, registered):
    other = json.loads(register(http, MCP_STYLE).body)
    response = manage(http, "get", registered, token=other["registration_access_token"])
    assert response.status_code == 401


def test_admin_created_clients_cannot_be_managed_through_rfc7592(http, public_client):
    response = http.get(f"/register/{public_client.client_id}", headers={"Authorization": "Bearer x"})
    assert response.status_code == 401


def test_update_replaces_metadata(http, registered):
    new = {**MCP_STYLE, "client_id": registered["client_id"], "client_name": "Renamed",
           "redirect_uris": ["https://app.example.com/cb"]}
    response = manage(http, "put", registered, body=new)
    assert response.status_code == 200, response.body
    body = json.loads(response.body)
    assert body["client_name"] == "Renamed" and body["redirect_uris"] == ["https://app.example.com/cb"]


def test_update_validates_like_registration_and_needs_the_client_id(http, registered):
    bad = manage(http, "put", registered, body={**MCP_STYLE, "client_id": registered["client_id"],
                                                "redirect_uris": ["http://evil.example/cb"]})
    assert json.loads(bad.body)["error"] == "invalid_redirect_uri"
    missing = manage(http, "put", registered, body=MCP_STYLE)
    assert json.loads(missing.body)["error"] == "invalid_client_metadata"


def test_delete_removes_the_client(http, registered):
    from chalicelib.storage.clients import get_client

    assert manage(http, "delete", registered).status_code == 204
    assert get_client(registered["client_id"]) is None
    assert manage(http, "get", registered).status_code == 401


def test_registered_client_completes_a_flow_and_shows_as_unverified(browser, http, public_api, alice):
    registered = json.loads(register(http, {**MCP_STYLE, "redirect_uris": ["http://127.0.0.1/cb"]}).body)
    location = browser.get("/authorize?" + authorize_query(registered["client_id"], scope="openid mcp:read",
                                                           resource=MCP))
    location = location.headers["Location"]
    page = browser.get(location)
    response = browser.post("/login", {"request_id": hidden(page.body, "request_id"),
                                       "csrf_token": hidden(page.body, "csrf_token"),
                                       "username": "alice@example.com", "password": "correct horse battery"})
    consent = browser.get(response.headers["Location"])
    assert b"unverified" in consent.body
    code = query_of(sign_in_and_consent(browser, registered["client_id"], scope="openid mcp:read",
                                        resource=MCP))["code"]
    assert redeem(http, registered["client_id"], code).status_code == 200


def test_the_sign_in_page_marks_a_self_registered_client_as_unverified(browser, http, public_client, keys):
    """Whoever registered the client chose its name ("Your Bank"): the sign-in page, like the consent
    page, says the app is unverified. An admin-created client is not marked."""
    registered = json.loads(register(http, {**MCP_STYLE, "client_name": "Your Bank",
                                            "redirect_uris": ["http://127.0.0.1/cb"]}).body)
    for client_id, marked in ((registered["client_id"], True), (public_client.client_id, False)):
        location = browser.get("/authorize?" + authorize_query(client_id, scope="openid")).headers["Location"]
        page = browser.get(location)
        assert (b"This app is unverified." in page.body) is marked


def test_discovery_advertises_registration(http):
    assert json.loads(http.get("/.well-known/openid-configuration").body)["registration_endpoint"] == \
        "http://localhost:8000/register"


def test_require_mfa_is_an_operators_setting_that_registration_ignores(http, keys):
    """A client must not be able to register itself into (or out of) an operator's MFA rule."""
    from chalicelib.storage.clients import get_client

    body = register_public_agent(http, require_mfa=True)
    assert "require_mfa" not in body
    assert get_client(body["client_id"]).require_mfa is False
