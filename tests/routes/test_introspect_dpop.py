"""/introspect of a DPoP-bound access token (RFC 9449 §6.2): `token_type` DPoP and the `cnf` binding,
so a resource server that introspects can check the proof's key."""
from __future__ import annotations

import json
from urllib.parse import urlencode

import jwt

from tests.conftest import basic_auth
from tests.dpop_proofs import ProofKey
from tests.routes.flow import FORM, query_of, redeem, sign_in_and_consent

NOTES = "https://notes.example.com/api"


def test_a_bound_token_introspects_as_dpop_with_its_cnf(http, browser, alice, api_resources):
    from chalicelib.keys import keyring
    from chalicelib.oauth.clients import create_client
    from chalicelib.tokens import jwt as jwt_encode

    rs, secret = create_client(client_name="Notes API", grant_types=["client_credentials"], scopes=[],
                               introspects=[NOTES])
    app, app_secret = create_client(client_name="Notes web", redirect_uris=["http://127.0.0.1/cb"],
                                    grant_types=["authorization_code"], scopes=["openid", "notes:read"])
    code = query_of(sign_in_and_consent(browser, app.client_id, scope="openid notes:read", resource=[NOTES]))["code"]
    redeemed = redeem(http, app.client_id, code, auth=basic_auth(app.client_id, app_secret))
    token = json.loads(redeemed.body)["access_token"]
    key = ProofKey()
    claims = jwt.decode(token, options={"verify_signature": False})
    bound = jwt_encode.encode({**claims, "cnf": key.cnf()}, keyring.current_signer(), typ="at+jwt")

    def introspect(candidate):
        response = http.post("/introspect", body=urlencode({"token": candidate}).encode(),
                             headers={**FORM, "Authorization": basic_auth(rs.client_id, secret)})
        assert response.status_code == 200
        return json.loads(response.body)

    body = introspect(bound)
    assert body["active"] is True and body["token_type"] == "DPoP"
    assert body["cnf"] == {"jkt": key.jkt}
    # The control: the unbound token stays a Bearer token, without cnf.
    plain = introspect(token)
    assert plain["active"] is True and plain["token_type"] == "Bearer" and "cnf" not in plain
