"""POST /token with grant_type=authorization_code: client authentication, PKCE, single use."""
from __future__ import annotations

import base64
import json

import jwt
import pytest

from tests.routes.flow import FORM, VERIFIER, query_of, redeem, sign_in_and_consent

ISS = "http://localhost:8000"


def code_for(browser, client_id, **overrides):
    return query_of(sign_in_and_consent(browser, client_id, **overrides))["code"]


def verify(token, http, **kwargs):
    jwks = json.loads(http.get("/jwks").body)
    header = jwt.get_unverified_header(token)
    key = jwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == header["kid"]))
    return header, jwt.decode(token, key.key, algorithms=["ES256"], issuer=ISS, **kwargs)


def basic(client_id, secret):
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def test_public_client_gets_access_and_id_tokens(browser, http, public_client, alice):
    response = redeem(http, public_client.client_id, code_for(browser, public_client.client_id))
    assert response.status_code == 200, response.body
    assert response.headers["Cache-Control"] == "no-store"
    body = json.loads(response.body)
    assert body["token_type"] == "Bearer" and body["expires_in"] == 600 and body["scope"] == "openid email"

    header, at = verify(body["access_token"], http, audience=ISS)
    assert header["typ"] == "at+jwt"
    assert at["client_id"] == public_client.client_id and at["sub"] == alice.pk and at["scope"] == "openid email"
    assert {"jti", "iat", "exp"} <= set(at)

    header, idt = verify(body["id_token"], http, audience=public_client.client_id)
    assert idt["azp"] == public_client.client_id and idt["nonce"] == "n-0S6" and idt["email"] == "alice@example.com"
    assert "name" not in idt, "profile was not granted"
    from chalicelib.tokens.claims import at_hash

    assert idt["at_hash"] == at_hash(body["access_token"], "ES256")
    assert idt["auth_time"] <= idt["iat"]


def test_no_id_token_without_openid(browser, http, public_client, alice):
    code = code_for(browser, public_client.client_id, scope="email")
    body = json.loads(redeem(http, public_client.client_id, code).body)
    assert "id_token" not in body and body["scope"] == "email"


@pytest.mark.parametrize("auth_style", ["basic", "post"])
def test_confidential_client_authenticates_with_its_registered_method(browser, http, confidential_client, alice,
                                                                       auth_style):
    client, secret = confidential_client
    if auth_style == "post":
        from chalicelib.storage.models import ClientModel

        ClientModel(client.client_id).update(actions=[ClientModel.token_endpoint_auth_method.set("client_secret_post")])
    code = code_for(browser, client.client_id)
    if auth_style == "basic":
        response = redeem(http, client.client_id, code, auth=basic(client.client_id, secret))
    else:
        response = redeem(http, client.client_id, code, extra={"client_secret": secret})
    assert response.status_code == 200, response.body


def test_wrong_secret_with_basic_is_401_with_www_authenticate(browser, http, confidential_client, alice):
    client, _ = confidential_client
    code = code_for(browser, client.client_id)
    response = redeem(http, client.client_id, code, auth=basic(client.client_id, "wrong"))
    assert response.status_code == 401
    assert json.loads(response.body)["error"] == "invalid_client"
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    # The failed attempt did not burn the code: the real client can still redeem it.
    assert redeem(http, client.client_id, code, auth=basic(client.client_id, _)).status_code == 200


def test_two_authentication_methods_at_once_are_refused(browser, http, confidential_client, alice):
    client, secret = confidential_client
    code = code_for(browser, client.client_id)
    response = redeem(http, client.client_id, code, auth=basic(client.client_id, secret),
                      extra={"client_secret": secret})
    assert response.status_code == 400 and json.loads(response.body)["error"] == "invalid_request"


def test_confidential_client_cannot_skip_authentication(browser, http, confidential_client, alice):
    client, _ = confidential_client
    response = redeem(http, client.client_id, code_for(browser, client.client_id))
    assert response.status_code == 401 and json.loads(response.body)["error"] == "invalid_client"


def test_code_replay_fails_and_revokes_tokens_from_the_first_redemption(browser, http, public_client, alice):
    code = code_for(browser, public_client.client_id)
    first = json.loads(redeem(http, public_client.client_id, code).body)
    assert http.get("/userinfo", headers={"Authorization": f"Bearer {first['access_token']}"}).status_code == 200

    replay = redeem(http, public_client.client_id, code)
    assert replay.status_code == 400 and json.loads(replay.body)["error"] == "invalid_grant"
    revoked = http.get("/userinfo", headers={"Authorization": f"Bearer {first['access_token']}"})
    assert revoked.status_code == 401 and json.loads(revoked.body)["error"] == "invalid_token"


@pytest.mark.parametrize("tamper", [
    {"verifier": VERIFIER[:-1] + "X"},
    {"verifier": None},
    {"redirect_uri": "https://app.example.com/cb"},
    {"code": "not-a-real-code"},
])
def test_every_code_failure_is_the_same_invalid_grant(browser, http, public_client, alice, tamper):
    code = code_for(browser, public_client.client_id)
    kwargs = {k: v for k, v in tamper.items() if k != "code"}
    response = redeem(http, public_client.client_id, tamper.get("code", code), **kwargs)
    assert response.status_code == 400
    assert json.loads(response.body) == {
        "error": "invalid_grant",
        "error_description": "the authorization code is invalid, expired, or was already used"}


def test_failed_pkce_burns_the_code(browser, http, public_client, alice):
    code = code_for(browser, public_client.client_id)
    assert redeem(http, public_client.client_id, code, verifier="w" * 43).status_code == 400
    assert redeem(http, public_client.client_id, code).status_code == 400


def test_code_issued_to_another_client_is_refused(browser, http, public_client, confidential_client, alice):
    other, secret = confidential_client
    code = code_for(browser, public_client.client_id)
    stolen = redeem(http, other.client_id, code, auth=basic(other.client_id, secret))
    assert stolen.status_code == 400 and json.loads(stolen.body)["error"] == "invalid_grant"
    assert redeem(http, public_client.client_id, code).status_code == 200


def test_expired_code_is_refused(browser, http, public_client, alice, monkeypatch):
    code = code_for(browser, public_client.client_id)
    import chalicelib.grants.authorization_code as grant

    monkeypatch.setattr(grant, "now", lambda: 10**10)
    response = redeem(http, public_client.client_id, code)
    assert json.loads(response.body)["error"] == "invalid_grant"


def test_code_is_stored_only_as_a_hash(browser, public_client, alice):
    from chalicelib.storage.models import AuthorizationCodeModel

    code = code_for(browser, public_client.client_id)
    items = [item.attribute_values for item in AuthorizationCodeModel.scan()]
    assert items and all(code not in json.dumps(item, default=str) for item in items)


@pytest.mark.parametrize("body, status, error", [
    ({"grant_type": "password", "client_id": "CID"}, 400, "unsupported_grant_type"),
    ({"client_id": "CID"}, 400, "invalid_request"),
    ({"grant_type": "authorization_code", "client_id": "unknown"}, 401, "invalid_client"),
    ({"grant_type": "authorization_code", "client_id": "CID"}, 400, "invalid_request"),
])
def test_malformed_token_requests(http, public_client, body, status, error):
    from urllib.parse import urlencode

    body = {k: (public_client.client_id if v == "CID" else v) for k, v in body.items()}
    response = http.post("/token", body=urlencode(body).encode(), headers=FORM)
    assert response.status_code == status and json.loads(response.body)["error"] == error
    assert response.headers["Cache-Control"] == "no-store"


def test_repeated_token_parameters_are_refused(http, public_client):
    body = f"grant_type=authorization_code&client_id={public_client.client_id}&code=a&code=b"
    response = http.post("/token", body=body.encode(), headers=FORM)
    assert json.loads(response.body)["error"] == "invalid_request"


def test_json_token_request_is_refused(http):
    response = http.post("/token", body=b"{}", headers={"Content-Type": "application/json"})
    assert response.status_code in (400, 415)


def test_client_not_allowed_the_grant_is_unauthorized(browser, http, public_client, alice):
    code = code_for(browser, public_client.client_id)
    from chalicelib.storage.models import ClientModel

    from chalicelib.storage.clients import forget_cached_clients

    ClientModel(public_client.client_id).update(actions=[ClientModel.grant_types.set(["refresh_token"])])
    forget_cached_clients()  # as once CLIENT_CACHE_SECONDS have passed since /authorize read it
    response = redeem(http, public_client.client_id, code)
    assert json.loads(response.body)["error"] == "unauthorized_client"


def test_token_endpoint_allows_cors(http):
    response = http.post("/token", body=b"grant_type=x", headers={**FORM, "Origin": "https://spa.example"})
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_code_for_a_user_disabled_meanwhile_is_refused(browser, http, public_client, alice):
    from chalicelib.storage.users import set_user_disabled

    code = code_for(browser, public_client.client_id)
    set_user_disabled(alice.pk, True)
    response = redeem(http, public_client.client_id, code)
    assert response.status_code == 400 and json.loads(response.body)["error"] == "invalid_grant"


def test_code_issued_before_sign_out_yields_nothing(browser, http, public_client, alice):
    from tests.routes.flow import hidden

    code = code_for(browser, public_client.client_id)
    page = browser.get("/logout")
    browser.post("/logout", {"csrf_token": hidden(page.body, "csrf_token")})
    response = redeem(http, public_client.client_id, code)
    assert response.status_code == 400 and json.loads(response.body)["error"] == "invalid_grant"
