"""Issuing ID-JAGs (draft-ietf-oauth-identity-assertion-authz-grant §"Token Exchange"): our ID token,
issued to a confidential client, traded for a signed ID-JAG addressed to another authorization
server, within the client's exchange policy of kind id_jag.

The token-exchange grant's handler (RFC 8693, chalicelib/grants/token_exchange.handle) hands requests
with requested_token_type=urn:ietf:params:oauth:token-type:id-jag to
`chalicelib.oauth.id_jag.exchange(form, client, settings)`; these tests call the handler with the
form /token receives, against in-process moto and our key ring (the HTTP path, client
authentication included, is tests/integration/test_id_jag_two_deployments.py's)."""
from __future__ import annotations

import jwt
import pytest

from tests.routes.flow import ISSUER

CHAT_AS = "https://chat.example/"
CHAT_API, CHAT_FILES = "https://api.chat.example/", "https://api.chat.example/files"
TOKEN_EXCHANGE_FORM = {"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                       "requested_token_type": "urn:ietf:params:oauth:token-type:id-jag",
                       "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
                       "audience": CHAT_AS}


def policy(**overrides):
    from chalicelib.oauth.exchange_policy import ExchangePolicy

    fields = dict(policy_id="chat", kind="id_jag", audience=CHAT_AS, downstream_client_id="f53f191f9311af35",
                  resources=(CHAT_API, CHAT_FILES), scopes=("chat.read", "chat.history"))
    fields.update(overrides)
    return ExchangePolicy(**fields)


def client_with(policies, *, client_type="confidential"):
    from chalicelib.oauth import exchange_policy
    from chalicelib.oauth.client_metadata import validate_client_metadata
    from chalicelib.oauth.clients import add_client

    import secrets

    fields = validate_client_metadata(client_name="Wiki", client_type=client_type,
                                      redirect_uris=["http://127.0.0.1/cb"], scopes=["openid", "email", "profile"])
    client, _ = add_client(secrets.token_hex(16), fields, exchange_policies=exchange_policy.dump(policies))
    return client


def id_token(client, user, *, scopes=("openid", "email"), ttl=None):
    """An ID token of ours for `user`, issued to `client`, as the code flow issues it."""
    from dataclasses import replace

    from chalicelib.config import settings
    from chalicelib.log import now
    from chalicelib.tokens.issue import issue_tokens, user_attributes

    current = settings() if ttl is None else replace(settings(), id_token_ttl=ttl)
    return issue_tokens(current, client=client, sub=user.pk, scopes=list(scopes), grant_id="g1",
                        auth_time=now() - 30, nonce="n", audience=[ISSUER], user_claims=user_attributes(user),
                        acr="urn:serverless-idp:acr:password", amr=("pwd",))


def exchange(client, subject_token, **form):
    from chalicelib.config import settings
    from chalicelib.grants import token_exchange

    return token_exchange.handle({**TOKEN_EXCHANGE_FORM, "subject_token": subject_token, **form}, client, settings())


@pytest.fixture
def wiki(keys):
    return client_with([policy()])


def refusal(error, client, subject_token, **form):
    from chalicelib.errors import OAuthError

    with pytest.raises(OAuthError) as raised:
        exchange(client, subject_token, **form)
    assert raised.value.error == error, raised.value.description
    return raised.value


def test_an_id_token_becomes_an_id_jag_for_the_downstream_authorization_server(wiki, alice):
    from chalicelib.keys import keyring

    tokens = id_token(wiki, alice)
    response = exchange(wiki, tokens["id_token"], resource=[CHAT_API], scope="chat.read")

    # §"Response": RFC 8693 §2.2 with the ID-JAG token type, token_type N_A, and no refresh token.
    assert set(response) == {"access_token", "issued_token_type", "token_type", "expires_in", "scope"}
    assert (response["issued_token_type"], response["token_type"], response["expires_in"], response["scope"]) == (
        "urn:ietf:params:oauth:token-type:id-jag", "N_A", 300, "chat.read")
    id_jag = response["access_token"]
    header = jwt.get_unverified_header(id_jag)
    assert header["typ"] == "oauth-id-jag+jwt"
    key = next(k for k in keyring.cached_jwks()["keys"] if k["kid"] == header["kid"])
    claims = jwt.decode(id_jag, jwt.PyJWK(key).key, algorithms=[header["alg"]], audience=CHAT_AS, issuer=ISSUER)
    assert claims["sub"] == alice.pk and claims["client_id"] == "f53f191f9311af35"
    assert (claims["resource"], claims["scope"]) == (CHAT_API, "chat.read")
    assert claims["exp"] - claims["iat"] == 300 and len(claims["jti"]) >= 16
    assert claims["email"] == "alice@example.com" and claims["amr"] == ["pwd"]
    assert claims["acr"] == "urn:serverless-idp:acr:password" and "auth_time" in claims


def test_without_resource_and_scope_the_policy_s_are_named(wiki, alice):
    response = exchange(wiki, id_token(wiki, alice)["id_token"])
    claims = jwt.decode(response["access_token"], options={"verify_signature": False})
    assert claims["resource"] == [CHAT_API, CHAT_FILES] and claims["scope"] == "chat.read chat.history"


def test_no_email_unless_the_id_token_released_it(wiki, alice):
    response = exchange(wiki, id_token(wiki, alice, scopes=("openid",))["id_token"])
    assert "email" not in jwt.decode(response["access_token"], options={"verify_signature": False})


def test_each_jag_has_its_own_jti(wiki, alice):
    token = id_token(wiki, alice)["id_token"]
    first, second = (jwt.decode(exchange(wiki, token)["access_token"], options={"verify_signature": False})
                     for _ in range(2))
    assert first["jti"] != second["jti"]


def test_the_downstream_client_id_defaults_to_the_client_s_own(keys, alice):
    client = client_with([policy(downstream_client_id=None)])
    claims = jwt.decode(exchange(client, id_token(client, alice)["id_token"])["access_token"],
                        options={"verify_signature": False})
    assert claims["client_id"] == client.client_id


def test_a_client_without_an_id_jag_policy_is_unauthorized(keys, alice):
    from chalicelib.oauth.exchange_policy import ExchangePolicy

    for policies in ([], [ExchangePolicy(policy_id="at", kind="access_token", resources=(CHAT_API,))]):
        client = client_with(policies)
        refusal("unauthorized_client", client, id_token(client, alice)["id_token"])


def test_public_clients_are_unauthorized(keys, alice):
    client = client_with([policy()], client_type="public")
    refusal("unauthorized_client", client, id_token(client, alice)["id_token"])


def test_an_id_token_issued_to_another_client_is_refused(wiki, alice):
    """§"Processing Rules": the ID token's audience MUST be the authenticated client."""
    other = client_with([policy()])
    refusal("invalid_request", wiki, id_token(other, alice)["id_token"])
    assert exchange(other, id_token(other, alice)["id_token"])["token_type"] == "N_A"


def test_an_expired_id_token_is_refused(wiki, alice):
    refusal("invalid_request", wiki, id_token(wiki, alice, ttl=-120)["id_token"])


def test_our_access_token_or_a_forged_token_is_not_an_id_token(wiki, alice):
    from cryptography.hazmat.primitives.asymmetric import ec

    tokens = id_token(wiki, alice)
    refusal("invalid_request", wiki, tokens["access_token"])
    claims = jwt.decode(tokens["id_token"], options={"verify_signature": False})
    kid = jwt.get_unverified_header(tokens["id_token"])["kid"]
    forged = jwt.encode(claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256",
                        headers={"kid": kid, "typ": "JWT"})
    refusal("invalid_request", wiki, forged)
    refusal("invalid_request", wiki, "")


@pytest.mark.parametrize("token_type", ["urn:ietf:params:oauth:token-type:access_token",
                                        "urn:ietf:params:oauth:token-type:refresh_token", ""])
def test_only_id_tokens_are_subject_tokens(wiki, alice, token_type):
    refusal("invalid_request", wiki, id_token(wiki, alice)["id_token"], subject_token_type=token_type)


def test_the_audience_must_be_a_policy_s(wiki, alice):
    token = id_token(wiki, alice)["id_token"]
    refusal("invalid_request", wiki, token, audience="")
    refusal("invalid_target", wiki, token, audience="https://other.example/")


def test_no_policy_may_name_this_server_itself(keys, alice):
    """§"Cross-Domain Use": an ID-JAG is for another trust domain; we would refuse to redeem it."""
    client = client_with([policy(audience=ISSUER)])
    refusal("invalid_target", client, id_token(client, alice)["id_token"], audience=ISSUER)


def test_resources_and_scopes_beyond_the_policy_are_refused_not_cut(wiki, alice):
    token = id_token(wiki, alice)["id_token"]
    refusal("invalid_target", wiki, token, resource=[CHAT_API, "https://api.chat.example/admin"])
    refusal("invalid_scope", wiki, token, scope="chat.read chat.admin")
    refusal("invalid_scope", wiki, token, scope="openid")


def test_a_disabled_or_deleted_user_is_refused(wiki, alice):
    from chalicelib.storage.users import set_user_disabled

    token = id_token(wiki, alice)["id_token"]
    set_user_disabled(alice.pk, True)
    refusal("invalid_request", wiki, token)


def test_an_actor_token_is_refused_not_ignored(wiki, alice):
    token = id_token(wiki, alice)
    refusal("invalid_request", wiki, token["id_token"], actor_token=token["access_token"],
            actor_token_type="urn:ietf:params:oauth:token-type:access_token")
