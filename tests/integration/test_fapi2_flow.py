"""PROFILE=fapi2 end to end (FAPI 2.0 Security Profile), over real HTTP against a stack started with
it, driven by an independent client library (requests-oauth2client): private_key_jwt with the issuer
as `aud`, a pushed authorization request carrying a DPoP proof (its use_dpop_nonce retry included),
/authorize with only client_id + request_uri, 303 redirects, the code redeemed with a DPoP proof, a
DPoP-bound token used at /userinfo, and a refresh. What the profile refuses is refused here too: a
front-channel request, and a client that is not a private_key_jwt one."""
from __future__ import annotations

import json
import secrets

import jwt
import pytest
import requests
from jwskate import Jwk
from requests_oauth2client import OAuth2Client, PrivateKeyJwt

from tests.integration.conftest import Stack
from tests.integration.federation_stacks import admin, new_user
from tests.integration.hosted_flow import REDIRECT_URI, TIMEOUT, HostedPages, query_of

pytestmark = pytest.mark.integration

SCOPE = "openid email offline_access"


@pytest.fixture(scope="module")
def fapi2(tmp_path_factory):
    directory = tmp_path_factory.mktemp("fapi2")
    stack = Stack(directory / "state", "secretsmanager", directory, extra_env={"PROFILE": "fapi2"})
    try:
        stack.wait_ready()
        yield stack
    finally:
        stack.kill()


@pytest.fixture(scope="module")
def bank_app(fapi2, tmp_path_factory):
    """A confidential private_key_jwt client, created as README shows an operator doing it."""
    key = Jwk.generate(alg="ES256", kid=secrets.token_hex(4))
    jwks_file = tmp_path_factory.mktemp("keys") / "jwks.json"
    jwks_file.write_text(json.dumps({"keys": [key.public_jwk().to_dict()]}))
    client = admin(fapi2, "clients", "create", "--name", "Bank app", "--redirect-uri", REDIRECT_URI,
                   "--auth-method", "private_key_jwt", "--jwks-file", str(jwks_file),
                   "--grant-type", "authorization_code", "--grant-type", "refresh_token",
                   "--scope", "openid", "--scope", "email", "--scope", "offline_access")
    return client["client_id"], key


def test_par_dpop_and_private_key_jwt_carry_a_user_to_a_bound_token(fapi2, bank_app):
    client_id, key = bank_app
    email = f"fapi-{secrets.token_hex(4)}@example.com"
    new_user(fapi2, email)
    metadata = requests.get(f"{fapi2.base_url}/.well-known/openid-configuration", timeout=TIMEOUT).json()
    assert metadata["require_pushed_authorization_requests"] is True
    assert metadata["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert "RS256" not in metadata["dpop_signing_alg_values_supported"]
    # FAPI 2.0 §5.3.2.1 item 8: the issuer alone is the assertion's audience (the library's default
    # would be each endpoint's URL, which the profile refuses).
    oauth = OAuth2Client.from_discovery_document(
        metadata, issuer=fapi2.base_url, testing=True, redirect_uri=REDIRECT_URI,
        auth=PrivateKeyJwt(client_id, key, alg="ES256", aud=fapi2.base_url),
        id_token_signed_response_alg="ES256",
        authorization_server_jwks=requests.get(metadata["jwks_uri"], timeout=TIMEOUT).json())

    request = oauth.authorization_request(scope=SCOPE, dpop=True)
    pushed = oauth.pushed_authorization_request(request)  # with a DPoP proof, after a use_dpop_nonce
    assert set(query_of(str(pushed.uri))) == {"client_id", "request_uri"}

    # Every redirect is a 303 (FAPI 2.0 §5.3.2.2 item 11).
    callback = HostedPages(fapi2.base_url).authorize(str(pushed.uri), email, redirect=303)
    token = oauth.authorization_code(request.validate_callback(callback), dpop_key=request.dpop_key,
                                     validate=False)  # see tests/integration/test_dpop_interop.py
    assert token.token_type == "DPoP"
    claims = jwt.decode(token.access_token, options={"verify_signature": False})
    assert claims["cnf"] == {"jkt": request.dpop_key.dpop_jkt} and claims["client_id"] == client_id

    # The library's DPoPToken signs a proof with ath for each call (RFC 9449 §7).
    userinfo = requests.get(metadata["userinfo_endpoint"], auth=token, timeout=TIMEOUT)
    assert userinfo.status_code == 200, userinfo.text
    assert userinfo.json()["email"] == email
    bearer = requests.get(metadata["userinfo_endpoint"], timeout=TIMEOUT,
                          headers={"Authorization": f"Bearer {token.access_token}"})
    assert bearer.status_code == 401, "a bound token is not a bearer token"

    # FAPI 2.0 §5.3.2.1 item 9: no rotation. The same refresh token comes back and keeps working.
    refreshed = oauth.refresh_token(token)
    assert refreshed.token_type == "DPoP" and refreshed.refresh_token == token.refresh_token
    again = oauth.refresh_token(token)
    assert again.refresh_token == token.refresh_token and again.access_token != refreshed.access_token


def test_the_profile_refuses_the_front_channel_and_other_clients(fapi2, bank_app, tmp_path):
    client_id, _ = bank_app
    front = requests.get(f"{fapi2.base_url}/authorize", allow_redirects=False, timeout=TIMEOUT, params={
        "client_id": client_id, "response_type": "code", "redirect_uri": REDIRECT_URI, "scope": "openid",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGKSuIE-cM", "code_challenge_method": "S256"})
    assert front.status_code == 303
    assert query_of(front.headers["Location"])["error"] == "invalid_request", "PAR is required"
    secret = requests.post(f"{fapi2.base_url}/par", timeout=TIMEOUT, auth=(client_id, "guess"),
                           data={"response_type": "code", "redirect_uri": REDIRECT_URI, "scope": "openid"})
    assert secret.status_code == 401 and secret.json()["error"] == "invalid_client"
