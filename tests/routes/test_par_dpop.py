"""DPoP at the pushed authorization request endpoint (RFC 9449 §10.1): a proof sent with the push
binds the authorization code to its key, as `dpop_jkt` does; both sent must name the same key."""
from __future__ import annotations

import json
from urllib.parse import urlencode

import jwt

from tests.dpop_proofs import DpopKey
from tests.routes.flow import FORM, ISSUER, VERIFIER, query_of
from tests.routes.test_par_endpoint import WEB_REDIRECT, authorize_with, consent, request_params, sign_in, web_client  # noqa: F401

PAR_URL = f"{ISSUER}/par"


def push_with(http, body: dict, auth: str, proof: str):
    return http.post("/par", body=urlencode(body).encode(), headers={**FORM, "Authorization": auth, "DPoP": proof})


def pushed_with_key(http, client_id: str, auth: str, key: DpopKey, **overrides) -> str:
    first = push_with(http, request_params(client_id, **overrides), auth, key.proof(htu=PAR_URL))
    assert first.status_code == 400 and json.loads(first.body)["error"] == "use_dpop_nonce"
    second = push_with(http, request_params(client_id, **overrides), auth,
                       key.proof(htu=PAR_URL, nonce=first.headers["DPoP-Nonce"]))
    assert second.status_code == 201, second.body
    assert second.headers["DPoP-Nonce"]
    return json.loads(second.body)["request_uri"]


def code_of(http, browser, client_id: str, request_uri: str) -> str:
    response = authorize_with(browser, client_id, request_uri)
    response = consent(browser, sign_in(browser, response.headers["Location"]).headers["Location"])
    return query_of(response.headers["Location"])["code"]


def redeem_with(http, code: str, auth: str, key: DpopKey | None):
    """Redeem at /token, with a proof of `key` (after the nonce round trip) or none."""
    body = urlencode({"grant_type": "authorization_code", "code": code, "redirect_uri": WEB_REDIRECT,
                      "code_verifier": VERIFIER}).encode()
    headers = {**FORM, "Authorization": auth}
    if key is not None:
        first = http.post("/token", body=body, headers={**headers, "DPoP": key.proof()})
        assert json.loads(first.body)["error"] == "use_dpop_nonce", "a proof without nonce spends nothing"
        headers["DPoP"] = key.proof(nonce=first.headers["DPoP-Nonce"])
    return http.post("/token", body=body, headers=headers)


def test_a_proof_at_par_binds_the_code_to_its_key(http, browser, web_client, alice):
    client, auth = web_client
    key = DpopKey()
    code = code_of(http, browser, client.client_id, pushed_with_key(http, client.client_id, auth, key))
    response = redeem_with(http, code, auth, key)
    assert response.status_code == 200, response.body
    tokens = json.loads(response.body)
    assert tokens["token_type"] == "DPoP"
    assert jwt.decode(tokens["access_token"], options={"verify_signature": False})["cnf"] == {"jkt": key.jkt}


def test_a_code_bound_at_par_refuses_another_key_and_no_proof(http, browser, web_client, alice):
    client, auth = web_client
    key = DpopKey()
    code = code_of(http, browser, client.client_id, pushed_with_key(http, client.client_id, auth, key))
    thief = redeem_with(http, code, auth, DpopKey())
    assert thief.status_code == 400 and json.loads(thief.body)["error"] == "invalid_grant"
    bare = redeem_with(http, code, auth, None)
    assert bare.status_code == 400 and json.loads(bare.body)["error"] == "invalid_grant"
    assert redeem_with(http, code, auth, key).status_code == 200, "the refusals did not spend the code"


def test_dpop_jkt_and_the_proof_must_name_the_same_key(http, web_client):
    client, auth = web_client
    key, other = DpopKey(), DpopKey()
    first = push_with(http, request_params(client.client_id, dpop_jkt=other.jkt), auth, key.proof(htu=PAR_URL))
    nonce = first.headers["DPoP-Nonce"]
    response = push_with(http, request_params(client.client_id, dpop_jkt=other.jkt), auth,
                         key.proof(htu=PAR_URL, nonce=nonce))
    assert response.status_code == 400, response.body
    assert json.loads(response.body)["error"] == "invalid_dpop_proof"
    same = push_with(http, request_params(client.client_id, dpop_jkt=key.jkt), auth,
                     key.proof(htu=PAR_URL, nonce=nonce))
    assert same.status_code == 201, same.body


def test_a_proof_made_for_the_token_endpoint_is_refused_at_par(http, web_client):
    client, auth = web_client
    key = DpopKey()
    nonce = push_with(http, request_params(client.client_id), auth, key.proof(htu=PAR_URL)).headers["DPoP-Nonce"]
    response = push_with(http, request_params(client.client_id), auth, key.proof(nonce=nonce))  # htu: /token
    assert response.status_code == 400 and json.loads(response.body)["error"] == "invalid_dpop_proof"
