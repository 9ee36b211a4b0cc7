"""Interop: Authlib's private_key_jwt client authentication (authlib.oauth2.rfc7523.PrivateKeyJWT,
signing with joserfc) against `make run` over real HTTP.

The client is registered with its public JWK; everything else comes from discovery. Authlib signs a
fresh assertion (its own jti) for every request: the code redemption, then the revocation.

Authlib's assertions live an hour unless told otherwise (`expires_in` of its signer defaults to
3600 s), which CLIENT_ASSERTION_MAX_LIFETIME (300 s) refuses: a client passes a shorter lifetime, as
`ShortLived` does below with Authlib's own signer. (Passing `claims={"exp": ...}` to PrivateKeyJWT
instead would not do: Authlib writes the jti it generates into that dict, so every later request
would repeat it, and we refuse a repeated jti.)
"""
from __future__ import annotations

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from authlib.oauth2.rfc7523.assertion import private_key_jwt_sign
from joserfc.jwk import ECKey, OKPKey, RSAKey

from tests.integration.hosted_flow import REDIRECT_URI, TIMEOUT, HostedPages, new_user, query_of
from tests.integration import test_interop_authlib
from tests.integration.test_interop_authlib import validate_id_token

pytestmark = pytest.mark.integration

SCOPE = "openid email"
#: The same fixture: metadata from discovery, this process pointed at the stack.
discovered = test_interop_authlib.discovered
KEYS = {"ES256": lambda: ECKey.generate_key("P-256"), "RS256": lambda: RSAKey.generate_key(2048),
        "EdDSA": lambda: OKPKey.generate_key("Ed25519")}


class ShortLived(PrivateKeyJWT):
    """Authlib's PrivateKeyJWT, its assertions valid for a minute (Authlib's signer, its expires_in)."""

    def sign(self, auth, token_endpoint):
        return private_key_jwt_sign(auth.client_secret, client_id=auth.client_id, token_endpoint=token_endpoint,
                                    header=self.headers, alg=self.alg, expires_in=60)


def key_client(key):
    """A confidential client registered with the public half of `key` (use_stack first)."""
    from chalicelib.oauth.clients import create_client

    client, secret = create_client(client_name="Authlib key client", redirect_uris=[REDIRECT_URI],
                                   scopes=SCOPE.split(), token_endpoint_auth_method="private_key_jwt",
                                   jwks={"keys": [{**key.as_dict(private=False), "kid": "authlib"}]})
    assert secret is None
    return client


@pytest.mark.parametrize("alg", KEYS)
def test_authlib_authenticates_with_private_key_jwt_at_token_and_revocation(idp, discovered, alg):
    assert "private_key_jwt" in discovered["token_endpoint_auth_methods_supported"]
    assert alg in discovered["token_endpoint_auth_signing_alg_values_supported"]
    assert alg in discovered["revocation_endpoint_auth_signing_alg_values_supported"]
    key = KEYS[alg]()
    client = key_client(key)
    _, email = new_user()
    # Authlib puts the token endpoint in `aud` (OIDC Core §9), also when it calls the revocation endpoint.
    auth = ShortLived(discovered["token_endpoint"], headers={"kid": "authlib"}, alg=alg)
    oauth = OAuth2Session(client.client_id, key, token_endpoint_auth_method=auth,
                          revocation_endpoint_auth_method=auth, scope=SCOPE, redirect_uri=REDIRECT_URI,
                          code_challenge_method="S256")
    nonce, code_verifier = generate_token(20), generate_token(48)
    url, state = oauth.create_authorization_url(discovered["authorization_endpoint"], nonce=nonce,
                                                code_verifier=code_verifier)
    location = HostedPages(idp.base_url).authorize(url, email)
    assert query_of(location)["state"] == state

    token = oauth.fetch_token(discovered["token_endpoint"], authorization_response=location, state=state,
                              code_verifier=code_verifier)
    validate_id_token(token["id_token"], discovered, client_id=client.client_id, nonce=nonce,
                      access_token=token["access_token"])

    revoked = oauth.revoke_token(discovered["revocation_endpoint"], token=token["access_token"])
    assert revoked.status_code == 200, revoked.text
    userinfo = requests.get(discovered["userinfo_endpoint"], timeout=TIMEOUT,
                            headers={"Authorization": f"Bearer {token['access_token']}"})
    assert userinfo.status_code == 401, "the revocation, authenticated by assertion, took effect"


def test_authlibs_default_hour_long_assertion_is_refused_with_a_reason(idp, discovered):
    key = KEYS["ES256"]()
    client = key_client(key)
    auth = PrivateKeyJWT(discovered["token_endpoint"], headers={"kid": "authlib"}, alg="ES256")
    oauth = OAuth2Session(client.client_id, key, token_endpoint_auth_method=auth,
                          revocation_endpoint_auth_method=auth)
    response = oauth.revoke_token(discovered["revocation_endpoint"], token="anything")
    assert response.status_code == 401
    assert response.json() == {"error": "invalid_client",
                               "error_description": "the client assertion must expire within 300 seconds"}
