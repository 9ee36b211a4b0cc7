"""client_credentials (RFC 6749 §4.4) and resource indicators (RFC 8707)."""
from __future__ import annotations

import json
from urllib.parse import urlencode

import jwt
import pytest

from tests.conftest import basic_auth
from tests.routes.flow import FORM, authorize_query, query_of, redeem, sign_in_and_consent

NOTES, BILLING = "https://notes.example.com/api", "https://billing.example.com/api"


def token_request(http, client, secret, **params):
    return http.post("/token", body=urlencode({"grant_type": "client_credentials", **params}, doseq=True).encode(),
                     headers={**FORM, "Authorization": basic_auth(client.client_id, secret)})


def claims_of(response):
    return jwt.decode(json.loads(response.body)["access_token"], options={"verify_signature": False})


def test_client_credentials_issues_an_access_token_only(http, keys, service_client):
    client, secret = service_client
    response = token_request(http, client, secret, scope="notes:read")
    assert response.status_code == 200, response.body
    body = json.loads(response.body)
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    claims = claims_of(response)
    assert claims["sub"] == client.client_id == claims["client_id"] and claims["scope"] == "notes:read"
    assert "grant_id" not in claims


def test_client_credentials_refuses_public_clients(http, keys, public_client):
    body = urlencode({"grant_type": "client_credentials", "client_id": public_client.client_id}).encode()
    response = http.post("/token", body=body, headers=FORM)
    assert response.status_code == 400 and json.loads(response.body)["error"] == "unauthorized_client"


def test_client_credentials_refuses_identity_and_unknown_scopes(http, keys, service_client):
    client, secret = service_client
    for scope in ("openid", "admin"):
        response = token_request(http, client, secret, scope=scope)
        assert json.loads(response.body)["error"] == "invalid_scope"


def test_resource_sets_the_audience(http, keys, service_client):
    client, secret = service_client
    assert claims_of(token_request(http, client, secret, resource=NOTES, scope="notes:read"))["aud"] == NOTES
    assert claims_of(token_request(http, client, secret, scope="notes:read"))["aud"] == "http://localhost:8000"
    both = claims_of(token_request(http, client, secret, resource=[NOTES, BILLING]))
    assert sorted(both["aud"]) == sorted([NOTES, BILLING])


@pytest.mark.parametrize("resource", ["https://unknown.example.com/api", "https://notes.example.com/api#frag",
                                      "relative/path", "https://notes.example.com/api?x=1"])
def test_unknown_or_malformed_resource_is_invalid_target(http, keys, service_client, resource):
    client, secret = service_client
    response = token_request(http, client, secret, resource=resource)
    assert response.status_code == 400 and json.loads(response.body)["error"] == "invalid_target"


def test_a_malformed_resource_is_not_quoted_back(http, keys, service_client):
    client, secret = service_client
    resource = "https://notes.example.com/api?\u202eCall +1 555 0100 to unlock"
    body = json.loads(token_request(http, client, secret, resource=resource).body)
    assert body["error"] == "invalid_target" and "555" not in body["error_description"]
    assert body["error_description"].isascii()


def test_scope_foreign_to_the_resource_is_refused(http, keys, service_client):
    client, secret = service_client
    response = token_request(http, client, secret, resource=NOTES, scope="billing:read")
    assert json.loads(response.body)["error"] == "invalid_scope"


def test_client_restricted_to_some_resources(http, keys, api_resources):
    from chalicelib.oauth.clients import create_client

    client, secret = create_client(client_name="Notes job", grant_types=["client_credentials"],
                                   scopes=["notes:read", "billing:read"], resources=[NOTES])
    assert token_request(http, client, secret, resource=NOTES).status_code == 200
    assert json.loads(token_request(http, client, secret, resource=BILLING).body)["error"] == "invalid_target"


@pytest.fixture
def api_client(aws, api_resources):
    from chalicelib.oauth.clients import create_client

    client, _ = create_client(client_name="Notes app", client_type="public", redirect_uris=["http://127.0.0.1/cb"],
                              scopes=["openid", "notes:read", "billing:read"])
    return client


def test_authorization_code_with_resources_can_be_narrowed_at_the_token_endpoint(browser, http, api_client, alice):
    location = sign_in_and_consent(browser, api_client.client_id, scope="openid notes:read billing:read",
                                   resource=[NOTES, BILLING])
    response = redeem(http, api_client.client_id, query_of(location)["code"], extra={"resource": NOTES})
    assert response.status_code == 200, response.body
    assert claims_of(response)["aud"] == NOTES


def test_token_request_cannot_widen_resources(browser, http, api_client, alice):
    location = sign_in_and_consent(browser, api_client.client_id, scope="openid notes:read", resource=[NOTES])
    response = redeem(http, api_client.client_id, query_of(location)["code"], extra={"resource": BILLING})
    assert response.status_code == 400 and json.loads(response.body)["error"] == "invalid_target"


def test_unknown_resource_at_authorize_redirects_invalid_target(browser, api_client, alice):
    response = browser.get("/authorize?" + authorize_query(api_client.client_id, scope="openid",
                                                           resource="https://evil.example/api"))
    assert query_of(response.headers["Location"])["error"] == "invalid_target"


def test_token_for_resource_a_is_rejected_by_the_verifier_of_resource_b(http, keys, service_client):
    from chalicelib.errors import InvalidToken
    from chalicelib.keys import keyring
    from chalicelib.verifier import Verifier

    client, secret = service_client
    token = json.loads(token_request(http, client, secret, resource=NOTES, scope="notes:read").body)["access_token"]
    provider = lambda refresh: keyring.jwks()  # noqa: E731 - the IdP's keys, without HTTP
    notes = Verifier("http://localhost:8000", NOTES, jwks_provider=provider)
    billing = Verifier("http://localhost:8000", BILLING, jwks_provider=provider)
    assert notes.verify(token, required_scopes=["notes:read"])["aud"] == NOTES
    with pytest.raises(InvalidToken, match="not meant for this resource"):
        billing.verify(token)


@pytest.fixture
def two_api_agent(aws, api_resources):
    """A client that asks for both APIs at once and keeps a refresh token."""
    from chalicelib.oauth.clients import create_client

    client, _ = create_client(client_name="Agent", client_type="public", redirect_uris=["http://127.0.0.1/cb"],
                              grant_types=["authorization_code", "refresh_token"],
                              scopes=["openid", "offline_access", "notes:read", "notes:write", "billing:read"])
    return client


def both_apis_tokens(browser, http, client, **extra):
    """Consent to notes:write at Notes and billing:read at Billing in one request, then redeem."""
    location = sign_in_and_consent(browser, client.client_id, scope="openid offline_access notes:write billing:read",
                                   resource=[NOTES, BILLING])
    return redeem(http, client.client_id, query_of(location)["code"], extra=extra)


def refresh(http, client_id, token, **params):
    body = {"grant_type": "refresh_token", "refresh_token": token, "client_id": client_id, **params}
    return http.post("/token", body=urlencode(body, doseq=True).encode(), headers=FORM)


def test_narrowing_the_audience_at_redemption_drops_the_other_apis_scopes(browser, http, two_api_agent, alice):
    """RFC 8707 §2.2: a token for Notes carries identity scopes and Notes's scopes, never Billing's."""
    response = both_apis_tokens(browser, http, two_api_agent, resource=NOTES)
    assert response.status_code == 200, response.body
    claims = claims_of(response)
    assert claims["aud"] == NOTES
    assert claims["scope"] == json.loads(response.body)["scope"] == "openid offline_access notes:write"


def test_without_narrowing_the_token_keeps_both_audiences_and_their_scopes(browser, http, two_api_agent, alice):
    response = both_apis_tokens(browser, http, two_api_agent)
    claims = claims_of(response)
    assert sorted(claims["aud"]) == sorted([NOTES, BILLING])
    assert claims["scope"] == "openid offline_access notes:write billing:read"


def test_narrowing_the_audience_at_refresh_drops_the_other_apis_scopes(browser, http, two_api_agent, alice):
    tokens = json.loads(both_apis_tokens(browser, http, two_api_agent).body)
    billing = refresh(http, two_api_agent.client_id, tokens["refresh_token"], resource=BILLING)
    assert billing.status_code == 200, billing.body
    assert claims_of(billing)["aud"] == BILLING
    assert claims_of(billing)["scope"] == "openid offline_access billing:read"
    notes = refresh(http, two_api_agent.client_id, json.loads(billing.body)["refresh_token"], resource=NOTES)
    assert claims_of(notes)["scope"] == "openid offline_access notes:write"
    both = refresh(http, two_api_agent.client_id, json.loads(notes.body)["refresh_token"])
    assert claims_of(both)["scope"] == "openid offline_access notes:write billing:read", "the grant is unchanged"


def test_refresh_scope_and_resource_narrowed_together_keep_only_what_that_api_defines(browser, http, two_api_agent,
                                                                                       alice):
    tokens = json.loads(both_apis_tokens(browser, http, two_api_agent).body)
    response = refresh(http, two_api_agent.client_id, tokens["refresh_token"], resource=NOTES,
                       scope="offline_access notes:write billing:read")
    assert response.status_code == 200, response.body
    assert claims_of(response)["scope"] == "offline_access notes:write"


def test_refresh_asking_an_api_for_none_of_its_scopes_is_invalid_scope_and_keeps_the_token(browser, http,
                                                                                           two_api_agent, alice):
    """A token for Notes carrying only Billing's scope would be a token for Notes the user never
    scoped: refused before the refresh token is used, so the client can still refresh."""
    tokens = json.loads(both_apis_tokens(browser, http, two_api_agent).body)
    response = refresh(http, two_api_agent.client_id, tokens["refresh_token"], resource=NOTES, scope="billing:read")
    assert response.status_code == 400 and json.loads(response.body)["error"] == "invalid_scope"
    assert refresh(http, two_api_agent.client_id, tokens["refresh_token"]).status_code == 200


def test_client_credentials_get_no_token_for_an_api_none_of_whose_scopes_the_client_has(http, keys, api_resources):
    """Without `scope` the default is the client's scopes that Billing defines: none, so no token
    for Billing (it used to be a token for Billing with an empty scope)."""
    from chalicelib.oauth.clients import create_client

    client, secret = create_client(client_name="Notes job", grant_types=["client_credentials"], scopes=["notes:read"])
    response = token_request(http, client, secret, resource=BILLING)
    assert response.status_code == 400 and json.loads(response.body)["error"] == "invalid_scope"
    assert token_request(http, client, secret, resource=NOTES).status_code == 200
