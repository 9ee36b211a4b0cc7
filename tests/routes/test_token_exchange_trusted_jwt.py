"""Token exchange (RFC 8693) with a subject token of type jwt from an issuer the operator trusts for
subject tokens (a connection with `trust` subject-token; chalicelib/federation/trusted_issuers.py):
another trust domain's token about a user we know, exchanged by a service of ours for a token to one
of our APIs. Each refusal is shown beside the exchange that passes without its condition."""
from __future__ import annotations

import json

import pytest

from tests.routes.test_jwt_bearer_id_jag import IDP, NOTES, UPSTREAM_SUB, Idp, link, trusted_connection
from tests.routes.test_token_exchange import JWT, add_policy, claims_of, error_of, exchange, new_service
from tests.routes.flow import ISSUER


@pytest.fixture
def idp(keys):
    idp = Idp()
    idp.publish()
    return idp


@pytest.fixture
def service(aws, api_resources):
    """Our service: may trade the trusted issuer's tokens meant for us for tokens to Notes."""
    service = new_service("Importer")
    add_policy(service[0].client_id, subject_audiences=(ISSUER,), resources=(NOTES,), scopes=("notes:read",))
    return service


def upstream_token(idp, *, typ="JWT", **overrides):
    """The trusted issuer's JWT about its user UPSTREAM_SUB, meant for us (an ID token's typ)."""
    claims = idp.claims(None, **{"iss": IDP, "sub": UPSTREAM_SUB, "aud": ISSUER, "resource": None, "scope": None,
                                 **overrides})
    return idp.sign(claims, typ=typ)


def test_a_trusted_issuers_jwt_becomes_a_token_for_the_linked_user(http, idp, service, alice):
    trusted_connection(trust=("subject-token",))
    link(alice.pk)
    response = exchange(http, service, subject_token=upstream_token(idp), subject_token_type=JWT, resource=NOTES)
    assert response.status_code == 200, response.body
    issued = claims_of(json.loads(response.body)["access_token"])
    assert issued["sub"] == alice.pk and issued["aud"] == NOTES and issued["scope"] == "notes:read"
    assert issued["act"] == {"sub": service[0].client_id}
    assert "grant_id" not in issued


def test_an_issuer_trusted_only_for_id_jags_is_not_trusted_for_subject_tokens(http, idp, service, alice):
    trusted_connection(trust=("id-jag",))
    link(alice.pk)
    response = exchange(http, service, subject_token=upstream_token(idp), subject_token_type=JWT, resource=NOTES)
    assert error_of(response) == "invalid_request"
    assert "trusted issuer" in json.loads(response.body)["error_description"]


def test_a_token_meant_for_another_party_is_refused(http, idp, service, alice):
    trusted_connection(trust=("subject-token",))
    link(alice.pk)
    response = exchange(http, service, subject_token=upstream_token(idp, aud="https://elsewhere.example.com"),
                        subject_token_type=JWT, resource=NOTES)
    assert error_of(response) == "invalid_request"
    assert "not meant for this server" in json.loads(response.body)["error_description"]


def test_a_subject_nobody_linked_is_refused(http, idp, service, alice):
    trusted_connection(trust=("subject-token",))
    response = exchange(http, service, subject_token=upstream_token(idp), subject_token_type=JWT, resource=NOTES)
    assert error_of(response) == "invalid_request"
    assert "not known here" in json.loads(response.body)["error_description"]


def test_an_id_jag_does_not_pass_for_a_subject_token(http, idp, service, alice):
    """RFC 8725 §3.11: the typ tells kinds of JWT apart; an ID-JAG is for the jwt-bearer grant."""
    trusted_connection(trust=("subject-token", "id-jag"))
    link(alice.pk)
    response = exchange(http, service, subject_token=upstream_token(idp, typ="oauth-id-jag+jwt"),
                        subject_token_type=JWT, resource=NOTES)
    assert error_of(response) == "invalid_request"


def test_an_email_the_issuer_does_not_assert_verified_maps_to_nobody(http, idp, service):
    """Review attack: subject_mapping email must only trust an address the issuer says it verified
    (as a sign-in through the connection does: federation/sign_in.decide). An issuer that leaves
    email_verified out (Entra puts user-typed addresses in `email`) or says "false" as a string must
    not hand us the account that holds the address."""
    from chalicelib.storage.users import create_user, mark_email_verified

    bob = create_user("bob@acme.test", "correct horse battery")
    mark_email_verified(bob.pk, "bob@acme.test", 0)
    trusted_connection(trust=("subject-token",), subject_mapping="email", trusted_email_domains=("acme.test",))
    for unverified in ({}, {"email_verified": "false"}, {"email_verified": False}, {"email_verified": 1}):
        response = exchange(http, service, subject_token=upstream_token(idp, email="bob@acme.test", **unverified),
                            subject_token_type=JWT, resource=NOTES)
        assert error_of(response) == "invalid_request", unverified
        assert "not known here" in json.loads(response.body)["error_description"]
    for verified in (True, "true"):
        response = exchange(http, service, subject_token=upstream_token(idp, email="bob@acme.test",
                                                                        email_verified=verified),
                            subject_token_type=JWT, resource=NOTES)
        assert response.status_code == 200, response.body
        assert claims_of(json.loads(response.body)["access_token"])["sub"] == bob.pk


def test_may_act_in_a_trusted_issuers_token_is_honoured(http, idp, service, alice):
    """Review attack: RFC 8693 §4.4: a subject token naming who may act for it restricts the actor.
    A trusted issuer's token saying only another agent may act must not be exchanged by this service
    (dropping may_act with the rest of the upstream claims widened what the token allows)."""
    trusted_connection(trust=("subject-token",))
    link(alice.pk)
    response = exchange(http, service, subject_token=upstream_token(idp, may_act={"sub": "another-agent"}),
                        subject_token_type=JWT, resource=NOTES)
    assert error_of(response) == "invalid_request"
    assert "may_act" in json.loads(response.body)["error_description"]
    # The control: naming this service (our issuer, its client_id) lets it act.
    allowed = {"iss": ISSUER, "sub": service[0].client_id}
    response = exchange(http, service, subject_token=upstream_token(idp, may_act=allowed),
                        subject_token_type=JWT, resource=NOTES)
    assert response.status_code == 200, response.body


def test_a_client_restricted_to_other_connections_cannot_bring_in_the_issuers_users(http, idp, service, alice):
    """Review attack: a client's `connections` restriction (federation/home_realm) holds for the
    trusted issuer's subject tokens as it does for its ID-JAGs (grants/jwt_bearer.py) and sign-ins."""
    from chalicelib.storage.clients import forget_cached_clients, set_client_connections

    trusted_connection(trust=("subject-token",))
    link(alice.pk)
    assert set_client_connections(service[0].client_id, ("password",))
    forget_cached_clients()
    response = exchange(http, service, subject_token=upstream_token(idp), subject_token_type=JWT, resource=NOTES)
    assert error_of(response) == "invalid_request"
    assert set_client_connections(service[0].client_id, ("acme",))
    forget_cached_clients()
    response = exchange(http, service, subject_token=upstream_token(idp), subject_token_type=JWT, resource=NOTES)
    assert response.status_code == 200, response.body
