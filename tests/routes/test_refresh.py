"""Refresh tokens: rotation, reuse detection, grace window, narrowing, lifetimes (RFC 6749 §6,
OAuth 2.1 §4.3.1, RFC 9700 §4.14)."""
from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from tests.routes.flow import FORM, query_of, redeem, sign_in_and_consent


@pytest.fixture
def refreshing_client(aws):
    from chalicelib.oauth.clients import create_client

    client, _ = create_client(client_name="Agent", client_type="public", redirect_uris=["http://127.0.0.1/cb"],
                              grant_types=["authorization_code", "refresh_token"],
                              scopes=["openid", "email", "profile", "offline_access", "notes:read", "notes:write"])
    return client


def first_tokens(browser, http, client, scope="openid email offline_access"):
    code = query_of(sign_in_and_consent(browser, client.client_id, scope=scope))["code"]
    response = redeem(http, client.client_id, code)
    assert response.status_code == 200, response.body
    return json.loads(response.body)


def refresh(http, client_id, token, **extra):
    body = {"grant_type": "refresh_token", "refresh_token": token, "client_id": client_id, **extra}
    return http.post("/token", body=urlencode(body, doseq=True).encode(), headers=FORM)


def userinfo_status(http, access_token):
    return http.get("/userinfo", headers={"Authorization": f"Bearer {access_token}"}).status_code


def test_refresh_token_is_issued_only_with_offline_access_for_openid(browser, http, refreshing_client, alice):
    assert "refresh_token" in first_tokens(browser, http, refreshing_client)
    assert "refresh_token" not in first_tokens(browser, http, refreshing_client, scope="openid email")
    assert "refresh_token" in first_tokens(browser, http, refreshing_client, scope="notes:read")


def test_client_without_the_refresh_grant_gets_no_refresh_token(browser, http, public_client, alice):
    from chalicelib.storage.models import ClientModel

    ClientModel(public_client.client_id).update(actions=[ClientModel.scopes.set(["openid", "offline_access"])])
    assert "refresh_token" not in first_tokens(browser, http, public_client, scope="openid offline_access")


def test_every_refresh_rotates(browser, http, refreshing_client, alice):
    tokens = first_tokens(browser, http, refreshing_client)
    second = json.loads(refresh(http, refreshing_client.client_id, tokens["refresh_token"]).body)
    assert second["refresh_token"] != tokens["refresh_token"]
    assert second["scope"] == "openid email offline_access"
    assert "nonce" not in __import__("jwt").decode(second["id_token"], options={"verify_signature": False})
    third = refresh(http, refreshing_client.client_id, second["refresh_token"])
    assert third.status_code == 200


def test_reuse_of_a_rotated_token_revokes_the_whole_family(browser, http, refreshing_client, alice):
    tokens = first_tokens(browser, http, refreshing_client)
    second = json.loads(refresh(http, refreshing_client.client_id, tokens["refresh_token"]).body)
    assert userinfo_status(http, second["access_token"]) == 200

    reuse = refresh(http, refreshing_client.client_id, tokens["refresh_token"])
    assert reuse.status_code == 400 and json.loads(reuse.body)["error"] == "invalid_grant"
    # The attacker's replay kills the legitimate successor and every access token of the family.
    assert refresh(http, refreshing_client.client_id, second["refresh_token"]).status_code == 400
    assert userinfo_status(http, second["access_token"]) == 401
    assert userinfo_status(http, tokens["access_token"]) == 401


def test_reuse_of_a_token_several_rotations_old_still_revokes_the_whole_family(browser, http, refreshing_client,
                                                                              alice):
    """The family keeps its last 64 consumed tokens (hash prefixes in slots): a token stolen three
    rotations ago and replayed is reuse, not an unknown token, and ends the family."""
    chain = [first_tokens(browser, http, refreshing_client)["refresh_token"]]
    for _ in range(3):
        chain.append(json.loads(refresh(http, refreshing_client.client_id, chain[-1]).body)["refresh_token"])
    stolen, current = chain[0], chain[-1]
    assert json.loads(refresh(http, refreshing_client.client_id, stolen).body)["error"] == "invalid_grant"
    assert refresh(http, refreshing_client.client_id, current).status_code == 400, "the family is revoked"


def test_grace_window_returns_the_same_successor(browser, http, refreshing_client, alice, monkeypatch):
    monkeypatch.setenv("REFRESH_GRACE_SECONDS", "30")
    from chalicelib.config import settings

    settings.cache_clear()
    tokens = first_tokens(browser, http, refreshing_client)
    first = json.loads(refresh(http, refreshing_client.client_id, tokens["refresh_token"]).body)
    retry = json.loads(refresh(http, refreshing_client.client_id, tokens["refresh_token"]).body)
    assert retry["refresh_token"] == first["refresh_token"]
    assert userinfo_status(http, retry["access_token"]) == 200

    # Once the successor has been used, the old token is plain reuse again.
    refresh(http, refreshing_client.client_id, first["refresh_token"])
    late = refresh(http, refreshing_client.client_id, tokens["refresh_token"])
    assert json.loads(late.body)["error"] == "invalid_grant"
    assert userinfo_status(http, retry["access_token"]) == 401


def test_grace_window_expiry_means_reuse(browser, http, refreshing_client, alice, monkeypatch):
    monkeypatch.setenv("REFRESH_GRACE_SECONDS", "30")
    from chalicelib.config import settings

    settings.cache_clear()
    tokens = first_tokens(browser, http, refreshing_client)
    refresh(http, refreshing_client.client_id, tokens["refresh_token"])
    import chalicelib.oauth.refresh_tokens as module

    real_now = module.now
    monkeypatch.setattr(module, "now", lambda: real_now() + 31)
    assert json.loads(refresh(http, refreshing_client.client_id, tokens["refresh_token"]).body)["error"] == \
        "invalid_grant"
    monkeypatch.setattr(module, "now", real_now)
    assert userinfo_status(http, tokens["access_token"]) == 401


def test_scope_may_be_narrowed_never_widened(browser, http, refreshing_client, alice):
    tokens = first_tokens(browser, http, refreshing_client)
    narrowed = refresh(http, refreshing_client.client_id, tokens["refresh_token"], scope="openid")
    body = json.loads(narrowed.body)
    assert body["scope"] == "openid"
    widened = refresh(http, refreshing_client.client_id, body["refresh_token"], scope="openid email profile")
    assert widened.status_code == 400 and json.loads(widened.body)["error"] == "invalid_scope"
    # A refused request costs nothing: the token was not consumed, and the family keeps its scope.
    again = json.loads(refresh(http, refreshing_client.client_id, body["refresh_token"]).body)
    assert again["scope"] == "openid email offline_access"


def test_refresh_token_is_bound_to_its_client(browser, http, refreshing_client, confidential_client, alice):
    import base64

    tokens = first_tokens(browser, http, refreshing_client)
    other, secret = confidential_client
    from chalicelib.storage.models import ClientModel

    ClientModel(other.client_id).update(actions=[ClientModel.grant_types.set(["authorization_code", "refresh_token"])])
    basic = "Basic " + base64.b64encode(f"{other.client_id}:{secret}".encode()).decode()
    body = urlencode({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}).encode()
    stolen = http.post("/token", body=body, headers={**FORM, "Authorization": basic})
    assert stolen.status_code == 400 and json.loads(stolen.body)["error"] == "invalid_grant"
    assert refresh(http, refreshing_client.client_id, tokens["refresh_token"]).status_code == 200


def test_idle_and_absolute_lifetimes_are_enforced(browser, http, refreshing_client, alice, monkeypatch):
    import chalicelib.oauth.refresh_tokens as module

    tokens = first_tokens(browser, http, refreshing_client)
    real_now = module.now
    monkeypatch.setattr(module, "now", lambda: real_now() + 1209600 + 1)  # idle TTL passed
    assert refresh(http, refreshing_client.client_id, tokens["refresh_token"]).status_code == 400

    monkeypatch.setattr(module, "now", real_now)
    tokens = first_tokens(browser, http, refreshing_client)
    from chalicelib.oauth.refresh_tokens import parse
    from chalicelib.storage.models import GrantModel

    sub, grant_id, _ = parse(tokens["refresh_token"])
    GrantModel(sub=sub, grant_id=grant_id).update(actions=[GrantModel.expires_at.set(real_now() - 1)])  # absolute passed
    assert refresh(http, refreshing_client.client_id, tokens["refresh_token"]).status_code == 400


def test_refresh_tokens_are_stored_only_as_hashes(browser, http, refreshing_client, alice):
    from chalicelib.storage.models import GrantModel

    token = first_tokens(browser, http, refreshing_client)["refresh_token"]
    successor = json.loads(refresh(http, refreshing_client.client_id, token).body)["refresh_token"]
    stored = [json.dumps(item.attribute_values, default=str) for item in GrantModel.scan()]
    assert stored and all(t.split(".", 1)[1] not in item for t in (token, successor) for item in stored)


def test_sign_out_revokes_families_of_that_session(browser, http, refreshing_client, alice):
    from tests.routes.flow import hidden

    tokens = first_tokens(browser, http, refreshing_client)
    page = browser.get("/logout")
    browser.post("/logout", {"csrf_token": hidden(page.body, "csrf_token")})
    assert refresh(http, refreshing_client.client_id, tokens["refresh_token"]).status_code == 400
    assert userinfo_status(http, tokens["access_token"]) == 401


def test_disabling_the_user_or_the_client_revokes_families(browser, http, refreshing_client, alice):
    from chalicelib.storage.clients import set_client_disabled
    from chalicelib.storage.users import set_user_disabled

    tokens = first_tokens(browser, http, refreshing_client)
    set_user_disabled(alice.pk, True)
    set_user_disabled(alice.pk, False)
    assert refresh(http, refreshing_client.client_id, tokens["refresh_token"]).status_code == 400

    tokens = first_tokens(browser, http, refreshing_client)
    set_client_disabled(refreshing_client.client_id, True)
    set_client_disabled(refreshing_client.client_id, False)
    assert refresh(http, refreshing_client.client_id, tokens["refresh_token"]).status_code == 400


def test_malformed_refresh_tokens_are_invalid_grant(http, refreshing_client):
    for token in ("garbage", "a.b", "." * 300):
        response = refresh(http, refreshing_client.client_id, token)
        assert response.status_code == 400 and json.loads(response.body)["error"] == "invalid_grant"
    missing = http.post("/token", body=urlencode({"grant_type": "refresh_token", "client_id":
                                                  refreshing_client.client_id}).encode(), headers=FORM)
    assert json.loads(missing.body)["error"] == "invalid_request"
