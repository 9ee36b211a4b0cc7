"""Pushed authorization requests (RFC 9126): /par and /authorize with a request_uri, attacked through
the HTTP layer. Every refusal asserts its exact error; every single-use rule has an attacking test."""
from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from chalicelib.capabilities import PAR_REQUEST_URI_PREFIX
from tests.conftest import basic_auth, reset_process_state
from tests.routes.flow import FORM, ISSUER, VERIFIER, authorize_query, hidden, query_of, redeem
from chalicelib.oauth import pkce

WEB_REDIRECT = "http://127.0.0.1/cb"


def request_params(client_id: str, **overrides) -> dict:
    params = {"client_id": client_id, "redirect_uri": WEB_REDIRECT, "response_type": "code",
              "scope": "openid email", "state": "xyz-state", "nonce": "n-0S6",
              "code_challenge": pkce.s256(VERIFIER), "code_challenge_method": "S256", **overrides}
    return {k: v for k, v in params.items() if v is not None}


def push(http, body: dict, *, auth: str | None = None):
    headers = {**FORM, **({"Authorization": auth} if auth else {})}
    return http.post("/par", body=urlencode(body, doseq=True).encode(), headers=headers)


def pushed(http, client_id: str, *, auth: str | None = None, **overrides) -> str:
    response = push(http, request_params(client_id, **overrides), auth=auth)
    assert response.status_code == 201, response.body
    return json.loads(response.body)["request_uri"]


def authorize_with(browser, client_id: str | None, request_uri: str, **extra):
    query = {**({"client_id": client_id} if client_id is not None else {}), "request_uri": request_uri, **extra}
    return browser.get("/authorize?" + urlencode(query))


def sign_in(browser, location: str):
    page = browser.get(location)
    return browser.post("/login", {"request_id": hidden(page.body, "request_id"),
                                   "csrf_token": hidden(page.body, "csrf_token"),
                                   "username": "alice@example.com", "password": "correct horse battery"})


def consent(browser, location: str):
    page = browser.get(location)
    return browser.post("/consent", {"request_id": hidden(page.body, "request_id"),
                                     "csrf_token": hidden(page.body, "csrf_token"), "decision": "allow"})


def error_code(page) -> str:
    return page.body.decode().split("Error code: <code>")[1].split("</code>")[0]


@pytest.fixture
def web_client(aws):
    """A confidential client authenticating with client_secret_basic."""
    from chalicelib.oauth.clients import create_client

    client, secret = create_client(client_name="Billing", client_type="confidential", redirect_uris=[WEB_REDIRECT],
                                   scopes=["openid", "email", "profile"])
    return client, basic_auth(client.client_id, secret)


# /par --------------------------------------------------------------------------------------------

def test_a_pushed_request_gets_a_single_use_request_uri_and_its_lifetime(http, web_client):
    client, auth = web_client
    response = push(http, request_params(client.client_id), auth=auth)
    assert response.status_code == 201
    assert response.headers["Content-Type"] == "application/json"
    assert "no-store" in response.headers["Cache-Control"]
    body = json.loads(response.body)
    assert set(body) == {"request_uri", "expires_in"} and body["expires_in"] == 60
    assert body["request_uri"].startswith(PAR_REQUEST_URI_PREFIX)
    assert len(body["request_uri"]) - len(PAR_REQUEST_URI_PREFIX) == 43, "256 bits"


def test_only_the_hash_of_the_request_uri_is_stored(http, web_client, aws):
    from chalicelib.hashing import sha256_hex
    from chalicelib.storage.models import PushedRequestModel

    client, auth = web_client
    request_uri = pushed(http, client.client_id, auth=auth)
    secret = request_uri[len(PAR_REQUEST_URI_PREFIX):]
    items = list(PushedRequestModel.scan())
    assert [i.request_id for i in items] == [f"par#{sha256_hex(secret)}"]
    assert secret not in json.dumps(items[0].attribute_values, default=str)
    stored = json.loads(items[0].params)
    assert stored["client_id"] == client.client_id and "client_secret" not in stored


def test_a_public_client_may_push_naming_its_client_id(http, public_client):
    response = push(http, request_params(public_client.client_id))
    assert response.status_code == 201, response.body


def test_a_client_secret_post_is_not_stored_with_the_request(http, aws):
    from chalicelib.oauth.clients import create_client
    from chalicelib.storage.models import PushedRequestModel

    client, secret = create_client(client_name="Post", client_type="confidential", redirect_uris=[WEB_REDIRECT],
                                   token_endpoint_auth_method="client_secret_post")
    response = push(http, {**request_params(client.client_id, scope="openid"), "client_secret": secret})
    assert response.status_code == 201, response.body
    assert secret not in json.dumps([i.params for i in PushedRequestModel.scan()])


@pytest.mark.parametrize("body", [{}, {"client_id": "nope"}], ids=["no-client", "unknown-client"])
def test_a_push_without_client_authentication_is_refused(http, aws, body):
    from chalicelib.storage.models import PushedRequestModel

    params = {k: v for k, v in request_params("x").items() if k != "client_id"}
    response = push(http, {**params, **body})
    assert response.status_code == 401 and json.loads(response.body)["error"] == "invalid_client"
    assert list(PushedRequestModel.scan()) == []


def test_a_confidential_client_must_authenticate_to_push(http, web_client, aws):
    from chalicelib.storage.models import PushedRequestModel

    client, _ = web_client
    response = push(http, request_params(client.client_id))
    assert response.status_code == 401 and json.loads(response.body)["error"] == "invalid_client"
    response = push(http, request_params(client.client_id), auth=basic_auth(client.client_id, "wrong"))
    assert response.status_code == 401 and json.loads(response.body)["error"] == "invalid_client"
    assert list(PushedRequestModel.scan()) == []


@pytest.mark.parametrize("overrides, error, description", [
    ({"request_uri": PAR_REQUEST_URI_PREFIX + "x" * 43}, "invalid_request", "request_uri must not be pushed"),
    ({"request": "eyJhbGciOiJub25lIn0.e30."}, "request_not_supported", "request objects are not supported"),
    ({"redirect_uri": "https://evil.example/cb"}, "invalid_request",
     "redirect_uri is not registered for this client"),
    ({"redirect_uri": None}, "invalid_request", "redirect_uri is required"),
    ({"response_type": "token"}, "unsupported_response_type", "only response_type=code is supported"),
    ({"code_challenge": None}, "invalid_request", None),
    ({"scope": "openid admin"}, "invalid_scope", None),
    ({"prompt": "none login"}, "invalid_request", "prompt=none cannot be combined with other values"),
], ids=["request_uri", "request", "unregistered-redirect", "no-redirect", "implicit", "no-pkce", "scope",
        "prompt"])
def test_a_pushed_request_is_validated_like_authorize_and_errors_come_back_as_json(http, web_client, aws,
                                                                                 overrides, error, description):
    from chalicelib.storage.models import PushedRequestModel

    client, auth = web_client
    response = push(http, request_params(client.client_id, **overrides), auth=auth)
    assert response.status_code == 400 and "Location" not in response.headers
    body = json.loads(response.body)
    assert body["error"] == error
    if description:
        assert body["error_description"] == description
    assert list(PushedRequestModel.scan()) == [], "bad input changes nothing"


def test_a_client_id_other_than_the_authenticated_client_is_refused(http, web_client, public_client):
    client, auth = web_client
    response = push(http, request_params(public_client.client_id), auth=auth)
    assert response.status_code == 400
    assert json.loads(response.body) == {"error": "invalid_request", "error_description":
                                         "client_id in the body does not match the authenticated client"}


def test_a_client_without_the_code_grant_may_not_push(http, service_client):
    """A client_credentials client has no redirect URI, so its push fails where /authorize would."""
    client, secret = service_client
    response = push(http, request_params(client.client_id), auth=basic_auth(client.client_id, secret))
    assert response.status_code == 400
    assert json.loads(response.body) == {"error": "invalid_request",
                                         "error_description": "redirect_uri is not registered for this client"}


@pytest.mark.parametrize("aud, status", [(f"{ISSUER}/par", 201), (ISSUER, 201), (f"{ISSUER}/authorize", 401)])
def test_a_private_key_jwt_client_pushes_with_an_assertion_for_par(http, aws, aud, status):
    """RFC 9126 §2: the issuer, the token endpoint or the PAR endpoint's URL identify us as `aud`."""
    import secrets
    import time

    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec
    from jwt.algorithms import ECAlgorithm

    from chalicelib.oauth.clients import create_client

    key = ec.generate_private_key(ec.SECP256R1())
    jwks = {"keys": [{**ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": "k1"}]}
    client, _ = create_client(client_name="Keyed", client_type="confidential", redirect_uris=[WEB_REDIRECT],
                              token_endpoint_auth_method="private_key_jwt", jwks=jwks)
    at = int(time.time())
    assertion = jwt.encode({"iss": client.client_id, "sub": client.client_id, "aud": aud, "iat": at,
                            "exp": at + 60, "jti": secrets.token_urlsafe(16)}, key, algorithm="ES256",
                           headers={"kid": "k1"})
    response = push(http, {**request_params(client.client_id, scope="openid"),
                           "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                           "client_assertion": assertion})
    assert response.status_code == status, response.body
    if status == 401:
        assert json.loads(response.body)["error"] == "invalid_client"


def test_an_oversized_push_is_refused_with_413_and_nothing_is_stored(http, web_client, aws):
    from chalicelib.storage.models import PushedRequestModel

    client, auth = web_client
    response = push(http, request_params(client.client_id, **{f"x{i}": "y" * 2000 for i in range(9)}), auth=auth)
    assert response.status_code == 413
    assert json.loads(response.body) == {"error": "invalid_request", "error_description":
                                         "a pushed authorization request must be at most 16384 bytes"}
    assert list(PushedRequestModel.scan()) == []


def test_par_takes_only_post(http):
    assert http.get("/par").status_code == 405


# /authorize with a request_uri ---------------------------------------------------------------------

def test_the_pushed_request_runs_the_whole_flow_and_its_code_redeems(http, browser, web_client, alice):
    client, auth = web_client
    request_uri = pushed(http, client.client_id, auth=auth)
    response = authorize_with(browser, client.client_id, request_uri)
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    response = sign_in(browser, response.headers["Location"])
    response = consent(browser, response.headers["Location"])
    location = response.headers["Location"]
    assert location.startswith(WEB_REDIRECT + "?")
    params = query_of(location)
    assert params["state"] == "xyz-state" and params["iss"] == ISSUER
    tokens = redeem(http, client.client_id, params["code"], redirect_uri=WEB_REDIRECT, auth=auth)
    assert tokens.status_code == 200, tokens.body
    assert set(json.loads(tokens.body)["scope"].split()) == {"openid", "email"}


def test_a_request_uri_works_once(http, browser, web_client, alice):
    client, auth = web_client
    request_uri = pushed(http, client.client_id, auth=auth)
    assert authorize_with(browser, client.client_id, request_uri).status_code == 302
    again = authorize_with(browser, client.client_id, request_uri)
    assert again.status_code == 400 and "Location" not in again.headers
    assert error_code(again) == "invalid_request_uri"
    assert b"expired or was already used" in again.body


def test_an_expired_request_uri_is_refused(http, browser, web_client, alice, monkeypatch):
    from chalicelib.oauth import pushed_authorization

    client, auth = web_client
    request_uri = pushed(http, client.client_id, auth=auth)
    later = pushed_authorization.now() + 60
    monkeypatch.setattr(pushed_authorization, "now", lambda: later)
    response = authorize_with(browser, client.client_id, request_uri)
    assert response.status_code == 400 and error_code(response) == "invalid_request_uri"


def test_another_client_cannot_use_a_request_uri_and_does_not_spend_it(http, browser, web_client, public_client,
                                                                        alice):
    client, auth = web_client
    request_uri = pushed(http, client.client_id, auth=auth)
    stolen = authorize_with(browser, public_client.client_id, request_uri)
    assert stolen.status_code == 400 and "Location" not in stolen.headers
    assert error_code(stolen) == "invalid_request_uri"
    assert authorize_with(browser, client.client_id, request_uri).status_code == 302, "still the client's to use"


@pytest.mark.parametrize("request_uri", ["", "urn:ietf:params:oauth:request_uri:short",
                                         "https://client.example/request.jwt", PAR_REQUEST_URI_PREFIX + "A" * 43])
def test_a_request_uri_that_is_not_one_we_issued_is_refused(browser, web_client, request_uri):
    client, _ = web_client
    response = authorize_with(browser, client.client_id, request_uri)
    assert response.status_code == 400 and "Location" not in response.headers
    assert error_code(response) == "invalid_request_uri"


def test_a_request_uri_without_client_id_is_refused_and_not_spent(http, browser, web_client, alice):
    client, auth = web_client
    request_uri = pushed(http, client.client_id, auth=auth)
    response = authorize_with(browser, None, request_uri)
    assert response.status_code == 400 and b"client_id is required" in response.body
    assert authorize_with(browser, client.client_id, request_uri).status_code == 302


@pytest.mark.parametrize("extra", [{"redirect_uri": "https://evil.example/cb"}, {"scope": "openid profile"},
                                   {"state": "other"}, {"prompt": "none"}, {"response_type": "code"}])
def test_front_channel_parameters_mixed_with_a_request_uri_are_refused_and_nothing_is_spent(
        http, browser, web_client, alice, extra):
    """RFC 9101 §5 would ignore them; we refuse: nobody authenticated them. Stricter, and the
    request_uri survives for the real link."""
    client, auth = web_client
    request_uri = pushed(http, client.client_id, auth=auth)
    response = authorize_with(browser, client.client_id, request_uri, **extra)
    assert response.status_code == 400 and "Location" not in response.headers
    assert error_code(response) == "invalid_request"
    assert b"only client_id may be sent" in response.body and b"evil.example" not in response.body
    assert authorize_with(browser, client.client_id, request_uri).status_code == 302


def test_the_pushed_key_is_never_a_pending_request_id(http, browser, web_client, alice):
    """Whoever saw a request_uri can hash it into the pushed item's key: as a request_id it is no
    pending request (the sign-in page says the request expired)."""
    from chalicelib.hashing import sha256_hex

    client, auth = web_client
    request_uri = pushed(http, client.client_id, auth=auth)
    key = "par#" + sha256_hex(request_uri[len(PAR_REQUEST_URI_PREFIX):])
    page = browser.get("/login?" + urlencode({"request_id": key}))
    assert b"expired or was already used" in page.body
    assert authorize_with(browser, client.client_id, request_uri).status_code == 302


def test_an_error_after_the_pushed_request_is_read_goes_to_its_redirect_uri(http, browser, web_client):
    """prompt=none without a session: login_required, delivered to the pushed (registered) redirect_uri."""
    client, auth = web_client
    request_uri = pushed(http, client.client_id, auth=auth, prompt="none")
    response = authorize_with(browser, client.client_id, request_uri)
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(WEB_REDIRECT + "?")
    assert query_of(location)["error"] == "login_required" and query_of(location)["state"] == "xyz-state"


def test_a_client_changed_since_the_push_is_checked_again(http, browser, web_client, alice):
    """RFC 9126 §4: validated as any request: a redirect URI removed since the push no longer serves."""
    from chalicelib.storage.models import ClientModel

    client, auth = web_client
    request_uri = pushed(http, client.client_id, auth=auth)
    ClientModel(client.client_id).update(actions=[ClientModel.redirect_uris.set(["https://app.example.com/cb"])])
    reset_process_state(endpoint_changed=False)  # the container's client cache has caught up
    response = authorize_with(browser, client.client_id, request_uri)
    assert response.status_code == 400 and "Location" not in response.headers
    assert b"redirect_uri is not registered" in response.body


# PAR required ------------------------------------------------------------------------------------

@pytest.fixture
def par_only_client(aws):
    from chalicelib.oauth.clients import create_client

    client, secret = create_client(client_name="Bank", client_type="confidential", redirect_uris=[WEB_REDIRECT],
                                   scopes=["openid", "email"], require_pushed_authorization_requests=True)
    return client, basic_auth(client.client_id, secret)


def test_a_client_requiring_par_cannot_go_through_the_front_channel(http, browser, par_only_client, alice):
    client, auth = par_only_client
    response = browser.get("/authorize?" + authorize_query(client.client_id, redirect_uri=WEB_REDIRECT))
    assert response.status_code == 302
    error = query_of(response.headers["Location"])
    assert response.headers["Location"].startswith(WEB_REDIRECT + "?")
    assert error["error"] == "invalid_request" and error["state"] == "xyz-state"
    assert "pushed" in error["error_description"]
    request_uri = pushed(http, client.client_id, auth=auth)
    assert authorize_with(browser, client.client_id, request_uri).headers["Location"].startswith("/login")


def test_par_required_applies_to_every_client(http, browser, public_client, monkeypatch):
    monkeypatch.setenv("PAR_REQUIRED", "true")
    reset_process_state(endpoint_changed=False)
    response = browser.get("/authorize?" + authorize_query(public_client.client_id, redirect_uri=WEB_REDIRECT))
    assert response.status_code == 302 and query_of(response.headers["Location"])["error"] == "invalid_request"
    request_uri = pushed(http, public_client.client_id)
    assert authorize_with(browser, public_client.client_id, request_uri).status_code == 302
    assert json.loads(http.get("/.well-known/openid-configuration").body)["require_pushed_authorization_requests"]


def test_a_self_registered_client_may_require_par_for_itself(http, browser, keys):
    """RFC 9126 §6 client metadata through RFC 7591: echoed, stored, enforced (the dynamic client's
    error is held on the notice page, RFC 9700 §4.11.2)."""
    from tests.routes.flow import register_public_agent

    registered = register_public_agent(http, redirect_uris=[WEB_REDIRECT], require_pushed_authorization_requests=True)
    assert registered["require_pushed_authorization_requests"] is True
    response = browser.get("/authorize?" + authorize_query(registered["client_id"], redirect_uri=WEB_REDIRECT,
                                                           scope="openid"))
    assert response.status_code == 400 and b"error=invalid_request" in response.body
    request_uri = pushed(http, registered["client_id"], scope="openid")
    assert authorize_with(browser, registered["client_id"], request_uri).status_code == 302
    refused = http.post("/register", body=json.dumps({"redirect_uris": [WEB_REDIRECT], "token_endpoint_auth_method":
                                                      "none", "require_pushed_authorization_requests": "yes"}).encode(),
                        headers={"Content-Type": "application/json"})
    assert refused.status_code == 400 and json.loads(refused.body) == {
        "error": "invalid_client_metadata", "error_description": "require_pushed_authorization_requests must be a boolean"}


def test_discovery_names_the_endpoint(http):
    document = json.loads(http.get("/.well-known/oauth-authorization-server").body)
    assert document["pushed_authorization_request_endpoint"] == f"{ISSUER}/par"
    assert document["require_pushed_authorization_requests"] is False


# Costs ---------------------------------------------------------------------------------------------

def test_dynamodb_calls_of_par_and_of_authorize_with_a_request_uri(http, browser, web_client, alice,
                                                                    api_role_allows_every_dynamodb_call):
    """Warm containers: /par one PutItem; /authorize with a request_uri one UpdateItem more than
    without (signed in, consent remembered: the session read and the issuing transaction)."""
    calls = api_role_allows_every_dynamodb_call
    client, auth = web_client

    def operations(send):
        del calls[:]
        response = send()
        return response, [c["operation"] for c in calls]

    from tests.routes.flow import sign_in_and_consent

    sign_in_and_consent(browser, client.client_id, redirect_uri=WEB_REDIRECT)  # a session, consent remembered
    pushed(http, client.client_id, auth=auth)  # warms the client cache
    response, ops = operations(lambda: push(http, request_params(client.client_id), auth=auth))
    assert response.status_code == 201 and ops == ["PutItem"]
    request_uri = json.loads(response.body)["request_uri"]
    _, front = operations(lambda: browser.get("/authorize?" + authorize_query(client.client_id,
                                                                               redirect_uri=WEB_REDIRECT)))
    response, ops = operations(lambda: authorize_with(browser, client.client_id, request_uri))
    assert query_of(response.headers["Location"])["code"]
    assert ops == ["UpdateItem", *front]
    assert front == ["GetItem", "TransactWriteItems"]
