"""DPoP interop (RFC 9449) with an independent client library, requests-oauth2client, against
`make run` over real HTTP: the code flow with PKCE and dpop_jkt, the library's own use_dpop_nonce
retry, DPoP-bound tokens, and refreshes that only the key's holder can make."""
from __future__ import annotations

import jwt
import pytest
import requests
from requests_oauth2client import DPoPKey, OAuth2Client
from requests_oauth2client.exceptions import InvalidGrant

from tests.integration.hosted_flow import REDIRECT_URI, TIMEOUT, HostedPages, new_client, new_user

pytestmark = pytest.mark.integration

SCOPE = "openid email offline_access"


@pytest.fixture
def agent(idp, use_stack):
    use_stack(idp)
    client, _ = new_client("public", scopes=("openid", "email", "offline_access"),
                           grant_types=("authorization_code", "refresh_token"))
    metadata = requests.get(f"{idp.base_url}/.well-known/openid-configuration", timeout=TIMEOUT).json()
    assert "ES256" in metadata["dpop_signing_alg_values_supported"]
    oauth = OAuth2Client.from_discovery_document(
        metadata, issuer=idp.base_url, client_id=client.client_id, redirect_uri=REDIRECT_URI, https=False,
        id_token_signed_response_alg=metadata["id_token_signing_alg_values_supported"][0],
        authorization_server_jwks=requests.get(metadata["jwks_uri"], timeout=TIMEOUT).json())
    return client, oauth


def test_code_flow_with_pkce_dpop_jkt_and_a_nonce_retry_then_refresh_with_the_same_key(idp, agent):
    client, oauth = agent
    _, email = new_user()
    request = oauth.authorization_request(scope=SCOPE, dpop=True)
    key = request.dpop_key
    assert f"dpop_jkt={key.dpop_jkt}" in str(request.uri), "RFC 9449 §10: the code is bound to the key"
    response = request.validate_callback(HostedPages(idp.base_url).authorize(str(request.uri), email))

    # The first proof has no nonce: the server answers use_dpop_nonce and the library retries with it.
    # validate=False: requests-oauth2client 1.8.0 rebuilds a validated token without its DPoP key
    # (BearerToken.validate_id_token: TypeError for a DPoPToken); the ID token's validation by a
    # strict library is tests/integration/test_interop_authlib.py's.
    token = oauth.authorization_code(response, dpop_key=key, validate=False)
    assert token.token_type == "DPoP"
    claims = jwt.decode(token.access_token, options={"verify_signature": False})
    assert claims["cnf"] == {"jkt": key.dpop_jkt} and claims["client_id"] == client.client_id
    assert key.as_nonce, "the library kept the server's nonce"

    refreshed = oauth.refresh_token(token)
    assert refreshed.token_type == "DPoP"
    assert jwt.decode(refreshed.access_token, options={"verify_signature": False})["cnf"] == {"jkt": key.dpop_jkt}

    # The refresh token is bound to the key (RFC 9449 §5): another key's proof is refused, and the
    # family is still there for the key's holder.
    thief = DPoPKey.generate(alg="ES256")
    with pytest.raises(InvalidGrant):
        oauth.token_request({"grant_type": "refresh_token", "refresh_token": refreshed.refresh_token},
                            dpop_key=thief)
    assert oauth.refresh_token(refreshed).token_type == "DPoP"
