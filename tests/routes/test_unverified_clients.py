"""Clients nobody vetted (self-registered at /register, or client ID metadata documents): the scope
ceiling, public resources, and authorization errors that wait on our own page (RFC 9700 §4.11.2)."""
from __future__ import annotations

import html
import json
import re
from urllib.parse import urlencode

import pytest

from tests.routes.flow import FORM, REDIRECT_URI, authorize_query, hidden, query_of, redeem, sign_in_and_consent
from tests.routes.flow import register_public_agent as register

EVIL = "https://evil.example/cb"
NOTES, BILLING, MCP = "https://notes.example.com/api", "https://billing.example.com/api", "https://mcp.example.com/mcp"


def continue_link(page) -> str:
    """The notice page's one way onward: the link the user may choose to follow."""
    [href] = re.findall(r'<a class="button" href="([^"]*)"', page.body.decode())
    return html.unescape(href)


def assert_notice(page, host: str) -> dict:
    """A notice on our domain naming `host`, with no redirect; returns the held error's parameters."""
    assert page.status_code == 400 and "Location" not in page.headers
    assert page.headers["Content-Type"].startswith("text/html")
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert f"Continue to {host}".encode() in page.body
    assert b'http-equiv="refresh"' not in page.body.lower() and b"<script" not in page.body.lower()
    return query_of(continue_link(page))


@pytest.fixture
def agent(http, api_resources, public_api):
    return register(http)["client_id"]


# The scope ceiling ---------------------------------------------------------------------------------

@pytest.mark.parametrize("scope", ["notes:read", "no-such:scope"])
def test_a_self_registered_client_asking_for_a_private_apis_scope_gets_invalid_scope(browser, agent, scope):
    page = browser.get("/authorize?" + authorize_query(agent, scope=f"openid {scope}"))
    params = assert_notice(page, "127.0.0.1:5000")
    assert params["error"] == "invalid_scope"
    # The same words whether the scope belongs to a private API or to none: no existence oracle.
    assert params["error_description"] == f"scope not allowed for this client: {scope}"


def test_a_self_registered_client_may_ask_for_public_and_identity_scopes(browser, agent):
    response = browser.get("/authorize?" + authorize_query(agent, scope="openid offline_access mcp:read mcp:write",
                                                           resource=MCP))
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_an_admin_created_client_keeps_its_private_scopes(browser, api_resources):
    from chalicelib.oauth.clients import create_client

    client, _ = create_client(client_name="Notes", client_type="public", redirect_uris=["http://127.0.0.1/cb"],
                              scopes=["openid", "notes:read"])
    response = browser.get("/authorize?" + authorize_query(client.client_id, scope="openid notes:read"))
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_clients_registered_before_the_ceiling_existed_are_held_to_it(browser, api_resources, public_api):
    from chalicelib.log import now
    from chalicelib.storage.models import ClientModel

    ClientModel(client_id="old-agent", client_name="Old agent", client_type="public", token_endpoint_auth_method="none",
                redirect_uris=["http://127.0.0.1/cb"], grant_types=["authorization_code"], response_types=["code"],
                scopes=["openid", "notes:read", "billing:read"], registered_dynamically=True,
                created_at=now(), updated_at=now()).save()
    page = browser.get("/authorize?" + authorize_query("old-agent", scope="openid notes:read"))
    assert assert_notice(page, "127.0.0.1:5000")["error"] == "invalid_scope"


def test_the_registration_read_lists_the_live_ceiling(http, api_resources, public_api):
    from chalicelib.storage.resources import register_resource

    registered = register(http)
    register_resource(MCP, "Notes MCP", ["mcp:read", "mcp:write"])  # no longer public
    response = http.get(f"/register/{registered['client_id']}",
                        headers={"Authorization": f"Bearer {registered['registration_access_token']}"})
    assert json.loads(response.body)["scope"] == "openid profile email offline_access"


@pytest.mark.parametrize("resource", [BILLING, "https://unknown.example.com/api"])
def test_a_self_registered_client_cannot_target_a_private_api(browser, agent, resource):
    page = browser.get("/authorize?" + authorize_query(agent, scope="openid", resource=resource))
    params = assert_notice(page, "127.0.0.1:5000")
    # A private API is as unknown to it as one that does not exist: no token with a private `aud`.
    assert (params["error"], params["error_description"]) == ("invalid_target", "unknown resource")


def test_a_self_registered_client_may_target_a_public_api(browser, agent):
    response = browser.get("/authorize?" + authorize_query(agent, scope="openid mcp:read", resource=MCP))
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_refresh_drops_scopes_withdrawn_from_unverified_clients(browser, http, agent, alice, monkeypatch):
    from chalicelib.config import settings

    code = query_of(sign_in_and_consent(browser, agent, scope="openid offline_access mcp:read", resource=MCP))["code"]
    tokens = json.loads(redeem(http, agent, code).body)
    assert tokens["scope"] == "openid offline_access mcp:read"
    monkeypatch.setenv("UNVERIFIED_CLIENT_SCOPES", "openid offline_access")  # the operator withdraws it
    settings.cache_clear()

    def refresh(token, **extra):
        body = {"grant_type": "refresh_token", "refresh_token": token, "client_id": agent, **extra}
        return http.post("/token", body=urlencode(body).encode(), headers=FORM)

    asked = refresh(tokens["refresh_token"], scope="mcp:read")
    assert asked.status_code == 400 and json.loads(asked.body)["error"] == "invalid_scope"
    refreshed = refresh(tokens["refresh_token"])
    assert refreshed.status_code == 200, "the refused request consumed nothing"
    assert json.loads(refreshed.body)["scope"] == "openid offline_access"


def test_the_ceiling_is_one_read_per_container_and_never_a_scan(browser, agent, monkeypatch):
    from chalicelib.storage.models import PublicScopesModel, ResourceModel
    from chalicelib.storage.resources import forget_cached_resources

    forget_cached_resources()  # a cold container
    scans, reads = [], []
    original_scan, original_get = ResourceModel.scan, PublicScopesModel.get
    monkeypatch.setattr(ResourceModel, "scan", lambda *a, **k: scans.append(a) or original_scan(*a, **k))
    monkeypatch.setattr(PublicScopesModel, "get", lambda *a, **k: reads.append(a) or original_get(*a, **k))
    for _ in range(3):
        assert browser.get("/authorize?" + authorize_query(agent, scope="openid mcp:read",
                                                           resource=MCP)).status_code == 302
    assert (len(scans), len(reads)) == (0, 1)


def test_the_ceiling_follows_registrations_and_deletions_of_public_resources(aws):
    from chalicelib.storage.resources import delete_resource, forget_cached_resources, public_scopes, register_resource

    register_resource("https://b.example.com", "B", ["b:read", "shared"], public=True)
    register_resource("https://a.example.com", "A", ["a:read", "shared"], public=True)
    register_resource("https://private.example.com", "P", ["p:admin"])
    assert public_scopes(0) == ("a:read", "shared", "b:read")
    register_resource("https://a.example.com", "A", ["a:read"], public=False)  # no longer public
    assert public_scopes(0) == ("b:read", "shared")
    assert delete_resource("https://b.example.com") and not delete_resource("https://b.example.com")
    forget_cached_resources()
    assert public_scopes(300) == ()


def test_a_deployment_from_before_the_summary_builds_it_from_one_scan_then_reads_it(aws):
    from chalicelib.storage.models import PublicScopesModel, ResourceModel
    from chalicelib.storage.resources import PUBLIC_SCOPES, list_resources, public_scopes

    ResourceModel(resource="https://old.example.com", name="Old", scopes=["old:read"], public=True,
                  created_at=1).save()  # written by a version without the summary
    assert public_scopes(0) == ("old:read",)
    assert PublicScopesModel.get(PUBLIC_SCOPES).scopes_by_resource.as_dict() == {
        "https://old.example.com": '["old:read"]'}
    assert [r.resource for r in list_resources()] == ["https://old.example.com"], "the summary is no resource"


# Authorization errors of unverified clients wait on our page ---------------------------------------

def test_a_self_registered_clients_broken_request_is_not_redirected_at_once(browser, http, keys):
    agent = register(http, redirect_uris=[EVIL])["client_id"]
    state = "<script>alert(1)</script>"
    page = browser.get("/authorize?" + authorize_query(agent, redirect_uri=EVIL, response_type="token", state=state))
    params = assert_notice(page, "evil.example")
    assert continue_link(page).startswith(EVIL + "?")
    assert params == {"error": "unsupported_response_type", "error_description": "only response_type=code is supported",
                      "state": state, "iss": "http://localhost:8000"}
    assert state.encode() not in page.body, "nothing the requester chose is shown, only the host"


def test_prompt_none_errors_of_an_unverified_client_wait_on_the_notice_page(browser, http, keys):
    agent = register(http, redirect_uris=[EVIL])["client_id"]
    page = browser.get("/authorize?" + authorize_query(agent, redirect_uri=EVIL, prompt="none"))
    assert assert_notice(page, "evil.example")["error"] == "login_required"


def test_an_admin_created_clients_errors_still_redirect_at_once(browser, aws, keys):
    from chalicelib.oauth.clients import create_client

    client, _ = create_client(client_name="App", client_type="public", redirect_uris=[EVIL], scopes=["openid"])
    response = browser.get("/authorize?" + authorize_query(client.client_id, redirect_uri=EVIL, response_type="token"))
    assert response.status_code == 302 and response.headers["Location"].startswith(EVIL + "?error=")


def test_an_unverified_client_gets_the_users_deny_at_once(browser, agent, alice):
    """After the user acted on our page the redirect is expected, so it is not held."""
    location = browser.get("/authorize?" + authorize_query(agent, scope="openid")).headers["Location"]
    page = browser.get(location)
    consent = browser.get(browser.post("/login", {
        "request_id": hidden(page.body, "request_id"), "csrf_token": hidden(page.body, "csrf_token"),
        "username": "alice@example.com", "password": "correct horse battery"}).headers["Location"])
    denied = browser.post("/consent", {"request_id": hidden(consent.body, "request_id"),
                                       "csrf_token": hidden(consent.body, "csrf_token"), "decision": "deny"})
    assert denied.status_code == 302 and denied.headers["Location"].startswith(REDIRECT_URI)
    assert query_of(denied.headers["Location"])["error"] == "access_denied"
