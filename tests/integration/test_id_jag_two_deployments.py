"""Cross-app access between two deployments of this server (draft-ietf-oauth-identity-assertion-authz-grant),
end to end over real HTTP, ending in an MCP tool call.

The `federated` stacks (tests/integration/federation_stacks.py) are the draft's two trust domains:
- the UPSTREAM is the IdP Authorization Server: the "Wiki" client signs its users in there (OpenID
  Connect) and, by its exchange policy of kind id_jag, may trade their ID tokens for ID-JAGs
  addressed to the downstream;
- the DOWNSTREAM is the Resource Authorization Server: it already trusts the upstream for sign-in
  (the connection `corp`), the operator now trusts it for ID-JAGs too (`connections update corp
  --trust id-jag`), and it protects examples/mcp_server, where the Wiki has a client of its own
  allowed the jwt-bearer grant.

Everything is set up with ./idp-admin as an operator would (the Wiki's id_jag exchange policy with
`exchange-policies add`), and every request is real HTTP to the stacks. The two token requests of the
draft are made by a third-party client library, Authlib's OAuth2Session (`fetch_token` with the
token-exchange grant, then with the jwt-bearer grant, client_secret_basic both times).
"""
from __future__ import annotations

import asyncio
import concurrent.futures

import anyio
import httpx2
import jwt
import pytest
import requests
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.integration.federation_stacks import (CONNECTION, CORP_DOMAIN, PASSWORD, RP_REDIRECT_URI,
                                                 AuthorizationRequest, Browser, admin, new_user, page_path, unique)
from tests.integration.hosted_flow import query_of
from tests.integration.test_federation_e2e import sign_in_through_upstream
from tests.integration.test_mcp_sdk import McpServerThread, payload

pytestmark = pytest.mark.integration

TIMEOUT = 10
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_JAG = "urn:ietf:params:oauth:token-type:id-jag"
ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"


@pytest.fixture(scope="module")
def cross_app(federated):
    """The MCP server behind the downstream, and the registrations of the module docstring."""
    fed = federated
    server = McpServerThread(fed.downstream.base_url)
    try:
        admin(fed.downstream, "resources", "register", "--uri", server.resource, "--name", "Notes MCP",
              "--scope", "notes:read", "--scope", "notes:write")
        agent = admin(fed.downstream, "clients", "create", "--name", "Wiki agent", "--grant-type", JWT_BEARER,
                      "--scope", "notes:read", "--scope", "notes:write", "--resource", server.resource)
        trusted = admin(fed.downstream, "connections", "update", CONNECTION, "--trust", "id-jag")
        assert trusted["trust"] == ["id-jag"] and trusted["subject_mapping"] == "identity"
        wiki = admin(fed.upstream, "clients", "create", "--name", "Wiki", "--redirect-uri", RP_REDIRECT_URI,
                     "--scope", "openid", "--scope", "email",
                     "--grant-type", "authorization_code", "--grant-type", TOKEN_EXCHANGE)
        admin(fed.upstream, "exchange-policies", "add", "--client", wiki["client_id"], "--kind", "id_jag",
              "--id", "notes", "--audience", fed.downstream.base_url, "--downstream-client-id", agent["client_id"],
              "--resource", server.resource, "--scope", "notes:read", "--scope", "notes:write")
        yield fed, server, agent, wiki
    finally:
        admin(fed.downstream, "connections", "update", CONNECTION, "--trust", "")
        server.stop()


def sign_in_at_the_idp(fed, client_id: str, client_secret: str, email: str) -> str:
    """The Wiki's own sign-in at the upstream (code flow, hosted pages); its ID token."""
    browser = Browser()
    request = AuthorizationRequest.make(fed.upstream.base_url, client_id, RP_REDIRECT_URI, scope="openid email")
    page = browser.follow(browser.get(request.url), until=RP_REDIRECT_URI)
    if not isinstance(page, str) and page_path(page) == "/login":
        page = browser.follow(browser.submit(page, "/login", {"username": email, "password": PASSWORD}),
                              until=RP_REDIRECT_URI)
    if not isinstance(page, str) and page_path(page) == "/consent":
        page = browser.follow(browser.submit(page, "/consent", {"decision": "allow"}), until=RP_REDIRECT_URI)
    assert isinstance(page, str) and page.startswith(RP_REDIRECT_URI + "?"), page
    tokens = requests.post(f"{fed.upstream.base_url}/token", timeout=TIMEOUT, auth=(client_id, client_secret),
                           data={"grant_type": "authorization_code", "code": query_of(page)["code"],
                                 "redirect_uri": RP_REDIRECT_URI, "code_verifier": request.verifier})
    assert tokens.status_code == 200, tokens.text
    return tokens.json()["id_token"]


def authlib_token(issuer: str, client_id: str, client_secret: str, grant_type: str, **form) -> dict:
    """A token request by Authlib's OAuth2Session at `issuer`'s token endpoint (from its discovery)."""
    from authlib.integrations.requests_client import OAuth2Session

    endpoint = requests.get(f"{issuer}/.well-known/oauth-authorization-server", timeout=TIMEOUT).json()["token_endpoint"]
    with OAuth2Session(client_id, client_secret, token_endpoint_auth_method="client_secret_basic") as session:
        return dict(session.fetch_token(endpoint, grant_type=grant_type, timeout=TIMEOUT, **form))


def request_id_jag(fed, client_id: str, client_secret: str, form: dict) -> dict:
    """RFC 8693 token exchange at the upstream for an ID-JAG, authenticated as the Wiki."""
    return authlib_token(fed.upstream.base_url, client_id, client_secret, TOKEN_EXCHANGE, **form)


def call_tool(server: McpServerThread, access_token: str, name: str, arguments: dict):
    """The MCP SDK's client with the access token as its bearer: list the tools, call one."""

    async def session():
        with anyio.fail_after(60):
            async with (httpx2.AsyncClient(headers={"Authorization": f"Bearer {access_token}"},
                                           timeout=httpx2.Timeout(30, read=60)) as http,
                        Client(streamable_http_client(server.resource, http_client=http)) as client):
                assert {"list_notes", "add_note"} <= {tool.name for tool in (await client.list_tools()).tools}
                return await client.call_tool(name, arguments)

    # In a thread of its own, as tests/integration/test_mcp_sdk.py explains (Playwright's event loop).
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        result = pool.submit(lambda: asyncio.run(session())).result(timeout=90)
    assert not result.is_error, result
    return result


def test_an_id_jag_from_the_idp_deployment_gets_an_access_token_at_the_other_and_calls_its_mcp_server(
        cross_app):
    fed, server, agent, wiki = cross_app
    email = unique("grace", CORP_DOMAIN)
    new_user(fed.upstream, email)
    # SSO first: the downstream knows the user from a sign-in through the upstream (its identity linked).
    downstream_sub = sign_in_through_upstream(fed, email)["sub"]

    # 1. The Wiki signs the user in at the IdP and 2. trades the ID token for an ID-JAG there.
    id_token = sign_in_at_the_idp(fed, wiki["client_id"], wiki["client_secret"], email)
    exchanged = request_id_jag(fed, wiki["client_id"], wiki["client_secret"], {
        "requested_token_type": ID_JAG, "subject_token": id_token, "subject_token_type": ID_TOKEN,
        "audience": fed.downstream.base_url, "resource": server.resource, "scope": "notes:read"})
    assert (exchanged["issued_token_type"], exchanged["token_type"]) == (ID_JAG, "N_A")
    grant = exchanged["access_token"]
    assert jwt.get_unverified_header(grant)["typ"] == "oauth-id-jag+jwt"
    claims = jwt.decode(grant, options={"verify_signature": False})
    assert (claims["iss"], claims["aud"], claims["client_id"]) == (
        fed.upstream.base_url, fed.downstream.base_url, agent["client_id"])

    # 3. The Wiki's agent presents it at the downstream (jwt-bearer, its own client authentication).
    redeemed = authlib_token(fed.downstream.base_url, agent["client_id"], agent["client_secret"], JWT_BEARER,
                             assertion=grant)
    assert "refresh_token" not in redeemed and redeemed["token_type"] == "Bearer"
    access_token = redeemed["access_token"]
    access = jwt.decode(access_token, options={"verify_signature": False})
    assert (access["iss"], access["aud"], access["sub"], access["scope"]) == (
        fed.downstream.base_url, server.resource, downstream_sub, "notes:read")

    # 4. The MCP server, protected by the downstream, serves the user's notes to that token.
    added = payload(call_tool(server, access_token, "list_notes", {}))
    assert isinstance(added, list)

    # The ID-JAG is spent: presenting it again is refused.
    again = requests.post(f"{fed.downstream.base_url}/token", timeout=TIMEOUT,
                          auth=(agent["client_id"], agent["client_secret"]),
                          data={"grant_type": JWT_BEARER, "assertion": grant})
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
