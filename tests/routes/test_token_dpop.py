"""DPoP at the token endpoint (RFC 9449 §5, §8, §10): bound tokens for every grant, nonces, replayed
proofs, refresh tokens bound to a public client's key, dpop_jkt-bound codes, clients that must use it."""
from __future__ import annotations

import json
from urllib.parse import urlencode

import jwt
import pytest

from tests.dpop_proofs import TOKEN_URL, DpopKey
from tests.routes.flow import FORM, REDIRECT_URI, VERIFIER, query_of, redeem, sign_in_and_consent


@pytest.fixture
def agent(aws):
    """A public client with refresh tokens."""
    from chalicelib.oauth.clients import create_client

    client, _ = create_client(client_name="Agent", client_type="public", redirect_uris=["http://127.0.0.1/cb"],
                              grant_types=["authorization_code", "refresh_token"],
                              scopes=["openid", "email", "offline_access"])
    return client


@pytest.fixture
def backend(aws):
    """A confidential client with refresh tokens and client_credentials."""
    from chalicelib.oauth.clients import create_client

    return create_client(client_name="Backend", client_type="confidential", redirect_uris=["http://127.0.0.1/cb"],
                         grant_types=["authorization_code", "refresh_token", "client_credentials"],
                         scopes=["openid", "email", "offline_access", "reports"])


def set_env(monkeypatch, **values):
    from chalicelib.config import settings

    for name, value in values.items():
        monkeypatch.setenv(name, value)
    settings.cache_clear()


def post_token(http, body: dict, proof: str | None = None, auth: str | None = None):
    headers = {**FORM, **({"DPoP": proof} if proof else {}), **({"Authorization": auth} if auth else {})}
    return http.post("/token", body=urlencode(body).encode(), headers=headers)


def nonce_of(http, key: DpopKey) -> str:
    """The server's current nonce: what a first proof without one is told (RFC 9449 §8)."""
    response = post_token(http, {"grant_type": "client_credentials"}, key.proof())
    return response.headers["DPoP-Nonce"]


def code_for(browser, client_id: str, **overrides) -> str:
    return query_of(sign_in_and_consent(browser, client_id, scope="openid email offline_access", **overrides))["code"]


def redeem_with(http, client_id: str, code: str, key: DpopKey | None):
    proof = key.proof(nonce=nonce_of(http, key)) if key else None
    body = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
            "code_verifier": VERIFIER, "client_id": client_id}
    return post_token(http, body, proof)


def refresh_with(http, client_id: str, token: str, key: DpopKey | None, auth: str | None = None):
    proof = key.proof(nonce=nonce_of(http, key)) if key else None
    body = {"grant_type": "refresh_token", "refresh_token": token, **({} if auth else {"client_id": client_id})}
    return post_token(http, body, proof, auth)


def claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def error(response) -> str:
    return json.loads(response.body)["error"]


def basic(client, secret) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{client.client_id}:{secret}".encode()).decode()


def test_code_flow_with_a_nonce_retry_issues_a_dpop_bound_token(browser, http, agent, alice):
    key = DpopKey()
    code = code_for(browser, agent.client_id)
    body = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
            "code_verifier": VERIFIER, "client_id": agent.client_id}
    first = post_token(http, body, key.proof())
    assert first.status_code == 400 and error(first) == "use_dpop_nonce"
    nonce = first.headers["DPoP-Nonce"]
    second = post_token(http, body, key.proof(nonce=nonce))
    assert second.status_code == 200, second.body
    tokens = json.loads(second.body)
    assert tokens["token_type"] == "DPoP"
    assert claims(tokens["access_token"])["cnf"] == {"jkt": key.jkt}
    assert second.headers["DPoP-Nonce"], "every answer to a DPoP request brings the nonce to use next"


def test_without_a_proof_tokens_stay_bearer_and_no_nonce_is_sent(browser, http, agent, alice):
    response = redeem(http, agent.client_id, code_for(browser, agent.client_id))
    tokens = json.loads(response.body)
    assert tokens["token_type"] == "Bearer" and "cnf" not in claims(tokens["access_token"])
    assert "DPoP-Nonce" not in response.headers


def test_a_replayed_proof_is_refused(http, backend):
    client, secret = backend
    key = DpopKey()
    proof = key.proof(nonce=nonce_of(http, key))
    first = post_token(http, {"grant_type": "client_credentials"}, proof, basic(client, secret))
    assert first.status_code == 200 and claims(json.loads(first.body)["access_token"])["cnf"] == {"jkt": key.jkt}
    again = post_token(http, {"grant_type": "client_credentials"}, proof, basic(client, secret))
    assert again.status_code == 400 and error(again) == "invalid_dpop_proof"
    assert "already used" in json.loads(again.body)["error_description"]
    assert again.headers["DPoP-Nonce"]


def test_a_proof_for_another_endpoint_is_refused_with_the_nonce(http, backend):
    client, secret = backend
    key = DpopKey()
    proof = key.proof(htu="http://localhost:8000/revoke", nonce=nonce_of(http, key))
    response = post_token(http, {"grant_type": "client_credentials"}, proof, basic(client, secret))
    assert response.status_code == 400 and error(response) == "invalid_dpop_proof"
    assert response.headers["DPoP-Nonce"]


def test_a_proof_with_a_made_up_nonce_gets_use_dpop_nonce(http, backend):
    client, secret = backend
    response = post_token(http, {"grant_type": "client_credentials"}, DpopKey().proof(nonce="guessed"),
                          basic(client, secret))
    assert response.status_code == 400 and error(response) == "use_dpop_nonce"
    assert response.headers["DPoP-Nonce"] != "guessed"


def test_without_nonces_a_proof_needs_none(http, backend, monkeypatch):
    set_env(monkeypatch, DPOP_NONCE="false")
    client, secret = backend
    response = post_token(http, {"grant_type": "client_credentials"}, DpopKey().proof(), basic(client, secret))
    assert response.status_code == 200 and json.loads(response.body)["token_type"] == "DPoP"
    assert "DPoP-Nonce" not in response.headers


def test_a_client_registered_for_dpop_bound_tokens_needs_a_proof(http, backend):
    from chalicelib.storage.clients import set_client_dpop_bound_access_tokens

    client, secret = backend
    set_client_dpop_bound_access_tokens(client.client_id, True)
    response = post_token(http, {"grant_type": "client_credentials"}, None, basic(client, secret))
    assert response.status_code == 400 and error(response) == "invalid_dpop_proof"
    assert response.headers["DPoP-Nonce"], "so that its first proof can carry one"
    key = DpopKey()
    ok = post_token(http, {"grant_type": "client_credentials"}, key.proof(nonce=response.headers["DPoP-Nonce"]),
                    basic(client, secret))
    assert ok.status_code == 200 and json.loads(ok.body)["token_type"] == "DPoP"


def test_dpop_required_refuses_every_token_request_without_a_proof(http, backend, monkeypatch):
    set_env(monkeypatch, DPOP_REQUIRED="true")
    client, secret = backend
    response = post_token(http, {"grant_type": "client_credentials"}, None, basic(client, secret))
    assert response.status_code == 400 and error(response) == "invalid_dpop_proof"


def test_a_public_clients_refresh_token_is_bound_to_its_key(browser, http, agent, alice,
                                                            api_role_allows_every_dynamodb_call):
    key, thief = DpopKey(), DpopKey()
    tokens = json.loads(redeem_with(http, agent.client_id, code_for(browser, agent.client_id), key).body)
    for attempt in (thief, None):
        refused = refresh_with(http, agent.client_id, tokens["refresh_token"], attempt)
        assert refused.status_code == 400 and error(refused) == "invalid_grant"
        assert "DPoP key" in json.loads(refused.body)["error_description"]
    # Neither attempt rotated, consumed or revoked the family: the holder of the key refreshes.
    calls = api_role_allows_every_dynamodb_call
    proof = key.proof(nonce=nonce_of(http, key))
    before = len(calls)
    rotated = post_token(http, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                                "client_id": agent.client_id}, proof)
    assert rotated.status_code == 200, rotated.body
    assert [c["operation"] for c in calls[before:]] == ["PutItem", "UpdateItem"], "the jti, then the rotation"
    second = json.loads(rotated.body)
    assert second["token_type"] == "DPoP" and claims(second["access_token"])["cnf"] == {"jkt": key.jkt}
    # An old token presented without the key changes nothing either (no reuse revocation) ...
    stale = refresh_with(http, agent.client_id, tokens["refresh_token"], thief)
    assert error(stale) == "invalid_grant" and "DPoP key" in json.loads(stale.body)["error_description"]
    assert refresh_with(http, agent.client_id, second["refresh_token"], key).status_code == 200
    # ... while the key holder presenting an old token is reuse, as always.
    assert error(refresh_with(http, agent.client_id, tokens["refresh_token"], key)) == "invalid_grant"


def test_a_public_family_started_without_dpop_is_bound_at_its_first_refresh_with_a_proof(browser, http, agent,
                                                                                         alice):
    key = DpopKey()
    tokens = json.loads(redeem(http, agent.client_id, code_for(browser, agent.client_id)).body)
    bound = json.loads(refresh_with(http, agent.client_id, tokens["refresh_token"], key).body)
    assert bound["token_type"] == "DPoP"
    assert error(refresh_with(http, agent.client_id, bound["refresh_token"], None)) == "invalid_grant"
    assert refresh_with(http, agent.client_id, bound["refresh_token"], key).status_code == 200


def test_a_confidential_clients_refresh_binds_each_access_token_to_the_key_it_proves(browser, http, backend, alice):
    client, secret = backend
    first, second = DpopKey(), DpopKey()
    code = code_for(browser, client.client_id)
    body = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
            "code_verifier": VERIFIER}
    tokens = json.loads(post_token(http, body, first.proof(nonce=nonce_of(http, first)), basic(client, secret)).body)
    refreshed = refresh_with(http, client.client_id, tokens["refresh_token"], second, basic(client, secret))
    assert refreshed.status_code == 200, refreshed.body
    assert claims(json.loads(refreshed.body)["access_token"])["cnf"] == {"jkt": second.jkt}


def test_a_code_bound_with_dpop_jkt_is_redeemed_only_with_that_key(browser, http, agent, alice):
    key, other = DpopKey(), DpopKey()
    code = code_for(browser, agent.client_id, dpop_jkt=key.jkt)
    for attempt in (other, None):
        refused = redeem_with(http, agent.client_id, code, attempt)
        assert refused.status_code == 400 and error(refused) == "invalid_grant"
        assert "dpop_jkt" in json.loads(refused.body)["error_description"]
    redeemed = redeem_with(http, agent.client_id, code, key)
    assert redeemed.status_code == 200, "the refusals left the code unused"
    assert claims(json.loads(redeemed.body)["access_token"])["cnf"] == {"jkt": key.jkt}


def test_a_malformed_dpop_jkt_is_refused_at_authorize(browser, agent, alice):
    response = browser.get("/authorize?" + urlencode({
        "client_id": agent.client_id, "redirect_uri": "http://127.0.0.1/cb", "response_type": "code",
        "scope": "openid", "state": "s", "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256", "dpop_jkt": "not-a-thumbprint"}))
    assert response.status_code == 302
    assert query_of(response.headers["Location"])["error"] == "invalid_request"


def test_registration_reads_dpop_bound_access_tokens(http, aws, keys):
    body = {"client_name": "Agent", "redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none",
            "dpop_bound_access_tokens": True}
    response = http.post("/register", body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    if response.status_code == 403:
        pytest.skip("registration is off in this configuration")
    assert response.status_code == 201, response.body
    registered = json.loads(response.body)
    assert registered["dpop_bound_access_tokens"] is True
    from chalicelib.storage.clients import get_client

    assert get_client(registered["client_id"]).dpop_bound_access_tokens
    body["dpop_bound_access_tokens"] = "yes"
    bad = http.post("/register", body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    assert bad.status_code == 400 and error(bad) == "invalid_client_metadata"


def test_discovery_and_cors_advertise_dpop(http):
    document = json.loads(http.get("/.well-known/openid-configuration").body)
    assert document["dpop_signing_alg_values_supported"] == ["ES256", "PS256", "EdDSA", "RS256"]
    from chalicelib.blueprints.token import TOKEN_CORS

    headers = TOKEN_CORS.get_access_control_headers()
    assert "DPoP" in headers["Access-Control-Allow-Headers"]
    assert headers["Access-Control-Expose-Headers"] == "DPoP-Nonce"


def test_the_example_script_makes_proofs_the_token_endpoint_accepts(http, backend, tmp_path):
    """README's curl walk-through: examples/agents/dpop_proof.py's key, thumbprint and proofs."""
    from chalicelib.oauth.dpop import check_proof
    from examples.agents import dpop_proof

    client, secret = backend
    path = str(tmp_path / "dpop-key.pem")
    jkt = dpop_proof.keygen(path)
    first = post_token(http, {"grant_type": "client_credentials"}, dpop_proof.proof(path, "POST", TOKEN_URL),
                       basic(client, secret))
    assert error(first) == "use_dpop_nonce"
    proof = dpop_proof.proof(path, "POST", TOKEN_URL, first.headers["DPoP-Nonce"])
    assert check_proof(proof, method="POST", url=TOKEN_URL, now=claims(proof)["iat"], max_age=60).jkt == jkt
    tokens = json.loads(post_token(http, {"grant_type": "client_credentials"}, proof, basic(client, secret)).body)
    assert claims(tokens["access_token"])["cnf"] == {"jkt": jkt}
    assert claims(dpop_proof.proof(path, "GET", "http://localhost:8000/userinfo", "-", "at"))["ath"]


def _attack(key: DpopKey, name: str, nonce: str) -> str:
    """A proof broken in one way (RFC 9449 §4.3), otherwise right: the current nonce, this endpoint."""
    import time
    import uuid

    now = int(time.time())
    body = {"jti": uuid.uuid4().hex, "htm": "POST", "htu": TOKEN_URL, "iat": now, "nonce": nonce}
    if name == "wrong-htm":
        return key.proof(htm="GET", nonce=nonce)
    if name == "wrong-htu":
        return key.proof(htu="http://localhost:8000/token/other", nonce=nonce)
    if name == "stale-iat":
        return key.proof(iat=now - 61, nonce=nonce)
    if name == "future-iat":
        return key.proof(iat=now + 60, nonce=nonce)
    if name == "no-jti":
        return key.proof(nonce=nonce, jti=None)
    if name == "wrong-typ":
        return key.proof(nonce=nonce, headers={"typ": "JWT"})
    if name == "private-key-in-jwk":
        d = jwt.algorithms.ECAlgorithm.to_jwk(key.private_key, as_dict=True)["d"]
        return key.proof(nonce=nonce, headers={"jwk": {**key.jwk, "d": d}})
    if name == "hmac":  # RFC 8725 §2.1: the "key" an attacker would use is the public jwk itself
        import base64
        import hashlib
        import hmac

        def b64(raw: bytes) -> str:
            return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

        # Signed by hand: pyjwt itself refuses a JWK-looking HMAC key.
        signing_input = (b64(json.dumps({"alg": "HS256", "typ": "dpop+jwt", "jwk": key.jwk}).encode()) + "."
                         + b64(json.dumps(body).encode()))
        mac = hmac.new(json.dumps(key.jwk).encode(), signing_input.encode(), hashlib.sha256).digest()
        return signing_input + "." + b64(mac)
    if name == "none":
        return jwt.encode(body, None, algorithm="none", headers={"typ": "dpop+jwt", "jwk": key.jwk})
    if name == "another-keys-signature":
        return jwt.encode(body, DpopKey().private_key, algorithm="ES256", headers={"typ": "dpop+jwt", "jwk": key.jwk})
    if name == "two-proofs":
        return key.proof(nonce=nonce) + ", " + key.proof(nonce=nonce)
    raise AssertionError(name)


@pytest.mark.parametrize("name", ["wrong-htm", "wrong-htu", "stale-iat", "future-iat", "no-jti", "wrong-typ",
                                  "private-key-in-jwk", "hmac", "none", "another-keys-signature", "two-proofs"])
def test_each_broken_proof_is_invalid_dpop_proof_and_issues_nothing(http, backend, name):
    client, secret = backend
    key = DpopKey()
    nonce = nonce_of(http, key)
    response = post_token(http, {"grant_type": "client_credentials"}, _attack(key, name, nonce), basic(client, secret))
    assert response.status_code == 400, response.body
    assert error(response) == "invalid_dpop_proof"
    assert "access_token" not in json.loads(response.body)
    assert response.headers["DPoP-Nonce"], "the nonce comes with the refusal, for the next try"
