"""Which audience a token is for, decided again at every redemption and refresh (RFC 8707 §2,
RFC 6749 §6): a grant's resources are resolved as /authorize resolves them, so an API deleted or made
private since, or one that no longer defines a granted scope, does not live on in refreshed tokens;
and a client nobody vetted never gets a token for DEFAULT_AUDIENCE."""
from __future__ import annotations

import base64
import json
from urllib.parse import urlencode

import jwt
import pytest

from tests.routes.flow import FORM, ISSUER, authorize_query, query_of, redeem, sign_in_and_consent
from tests.routes.flow import register_public_agent as register

NOTES, MCP = "https://notes.example.com/api", "https://mcp.example.com/mcp"


def claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def refresh(http, client_id: str, token: str, **extra):
    body = {"grant_type": "refresh_token", "refresh_token": token, "client_id": client_id, **extra}
    return http.post("/token", body=urlencode(body, doseq=True).encode(), headers=FORM)


def error_of(response) -> tuple[int, str]:
    return response.status_code, json.loads(response.body)["error"]


def grant_is_active(token: str) -> bool:
    from chalicelib.oauth.refresh_tokens import parse
    from chalicelib.storage.grants import active

    return active(*parse(token)[:2]) is not None


def made_private():
    """The operator re-registers the public MCP API without --public."""
    from chalicelib.storage.resources import register_resource

    register_resource(MCP, "Notes MCP", ["mcp:read", "mcp:write"])


@pytest.fixture
def agent(http, api_resources, public_api):
    """A self-registered (unverified) client."""
    return register(http)["client_id"]


@pytest.fixture
def notes_app(aws, api_resources):
    """An admin-created client of the private Notes API."""
    from chalicelib.oauth.clients import create_client

    client, _ = create_client(client_name="Notes app", client_type="public", redirect_uris=["http://127.0.0.1/cb"],
                              grant_types=["authorization_code", "refresh_token"],
                              scopes=["openid", "offline_access", "notes:read", "notes:write"])
    return client.client_id


def mcp_code(browser, agent) -> str:
    return query_of(sign_in_and_consent(browser, agent, scope="openid offline_access mcp:read",
                                        resource=MCP))["code"]


def notes_code(browser, notes_app, scope="openid offline_access notes:read") -> str:
    return query_of(sign_in_and_consent(browser, notes_app, scope=scope, resource=NOTES))["code"]


# An API made private to unverified clients ---------------------------------------------------------

def test_a_plain_refresh_for_an_api_made_private_is_invalid_grant_and_ends_the_family(browser, http, agent, alice):
    tokens = json.loads(redeem(http, agent, mcp_code(browser, agent)).body)
    made_private()
    assert error_of(refresh(http, agent, tokens["refresh_token"])) == (400, "invalid_grant")
    assert not grant_is_active(tokens["refresh_token"]), "no refresh of this family can be valid any more"


def test_narrowing_to_an_api_made_private_is_refused_without_spending_the_token(browser, http, agent, alice,
                                                                                 public_api):
    from chalicelib.storage.resources import register_resource

    tokens = json.loads(redeem(http, agent, mcp_code(browser, agent)).body)
    made_private()
    narrowed = refresh(http, agent, tokens["refresh_token"], resource=MCP)
    assert error_of(narrowed) == (400, "invalid_target")
    assert json.loads(narrowed.body)["error_description"] == "unknown resource"
    register_resource(MCP, "Notes MCP", ["mcp:read", "mcp:write"], public=True)  # published again
    assert refresh(http, agent, tokens["refresh_token"]).status_code == 200, "the refused request consumed nothing"


def test_a_code_for_an_api_made_private_before_redemption_is_invalid_grant(browser, http, agent, alice):
    code = mcp_code(browser, agent)
    made_private()
    response = redeem(http, agent, code)
    assert error_of(response) == (400, "invalid_grant") and "access_token" not in json.loads(response.body)


# A deleted API ---------------------------------------------------------------------------------------

def test_a_plain_refresh_for_a_deleted_api_is_invalid_grant_and_ends_the_family(browser, http, notes_app, alice):
    from chalicelib.storage.resources import delete_resource

    tokens = json.loads(redeem(http, notes_app, notes_code(browser, notes_app)).body)
    delete_resource(NOTES)
    assert error_of(refresh(http, notes_app, tokens["refresh_token"])) == (400, "invalid_grant")
    assert not grant_is_active(tokens["refresh_token"])


def test_narrowing_to_a_deleted_api_is_refused_without_spending_the_token(browser, http, notes_app, alice):
    from chalicelib.storage.resources import delete_resource, register_resource

    tokens = json.loads(redeem(http, notes_app, notes_code(browser, notes_app)).body)
    delete_resource(NOTES)
    assert error_of(refresh(http, notes_app, tokens["refresh_token"], resource=NOTES)) == (400, "invalid_target")
    register_resource(NOTES, "Notes API", ["notes:read", "notes:write"])
    assert refresh(http, notes_app, tokens["refresh_token"]).status_code == 200, "the refused request consumed nothing"


def test_a_code_for_a_deleted_api_is_invalid_grant(browser, http, notes_app, alice):
    from chalicelib.storage.resources import delete_resource

    code = notes_code(browser, notes_app)
    delete_resource(NOTES)
    assert error_of(redeem(http, notes_app, code)) == (400, "invalid_grant")


def test_tokens_shed_a_scope_the_api_no_longer_defines(browser, http, notes_app, alice):
    from chalicelib.storage.resources import register_resource

    tokens = json.loads(redeem(http, notes_app, notes_code(browser, notes_app,
                                                           scope="openid offline_access notes:read notes:write")).body)
    register_resource(NOTES, "Notes API", ["notes:write"])  # notes:read withdrawn from the API
    refreshed = json.loads(refresh(http, notes_app, tokens["refresh_token"]).body)
    assert claims(refreshed["access_token"])["aud"] == NOTES
    assert refreshed["scope"] == "openid offline_access notes:write"
    code = notes_code(browser, notes_app, scope="notes:write")
    register_resource(NOTES, "Notes API", ["notes:admin"])  # and now none of the granted ones
    assert error_of(redeem(http, notes_app, code)) == (400, "invalid_grant")


def test_the_recheck_reads_registrations_from_the_container_cache(browser, http, agent, alice, monkeypatch):
    """Warm containers make no DynamoDB call for it: /authorize has just read the registration."""
    from chalicelib.storage.models import ResourceModel

    code = mcp_code(browser, agent)
    reads, original = [], ResourceModel.get

    def counting_get(*args, **kwargs):
        reads.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(ResourceModel, "get", counting_get)
    tokens = json.loads(redeem(http, agent, code).body)
    for extra in ({}, {"resource": MCP}):
        tokens = json.loads(refresh(http, agent, tokens["refresh_token"], **extra).body)
        assert claims(tokens["access_token"])["aud"] == MCP
    assert reads == []


# DEFAULT_AUDIENCE is for vetted clients -------------------------------------------------------------

@pytest.fixture
def private_default_audience(monkeypatch):
    from chalicelib.config import settings

    monkeypatch.setenv("DEFAULT_AUDIENCE", NOTES)
    settings.cache_clear()


def test_an_unverified_client_naming_no_resource_gets_no_api_scope(browser, agent, private_default_audience):
    """The reviewer's attack: `scope=openid mcp:read`, no resource, got aud=<private API> with mcp:read."""
    response = browser.get("/authorize?" + authorize_query(agent, scope="openid mcp:read"))
    assert response.status_code == 400 and "Location" not in response.headers  # held on our notice page
    assert b"invalid_scope" in response.body


def test_an_unverified_clients_resource_less_tokens_are_for_the_issuer_and_so_is_its_consent(
        browser, http, agent, alice, private_default_audience):
    from chalicelib.storage.models import ConsentModel

    code = query_of(sign_in_and_consent(browser, agent, scope="openid offline_access"))["code"]
    tokens = json.loads(redeem(http, agent, code).body)
    assert claims(tokens["access_token"])["aud"] == ISSUER
    refreshed = json.loads(refresh(http, agent, tokens["refresh_token"]).body)
    assert claims(refreshed["access_token"])["aud"] == ISSUER
    remembered = ConsentModel.get(f"{alice.pk}#{agent}").audience_scopes
    assert remembered == {f"openid {ISSUER}", f"offline_access {ISSUER}"}, "consent is for the audience issued"


def test_an_unverified_clients_older_resource_less_grant_refreshes_to_identity_scopes_for_the_issuer(
        http, agent, alice, private_default_audience):
    """A grant made before the rule (an API scope, no resource) yields no API scope any more."""
    from chalicelib.config import settings
    from chalicelib.log import now
    from chalicelib.oauth.authorization import new_grant_id
    from chalicelib.oauth.refresh_tokens import new_token, token_hash
    from chalicelib.storage.models import GrantModel

    grant = GrantModel(grant_id=new_grant_id(), sub=alice.pk, client_id=agent, auth_time=now(),
                       scopes=["openid", "offline_access", "mcp:read"], resources=[], created_at=now(),
                       expires_at=now() + 3600)
    token = new_token(alice.pk, grant.grant_id)
    grant.token_hash, grant.token_expires_at = token_hash(token), now() + settings().refresh_token_idle_ttl
    grant.save()
    refreshed = refresh(http, agent, token)
    assert refreshed.status_code == 200, refreshed.body
    body = json.loads(refreshed.body)
    assert (claims(body["access_token"])["aud"], body["scope"]) == (ISSUER, "openid offline_access")


def test_an_admin_created_client_still_gets_the_default_audience(browser, http, notes_app, alice,
                                                                  private_default_audience):
    code = query_of(sign_in_and_consent(browser, notes_app, scope="openid notes:read"))["code"]
    assert claims(json.loads(redeem(http, notes_app, code).body)["access_token"])["aud"] == NOTES


def test_a_self_registered_confidential_client_cannot_use_client_credentials(http, api_resources, public_api,
                                                                             private_default_audience):
    registered = register(http, token_endpoint_auth_method="client_secret_basic")
    basic = base64.b64encode(f"{registered['client_id']}:{registered['client_secret']}".encode()).decode()
    response = http.post("/token", body=urlencode({"grant_type": "client_credentials"}).encode(),
                         headers={**FORM, "Authorization": f"Basic {basic}"})
    assert error_of(response) == (400, "unauthorized_client")
