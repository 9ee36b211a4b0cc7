"""/revoke (RFC 7009) and /introspect (RFC 7662), attacked with every kind of bad token."""
from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import jwt
import pytest

from tests.conftest import basic_auth
from tests.routes.flow import FORM, query_of, redeem, sign_in_and_consent

NOTES = "https://notes.example.com/api"


@pytest.fixture
def app_client(aws, api_resources):
    from chalicelib.oauth.clients import create_client

    client, secret = create_client(client_name="Notes web", redirect_uris=["http://127.0.0.1/cb"],
                                   grant_types=["authorization_code", "refresh_token"],
                                   scopes=["openid", "offline_access", "notes:read"])
    return client, secret


@pytest.fixture
def notes_rs(aws, api_resources):
    """The Notes API's resource server: allowed to introspect tokens meant for it."""
    from chalicelib.oauth.clients import create_client

    client, secret = create_client(client_name="Notes API", grant_types=["client_credentials"], scopes=[],
                                   introspects=[NOTES])
    return client, secret


@pytest.fixture
def tokens(browser, http, app_client, alice):
    client, secret = app_client
    location = sign_in_and_consent(browser, client.client_id, scope="openid offline_access notes:read",
                                   resource=[NOTES])
    response = redeem(http, client.client_id, query_of(location)["code"], auth=basic_auth(client.client_id, secret))
    assert response.status_code == 200, response.body
    return json.loads(response.body)


def post(http, path, creds, **params):
    client, secret = creds
    return http.post(path, body=urlencode(params).encode(),
                     headers={**FORM, "Authorization": basic_auth(client.client_id, secret)})


def introspect(http, rs, token):
    response = post(http, "/introspect", rs, token=token)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    return json.loads(response.body)


def test_active_access_token_introspection(http, tokens, notes_rs, app_client, alice):
    body = introspect(http, notes_rs, tokens["access_token"])
    assert body["active"] is True and body["token_type"] == "Bearer"
    assert body["aud"] == NOTES and body["sub"] == alice.pk and body["client_id"] == app_client[0].client_id
    assert body["scope"] == "openid offline_access notes:read"
    assert {"iss", "exp", "iat", "jti"} <= set(body)


def test_resource_server_cannot_see_tokens_for_other_audiences(http, tokens, api_resources, aws):
    from chalicelib.oauth.clients import create_client

    billing_rs = create_client(client_name="Billing API", grant_types=["client_credentials"], scopes=[],
                               introspects=["https://billing.example.com/api"])
    assert introspect(http, billing_rs, tokens["access_token"]) == {"active": False}


def test_client_without_introspection_permission_is_refused(http, tokens, app_client):
    response = post(http, "/introspect", app_client, token=tokens["access_token"])
    assert response.status_code == 401 and json.loads(response.body)["error"] == "invalid_client"


def test_introspection_requires_client_authentication(http, tokens):
    response = http.post("/introspect", body=urlencode({"token": tokens["access_token"]}).encode(), headers=FORM)
    assert response.status_code == 401


def _forged(tokens, **changes):
    from cryptography.hazmat.primitives.asymmetric import ec

    claims = {**jwt.decode(tokens["access_token"], options={"verify_signature": False}), **changes}
    header = jwt.get_unverified_header(tokens["access_token"])
    return jwt.encode(claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256",
                      headers={"kid": header["kid"], "typ": "at+jwt"})


@pytest.mark.parametrize("make_token", [
    lambda t: "not-a-token",
    lambda t: "a.b.c",
    lambda t: t["access_token"][:-4] + "AAAA",
    lambda t: _forged(t),
    lambda t: t["id_token"],
    lambda t: t["refresh_token"] + "x",
    lambda t: "",
], ids=["garbage", "three-parts", "bad-signature", "foreign-key", "id-token", "unknown-refresh", "empty"])
def test_every_kind_of_bad_token_is_inactive(http, tokens, notes_rs, make_token):
    response = post(http, "/introspect", notes_rs, token=make_token(tokens))
    if make_token(tokens) == "":
        assert response.status_code == 400 and json.loads(response.body)["error"] == "invalid_request"
    else:
        assert json.loads(response.body) == {"active": False}


def test_expired_access_token_is_inactive(http, tokens, notes_rs):
    from chalicelib.keys import keyring
    from chalicelib.tokens import jwt as jwt_encode

    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    expired = jwt_encode.encode({**claims, "iat": 1000, "exp": int(time.time()) - 120}, keyring.current_signer(),
                                typ="at+jwt")
    assert introspect(http, notes_rs, expired) == {"active": False}


def test_revoked_access_token_is_inactive_and_refused_by_userinfo(http, tokens, notes_rs, app_client):
    assert post(http, "/revoke", app_client, token=tokens["access_token"]).status_code == 200
    assert introspect(http, notes_rs, tokens["access_token"]) == {"active": False}


def test_revoking_one_access_token_leaves_its_family_and_siblings_alive(http, tokens, notes_rs, app_client):
    sibling = json.loads(post(http, "/token", app_client, grant_type="refresh_token",
                              refresh_token=tokens["refresh_token"]).body)
    assert post(http, "/revoke", app_client, token=tokens["access_token"]).status_code == 200
    assert introspect(http, notes_rs, tokens["access_token"]) == {"active": False}
    assert introspect(http, notes_rs, sibling["access_token"])["active"] is True
    refreshed = post(http, "/token", app_client, grant_type="refresh_token", refresh_token=sibling["refresh_token"])
    assert refreshed.status_code == 200


def test_past_the_per_grant_limit_revoking_access_tokens_ends_the_whole_grant(http, tokens, notes_rs, app_client,
                                                                              monkeypatch):
    """Each grant keeps a bounded list of access tokens revoked one by one, so a client cannot grow
    the item (and every read of it) without end: past the bound the grant itself is revoked."""
    from chalicelib.storage import grants

    monkeypatch.setattr(grants, "MAX_REVOKED_JTIS", 1)
    second = json.loads(post(http, "/token", app_client, grant_type="refresh_token",
                             refresh_token=tokens["refresh_token"]).body)
    assert post(http, "/revoke", app_client, token=tokens["access_token"]).status_code == 200
    assert introspect(http, notes_rs, second["access_token"])["active"] is True, "one revocation is within the bound"
    assert post(http, "/revoke", app_client, token=second["access_token"]).status_code == 200
    refreshed = post(http, "/token", app_client, grant_type="refresh_token", refresh_token=second["refresh_token"])
    assert json.loads(refreshed.body)["error"] == "invalid_grant", "past the bound the family ends"


def test_revoking_a_refresh_token_revokes_its_family(http, tokens, notes_rs, app_client):
    assert introspect(http, notes_rs, tokens["access_token"])["active"] is True
    response = post(http, "/revoke", app_client, token=tokens["refresh_token"], token_type_hint="refresh_token")
    assert response.status_code == 200 and json.loads(response.body) == {}
    assert introspect(http, notes_rs, tokens["access_token"]) == {"active": False}
    refresh = post(http, "/token", app_client, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert json.loads(refresh.body)["error"] == "invalid_grant"


def test_reused_refresh_token_family_access_tokens_report_inactive(http, tokens, notes_rs, app_client):
    first = post(http, "/token", app_client, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    second_access = json.loads(first.body)["access_token"]
    assert introspect(http, notes_rs, second_access)["active"] is True
    post(http, "/token", app_client, grant_type="refresh_token", refresh_token=tokens["refresh_token"])  # reuse
    assert introspect(http, notes_rs, second_access) == {"active": False}
    assert introspect(http, notes_rs, tokens["access_token"]) == {"active": False}


def test_a_client_cannot_revoke_another_clients_token(http, tokens, notes_rs, service_client):
    for token in (tokens["access_token"], tokens["refresh_token"]):
        response = post(http, "/revoke", service_client, token=token)
        assert response.status_code == 400 and json.loads(response.body)["error"] == "unauthorized_client"
    assert introspect(http, notes_rs, tokens["access_token"])["active"] is True


def test_unknown_tokens_still_answer_200(http, keys, service_client):
    for token in ("nope", "a.b", "a.b.c"):
        assert post(http, "/revoke", service_client, token=token).status_code == 200


def test_revocation_requires_client_authentication(http, tokens, app_client):
    client, _ = app_client
    response = http.post("/revoke", body=urlencode({"token": tokens["access_token"], "client_id": client.client_id})
                         .encode(), headers=FORM)
    assert response.status_code == 401 and json.loads(response.body)["error"] == "invalid_client"


def test_refresh_token_introspection_is_for_its_owner_only(http, tokens, notes_rs, app_client):
    assert introspect(http, notes_rs, tokens["refresh_token"]) == {"active": False}
    from chalicelib.storage.models import ClientModel

    ClientModel(app_client[0].client_id).update(actions=[ClientModel.introspection.set(True)])
    from chalicelib.storage.clients import forget_cached_clients

    forget_cached_clients()
    owner_view = introspect(http, app_client, tokens["refresh_token"])
    assert owner_view["active"] is True and owner_view["token_type"] == "refresh_token"


def test_client_credentials_tokens_die_with_their_client(http, notes_rs, service_client):
    from chalicelib.storage.clients import forget_cached_clients, set_client_disabled

    client, secret = service_client
    token = json.loads(post(http, "/token", service_client, grant_type="client_credentials",
                            resource=NOTES).body)["access_token"]
    assert introspect(http, notes_rs, token)["active"] is True
    set_client_disabled(client.client_id, True)
    forget_cached_clients()  # another container would notice within CLIENT_CACHE_SECONDS
    assert introspect(http, notes_rs, token) == {"active": False}


def test_what_a_client_may_request_does_not_widen_what_it_may_introspect(http, tokens, api_resources):
    """A resource server for Billing that may also *request* Notes tokens still cannot introspect
    other clients' Notes tokens."""
    from chalicelib.oauth.clients import create_client

    billing_rs = create_client(client_name="Billing API", grant_types=["client_credentials"], scopes=["notes:read"],
                               resources=[NOTES], introspects=["https://billing.example.com/api"])
    assert introspect(http, billing_rs, tokens["access_token"]) == {"active": False}
