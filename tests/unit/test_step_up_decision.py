"""Step-up at the authorization endpoint (OIDC Core §3.1.2.1 acr_values and max_age, §5.5.1.1 the
essential acr claim, OpenID Connect Unmet Authentication Requirements 1.0) on the in-memory storage:
what /authorize validates, and what decide() does with a session that authenticated too weakly."""
from __future__ import annotations

import dataclasses
import json
from urllib.parse import parse_qs, urlsplit

import pytest

from chalicelib.config import Settings
from chalicelib.errors import RedirectableError
from chalicelib.hashing import sha256_hex
from chalicelib.log import now
from chalicelib.oauth import authorization, pkce, sessions
from chalicelib.oauth.acr import MFA_ACR, PASSWORD_ACR, PHR_ACR
from chalicelib.storage import codes
from chalicelib.storage.authorization_requests import PendingRequest
from chalicelib.storage.clients import Client
from chalicelib.storage.sessions import Session

SETTINGS = Settings(stage="local", issuer="http://localhost:8000", require_verified_email=False)
SUB, CLIENT_ID, COOKIE = "u_alice", "client-1", "the session cookie value"
SESSION = sha256_hex(COOKIE)
REDIRECT = "https://app.example.com/cb"
TOTP_AMR = ("pwd", "otp", "mfa")


def pending(**overrides) -> PendingRequest:
    at = now()
    values = dict(request_id="request-1", client_id=CLIENT_ID, redirect_uri=REDIRECT, scopes=("openid", "email"),
                  state="state-1", nonce="nonce-1", code_challenge=pkce.s256("v" * 43), code_challenge_method="S256",
                  created_at=at, expires_at=at + SETTINGS.request_ttl)
    return PendingRequest(**{**values, **overrides})


@pytest.fixture
def memory(memory_storage):
    """Alice signed in with her password 5 s ago, consent remembered, the request stored."""
    at = now()
    memory_storage.add_user(SUB)
    memory_storage.add_session(SESSION, SUB, auth_time=at - 5, expires_at=at + 600,
                               user_claims={"email": "alice@example.com", "email_verified": True})
    authorization.remember_consent(SUB, CLIENT_ID, authorization.consent_wanted(pending(), SETTINGS))
    authorization.store(pending())
    memory_storage.calls.clear()
    return memory_storage


def session(memory, *, factors=(), amr=None) -> Session:
    """Alice's session as /authorize loads it, with the factor kinds she has and the amr it achieved."""
    if amr is not None:
        memory.sessions[SESSION]["amr"] = tuple(amr)
    # The user has them too (the user item names each factor; kinds are what precedes "#").
    memory.users[SUB]["factors"] = {f"{kind}#cred" if kind == "passkey" else kind for kind in factors} or None
    loaded = sessions.load(COOKIE, check_user=False)
    memory.calls.clear()
    return dataclasses.replace(loaded, factors=tuple(factors))


def decide(the_session, request=None, *, settings=SETTINGS, just_signed_in=False):
    return authorization.decide(request or pending(), the_session, just_signed_in=just_signed_in, settings=settings)


def error_of(the_session, request=None, **kwargs) -> str:
    with pytest.raises(RedirectableError) as raised:
        decide(the_session, request, **kwargs)
    assert (raised.value.redirect_uri, raised.value.state) == (REDIRECT, "state-1")
    return raised.value.oauth_error.error


def issued_code(memory, decision) -> codes.Code:
    assert decision.action == "redirect", decision.action
    code = parse_qs(urlsplit(decision.location).query)["code"][0]
    return codes.consume(code, CLIENT_ID, now())


def nothing_issued(memory) -> bool:
    return memory.grants == {} and memory.codes == {}


# validation -------------------------------------------------------------------------------------

def client(**overrides) -> Client:
    return Client(client_id=CLIENT_ID, client_name="App", client_type="confidential",
                  token_endpoint_auth_method="client_secret_basic", redirect_uris=(REDIRECT,),
                  grant_types=("authorization_code",), response_types=("code",), scopes=("openid", "email"),
                  **overrides)


def validated(**params) -> PendingRequest:
    base = {"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": REDIRECT, "scope": "openid email",
            "state": "state-1", "code_challenge": pkce.s256("v" * 43), "code_challenge_method": "S256"}
    the_client = client(**params.pop("_client", {}))
    return authorization.validate({**base, **params}, the_client, REDIRECT, SETTINGS)


def validation_error(**params) -> str:
    with pytest.raises(RedirectableError) as raised:
        validated(**params)
    assert raised.value.redirect_uri == REDIRECT
    return raised.value.oauth_error.error


def test_acr_values_keep_the_known_values_in_request_order(memory_storage):
    request = validated(acr_values=f"urn:other {PHR_ACR} {MFA_ACR} {PHR_ACR}")
    assert request.acr_values == (PHR_ACR, MFA_ACR) and request.essential_acr == ()


@pytest.mark.parametrize("claims, voluntary, essential", [
    ({"id_token": {"acr": {"essential": True, "values": [MFA_ACR, "urn:other"]}}}, (), (MFA_ACR,)),
    ({"userinfo": {"acr": {"essential": True, "value": PHR_ACR}}}, (), (PHR_ACR,)),
    ({"id_token": {"acr": {"values": [MFA_ACR]}}}, (MFA_ACR,), ()),  # not essential: voluntary
    ({"id_token": {"acr": {"essential": True}}}, (), ()),  # only asks for the claim, which is always there
    ({"id_token": {"acr": None, "email": {"essential": True}}}, (), ()),
    ({"id_token": {"email": None}, "userinfo": {"name": None}}, (), ()),
    ({}, (), ()),
    ("", (), ()),  # RFC 6749 §3.1: sent without a value, treated as omitted
])
def test_the_claims_parameter_yields_voluntary_and_essential_acr(memory_storage, claims, voluntary, essential):
    request = validated(claims=claims if isinstance(claims, str) else json.dumps(claims))
    assert (request.acr_values, request.essential_acr) == (voluntary, essential)


@pytest.mark.parametrize("claims", [
    "not json", "[1]", '"acr"', "null", "{", '{"id_token": []}', '{"id_token": {"acr": "phr"}}',
    '{"id_token": {"acr": {"essential": "yes"}}}', '{"id_token": {"acr": {"values": "phr"}}}',
    '{"id_token": {"acr": {"values": [1]}}}', '{"userinfo": {"acr": {"value": ["phr"]}}}',
    '{"id_token": {"email": true}}',
    "[" * 1020 + "]" * 1020,  # within the length bound, past the JSON parser's nesting limit
], ids=lambda c: c[:30])
def test_a_malformed_claims_parameter_is_invalid_request(memory_storage, claims):
    assert validation_error(claims=claims) == "invalid_request"


def test_an_overlong_claims_parameter_is_invalid_request(memory_storage):
    claims = json.dumps({"id_token": {"acr": {"values": ["x" * 3000]}}})
    assert validation_error(claims=claims) == "invalid_request"


def test_essential_acr_values_none_of_which_we_know_are_unmet(memory_storage):
    claims = json.dumps({"id_token": {"acr": {"essential": True, "values": ["urn:gold", "urn:silver"]}}})
    assert validation_error(claims=claims) == "unmet_authentication_requirements"


def test_the_clients_require_mfa_travels_with_the_request(memory_storage):
    assert validated(_client={"require_mfa": True}).client_requires_mfa is True
    assert validated().client_requires_mfa is False


# decide -----------------------------------------------------------------------------------------

def test_a_password_session_of_a_user_with_totp_asked_for_mfa_goes_to_the_mfa_page(memory):
    decision = decide(session(memory, factors=("totp",)), pending(acr_values=(MFA_ACR,)))

    assert decision.action == "mfa" and nothing_issued(memory)
    assert memory.called() == []  # decided from the session alone


def test_prompt_none_with_a_step_up_needed_is_interaction_required(memory):
    request = pending(acr_values=(MFA_ACR,), prompt=("none",))
    assert error_of(session(memory, factors=("totp",)), request) == "interaction_required"
    assert nothing_issued(memory)


def test_a_stepped_up_session_gets_a_code_carrying_its_amr_and_the_acr_asked_for(memory):
    decision = decide(session(memory, factors=("passkey",), amr=("hwk", "user", "mfa")),
                      pending(acr_values=(PASSWORD_ACR, MFA_ACR)))

    code = issued_code(memory, decision)
    assert (code.amr, code.acr) == (("hwk", "user", "mfa"), MFA_ACR)
    grant = memory.grants[(SUB, code.grant_id)]
    assert (grant["amr"], grant["acr"]) == (("hwk", "user", "mfa"), MFA_ACR)


def test_without_acr_values_the_code_carries_the_acr_the_session_achieved(memory):
    code = issued_code(memory, decide(session(memory, amr=TOTP_AMR)))
    assert (code.amr, code.acr) == (TOTP_AMR, MFA_ACR)


def test_voluntary_acr_values_out_of_the_users_reach_still_issue_a_code_that_says_password(memory):
    code = issued_code(memory, decide(session(memory), pending(acr_values=(MFA_ACR,))))
    assert code.acr == PASSWORD_ACR


def test_an_essential_acr_out_of_the_users_reach_is_unmet(memory):
    request = pending(essential_acr=(PHR_ACR,))
    assert error_of(session(memory, factors=("totp",)), request) == "unmet_authentication_requirements"
    assert nothing_issued(memory)


def test_an_essential_acr_in_the_users_reach_sends_them_to_the_mfa_page(memory):
    assert decide(session(memory, factors=("passkey",)), pending(essential_acr=(PHR_ACR,))).action == "mfa"


@pytest.mark.parametrize("policy, client_requires, action", [
    ("required", False, "enroll"),
    ("optional", True, "enroll"),
    ("optional", False, "redirect"),
    ("off", True, "redirect"),  # off: second factors are never asked for
])
def test_mfa_policy_and_the_clients_require_mfa(memory, policy, client_requires, action):
    settings = dataclasses.replace(SETTINGS, mfa_policy=policy)
    decision = decide(session(memory), pending(client_requires_mfa=client_requires), settings=settings)
    assert decision.action == action


def test_required_mfa_asks_a_user_with_a_factor_for_it_and_prompt_none_cannot(memory):
    settings = dataclasses.replace(SETTINGS, mfa_policy="required")
    assert decide(session(memory, factors=("totp",)), settings=settings).action == "mfa"
    assert error_of(session(memory), pending(prompt=("none",)), settings=settings) == "interaction_required"


def test_with_mfa_off_acr_values_are_not_forced_and_an_essential_mfa_is_unmet(memory):
    settings = dataclasses.replace(SETTINGS, mfa_policy="off")
    code = issued_code(memory, decide(session(memory, factors=("totp",)), pending(acr_values=(MFA_ACR,)),
                                      settings=settings))
    assert code.acr == PASSWORD_ACR
    assert error_of(session(memory, factors=("totp",)), pending(essential_acr=(MFA_ACR,)), settings=settings) \
        == "unmet_authentication_requirements"


# max_age=0 (OIDC Core errata: the same as prompt=login) ---------------------------------------------

def test_max_age_0_is_not_met_by_a_session_that_signed_in_in_the_same_second(memory):
    """Attack: whole seconds compared with `>` made a session that signed in earlier in the same
    second look fresh (elapsed 0 is not > 0), so an app's max_age=0 got a code without a sign-in."""
    memory.sessions[SESSION]["auth_time"] = now()

    assert decide(session(memory), pending(max_age=0)).action == "login"
    assert nothing_issued(memory)
    assert error_of(session(memory), pending(max_age=0, prompt=("none",))) == "login_required"


def test_max_age_0_is_met_by_the_sign_in_for_this_request(memory):
    memory.sessions[SESSION]["auth_time"] = now() - 3  # a slow sign-in: still this request's own
    assert decide(session(memory), pending(max_age=0), just_signed_in=True).action == "redirect"


@pytest.mark.parametrize("fresh", [{"max_age": 0}, {"prompt": ("login",)}], ids=["max_age=0", "prompt=login"])
def test_the_sign_in_recorded_on_the_request_still_counts_after_a_step_up(memory, fresh):
    """/mfa's step-up comes back to decide() with the session that signed in for the request (not
    `just_signed_in`): it must not be sent to sign in again, and no other session may pass."""
    memory.sessions[SESSION]["auth_time"] = now()
    own = pending(**fresh, login_session_hash=SESSION)
    assert decide(session(memory, amr=TOTP_AMR), own).action == "redirect"
    assert decide(session(memory), pending(**fresh, login_session_hash=sha256_hex("another"))).action == "login"


def test_the_consent_page_needs_the_sign_in_of_this_request_for_max_age_0(memory):
    own = session(memory)
    assert not authorization.may_consent(pending(max_age=0), own)
    assert authorization.may_consent(pending(max_age=0, login_session_hash=SESSION), own)


@pytest.mark.parametrize("request_, expected", [
    (pending(max_age=1), "login"),
    (pending(acr_values=(MFA_ACR,)), "mfa"),
    (pending(prompt=("login",)), "login"),
    (pending(acr_values=(MFA_ACR,), max_age=60), "mfa"),
    (pending(max_age=60, acr_values=(PASSWORD_ACR,)), None),
], ids=["max_age", "acr_values", "prompt=login", "both", "met"])
def test_the_consent_page_alone_never_satisfies_max_age_or_acr_values(memory, request_, expected):
    assert authorization.consent_gate(request_, session(memory, factors=("totp",)), SETTINGS) == expected


def test_the_consent_page_ends_a_request_whose_essential_acr_cannot_be_met(memory):
    with pytest.raises(RedirectableError) as raised:
        authorization.consent_gate(pending(essential_acr=(PHR_ACR,)), session(memory, factors=("totp",)), SETTINGS)
    assert raised.value.oauth_error.error == "unmet_authentication_requirements"
