"""Step-up through the HTTP layer: acr_values, the claims parameter and max_age on /authorize and on
the consent page; acr/amr/auth_time in ID tokens, access tokens, refreshed tokens and introspection;
discovery; and an RFC 9470 challenge from the example MCP server answered by re-authorizing.

A user's factors and a stepped-up session are arranged through storage (`enrol`, `step_up`): the
second-factor pages have their own tests; here the OAuth side is under test."""
from __future__ import annotations

import asyncio
import base64
import json
import re
from urllib.parse import urlencode

import pytest

from chalicelib.hashing import sha256_hex
from chalicelib.oauth.acr import MFA_ACR, PASSWORD_ACR, PHR_ACR
from tests.conftest import basic_auth
from tests.routes.flow import FORM, REDIRECT_URI, authorize_query, hidden, query_of, redeem, sign_in_and_consent

TOTP_AMR = ["pwd", "otp", "mfa"]
NOTES_MCP = "https://mcp.example.com/mcp"


def payload(jwt: str) -> dict:
    body = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


@pytest.fixture
def app_client(aws, api_resources):
    """A confidential web app; allowed to introspect (RFC 7662), so it may introspect its own tokens."""
    from chalicelib.oauth.clients import create_client

    return create_client(client_name="Notes web", redirect_uris=[REDIRECT_URI],
                         grant_types=["authorization_code", "refresh_token"],
                         scopes=["openid", "email", "offline_access", "notes:read", "notes:write"],
                         introspects=[api_resources[0].resource])


def session_hash(browser) -> str:
    return sha256_hex(browser.cookies["idp_session"])


def enrol(browser, *kinds) -> None:
    """The user added second factors in this session (the account page records them on it)."""
    from chalicelib.storage import sessions

    assert sessions.set_factors(session_hash(browser), kinds)


def step_up(browser, amr=TOTP_AMR) -> None:
    """What the /mfa page's step-up writes once the code is right: the session's amr now includes
    the second factor (its own tests drive the page; here only the OAuth side is under test)."""
    from chalicelib.log import now
    from chalicelib.storage import sessions

    assert sessions.step_up(session_hash(browser), amr=amr, auth_time=now())


def tokens_for(http, browser, app_client, **overrides) -> dict:
    client, secret = app_client
    location = sign_in_and_consent(browser, client.client_id, **overrides)
    response = redeem(http, client.client_id, query_of(location)["code"], redirect_uri=REDIRECT_URI,
                      auth=basic_auth(client.client_id, secret))
    assert response.status_code == 200, response.body
    return json.loads(response.body)


def consent_through_the_page(browser, request_id: str) -> str:
    page = browser.get("/consent?" + urlencode({"request_id": request_id}))
    assert page.status_code == 200, page.body
    response = browser.post("/consent", {"request_id": request_id, "csrf_token": hidden(page.body, "csrf_token"),
                                         "decision": "allow"})
    assert response.status_code == 302
    return response.headers["Location"]


def _csrf(browser) -> str:
    """A valid consent-form token of this browser (the page that would carry it is never shown)."""
    from chalicelib.oauth.sessions import csrf_token

    return csrf_token(browser.cookies["idp_session"], "consent")


def request_id_of(location: str) -> str:
    return query_of(location)["request_id"]


# discovery --------------------------------------------------------------------------------------

def test_discovery_advertises_the_acr_ladder_and_the_claims_parameter(http):
    document = json.loads(http.get("/.well-known/openid-configuration").body)
    assert document["acr_values_supported"] == [PASSWORD_ACR, MFA_ACR, PHR_ACR]
    assert document["claims_parameter_supported"] is True
    assert {"acr", "amr", "auth_time"} <= set(document["claims_supported"])


# tokens -----------------------------------------------------------------------------------------

def test_tokens_say_how_the_user_authenticated_and_refreshed_ones_repeat_it(http, browser, app_client, alice):
    issued = tokens_for(http, browser, app_client, scope="openid email offline_access")
    id_token, access_token = payload(issued["id_token"]), payload(issued["access_token"])
    assert (id_token["acr"], id_token["amr"]) == (PASSWORD_ACR, ["pwd"])
    assert (access_token["acr"], access_token["amr"], access_token["auth_time"]) == \
        (PASSWORD_ACR, ["pwd"], id_token["auth_time"])

    client, secret = app_client
    response = http.post("/token", body=urlencode({"grant_type": "refresh_token",
                                                   "refresh_token": issued["refresh_token"]}).encode(),
                         headers={**FORM, "Authorization": basic_auth(client.client_id, secret)})
    refreshed = json.loads(response.body)
    # OIDC Core §12.2: the refreshed ID token is about the same authentication.
    for token in (payload(refreshed["id_token"]), payload(refreshed["access_token"])):
        assert (token["acr"], token["amr"], token["auth_time"]) == (PASSWORD_ACR, ["pwd"], id_token["auth_time"])


def test_introspection_returns_acr_and_auth_time(http, browser, app_client, alice):
    client, secret = app_client
    issued = tokens_for(http, browser, app_client, scope="openid offline_access")
    for token in (issued["access_token"], issued["refresh_token"]):
        response = http.post("/introspect", body=urlencode({"token": token}).encode(),
                             headers={**FORM, "Authorization": basic_auth(client.client_id, secret)})
        body = json.loads(response.body)
        assert body["active"] is True and body["acr"] == PASSWORD_ACR and isinstance(body["auth_time"], int)


# acr_values, claims ---------------------------------------------------------------------------

def test_acr_values_step_a_password_session_up_and_the_consent_page_alone_never_does(
        http, browser, app_client, alice):
    client, secret = app_client
    tokens_for(http, browser, app_client)  # signed in with a password; consent remembered
    enrol(browser, "totp")

    response = browser.get("/authorize?" + authorize_query(client.client_id, acr_values=MFA_ACR))
    assert response.status_code == 302 and response.headers["Location"].startswith("/mfa?request_id=")
    request_id = request_id_of(response.headers["Location"])
    # The consent page, shown or posted to, sends the browser to the second factor first.
    assert browser.get(f"/consent?request_id={request_id}").headers["Location"] == f"/mfa?request_id={request_id}"
    posted = browser.post("/consent", {"request_id": request_id, "decision": "allow", "csrf_token": _csrf(browser)})
    assert posted.status_code == 302 and posted.headers["Location"] == f"/mfa?request_id={request_id}"

    step_up(browser)
    location = consent_through_the_page(browser, request_id)
    response = redeem(http, client.client_id, query_of(location)["code"], auth=basic_auth(client.client_id, secret))
    issued = json.loads(response.body)
    assert (payload(issued["id_token"])["acr"], payload(issued["id_token"])["amr"]) == (MFA_ACR, TOTP_AMR)
    assert payload(issued["access_token"])["acr"] == MFA_ACR


def test_prompt_none_needing_a_step_up_is_interaction_required(http, browser, app_client, alice):
    client, _ = app_client
    tokens_for(http, browser, app_client)
    enrol(browser, "passkey")

    response = browser.get("/authorize?" + authorize_query(client.client_id, acr_values=PHR_ACR, prompt="none"))
    assert response.status_code == 302
    assert query_of(response.headers["Location"])["error"] == "interaction_required"


def test_an_essential_acr_the_user_cannot_reach_is_unmet(http, browser, app_client, alice):
    client, _ = app_client
    tokens_for(http, browser, app_client)
    claims = json.dumps({"id_token": {"acr": {"essential": True, "values": [MFA_ACR]}}})

    response = browser.get("/authorize?" + authorize_query(client.client_id, claims=claims))

    assert response.status_code == 302 and response.headers["Location"].startswith(REDIRECT_URI)
    assert query_of(response.headers["Location"])["error"] == "unmet_authentication_requirements"


def test_a_malformed_claims_parameter_is_invalid_request_at_the_redirect_uri(browser, app_client):
    client, _ = app_client
    response = browser.get("/authorize?" + authorize_query(client.client_id, claims='{"id_token": []}'))
    assert response.status_code == 302
    assert query_of(response.headers["Location"])["error"] == "invalid_request"


# max_age ---------------------------------------------------------------------------------------

def test_max_age_0_in_the_same_second_as_the_sign_in_needs_a_new_sign_in(http, browser, app_client, alice,
                                                                        monkeypatch):
    """Attack: elapsed whole seconds compared with `>` let a max_age=0 request made in the second of
    the sign-in through without re-authentication. The clock is held at the sign-in's second."""
    from chalicelib.oauth import authorization
    from chalicelib.storage import sessions as session_store

    client, _ = app_client
    tokens_for(http, browser, app_client)
    auth_time = session_store.get(session_hash(browser)).auth_time
    monkeypatch.setattr(authorization, "now", lambda: auth_time)

    response = browser.get("/authorize?" + authorize_query(client.client_id, max_age="0"))
    assert response.status_code == 302 and response.headers["Location"].startswith("/login?request_id=")
    response = browser.get("/authorize?" + authorize_query(client.client_id, max_age="0", prompt="none"))
    assert query_of(response.headers["Location"])["error"] == "login_required"


def test_max_age_0_is_met_by_signing_in_for_the_request(http, browser, app_client, alice):
    client, _ = app_client
    tokens_for(http, browser, app_client)
    location = sign_in_and_consent(browser, client.client_id, max_age="0")
    assert "code" in query_of(location)


def test_the_consent_page_does_not_satisfy_max_age_0_for_a_session_that_did_not_sign_in_for_it(
        http, browser, app_client, alice):
    client, _ = app_client
    tokens_for(http, browser, app_client)

    response = browser.get("/authorize?" + authorize_query(client.client_id, max_age="0", prompt="consent"))
    request_id = request_id_of(response.headers["Location"])
    assert browser.get(f"/consent?request_id={request_id}").headers["Location"] == f"/login?request_id={request_id}"
    posted = browser.post("/consent", {"request_id": request_id, "decision": "allow", "csrf_token": _csrf(browser)})
    assert posted.headers["Location"] == f"/login?request_id={request_id}"


# RFC 9470 at the example MCP server --------------------------------------------------------------

async def _asgi(app, method: str, path: str, headers: dict, body: bytes = b"") -> tuple[int, dict, bytes]:
    sent: list[dict] = []
    delivered = False

    async def receive():
        nonlocal delivered
        if delivered:
            return {"type": "http.disconnect"}
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()], "scheme": "https",
             "server": ("mcp.example.com", 443), "client": ("127.0.0.1", 1), "root_path": "", "http_version": "1.1"}
    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    return (start["status"], {k.decode(): v.decode() for k, v in start["headers"]},
            b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"))


@pytest.fixture
def notes_mcp(http, aws, monkeypatch):
    """examples/mcp_server in front of a stand-in for the SDK (which needs an MCP session first),
    checking tokens against this IdP's /jwks."""
    from chalicelib.storage.resources import register_resource
    from chalicelib.verifier import Verifier
    from examples.mcp_server.server import create_app

    register_resource(NOTES_MCP, "Notes MCP", ["notes:read", "notes:write"])
    jwks = json.loads(http.get("/jwks").body)
    app = create_app("http://localhost:8000", NOTES_MCP)
    app.verifier = Verifier("http://localhost:8000", NOTES_MCP, jwks_provider=lambda refresh: jwks,
                            resource_metadata=True, realm="mcp")
    reached = []

    async def sdk(scope, receive, send):
        reached.append(scope["user"].access_token.subject)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"jsonrpc":"2.0","id":1,"result":{}}'})

    app.sdk_app = sdk
    return app, reached


def _run(coroutine):
    """asyncio.run in a thread of its own: in a whole-suite run the browser tests' Playwright (sync
    API) keeps an event loop running in the main thread, where asyncio.run refuses to start."""
    import threading

    outcome = {}

    def run():
        try:
            outcome["value"] = asyncio.run(coroutine)
        except BaseException as exc:  # noqa: BLE001 - raised again in the test's thread
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def call_tool(app, token: str, name: str, arguments: dict) -> tuple[int, dict]:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": name, "arguments": arguments}}).encode()
    status, headers, _ = _run(_asgi(app, "POST", "/mcp", {"Authorization": f"Bearer {token}",
                                                                  "Content-Type": "application/json",
                                                                  "Accept": "application/json, text/event-stream"},
                                           body))
    return status, headers


def test_rfc9470_challenge_then_reauthorization_with_acr_values_lets_the_tool_call_through(
        http, browser, app_client, alice, notes_mcp):
    app, reached = notes_mcp
    client, secret = app_client
    scope = "notes:read notes:write"
    token = tokens_for(http, browser, app_client, scope=scope, resource=[NOTES_MCP])["access_token"]
    assert call_tool(app, token, "list_notes", {})[0] == 200  # a password is enough to read

    status, headers = call_tool(app, token, "delete_note", {"note_id": 1})
    assert status == 401 and reached == [alice.pk]
    challenge = headers["www-authenticate"]
    assert 'error="insufficient_user_authentication"' in challenge
    acr_values = re.search(r'acr_values="([^"]*)"', challenge).group(1)
    assert acr_values == MFA_ACR

    # The client re-authorizes with what the challenge names (RFC 9470 §4); the user has TOTP and
    # enters the app's code on /mfa.
    from tests.routes.test_second_factor import code_now, enrol_totp

    enrol_totp(alice.pk)
    enrol(browser, "totp")
    response = browser.get("/authorize?" + authorize_query(client.client_id, scope=scope, resource=[NOTES_MCP],
                                                           acr_values=acr_values))
    assert response.headers["Location"].startswith("/mfa?request_id=")
    page = browser.get(response.headers["Location"])
    response = browser.post("/mfa", {"csrf_token": hidden(page.body, "csrf_token"), "method": "totp",
                                     "code": code_now(), "request_id": hidden(page.body, "request_id")})
    assert response.status_code == 302
    location = response.headers["Location"]
    if location.startswith("/consent"):
        location = consent_through_the_page(browser, request_id_of(location))
    response = redeem(http, client.client_id, query_of(location)["code"], auth=basic_auth(client.client_id, secret))
    stepped_up = json.loads(response.body)["access_token"]
    assert payload(stepped_up)["acr"] == MFA_ACR

    assert call_tool(app, stepped_up, "delete_note", {"note_id": 1})[0] == 200
    assert reached == [alice.pk, alice.pk]
