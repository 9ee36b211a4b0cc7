"""/userinfo: RFC 6750 bearer handling and attacks on token verification."""
from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from tests.routes.flow import FORM, query_of, redeem, sign_in_and_consent


@pytest.fixture
def tokens(browser, http, public_client, alice):
    code = query_of(sign_in_and_consent(browser, public_client.client_id, scope="openid email"))["code"]
    return json.loads(redeem(http, public_client.client_id, code).body)


def test_userinfo_releases_claims_of_granted_scopes(http, tokens, alice):
    for response in (http.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}),
                     http.post("/userinfo", body=f"access_token={tokens['access_token']}".encode(), headers=FORM)):
        assert response.status_code == 200
        assert json.loads(response.body) == {"sub": alice.pk, "email": "alice@example.com", "email_verified": False}
        assert response.headers["Cache-Control"] == "no-store"


def test_missing_token_is_401_with_bare_challenge(http):
    response = http.get("/userinfo")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="idp"'


def test_token_in_header_and_body_is_invalid_request(http, tokens):
    response = http.post("/userinfo", body=f"access_token={tokens['access_token']}".encode(),
                         headers={**FORM, "Authorization": f"Bearer {tokens['access_token']}"})
    assert response.status_code == 400 and json.loads(response.body)["error"] == "invalid_request"


def _forge(claims: dict, header: dict, key, alg: str) -> str:
    return jwt.encode(claims, key, algorithm=alg, headers=header)


def _b64(obj) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def assert_invalid_token(response):
    assert response.status_code == 401
    assert json.loads(response.body)["error"] == "invalid_token"
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_alg_none_token_is_rejected(http, tokens):
    original = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    header = jwt.get_unverified_header(tokens["access_token"])
    unsigned = f"{_b64({**header, 'alg': 'none'})}.{_b64(original)}."
    assert_invalid_token(http.get("/userinfo", headers={"Authorization": f"Bearer {unsigned}"}))


def test_hs256_token_signed_with_the_public_key_is_rejected(http, tokens):
    original = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    header = jwt.get_unverified_header(tokens["access_token"])
    public_jwk = json.dumps(json.loads(http.get("/jwks").body)["keys"][0])
    import hashlib
    import hmac

    signing_input = f"{_b64({**header, 'alg': 'HS256'})}.{_b64(original)}"
    signature = hmac.new(public_jwk.encode(), signing_input.encode(), hashlib.sha256).digest()
    forged = signing_input + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()
    assert_invalid_token(http.get("/userinfo", headers={"Authorization": f"Bearer {forged}"}))


def test_token_signed_by_a_foreign_key_is_rejected(http, tokens):
    from cryptography.hazmat.primitives.asymmetric import ec

    original = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    header = jwt.get_unverified_header(tokens["access_token"])
    forged = _forge(original, {"kid": header["kid"], "typ": "at+jwt"}, ec.generate_private_key(ec.SECP256R1()), "ES256")
    assert_invalid_token(http.get("/userinfo", headers={"Authorization": f"Bearer {forged}"}))


def test_id_token_is_not_accepted_as_access_token(http, tokens):
    assert_invalid_token(http.get("/userinfo", headers={"Authorization": f"Bearer {tokens['id_token']}"}))


def test_expired_access_token_is_rejected(http, tokens):
    from chalicelib.keys import keyring
    from chalicelib.tokens import jwt as jwt_encode

    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    expired = jwt_encode.encode({**claims, "iat": claims["iat"] - 3600, "exp": int(time.time()) - 60},
                                keyring.current_signer(), typ="at+jwt")
    response = http.get("/userinfo", headers={"Authorization": f"Bearer {expired}"})
    assert_invalid_token(response)
    assert "expired" in json.loads(response.body)["error_description"]


def test_token_without_openid_is_insufficient_scope(browser, http, public_client, alice):
    code = query_of(sign_in_and_consent(browser, public_client.client_id, scope="email"))["code"]
    token = json.loads(redeem(http, public_client.client_id, code).body)["access_token"]
    response = http.get("/userinfo", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    assert json.loads(response.body)["error"] == "insufficient_scope"
    assert 'scope="openid"' in response.headers["WWW-Authenticate"]


def test_disabled_user_token_stops_working(http, tokens, alice):
    from chalicelib.storage.users import set_user_disabled

    set_user_disabled(alice.pk, True)
    assert_invalid_token(http.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}))


def test_token_from_a_rotated_in_key_verifies_without_restart(http, tokens, keys):
    """A key promoted after this container cached /jwks is found by refreshing once."""
    from chalicelib.keys import keyring

    keyring.cached_jwks()  # the container's view before rotation
    nxt = next(k for k in keyring.all_keys() if k.state == "next")
    keyring.rotate(force=True)
    keyring._current_cache.pop("jwks", None)
    keyring.cached_jwks()
    signer = keyring.current_signer()
    assert signer.kid == nxt.kid
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    from chalicelib.tokens import jwt as jwt_encode

    fresh = jwt_encode.encode({**claims, "exp": int(time.time()) + 60}, signer, typ="at+jwt")
    assert http.get("/userinfo", headers={"Authorization": f"Bearer {fresh}"}).status_code == 200
