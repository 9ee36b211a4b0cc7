"""Interop with an independent, strictly validating client: Authlib, against `make run` over real HTTP.

Everything the client knows comes from discovery. Authlib's OAuth2Session builds the authorization
URL (PKCE S256, nonce), checks `state` on the way back and redeems the code with each client
authentication method; the ID token is verified the way Authlib's own OpenID clients do it (its JOSE
backend, joserfc, against the keys at the discovered jwks_uri, restricted to the discovered
algorithms, then `authlib.oidc.core.CodeIDToken` for iss, aud, exp, nonce and at_hash), and
userinfo is called with the access token through the session.
"""
from __future__ import annotations

import secrets

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc6749.errors import MismatchingStateException
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidClaimError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from tests.integration.hosted_flow import REDIRECT_URI, TIMEOUT, HostedPages, new_client, new_user, query_of

pytestmark = pytest.mark.integration

SCOPE = "openid email profile"


@pytest.fixture
def discovered(idp, use_stack):
    use_stack(idp)
    metadata = requests.get(f"{idp.base_url}/.well-known/openid-configuration", timeout=TIMEOUT).json()
    assert metadata["issuer"] == idp.base_url
    return metadata


def validate_id_token(id_token: str, metadata: dict, *, client_id: str, nonce: str, access_token: str,
                      leeway: int = 0) -> CodeIDToken:
    """Verify signature and claims as a strict relying party would; raises on any mismatch."""
    jwks = requests.get(metadata["jwks_uri"], timeout=TIMEOUT).json()
    registry = JWSRegistry(algorithms=metadata["id_token_signing_alg_values_supported"])
    token = jwt.decode(id_token, KeySet.import_key_set(jwks), registry=registry)
    claims = CodeIDToken(
        token.claims, token.header,
        {"iss": {"essential": True, "value": metadata["issuer"]},
         "aud": {"essential": True, "value": client_id},
         "sub": {"essential": True},
         "exp": {"essential": True},
         "iat": {"essential": True},
         "nonce": {"essential": True}},
        {"nonce": nonce, "client_id": client_id, "access_token": access_token})
    claims.validate(leeway=leeway)
    return claims


CLIENTS = {
    "public-none": ("public", None),
    "confidential-client_secret_basic": ("confidential", "client_secret_basic"),
    "confidential-client_secret_post": ("confidential", "client_secret_post"),
}


@pytest.mark.parametrize("kind", CLIENTS)
def test_authlib_completes_the_code_flow_and_validates_every_token(idp, discovered, kind):
    client_type, auth_method = CLIENTS[kind]
    client, secret = new_client(client_type, auth_method)
    user, email = new_user()
    expected_method = auth_method or "none"
    assert expected_method in discovered["token_endpoint_auth_methods_supported"]

    oauth = OAuth2Session(client.client_id, secret, token_endpoint_auth_method=expected_method, scope=SCOPE,
                          redirect_uri=REDIRECT_URI, code_challenge_method="S256")
    nonce, code_verifier = generate_token(20), generate_token(48)
    url, state = oauth.create_authorization_url(discovered["authorization_endpoint"], nonce=nonce,
                                                code_verifier=code_verifier)
    location = HostedPages(idp.base_url).authorize(url, email)

    assert location.startswith(REDIRECT_URI + "?"), location
    returned = query_of(location)
    assert returned["state"] == state
    assert returned["iss"] == discovered["issuer"], "RFC 9207: the response names its issuer"

    # Authlib's own state check (the state the client kept for this request is passed back in, as
    # Authlib's web integrations do from the user's session) refuses a response that is not for this
    # request, before anything is sent: the code is still good afterwards.
    forged = location.replace(f"state={state}", f"state={secrets.token_urlsafe(16)}")
    assert forged != location
    with pytest.raises(MismatchingStateException):
        oauth.fetch_token(discovered["token_endpoint"], authorization_response=forged, state=state,
                          code_verifier=code_verifier)

    token = oauth.fetch_token(discovered["token_endpoint"], authorization_response=location, state=state,
                              code_verifier=code_verifier)
    assert token["token_type"] == "Bearer"
    assert set(token["scope"].split()) == set(SCOPE.split())

    claims = validate_id_token(token["id_token"], discovered, client_id=client.client_id, nonce=nonce,
                               access_token=token["access_token"])
    assert claims["sub"] == user.pk
    assert claims["nonce"] == nonce
    assert claims["at_hash"], "at_hash is present, so CodeIDToken checked it"
    assert claims["email"] == email

    info = oauth.get(discovered["userinfo_endpoint"], timeout=TIMEOUT)
    assert info.status_code == 200, info.text
    assert info.json()["sub"] == user.pk
    assert info.json()["email"] == email
    assert info.json()["name"] == "Alice Liddell"


def test_the_id_token_validation_really_is_strict(idp, discovered):
    """The same validation refuses a wrong nonce, a wrong audience, a foreign access token and a
    wrong issuer, so the passing flow above means something."""
    client, _ = new_client("public")
    _, email = new_user()
    oauth = OAuth2Session(client.client_id, token_endpoint_auth_method="none", scope=SCOPE,
                          redirect_uri=REDIRECT_URI, code_challenge_method="S256")
    nonce, code_verifier = generate_token(20), generate_token(48)
    url, state = oauth.create_authorization_url(discovered["authorization_endpoint"], nonce=nonce,
                                                code_verifier=code_verifier)
    location = HostedPages(idp.base_url).authorize(url, email)
    token = oauth.fetch_token(discovered["token_endpoint"], authorization_response=location, state=state,
                              code_verifier=code_verifier)
    good = dict(client_id=client.client_id, nonce=nonce, access_token=token["access_token"])
    validate_id_token(token["id_token"], discovered, **good)

    for name, override in [("nonce", {"nonce": "another-nonce"}),
                           ("aud", {"client_id": "another-client"}),
                           ("at_hash", {"access_token": token["access_token"] + "x"})]:
        with pytest.raises(InvalidClaimError) as excinfo:
            validate_id_token(token["id_token"], discovered, **{**good, **override})
        assert excinfo.value.claim == name
    with pytest.raises(InvalidClaimError) as excinfo:
        validate_id_token(token["id_token"], {**discovered, "issuer": "https://evil.example.com"}, **good)
    assert excinfo.value.claim == "iss"
