"""The pure parts of logout: sid, the logout token's claims (OpenID Connect Back-Channel Logout 1.0
§2.4), who is told what after a sign-out, and state on the post-logout redirect (RP-Initiated
Logout 1.0 §3). No HTTP, no AWS."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from chalicelib.oauth import backchannel_logout as bcl
from chalicelib.oauth.rp_initiated_logout import with_state
from chalicelib.storage.grants import SignedOutGrant
from chalicelib.storage.sessions import Session

AT = 1_700_000_000


@dataclass(frozen=True)
class FakeClient:
    client_id: str
    backchannel_logout_uri: str | None = "https://rp.example.com/bc"
    backchannel_logout_session_required: bool = False
    disabled: bool = False


def grant(grant_id, client_id, session_hash="h1", status="revoked", revoked_at=AT, expires_at=AT + 999):
    return SignedOutGrant(grant_id, client_id, session_hash, status, expires_at, revoked_at)


def test_sid_is_a_stable_opaque_function_of_the_session_key():
    assert bcl.session_id("a" * 64) == bcl.session_id("a" * 64) != bcl.session_id("b" * 64)
    assert len(bcl.session_id("a" * 64)) == 32 and "a" * 16 not in bcl.session_id("a" * 64)


def test_a_logout_token_has_the_events_claim_and_never_a_nonce():
    claims = bcl.logout_token_claims(issuer="https://idp", client_id="c", iat=AT, ttl=120, jti="j", sid="s")
    assert claims == {"iss": "https://idp", "aud": "c", "iat": AT, "exp": AT + 120, "jti": "j", "sid": "s",
                      "events": {"http://schemas.openid.net/event/backchannel-logout": {}}}
    with pytest.raises(ValueError):
        bcl.logout_token_claims(issuer="https://idp", client_id="c", iat=AT, ttl=120, jti="j")


def test_a_session_without_grants_makes_no_message():
    session = Session(session_hash="h", sub="u", auth_time=AT, expires_at=AT + 1)
    assert bcl.session_ended(session) is None
    message = bcl.session_ended(Session(session_hash="h", sub="u", auth_time=AT, expires_at=AT + 1,
                                        grant_ids=frozenset({"g2", "g1"})))
    assert message == {"kind": "session", "sub": "u", "sid": bcl.session_id("h"), "grant_ids": ["g1", "g2"]}


def test_a_session_message_reaches_the_clients_of_its_grants_that_asked_for_it():
    message = {"kind": "session", "sub": "u", "sid": "S", "grant_ids": ["g1", "g2", "g3"]}
    grants = [grant("g1", "a"), grant("g2", "b"), grant("g3", "a"), grant("g4", "c")]
    clients = {"a": FakeClient("a"), "b": FakeClient("b", backchannel_logout_uri=None), "c": FakeClient("c")}
    assert bcl.deliveries(message, grants, clients, at=AT) == [bcl.Delivery("a", "u", "S")]


def test_a_user_message_reaches_grants_revoked_since_it_began_with_sub_alone():
    message = bcl.user_signed_out("u", AT)
    grants = [grant("g1", "a"), grant("g2", "b", revoked_at=AT - 3600),  # revoked long before: not this sign-out
              grant("g3", "c", status="active", revoked_at=None),  # still active (a race): told too
              grant("g4", "d", revoked_at=AT + 1), grant("g5", "e", revoked_at=AT + 1)]
    clients = {c: FakeClient(c) for c in "abcd"} | {"e": FakeClient("e", disabled=True)}
    assert bcl.deliveries(message, grants, clients, at=AT) == [
        bcl.Delivery("a", "u", None), bcl.Delivery("c", "u", None), bcl.Delivery("d", "u", None)]


def test_a_client_that_requires_sid_gets_one_token_per_session_and_none_without_one():
    message = bcl.user_signed_out("u", AT)
    grants = [grant("g1", "a", "h1"), grant("g2", "a", "h2"), grant("g3", "a", "h1"), grant("g4", "b", None)]
    clients = {c: FakeClient(c, backchannel_logout_session_required=True) for c in "ab"}
    assert sorted(bcl.deliveries(message, grants, clients, at=AT), key=lambda d: d.sid) == sorted(
        [bcl.Delivery("a", "u", bcl.session_id("h1")), bcl.Delivery("a", "u", bcl.session_id("h2"))],
        key=lambda d: d.sid)


@pytest.mark.parametrize("uri, state, expected", [
    ("https://app/bye", None, "https://app/bye"),
    ("https://app/bye", "s 1&x", "https://app/bye?state=s+1%26x"),
    ("https://app/bye?a=1", "s", "https://app/bye?a=1&state=s"),
])
def test_state_goes_back_as_a_query_parameter(uri, state, expected):
    assert with_state(uri, state) == expected
