"""DPoP at the resource servers, driven by a third-party client library: requests-oauth2client's
DPoPToken (RFC 9449: `Authorization: DPoP`, a fresh proof per request with htm, htu and ath) calls
our /userinfo and the example MCP server (examples/mcp_server) over real HTTP.

requests-oauth2client runs the code flow (PKCE, RFC 9207 iss check) against the `idp` stack; the
access token it gets is then bound to the library's DPoP key here (re-signed with `cnf.jkt` by the
stack's key ring) until the token endpoint issues bound tokens itself.
"""
from __future__ import annotations

import jwt
import pytest
import requests
from requests_oauth2client import DPoPKey, DPoPToken, OAuth2Client

from tests.integration.hosted_flow import REDIRECT_URI, TIMEOUT, HostedPages, new_client, new_user

pytestmark = pytest.mark.integration


def bind(access_token: str, key: DPoPKey) -> DPoPToken:
    """The token re-signed by the stack's current key with `cnf.jkt` = the key's thumbprint."""
    from chalicelib.keys import keyring
    from chalicelib.tokens import jwt as jwt_encode

    claims = jwt.decode(access_token, options={"verify_signature": False})
    bound = jwt_encode.encode({**claims, "cnf": {"jkt": key.dpop_jkt}}, keyring.current_signer(), typ="at+jwt")
    return DPoPToken(bound, _dpop_key=key)


def test_requests_oauth2client_calls_userinfo_with_a_dpop_bound_token(idp, use_stack):
    use_stack(idp)
    client, _ = new_client("public")
    user, email = new_user()
    metadata = requests.get(f"{idp.base_url}/.well-known/openid-configuration", timeout=TIMEOUT).json()
    oauth = OAuth2Client.from_discovery_endpoint(
        issuer=idp.base_url, client_id=client.client_id, testing=True,
        id_token_signed_response_alg=metadata["id_token_signing_alg_values_supported"][0])
    request = oauth.authorization_request(scope="openid email", redirect_uri=REDIRECT_URI)
    response = request.validate_callback(HostedPages(idp.base_url).authorize(str(request.uri), email))
    tokens = oauth.authorization_code(response)

    key = DPoPKey.generate(alg="ES256")
    token = bind(tokens.access_token, key)
    userinfo = requests.get(oauth.userinfo_endpoint, auth=token, timeout=TIMEOUT)
    assert userinfo.status_code == 200, userinfo.text
    assert userinfo.json()["sub"] == user.pk and userinfo.json()["email"] == email
    sent = userinfo.request.headers
    assert sent["Authorization"] == f"DPoP {token.access_token}" and "DPoP" in sent
    # Each request gets a new proof; the library's second call passes too.
    assert requests.get(oauth.userinfo_endpoint, auth=token, timeout=TIMEOUT).status_code == 200

    # The same proof again, and the bound token as Bearer: both refused.
    replay = requests.get(oauth.userinfo_endpoint, timeout=TIMEOUT,
                          headers={"Authorization": sent["Authorization"], "DPoP": sent["DPoP"]})
    assert replay.status_code == 401 and replay.json()["error"] == "invalid_dpop_proof"
    assert replay.headers["WWW-Authenticate"].startswith('DPoP realm="idp", error="invalid_dpop_proof"')
    as_bearer = requests.get(oauth.userinfo_endpoint, timeout=TIMEOUT,
                             headers={"Authorization": f"Bearer {token.access_token}"})
    assert as_bearer.status_code == 401 and as_bearer.json()["error"] == "invalid_token"


def test_the_example_mcp_server_takes_dpop_bound_tokens_and_refuses_them_as_bearer(idp, use_stack):
    from tests.integration.test_mcp_sdk import (INITIALIZE, McpServerThread, client_credentials_token,
                                                mcp_headers)

    server = McpServerThread(idp.base_url)
    try:
        key = DPoPKey.generate(alg="ES256")
        token = bind(client_credentials_token(idp, use_stack, server.resource, scope="notes:read"), key)
        accepted = requests.post(server.resource, json=INITIALIZE, auth=token, timeout=TIMEOUT,
                                 headers=mcp_headers())
        assert accepted.status_code == 200, accepted.text

        as_bearer = requests.post(server.resource, json=INITIALIZE, headers=mcp_headers(token.access_token),
                                  timeout=TIMEOUT)
        assert as_bearer.status_code == 401
        assert as_bearer.headers["WWW-Authenticate"].startswith('Bearer realm="mcp", error="invalid_token"')

        thief = DPoPKey.generate(alg="ES256")
        stolen = requests.post(server.resource, json=INITIALIZE, timeout=TIMEOUT, headers={
            **mcp_headers(), "Authorization": f"DPoP {token.access_token}",
            "DPoP": str(thief.proof("POST", server.resource, ath=_ath(token.access_token)))})
        assert stolen.status_code == 401
        challenge = stolen.headers["WWW-Authenticate"]
        assert challenge.startswith('DPoP realm="mcp", error="invalid_token"') and 'algs="' in challenge
    finally:
        server.stop()


def _ath(access_token: str) -> str:
    from chalicelib.oauth.dpop import access_token_hash

    return access_token_hash(access_token)
