"""Token exchange (RFC 8693) interop with Authlib's client, against `make run` over real HTTP.

A user signs in to a public app for Notes and Billing (Authlib's OAuth2Session, the code flow with
PKCE). The Notes back end, a confidential client, then trades the user's token for one meant only for
Billing with Authlib's `fetch_token(grant_type=token-exchange, ...)` and client_secret_basic: the
result is verified with the discovered JWKS (joserfc, as Authlib's clients do) and carries `act`; a
refused exchange reaches Authlib as its OAuthError with the RFC's error code.
"""
from __future__ import annotations

from urllib.parse import urlencode

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from tests.integration.hosted_flow import REDIRECT_URI, TIMEOUT, HostedPages, new_client, new_user

pytestmark = pytest.mark.integration

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS = "urn:ietf:params:oauth:token-type:access_token"
NOTES, BILLING = "https://notes.example.com/api", "https://billing.example.com/api"


@pytest.fixture
def discovered(idp, use_stack):
    use_stack(idp)
    metadata = requests.get(f"{idp.base_url}/.well-known/oauth-authorization-server", timeout=TIMEOUT).json()
    assert TOKEN_EXCHANGE in metadata["grant_types_supported"]
    return metadata


@pytest.fixture
def user_token(idp, discovered):
    """Alice's access token at the Notes app, for Notes and Billing."""
    from chalicelib.storage.resources import register_resource

    register_resource(NOTES, "Notes API", ["notes:read"])
    register_resource(BILLING, "Billing API", ["billing:read"])
    app, _ = new_client("public", scopes=("openid", "notes:read", "billing:read"))
    user, email = new_user()
    oauth = OAuth2Session(app.client_id, token_endpoint_auth_method="none", scope="openid notes:read billing:read",
                          redirect_uri=REDIRECT_URI, code_challenge_method="S256")
    verifier = generate_token(48)
    url, state = oauth.create_authorization_url(discovered["authorization_endpoint"], code_verifier=verifier)
    # RFC 8707: one resource parameter per API (Authlib would keep only one of a list).
    url += "&" + urlencode([("resource", NOTES), ("resource", BILLING)])
    location = HostedPages(idp.base_url).authorize(url, email)
    token = oauth.fetch_token(discovered["token_endpoint"], authorization_response=location, state=state,
                              code_verifier=verifier)
    return user, token["access_token"]


@pytest.fixture
def gateway(discovered):
    """The Notes back end: may trade tokens meant for Notes for tokens meant for Billing."""
    from chalicelib.oauth.exchange_policy import ExchangePolicy, dump
    from chalicelib.storage.clients import set_client_exchange_policies

    client, secret = new_client("confidential", "client_secret_basic", scopes=(), grant_types=(TOKEN_EXCHANGE,))
    policy = ExchangePolicy("notes-to-billing", "access_token", resources=(BILLING,), subject_audiences=(NOTES,),
                            scopes=("billing:read",))
    assert set_client_exchange_policies(client.client_id, dump([policy]), expected=None)
    return OAuth2Session(client.client_id, secret, token_endpoint_auth_method="client_secret_basic"), client


def test_authlib_exchanges_a_user_token_for_a_narrower_delegated_one(discovered, user_token, gateway):
    user, subject_token = user_token
    session, client = gateway

    token = session.fetch_token(discovered["token_endpoint"], grant_type=TOKEN_EXCHANGE, subject_token=subject_token,
                                subject_token_type=ACCESS, resource=BILLING, scope="billing:read")

    assert token["issued_token_type"] == ACCESS and token["token_type"] == "Bearer"
    assert "refresh_token" not in token and token["scope"] == "billing:read"
    jwks = requests.get(discovered["jwks_uri"], timeout=TIMEOUT).json()
    # Our access tokens are signed like our ID tokens: with the advertised algorithms only.
    registry = JWSRegistry(algorithms=discovered["id_token_signing_alg_values_supported"])
    claims = jwt.decode(token["access_token"], KeySet.import_key_set(jwks), registry=registry).claims
    jwt.JWTClaimsRegistry(iss={"essential": True, "value": discovered["issuer"]},
                          aud={"essential": True, "value": BILLING}).validate(claims)
    assert claims["sub"] == user.pk and claims["client_id"] == client.client_id
    assert claims["act"] == {"sub": client.client_id}


def test_authlib_sees_a_refused_exchange_as_its_rfc_error(discovered, user_token, gateway):
    _, subject_token = user_token
    session, _ = gateway
    with pytest.raises(OAuthError) as refused:
        session.fetch_token(discovered["token_endpoint"], grant_type=TOKEN_EXCHANGE, subject_token=subject_token,
                            subject_token_type=ACCESS, resource=NOTES)
    assert refused.value.error == "invalid_target"
    with pytest.raises(OAuthError) as refused:
        session.fetch_token(discovered["token_endpoint"], grant_type=TOKEN_EXCHANGE, subject_token=subject_token,
                            subject_token_type=ACCESS, resource=BILLING, scope="notes:read")
    assert refused.value.error == "invalid_scope"
