"""/userinfo with DPoP-bound access tokens (RFC 9449 §7): the proof must fit the request and the token,
is good once (one conditional PutItem), a bound token is refused as Bearer, and each refusal answers
a DPoP challenge. Bound tokens are minted here (the token's claims plus `cnf`, signed by the key
ring) until the token endpoint issues them."""
from __future__ import annotations

import json
import time

import jwt
import pytest

from chalicelib.capabilities import DPOP_ALGS
from tests.dpop_proofs import DROP, ProofKey
from tests.routes.flow import FORM, query_of, redeem, sign_in_and_consent

USERINFO = "http://localhost:8000/userinfo"
ALGS = " ".join(DPOP_ALGS)


def mint(access_token: str, **changes) -> str:
    """The same token re-signed by our current key, with `changes` to its claims."""
    from chalicelib.keys import keyring
    from chalicelib.tokens import jwt as jwt_encode

    claims = jwt.decode(access_token, options={"verify_signature": False})
    return jwt_encode.encode({**claims, **changes}, keyring.current_signer(), typ="at+jwt")


@pytest.fixture
def key():
    return ProofKey()


@pytest.fixture
def tokens(browser, http, public_client, alice):
    code = query_of(sign_in_and_consent(browser, public_client.client_id, scope="openid email"))["code"]
    return json.loads(redeem(http, public_client.client_id, code).body)


@pytest.fixture
def bound(tokens, key):
    return mint(tokens["access_token"], cnf=key.cnf())


def dpop_get(http, token, proof, *, scheme="DPoP"):
    headers = {"Authorization": f"{scheme} {token}"}
    if proof is not None:
        headers["DPoP"] = proof
    return http.get("/userinfo", headers=headers)


def operations(calls) -> list[str]:
    return [call["operation"] for call in calls]


def assert_dpop_refusal(response, error: str):
    assert response.status_code == 401, response.body
    assert json.loads(response.body)["error"] == error
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith(f'DPoP realm="idp", error="{error}", error_description="'), challenge
    assert challenge.endswith(f'algs="{ALGS}"'), challenge


def test_a_bound_token_with_its_proof_gets_the_claims_for_one_put_more(http, tokens, bound, key, alice,
                                                                       api_role_allows_every_dynamodb_call):
    calls = api_role_allows_every_dynamodb_call
    calls.clear()
    bearer = http.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert bearer.status_code == 200
    bearer_calls = operations(calls)
    calls.clear()

    for method in ("GET", "POST"):
        proof = key.proof(method, USERINFO, access_token=bound)
        headers = {"Authorization": f"DPoP {bound}", "DPoP": proof}
        response = (http.get("/userinfo", headers=headers) if method == "GET"
                    else http.post("/userinfo", headers={**headers, **FORM}, body=b""))
        assert response.status_code == 200, response.body
        assert json.loads(response.body) == {"sub": alice.pk, "email": "alice@example.com", "email_verified": False}
    # Each DPoP request: the Bearer request's one read, then the proof's jti spent in one conditional PutItem.
    assert bearer_calls == ["BatchGetItem"]
    assert operations(calls) == (bearer_calls + ["PutItem"]) * 2
    assert [c["params"].get("ConditionExpression") is not None for c in calls if c["operation"] == "PutItem"] \
        == [True, True]


def test_a_bound_token_sent_as_bearer_is_refused(http, bound, key):
    """RFC 9449 §7.2, in the header (even with a good proof next to it) and in the form body."""
    for response in (
            dpop_get(http, bound, key.proof("GET", USERINFO, access_token=bound), scheme="Bearer"),
            http.post("/userinfo", body=f"access_token={bound}".encode(), headers=FORM)):
        assert response.status_code == 401
        assert json.loads(response.body)["error"] == "invalid_token"
        assert response.headers["WWW-Authenticate"].startswith('Bearer realm="idp", error="invalid_token"')


@pytest.mark.parametrize("attack", ["ath-mismatch", "wrong-htu", "wrong-htm", "no-proof", "no-ath", "stale-iat"])
def test_a_proof_that_does_not_fit_is_invalid_dpop_proof_and_writes_nothing(
        http, tokens, bound, key, attack, api_role_allows_every_dynamodb_call):
    api_role_allows_every_dynamodb_call.clear()
    proof = {
        "ath-mismatch": lambda: key.proof("GET", USERINFO, access_token=tokens["access_token"]),
        "wrong-htu": lambda: key.proof("GET", "http://localhost:8000/token", access_token=bound),
        "wrong-htm": lambda: key.proof("POST", USERINFO, access_token=bound),
        "no-proof": lambda: None,
        "no-ath": lambda: key.proof("GET", USERINFO, access_token=bound, ath=DROP),
        "stale-iat": lambda: key.proof("GET", USERINFO, access_token=bound, iat=int(time.time()) - 3600),
    }[attack]()
    assert_dpop_refusal(dpop_get(http, bound, proof), "invalid_dpop_proof")
    assert "PutItem" not in operations(api_role_allows_every_dynamodb_call), "a refused proof spent nothing"
    assert dpop_get(http, bound, key.proof("GET", USERINFO, access_token=bound)).status_code == 200


def test_a_proof_by_another_key_is_refused(http, bound):
    thief = ProofKey()
    assert_dpop_refusal(dpop_get(http, bound, thief.proof("GET", USERINFO, access_token=bound)), "invalid_token")


def test_a_replayed_proof_is_refused(http, bound, key):
    proof = key.proof("GET", USERINFO, access_token=bound)
    assert dpop_get(http, bound, proof).status_code == 200
    assert_dpop_refusal(dpop_get(http, bound, proof), "invalid_dpop_proof")


def test_two_dpop_headers_are_refused(http, bound, key, monkeypatch):
    """RFC 9449 §4.3 item 1: API Gateway keeps the last of repeated headers in `headers`, so the
    route reads multiValueHeaders too; a good last proof does not hide a first one."""
    from chalice.local import LambdaEventConverter

    first, last = (key.proof("GET", USERINFO, access_token=bound) for _ in range(2))
    create = LambdaEventConverter.create_lambda_event

    def with_two_proofs(self, *args, **kwargs):
        event = create(self, *args, **kwargs)
        return {**event, "multiValueHeaders": {**{k: [v] for k, v in event["headers"].items()}, "dpop": [first, last]}}

    monkeypatch.setattr(LambdaEventConverter, "create_lambda_event", with_two_proofs)
    assert_dpop_refusal(dpop_get(http, bound, last), "invalid_dpop_proof")


def test_an_unbound_token_with_the_dpop_scheme_is_refused(http, tokens, key):
    token = tokens["access_token"]
    assert_dpop_refusal(dpop_get(http, token, key.proof("GET", USERINFO, access_token=token)), "invalid_token")


def test_a_dpop_token_without_openid_gets_a_dpop_insufficient_scope(browser, http, public_client, alice, key):
    code = query_of(sign_in_and_consent(browser, public_client.client_id, scope="email"))["code"]
    token = mint(json.loads(redeem(http, public_client.client_id, code).body)["access_token"], cnf=key.cnf())
    response = dpop_get(http, token, key.proof("GET", USERINFO, access_token=token))
    assert response.status_code == 403
    assert response.headers["WWW-Authenticate"] == (
        f'DPoP realm="idp", error="insufficient_scope", error_description="the access token lacks the openid scope", '
        f'scope="openid", algs="{ALGS}"')


def test_a_revoked_bound_token_is_refused_before_its_proof_is_spent(http, tokens, bound, key, alice,
                                                                    api_role_allows_every_dynamodb_call):
    from chalicelib.storage.users import set_user_disabled

    set_user_disabled(alice.pk, True)
    api_role_allows_every_dynamodb_call.clear()
    assert_dpop_refusal(dpop_get(http, bound, key.proof("GET", USERINFO, access_token=bound)), "invalid_token")
    assert "PutItem" not in operations(api_role_allows_every_dynamodb_call)
