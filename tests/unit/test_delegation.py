"""Delegation rules of token exchange (RFC 8693 §4.1, §4.4; chalicelib/oauth/delegation.py), the
verifier's view of the chain, and the handler's hand-offs (ID-JAG, client-assertion actors)."""
from __future__ import annotations

import types

import pytest

from chalicelib.errors import InvalidRequest, InvalidScope, InvalidTarget, InvalidToken
from chalicelib.oauth import delegation
from chalicelib.oauth.exchange_policy import ExchangePolicy
from chalicelib.verifier import MAX_ACTOR_CHAIN, actor_chain

NOTES, BILLING = "https://notes.example.com/api", "https://billing.example.com/api"


def nested(*subs: str) -> dict | None:
    act = None
    for sub in reversed(subs):
        act = {"sub": sub, **({"act": act} if act else {})}
    return act


def test_the_new_actor_goes_outside_and_the_subject_chain_moves_inside():
    subject = {"sub": "u_alice", "act": {"sub": "gateway"}}
    assert delegation.new_act({"sub": "ledger"}, subject) == {"sub": "ledger", "act": {"sub": "gateway"}}
    assert delegation.new_act({"sub": "gateway"}, {"sub": "u_alice"}) == {"sub": "gateway"}


def test_only_identity_claims_of_the_actor_are_recorded():
    assert delegation.new_act({"sub": "a", "exp": 1, "act": {"sub": "x"}, "iss": "https://i"}, {}) == {
        "sub": "a", "iss": "https://i"}


def test_the_chain_reads_current_actor_first():
    assert actor_chain({"act": nested("c", "b", "a")}) == [{"sub": "c"}, {"sub": "b"}, {"sub": "a"}]
    assert actor_chain({"sub": "u_alice"}) == []


@pytest.mark.parametrize("act", ["gateway", {"iss": "x"}, {"sub": 1}, nested(*map(str, range(MAX_ACTOR_CHAIN + 1)))],
                         ids=["not-an-object", "no-sub", "sub-not-a-string", "too-deep"])
def test_a_malformed_chain_is_an_invalid_token(act):
    with pytest.raises(InvalidToken):
        actor_chain({"act": act})


def test_the_result_depth_counts_the_new_actor_and_refuses_unreadable_chains():
    assert delegation.result_depth({}) == 1
    assert delegation.result_depth({"act": nested("b", "a")}) == 3
    with pytest.raises(InvalidRequest):
        delegation.result_depth({"act": "gateway"})


def test_no_policy_reaches_beyond_max_depth():
    assert delegation.within_depth(2, 2) and not delegation.within_depth(3, 2)
    assert not delegation.within_depth(delegation.MAX_DEPTH + 1, 1000)


@pytest.mark.parametrize("may_act, allowed", [
    (None, True),
    ({"sub": "gateway"}, True),
    ({"sub": "gateway", "iss": "https://login.example.com"}, True),
    ({"sub": "other"}, False),
    ({"sub": "gateway", "iss": "https://elsewhere.example"}, False),
    ({}, False),
    ({"exp": 1}, False),
    ("gateway", False),
])
def test_may_act_names_who_may_act(may_act, allowed):
    subject = {"sub": "u_alice", **({"may_act": may_act} if may_act is not None else {})}
    identity = {"iss": "https://login.example.com", "sub": "gateway", "client_id": "gateway"}
    assert delegation.may_act_allows(subject, identity) is allowed


def test_scope_narrows_within_the_subject_token_and_the_policy():
    assert delegation.narrowed_scopes([], ["a", "b", "c"], ("a", "b")) == ["a", "b"]
    assert delegation.narrowed_scopes(["b"], ["a", "b"], ()) == ["b"]
    assert delegation.narrowed_scopes([], None, ("a",)) == ["a"], "an ID token carries no scope: the policy's"
    for requested, subject, policy in ((["c"], ["a", "b"], ()), (["b"], ["a", "b"], ("a",)), (["a"], None, ("b",))):
        with pytest.raises(InvalidScope):
            delegation.narrowed_scopes(requested, subject, policy)
    with pytest.raises(InvalidScope):
        delegation.narrowed_scopes([], ["a"], ("b",))
    with pytest.raises(InvalidScope):
        delegation.narrowed_scopes([], None, ())


def test_a_policy_admits_by_subject_audience_then_by_every_target():
    notes_to_billing = ExchangePolicy("p1", "access_token", resources=(BILLING,), subject_audiences=(NOTES,))
    assert delegation.admitting([notes_to_billing], [NOTES, "x"], [BILLING]) == [notes_to_billing]
    with pytest.raises(InvalidRequest):
        delegation.admitting([notes_to_billing], [BILLING], [BILLING])
    with pytest.raises(InvalidTarget):
        delegation.admitting([notes_to_billing], [NOTES], [BILLING, NOTES])


def test_the_result_expires_with_its_subject_token():
    from chalicelib.tokens.claims import access_token_claims

    claims = access_token_claims(issuer="https://i", sub="s", client_id="c", audience=[BILLING], scopes=["a"],
                                 jti="j", iat=1000, ttl=600, act={"sub": "c"},
                                 expires_at=delegation.expires_at({"exp": 1300}))
    assert claims["exp"] == 1300 and claims["act"] == {"sub": "c"}
    assert access_token_claims(issuer="https://i", sub="s", client_id="c", audience=[BILLING], scopes=["a"],
                               jti="j", iat=1000, ttl=600, expires_at=5000)["exp"] == 1600


# The handler's hand-offs --------------------------------------------------------------------------

CLIENT = types.SimpleNamespace(client_id="gateway", client_type="confidential", exchange_policies=None)


def test_requested_token_type_id_jag_is_handed_to_the_id_jag_module(monkeypatch):
    from chalicelib.grants import token_exchange
    from chalicelib.oauth import id_jag

    calls = []
    monkeypatch.setattr(id_jag, "exchange",
                        lambda form, client, settings: calls.append((form, client, settings)) or {"access_token": "j"})
    form = {"requested_token_type": token_exchange.ID_JAG_TYPE}
    assert token_exchange.handle(form, CLIENT, "settings") == {"access_token": "j"}
    assert calls == [(form, CLIENT, "settings")]


def test_an_actor_assertion_names_the_asserting_client(monkeypatch):
    from chalicelib.errors import InvalidClient
    from chalicelib.grants import token_exchange
    from chalicelib.oauth import client_assertions

    def verify_actor_assertion(assertion, settings):
        if assertion != "good":
            raise InvalidClient("bad assertion")
        return types.SimpleNamespace(client_id="agent-7")

    monkeypatch.setattr(client_assertions, "verify_actor_assertion", verify_actor_assertion)
    settings = types.SimpleNamespace(issuer="https://login.example.com")
    form = {"actor_token": "good", "actor_token_type": token_exchange.JWT_TYPE}
    assert token_exchange._actor(form, CLIENT, settings) == (
        {"sub": "agent-7"}, {"iss": "https://login.example.com", "sub": "agent-7", "client_id": "agent-7"})
    with pytest.raises(InvalidRequest):
        token_exchange._actor({**form, "actor_token": "forged"}, CLIENT, settings)
