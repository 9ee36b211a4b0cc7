"""Attacks on DPoP at the token endpoint and /userinfo found in the issue-16 security review."""
from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from tests.dpop_proofs import DpopKey
from tests.routes.flow import FORM, REDIRECT_URI, VERIFIER, query_of, redeem, sign_in_and_consent


@pytest.fixture
def agent(aws):
    """A public client with refresh tokens."""
    from chalicelib.oauth.clients import create_client

    client, _ = create_client(client_name="Agent", client_type="public", redirect_uris=["http://127.0.0.1/cb"],
                              grant_types=["authorization_code", "refresh_token"],
                              scopes=["openid", "email", "offline_access"])
    return client


def post_token(http, body: dict, proof: str | None = None):
    return http.post("/token", body=urlencode(body).encode(), headers={**FORM, **({"DPoP": proof} if proof else {})})


def nonce_of(http, client_id: str, key: DpopKey) -> str:
    return post_token(http, {"grant_type": "refresh_token", "refresh_token": "x", "client_id": client_id},
                      key.proof()).headers["DPoP-Nonce"]


def refresh_with(http, client_id: str, token: str, key: DpopKey | None):
    proof = key.proof(nonce=nonce_of(http, client_id, key)) if key else None
    return post_token(http, {"grant_type": "refresh_token", "refresh_token": token, "client_id": client_id}, proof)


def code_for(browser, client_id: str) -> str:
    return query_of(sign_in_and_consent(browser, client_id, scope="openid email offline_access"))["code"]


def error(response) -> str:
    return json.loads(response.body)["error"]


@pytest.mark.parametrize("claims", [{"iat": float("nan")}, {"htu": "http://[::1/token"}])
def test_a_proof_with_a_nan_iat_or_a_broken_htu_is_invalid_dpop_proof_not_a_500(browser, http, agent, alice, claims):
    key = DpopKey()
    body = {"grant_type": "authorization_code", "code": code_for(browser, agent.client_id),
            "redirect_uri": REDIRECT_URI, "code_verifier": VERIFIER, "client_id": agent.client_id}
    response = post_token(http, body, key.proof(nonce=nonce_of(http, agent.client_id, key), **claims))
    assert response.status_code == 400 and error(response) == "invalid_dpop_proof"
    tokens = json.loads(redeem(http, agent.client_id, body["code"]).body)
    userinfo = http.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert userinfo.status_code == 200, "the refused proof left the code unused"


def test_a_thief_binding_a_stolen_unbound_refresh_token_to_its_key_does_not_escape_reuse_detection(
        browser, http, agent, alice):
    # A public client that does not use DPoP: its family is unbound. A thief refreshes the stolen
    # token first, with a proof of its own key, which binds the family to the thief's key. When the
    # real client then presents the (now consumed) token, that is refresh token reuse (RFC 9700
    # §4.14.2): the family must be revoked, cutting the thief off. The key check ran first and
    # answered "bound to another key", so the thief kept the family for good.
    thief = DpopKey()
    stolen = json.loads(redeem(http, agent.client_id, code_for(browser, agent.client_id)).body)["refresh_token"]
    taken = refresh_with(http, agent.client_id, stolen, thief)
    assert taken.status_code == 200, taken.body
    thiefs = json.loads(taken.body)["refresh_token"]
    legit = refresh_with(http, agent.client_id, stolen, None)
    assert legit.status_code == 400 and error(legit) == "invalid_grant"
    after = refresh_with(http, agent.client_id, thiefs, thief)
    assert after.status_code == 400 and error(after) == "invalid_grant", "reuse revoked the family"


def test_a_stolen_old_token_of_a_family_bound_from_the_start_still_revokes_nothing(browser, http, agent, alice):
    # The other side of the same rule: every token of a family bound at redemption was issued to the
    # key holder, so an old one presented without the key proves no theft and must not let anyone
    # without the key end the family (RFC 9449 §5).
    key, thief = DpopKey(), DpopKey()
    body = {"grant_type": "authorization_code", "code": code_for(browser, agent.client_id),
            "redirect_uri": REDIRECT_URI, "code_verifier": VERIFIER, "client_id": agent.client_id}
    first = json.loads(post_token(http, body, key.proof(nonce=nonce_of(http, agent.client_id, key))).body)
    second = json.loads(refresh_with(http, agent.client_id, first["refresh_token"], key).body)
    for attempt in (thief, None):
        refused = refresh_with(http, agent.client_id, first["refresh_token"], attempt)
        assert error(refused) == "invalid_grant" and "DPoP key" in json.loads(refused.body)["error_description"]
    assert refresh_with(http, agent.client_id, second["refresh_token"], key).status_code == 200


def test_within_the_grace_window_the_pre_binding_token_gets_no_successor_and_revokes(browser, http, agent, alice,
                                                                                     monkeypatch):
    # REFRESH_GRACE_SECONDS lets a retry with the previous token get the same successor. A token from
    # before the thief bound the family, presented without the thief's key, is not that retry.
    from chalicelib.config import settings

    monkeypatch.setenv("REFRESH_GRACE_SECONDS", "300")
    settings.cache_clear()
    thief = DpopKey()
    stolen = json.loads(redeem(http, agent.client_id, code_for(browser, agent.client_id)).body)["refresh_token"]
    thiefs = json.loads(refresh_with(http, agent.client_id, stolen, thief).body)["refresh_token"]
    legit = refresh_with(http, agent.client_id, stolen, None)
    assert legit.status_code == 400 and error(legit) == "invalid_grant"
    assert error(refresh_with(http, agent.client_id, thiefs, thief)) == "invalid_grant", "the family was revoked"


def test_a_spent_dpop_jkt_bound_code_replayed_without_its_key_does_not_revoke_the_grant(browser, http, agent, alice):
    # RFC 9449 §10 makes an intercepted code useless without the key. Replaying it after the client
    # redeemed it revoked the grant (a replay, RFC 6749 §4.1.2): whoever intercepted the code could
    # end the user's sign-in at will, though only the key holder can have redeemed it. Like a bound
    # refresh token presented without its key (oauth/refresh_tokens.py), it must change nothing.
    key, thief = DpopKey(), DpopKey()
    code = query_of(sign_in_and_consent(browser, agent.client_id, scope="openid email offline_access",
                                        dpop_jkt=key.jkt))["code"]
    body = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
            "code_verifier": VERIFIER, "client_id": agent.client_id}
    tokens = json.loads(post_token(http, body, key.proof(nonce=nonce_of(http, agent.client_id, key))).body)
    for attempt in (thief, None):
        proof = attempt.proof(nonce=nonce_of(http, agent.client_id, attempt)) if attempt else None
        replayed = post_token(http, body, proof)
        assert replayed.status_code == 400 and error(replayed) == "invalid_grant"
    refreshed = refresh_with(http, agent.client_id, tokens["refresh_token"], key)
    assert refreshed.status_code == 200, "grant still active"
    # The key holder replaying its own code is a replay as ever: the grant is revoked.
    assert error(post_token(http, body, key.proof(nonce=nonce_of(http, agent.client_id, key)))) == "invalid_grant"
    successor = json.loads(refreshed.body)["refresh_token"]
    assert error(refresh_with(http, agent.client_id, successor, key)) == "invalid_grant"
