"""Token exchange (RFC 8693) at /token: delegation with `act` chains, exchange policies, and every refusal.

The story: a user signs in to the Notes app (a public client) and consents to Notes and Billing. The
Notes API's back end (the "gateway", a confidential client) receives the user's token and exchanges it
for a token meant only for Billing, narrowed to Billing's scope; the Billing API may hand it on once more
(a second hop: a nested `act`) if its own policy allows that depth.
"""
from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import jwt
import pytest

from chalicelib.capabilities import TOKEN_EXCHANGE
from tests.conftest import basic_auth
from tests.routes.flow import FORM, REDIRECT_URI, query_of, redeem, sign_in_and_consent

NOTES, BILLING = "https://notes.example.com/api", "https://billing.example.com/api"
ACCESS = "urn:ietf:params:oauth:token-type:access_token"
ID = "urn:ietf:params:oauth:token-type:id_token"
JWT = "urn:ietf:params:oauth:token-type:jwt"


def add_policy(client_id: str, **fields):
    """Store a policy the way `idp-admin exchange-policies add` does (tests/admin covers the CLI)."""
    from chalicelib.oauth.exchange_policy import ExchangePolicy, dump, parse
    from chalicelib.storage.clients import forget_cached_clients, get_client, set_client_exchange_policies

    current = get_client(client_id).exchange_policies
    policy = ExchangePolicy(policy_id=fields.pop("policy_id", f"p{len(parse(current))}"),
                            kind=fields.pop("kind", "access_token"), **fields)
    assert set_client_exchange_policies(client_id, dump((*parse(current), policy)), expected=current)
    forget_cached_clients()


def new_service(name: str, *, grant_types=(TOKEN_EXCHANGE,), **metadata):
    from chalicelib.oauth.clients import create_client

    return create_client(client_name=name, grant_types=list(grant_types), scopes=metadata.pop("scopes", []),
                         **metadata)


def exchange(http, service, **params):
    client, secret = service
    body = {"grant_type": TOKEN_EXCHANGE, "subject_token_type": ACCESS, **params}
    return http.post("/token", body=urlencode({k: v for k, v in body.items() if v is not None}, doseq=True).encode(),
                     headers={**FORM, "Authorization": basic_auth(client.client_id, secret)})


def error_of(response) -> str:
    assert response.status_code == 400, (response.status_code, response.body)
    return json.loads(response.body)["error"]


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


@pytest.fixture
def app(aws, api_resources):
    from chalicelib.oauth.clients import create_client

    client, _ = create_client(client_name="Notes app", client_type="public", redirect_uris=[REDIRECT_URI],
                              grant_types=["authorization_code", "refresh_token"],
                              scopes=["openid", "offline_access", "notes:read", "billing:read"])
    return client


@pytest.fixture
def user_tokens(browser, http, app, alice):
    """Alice's tokens at the Notes app: an access token for Notes and Billing, a refresh token."""
    location = sign_in_and_consent(browser, app.client_id, scope="openid offline_access notes:read billing:read",
                                   resource=[NOTES, BILLING])
    response = redeem(http, app.client_id, query_of(location)["code"])
    assert response.status_code == 200, response.body
    return json.loads(response.body)


@pytest.fixture
def gateway(aws, api_resources):
    """The Notes API's back end: may trade tokens meant for Notes for tokens meant for Billing."""
    service = new_service("Notes gateway")
    add_policy(service[0].client_id, subject_audiences=(NOTES,), resources=(BILLING,), scopes=("billing:read",))
    return service


@pytest.fixture
def billing_rs(aws, api_resources):
    """The Billing API: introspects tokens meant for it."""
    return new_service("Billing API", grant_types=["client_credentials"], introspects=[BILLING])


def introspect(http, caller, token) -> dict:
    client, secret = caller
    response = http.post("/introspect", body=urlencode({"token": token}).encode(),
                         headers={**FORM, "Authorization": basic_auth(client.client_id, secret)})
    assert response.status_code == 200, response.body
    return json.loads(response.body)


# The exchange -------------------------------------------------------------------------------------

def test_a_user_token_is_exchanged_for_a_narrower_one_naming_the_actor(http, user_tokens, gateway, alice):
    response = exchange(http, gateway, subject_token=user_tokens["access_token"], resource=BILLING)

    assert response.status_code == 200, response.body
    body = json.loads(response.body)
    assert body["issued_token_type"] == ACCESS and body["token_type"] == "Bearer"
    assert body["scope"] == "billing:read"
    assert "refresh_token" not in body and "id_token" not in body
    subject, issued = claims_of(user_tokens["access_token"]), claims_of(body["access_token"])
    assert issued["sub"] == alice.pk and issued["aud"] == BILLING and issued["scope"] == "billing:read"
    assert issued["client_id"] == gateway[0].client_id
    assert issued["act"] == {"sub": gateway[0].client_id}
    assert issued["grant_id"] == subject["grant_id"]
    assert issued["auth_time"] == subject["auth_time"]
    assert issued["exp"] <= subject["exp"] and body["expires_in"] == issued["exp"] - issued["iat"]
    assert response.headers["Cache-Control"] == "no-store"


def test_audience_names_the_target_like_resource(http, user_tokens, gateway):
    response = exchange(http, gateway, subject_token=user_tokens["access_token"], audience=BILLING)
    assert claims_of(json.loads(response.body)["access_token"])["aud"] == BILLING


def test_the_result_never_outlives_its_subject_token(http, user_tokens, gateway, monkeypatch):
    from chalicelib.tokens import issue

    subject = claims_of(user_tokens["access_token"])
    # Issued 200 s after the subject token: an uncapped lifetime would end 200 s after it.
    monkeypatch.setattr(issue, "now", lambda: subject["iat"] + 200)
    body = json.loads(exchange(http, gateway, subject_token=user_tokens["access_token"], resource=BILLING).body)

    issued = claims_of(body["access_token"])
    assert issued["exp"] == subject["exp"] and body["expires_in"] == subject["exp"] - issued["iat"]


def test_a_second_hop_nests_the_previous_actor_inside_the_new_one(http, user_tokens, gateway):
    first = json.loads(exchange(http, gateway, subject_token=user_tokens["access_token"], resource=BILLING).body)
    ledger = new_service("Billing ledger")
    add_policy(ledger[0].client_id, subject_audiences=(BILLING,), resources=(BILLING,), max_depth=2)

    response = exchange(http, ledger, subject_token=first["access_token"], resource=BILLING)

    assert response.status_code == 200, response.body
    issued = claims_of(json.loads(response.body)["access_token"])
    assert issued["act"] == {"sub": ledger[0].client_id, "act": {"sub": gateway[0].client_id}}
    from chalicelib.verifier import actor_chain

    assert actor_chain(issued) == [{"sub": ledger[0].client_id}, {"sub": gateway[0].client_id}]


def test_an_actor_token_names_the_actor(http, user_tokens, aws, api_resources):
    agent = new_service("Agent", grant_types=[TOKEN_EXCHANGE, "client_credentials"], scopes=["notes:read"])
    add_policy(agent[0].client_id, subject_audiences=(NOTES,), resources=(BILLING,))
    client, secret = agent
    own = http.post("/token", body=urlencode({"grant_type": "client_credentials", "resource": NOTES}).encode(),
                    headers={**FORM, "Authorization": basic_auth(client.client_id, secret)})
    actor_token = json.loads(own.body)["access_token"]

    response = exchange(http, agent, subject_token=user_tokens["access_token"], resource=BILLING,
                        actor_token=actor_token, actor_token_type=ACCESS)

    assert response.status_code == 200, response.body
    assert claims_of(json.loads(response.body)["access_token"])["act"] == {"sub": client.client_id}


def test_introspection_returns_the_chain(http, user_tokens, gateway, billing_rs):
    token = json.loads(exchange(http, gateway, subject_token=user_tokens["access_token"], resource=BILLING).body)
    body = introspect(http, billing_rs, token["access_token"])
    assert body["active"] is True and body["act"] == {"sub": gateway[0].client_id}
    assert body["client_id"] == gateway[0].client_id and body["aud"] == BILLING


def test_the_exchanged_token_dies_with_the_grant_it_was_delegated_from(http, user_tokens, gateway, billing_rs, app):
    token = json.loads(exchange(http, gateway, subject_token=user_tokens["access_token"], resource=BILLING).body)
    assert introspect(http, billing_rs, token["access_token"])["active"] is True
    revoked = http.post("/revoke", headers=FORM, body=urlencode(
        {"token": user_tokens["refresh_token"], "client_id": app.client_id}).encode())
    assert revoked.status_code == 200
    assert introspect(http, billing_rs, token["access_token"]) == {"active": False}


def test_the_exchanging_client_may_revoke_the_exchanged_token(http, user_tokens, gateway, billing_rs):
    token = json.loads(exchange(http, gateway, subject_token=user_tokens["access_token"], resource=BILLING).body)
    client, secret = gateway
    revoked = http.post("/revoke", body=urlencode({"token": token["access_token"]}).encode(),
                        headers={**FORM, "Authorization": basic_auth(client.client_id, secret)})
    assert revoked.status_code == 200
    assert introspect(http, billing_rs, token["access_token"]) == {"active": False}
    assert introspect(http, billing_rs, json.loads(exchange(
        http, gateway, subject_token=user_tokens["access_token"], resource=BILLING).body)["access_token"])["active"]


def test_one_audit_line_per_exchange(http, user_tokens, gateway, alice, idp_log):
    token = json.loads(exchange(http, gateway, subject_token=user_tokens["access_token"], resource=BILLING).body)

    lines = [entry for entry in idp_log() if entry.get("event") == "token_exchange"]
    assert len(lines) == 1
    line, issued = lines[0], claims_of(token["access_token"])
    assert line["sub"] == alice.pk and line["actor_chain"] == [{"sub": gateway[0].client_id}]
    assert line["client_id"] == gateway[0].client_id and line["policy_id"] == "p0"
    assert sorted(line["subject_aud"]) == sorted([NOTES, BILLING]) and line["aud"] == [BILLING]
    assert line["subject_token_type"] == ACCESS and line["jti"] == issued["jti"] and line["scope"] == "billing:read"
    assert line["subject_jti"] == claims_of(user_tokens["access_token"])["jti"]


def test_an_exchange_makes_one_dynamodb_call(http, user_tokens, gateway, api_role_allows_every_dynamodb_call):
    """The subject token's revocation state (its grant); the client, its policies and the resources
    come from this container's caches, warmed by a first exchange."""
    assert exchange(http, gateway, subject_token=user_tokens["access_token"], resource=BILLING).status_code == 200
    api_role_allows_every_dynamodb_call.clear()
    assert exchange(http, gateway, subject_token=user_tokens["access_token"], resource=BILLING).status_code == 200
    assert [(c["operation"], c["params"]["TableName"]) for c in api_role_allows_every_dynamodb_call] == [
        ("GetItem", "idp-test-grants")]


# ID tokens as subject tokens ----------------------------------------------------------------------

@pytest.fixture
def portal(aws, api_resources):
    """A confidential web app that signs users in and trades their ID token for a Notes token."""
    service = new_service("Portal", grant_types=["authorization_code", TOKEN_EXCHANGE],
                          redirect_uris=[REDIRECT_URI], scopes=["openid", "email", "notes:read"])
    add_policy(service[0].client_id, subject_audiences=(service[0].client_id,), resources=(NOTES,),
               scopes=("notes:read",))
    return service


def portal_id_token(browser, http, portal) -> str:
    client, secret = portal
    location = sign_in_and_consent(browser, client.client_id, scope="openid email")
    response = redeem(http, client.client_id, query_of(location)["code"], auth=basic_auth(client.client_id, secret))
    assert response.status_code == 200, response.body
    return json.loads(response.body)["id_token"]


def test_an_id_token_issued_to_the_client_is_exchanged(browser, http, portal, alice):
    id_token = portal_id_token(browser, http, portal)

    response = exchange(http, portal, subject_token=id_token, subject_token_type=ID, resource=NOTES)

    assert response.status_code == 200, response.body
    issued = claims_of(json.loads(response.body)["access_token"])
    assert issued["sub"] == alice.pk and issued["aud"] == NOTES and issued["scope"] == "notes:read"
    assert issued["act"] == {"sub": portal[0].client_id} and "grant_id" not in issued
    assert issued["exp"] <= claims_of(id_token)["exp"]


def test_an_id_token_issued_to_another_client_is_refused(browser, http, portal, gateway, alice):
    id_token = portal_id_token(browser, http, portal)
    add_policy(gateway[0].client_id, subject_audiences=(portal[0].client_id,), resources=(NOTES,),
               scopes=("notes:read",))
    assert error_of(exchange(http, gateway, subject_token=id_token, subject_token_type=ID, resource=NOTES)) \
        == "invalid_request"


def test_an_id_token_of_a_disabled_user_is_refused(browser, http, portal, alice):
    from chalicelib.storage.users import set_user_disabled

    id_token = portal_id_token(browser, http, portal)
    assert set_user_disabled(alice.pk, True)
    assert error_of(exchange(http, portal, subject_token=id_token, subject_token_type=ID, resource=NOTES)) \
        == "invalid_request"


def test_an_access_token_is_not_accepted_as_an_id_token(http, user_tokens, portal):
    add_policy(portal[0].client_id, subject_audiences=(NOTES,), resources=(NOTES,), scopes=("notes:read",))
    response = exchange(http, portal, subject_token=user_tokens["access_token"], subject_token_type=ID,
                        resource=NOTES)
    assert error_of(response) == "invalid_request"


# Refusals -----------------------------------------------------------------------------------------

def test_a_target_no_policy_names_is_invalid_target(http, user_tokens, gateway):
    assert error_of(exchange(http, gateway, subject_token=user_tokens["access_token"], resource=NOTES)) \
        == "invalid_target"


def test_an_unregistered_target_is_invalid_target(http, user_tokens, gateway):
    response = exchange(http, gateway, subject_token=user_tokens["access_token"], audience="https://evil.example/api")
    assert error_of(response) == "invalid_target"


def test_a_target_is_required(http, user_tokens, gateway):
    assert error_of(exchange(http, gateway, subject_token=user_tokens["access_token"])) == "invalid_request"


def test_a_subject_token_of_an_audience_no_policy_takes_is_refused(http, user_tokens, aws, api_resources):
    other = new_service("Other")
    add_policy(other[0].client_id, subject_audiences=("https://other.example.com/api",), resources=(BILLING,))
    assert error_of(exchange(http, other, subject_token=user_tokens["access_token"], resource=BILLING)) \
        == "invalid_request"


@pytest.mark.parametrize("scope", ["billing:read notes:read", "notes:read", "billing:write"])
def test_scope_cannot_widen(http, user_tokens, gateway, scope):
    assert error_of(exchange(http, gateway, subject_token=user_tokens["access_token"], resource=BILLING,
                             scope=scope)) == "invalid_scope"


def test_scope_beyond_the_subject_token_is_refused_even_if_the_policy_allows_it(http, user_tokens, aws,
                                                                                 api_resources, browser, app):
    from chalicelib.storage.resources import register_resource

    register_resource(BILLING, "Billing API", ["billing:read", "billing:write"])
    wide = new_service("Wide")
    add_policy(wide[0].client_id, subject_audiences=(NOTES,), resources=(BILLING,),
               scopes=("billing:read", "billing:write"))
    response = exchange(http, wide, subject_token=user_tokens["access_token"], resource=BILLING,
                        scope="billing:write")
    assert error_of(response) == "invalid_scope"


def test_a_chain_deeper_than_the_policy_allows_is_refused(http, user_tokens, gateway):
    first = json.loads(exchange(http, gateway, subject_token=user_tokens["access_token"], resource=BILLING).body)
    ledger = new_service("Billing ledger")
    add_policy(ledger[0].client_id, subject_audiences=(BILLING,), resources=(BILLING,))  # max_depth 1

    response = exchange(http, ledger, subject_token=first["access_token"], resource=BILLING)

    assert error_of(response) == "invalid_request"
    assert "delegation chain" in json.loads(response.body)["error_description"]


def test_a_client_without_a_policy_is_unauthorized(http, user_tokens, aws, api_resources):
    assert error_of(exchange(http, new_service("No policy"), subject_token=user_tokens["access_token"],
                             resource=BILLING)) == "unauthorized_client"


def test_a_client_without_the_grant_is_unauthorized(http, user_tokens, service_client):
    add_policy(service_client[0].client_id, subject_audiences=(NOTES,), resources=(BILLING,))
    assert error_of(exchange(http, service_client, subject_token=user_tokens["access_token"], resource=BILLING)) \
        == "unauthorized_client"


def test_a_public_client_cannot_exchange(http, user_tokens, aws):
    """Registration refuses the grant to public clients; a stored one is refused at /token too."""
    from chalicelib.errors import InvalidClientMetadata
    from chalicelib.oauth.clients import create_client
    from chalicelib.storage.clients import Client, add_client

    with pytest.raises(InvalidClientMetadata):
        create_client(client_name="Public", client_type="public", redirect_uris=[REDIRECT_URI],
                      grant_types=["authorization_code", TOKEN_EXCHANGE])
    add_client(Client(client_id="public-exchanger", client_name="Public", client_type="public",
                      token_endpoint_auth_method="none", grant_types=(TOKEN_EXCHANGE,)))
    add_policy("public-exchanger", subject_audiences=(NOTES,), resources=(BILLING,))
    body = {"grant_type": TOKEN_EXCHANGE, "client_id": "public-exchanger", "subject_token_type": ACCESS,
            "subject_token": user_tokens["access_token"], "resource": BILLING}
    response = http.post("/token", body=urlencode(body).encode(), headers=FORM)
    assert error_of(response) == "unauthorized_client"


@pytest.mark.parametrize("params", [
    {"subject_token_type": JWT},
    {"subject_token_type": "urn:ietf:params:oauth:token-type:saml2"},
    {"subject_token_type": "urn:ietf:params:oauth:token-type:refresh_token"},
    {"subject_token_type": None},
    {"requested_token_type": "urn:ietf:params:oauth:token-type:refresh_token"},
    {"requested_token_type": JWT},
    {"actor_token_type": "urn:ietf:params:oauth:token-type:saml2", "actor_token": "x"},
    {"actor_token_type": ACCESS},
    {"actor_token": "x"},
], ids=["jwt-subject", "saml-subject", "refresh-subject", "no-subject-type", "refresh-requested", "jwt-requested",
        "saml-actor", "actor-type-without-token", "actor-token-without-type"])
def test_unsupported_or_incomplete_token_types_are_invalid_request(http, user_tokens, gateway, params):
    response = exchange(http, gateway, subject_token=user_tokens["access_token"], resource=BILLING, **params)
    assert error_of(response) == "invalid_request"


def test_a_revoked_subject_token_is_refused(http, user_tokens, gateway, app):
    assert http.post("/revoke", headers=FORM, body=urlencode(
        {"token": user_tokens["access_token"], "client_id": app.client_id}).encode()).status_code == 200
    response = exchange(http, gateway, subject_token=user_tokens["access_token"], resource=BILLING)
    assert error_of(response) == "invalid_request"
    assert "revoked" in json.loads(response.body)["error_description"]


@pytest.mark.parametrize("make", [
    lambda t: "not-a-token",
    lambda t: t["access_token"][:-4] + "AAAA",
    lambda t: t["id_token"],
    lambda t: t["refresh_token"],
], ids=["garbage", "bad-signature", "id-token-as-access-token", "refresh-token"])
def test_an_invalid_subject_token_is_refused(http, user_tokens, gateway, make):
    assert error_of(exchange(http, gateway, subject_token=make(user_tokens), resource=BILLING)) == "invalid_request"


def subject_with(claims: dict, **changes) -> str:
    """An access token we signed with changed claims (a trusted issuer may send may_act: RFC 8693 §4.4)."""
    from chalicelib.keys import keyring
    from chalicelib.tokens import jwt as our_jwt

    return our_jwt.encode({**claims, **changes}, keyring.current_signer(), typ="at+jwt")


def test_an_expired_subject_token_is_refused(http, user_tokens, gateway):
    claims = claims_of(user_tokens["access_token"])
    # Within the verifier's clock-skew leeway, yet expired: the result would be born expired.
    expired = subject_with(claims, exp=int(time.time()) - 5)
    assert error_of(exchange(http, gateway, subject_token=expired, resource=BILLING)) == "invalid_request"


def test_may_act_is_honoured(http, user_tokens, gateway):
    claims = claims_of(user_tokens["access_token"])
    someone_else = subject_with(claims, may_act={"sub": "another-agent"})
    this_client = subject_with(claims, may_act={"sub": gateway[0].client_id})
    malformed = subject_with(claims, may_act="anyone")

    assert error_of(exchange(http, gateway, subject_token=someone_else, resource=BILLING)) == "invalid_request"
    assert error_of(exchange(http, gateway, subject_token=malformed, resource=BILLING)) == "invalid_request"
    assert exchange(http, gateway, subject_token=this_client, resource=BILLING).status_code == 200


def test_an_actor_token_issued_to_another_client_is_refused(http, user_tokens, gateway):
    # The user's own token belongs to the Notes app: the gateway may not claim to be its holder.
    response = exchange(http, gateway, subject_token=user_tokens["access_token"], resource=BILLING,
                        actor_token=user_tokens["access_token"], actor_token_type=ACCESS)
    assert error_of(response) == "invalid_request"


def test_a_refused_exchange_issues_nothing_and_logs_no_exchange(http, user_tokens, gateway, idp_log):
    exchange(http, gateway, subject_token=user_tokens["access_token"], resource=NOTES)
    assert not [entry for entry in idp_log() if entry.get("event") == "token_exchange"]


# Keys instead of secrets: the agent names itself with a signed assertion (oauth/client_assertions.py) --

def test_an_agents_client_assertion_as_actor_token_puts_the_agent_in_the_chain(http, user_tokens, alice):
    """The gateway authenticates with private_key_jwt and presents the acting agent's own client
    assertion as actor_token (type jwt): the result's `act` names the agent, and the assertion is
    single-use like any client assertion, so a replayed one is refused."""
    from chalicelib.oauth.clients import create_client
    from tests.routes.test_private_key_jwt import ASSERTION_TYPE, assertion, private_key, public_jwk

    gateway_key, agent_key = private_key("ES256"), private_key("ES256")
    gateway, _ = create_client(client_name="Keyed gateway", grant_types=[TOKEN_EXCHANGE],
                               token_endpoint_auth_method="private_key_jwt", jwks={"keys": [public_jwk(gateway_key)]})
    add_policy(gateway.client_id, subject_audiences=(NOTES,), resources=(BILLING,), scopes=("billing:read",))
    agent, _ = create_client(client_name="Billing agent", grant_types=["client_credentials"],
                             token_endpoint_auth_method="private_key_jwt", jwks={"keys": [public_jwk(agent_key)]})
    actor = assertion(agent.client_id, agent_key)

    def trade(actor_token):
        body = {"grant_type": TOKEN_EXCHANGE, "subject_token_type": ACCESS, "subject_token": user_tokens["access_token"],
                "resource": BILLING, "actor_token": actor_token, "actor_token_type": JWT,
                "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion(gateway.client_id, gateway_key)}
        return http.post("/token", body=urlencode(body).encode(), headers=FORM)

    response = trade(actor)
    assert response.status_code == 200, response.body
    issued = claims_of(json.loads(response.body)["access_token"])
    assert issued["act"] == {"sub": agent.client_id} and issued["client_id"] == gateway.client_id
    assert issued["sub"] == alice.pk
    assert error_of(trade(actor)) == "invalid_request", "the agent's assertion works once"
