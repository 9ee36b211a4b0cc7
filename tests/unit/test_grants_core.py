"""The token endpoint's grants (RFC 6749 §4.1.3, §6; OAuth 2.1 §4.3.1; RFC 9700 §4.14.2) and token
revocation (RFC 7009) on the in-memory storage: no moto, no HTTP, no AWS. Each test names one
behaviour of the core and how many storage calls it costs; tests/storage/test_fake_matches_dynamodb.py
keeps the fake's answers DynamoDB's."""
from __future__ import annotations

import dataclasses

import jwt
import pytest

from chalicelib.config import Settings
from chalicelib.errors import InvalidGrant, InvalidRequest, InvalidScope, InvalidTarget, UnauthorizedClient
from chalicelib.grants import authorization_code, refresh_token
from chalicelib.hashing import sha256_hex
from chalicelib.log import now
from chalicelib.oauth import access_tokens, pkce, refresh_tokens, token_management
from chalicelib.storage import codes
from chalicelib.storage.clients import Client
from chalicelib.storage.codes import Code
from chalicelib.storage.grants import Grant

SETTINGS = Settings(stage="local", issuer="http://localhost:8000")
GRACE = dataclasses.replace(SETTINGS, refresh_grace_seconds=30)
SUB, GRANT, SESSION = "u_alice", "grant-1", sha256_hex("session cookie")
REDIRECT = "https://app.example.com/cb"
VERIFIER = "a-code-verifier-of-the-client-with-43-or-more-chars"
NOTES, BILLING = "https://notes.example.com/api", "https://billing.example.com/api"
CLIENT = Client(client_id="client-1", client_name="Agent", client_type="public", token_endpoint_auth_method="none",
                redirect_uris=(REDIRECT,), grant_types=("authorization_code", "refresh_token"),
                scopes=("openid", "email", "offline_access", "notes:read", "billing:read"))
OTHER_CLIENT = dataclasses.replace(CLIENT, client_id="client-2")
USER_CLAIMS = {"name": "Alice", "email": "alice@example.com", "email_verified": True}


def issued_code(memory, *, scopes=("openid", "email", "offline_access"), resources=(), code="the code"):
    """A code as /authorize issues it (through codes.issue, so the fake's transaction writes it)."""
    at = now()
    memory.add_user(SUB)
    memory.add_session(SESSION, SUB, auth_time=at - 5, expires_at=at + 600)
    grant = Grant(sub=SUB, grant_id=GRANT, client_id=CLIENT.client_id, scopes=scopes, resources=resources,
                  created_at=at, expires_at=at + SETTINGS.refresh_token_absolute_ttl, auth_time=at - 5,
                  session_hash=SESSION, user_claims=USER_CLAIMS)
    record = Code(code_hash=sha256_hex(code), client_id=CLIENT.client_id, redirect_uri=REDIRECT,
                  code_challenge=pkce.s256(VERIFIER), code_challenge_method="S256", scopes=scopes,
                  resources=resources, sub=SUB, auth_time=at - 5, grant_id=GRANT, created_at=at,
                  expires_at=at + SETTINGS.code_ttl, nonce="nonce-1", session_hash=SESSION, user_claims=USER_CLAIMS)
    assert codes.issue(record, grant, session_hash=SESSION, session_generation=0, consent_pairs=None,
                       request_id=None, at=at) is None
    memory.calls.clear()
    return code


def redeem(code, client=CLIENT, **form):
    return authorization_code.handle({"code": code, "redirect_uri": REDIRECT, "code_verifier": VERIFIER, **form},
                                     client, SETTINGS)


def refresh(token, client=CLIENT, settings=SETTINGS, **form):
    return refresh_token.handle({"refresh_token": token, **form}, client, settings)


def first_refresh_token(memory, **kwargs) -> str:
    token = redeem(issued_code(memory, **kwargs))["refresh_token"]
    memory.calls.clear()
    return token


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def family(memory) -> dict:
    return memory.grants[(SUB, GRANT)]


@pytest.fixture
def resources(memory_storage):
    memory_storage.add_resource(NOTES, "Notes", ("notes:read",))
    memory_storage.add_resource(BILLING, "Billing", ("billing:read",))


# grant_type=authorization_code ---------------------------------------------------------------------

def test_redeeming_a_code_issues_tokens_and_starts_the_family_in_two_storage_calls(memory_storage):
    tokens = redeem(issued_code(memory_storage))

    assert memory_storage.called() == ["codes.consume", "grants.start_family"]
    grant = family(memory_storage)
    assert grant["token_hash"] == sha256_hex(tokens["refresh_token"])
    assert grant["token_expires_at"] == grant["last_used_at"] + SETTINGS.refresh_token_idle_ttl
    assert refresh_tokens.parse(tokens["refresh_token"]) == (SUB, GRANT, 0)
    access = access_tokens.verify(tokens["access_token"], SETTINGS, audience=SETTINGS.default_audience)
    assert (access["sub"], access["grant_id"], access["scope"]) == (SUB, GRANT, "openid email offline_access")
    id_token = claims_of(tokens["id_token"])
    assert (id_token["nonce"], id_token["email"], id_token["aud"]) == ("nonce-1", "alice@example.com", "client-1")


def test_an_openid_code_without_offline_access_starts_a_family_with_no_refresh_token(memory_storage):
    tokens = redeem(issued_code(memory_storage, scopes=("openid", "email")))

    assert "refresh_token" not in tokens and "id_token" in tokens
    assert family(memory_storage)["token_hash"] is None and family(memory_storage)["last_used_at"] is not None


@pytest.mark.parametrize("form", [{"redirect_uri": "https://app.example.com/other"},
                                  {"code_verifier": "another-verifier-of-43-or-more-characters-long"},
                                  {"code_verifier": ""}])
def test_a_redirect_uri_or_pkce_mismatch_revokes_the_grant_and_issues_nothing(memory_storage, form):
    """RFC 6749 §4.1.3, RFC 7636 §4.6: the code is spent, so nothing issued from it may survive."""
    with pytest.raises(InvalidGrant):
        redeem(issued_code(memory_storage), **form)

    assert memory_storage.called() == ["codes.consume", "grants.revoke"]
    assert family(memory_storage)["status"] == "revoked"


def test_a_replayed_code_revokes_the_grant_and_the_tokens_of_its_first_redemption(memory_storage):
    """RFC 6749 §4.1.2: a second redemption revokes every token issued from the code."""
    code = issued_code(memory_storage)
    first = redeem(code)

    with pytest.raises(InvalidGrant, match="invalid, expired, or was already used") as refused:
        redeem(code)

    assert refused.value.detail == "code replayed; grant revoked"
    assert family(memory_storage)["status"] == "revoked"
    with pytest.raises(InvalidGrant):
        refresh(first["refresh_token"])
    assert access_tokens.is_revoked(claims_of(first["access_token"]), SETTINGS)


@pytest.mark.parametrize("expired, client, detail", [(True, CLIENT, "code expired"),
                                                     (False, OTHER_CLIENT, "code issued to client-1")])
def test_an_expired_code_or_another_client_s_code_is_refused_without_revoking(memory_storage, expired, client,
                                                                               detail):
    code = issued_code(memory_storage)
    if expired:
        memory_storage.codes[sha256_hex(code)]["expires_at"] = now() - 1

    with pytest.raises(InvalidGrant) as refused:
        redeem(code, client=client)

    assert refused.value.detail == detail
    assert memory_storage.called() == ["codes.consume"] and family(memory_storage)["status"] == "active"


def test_an_unknown_code_or_a_request_without_code_or_redirect_uri_is_refused(memory_storage):
    with pytest.raises(InvalidGrant):
        redeem("never issued")
    assert memory_storage.called() == ["codes.consume"]
    for form in ({"redirect_uri": REDIRECT}, {"code": "never issued", "redirect_uri": ""}):
        with pytest.raises(InvalidRequest):
            authorization_code.handle(form, CLIENT, SETTINGS)
    assert memory_storage.called() == ["codes.consume"]


def test_a_code_whose_grant_ended_since_issuance_yields_nothing(memory_storage):
    """Signed out between /authorize and /token: the grant is revoked, so start_family refuses."""
    code = issued_code(memory_storage)
    family(memory_storage)["status"] = "revoked"

    with pytest.raises(InvalidGrant) as refused:
        redeem(code)

    assert refused.value.detail == f"grant {GRANT} no longer active"


def test_redemption_narrows_to_one_granted_resource_and_its_scopes(memory_storage, resources):
    """RFC 8707 §2.2: the token is for the resource asked for and carries only its scopes."""
    code = issued_code(memory_storage, scopes=("notes:read", "billing:read"), resources=(NOTES, BILLING))

    tokens = redeem(code, resource=[NOTES])

    access = claims_of(tokens["access_token"])
    assert (access["aud"], access["scope"]) == (NOTES, "notes:read")


def test_redemption_for_a_resource_never_granted_is_invalid_target_and_revokes_the_grant(memory_storage,
                                                                                         resources):
    code = issued_code(memory_storage, scopes=("notes:read",), resources=(NOTES,))

    with pytest.raises(InvalidTarget):
        redeem(code, resource=[BILLING])

    assert family(memory_storage)["status"] == "revoked"


# grant_type=refresh_token --------------------------------------------------------------------------

def test_a_refresh_rotates_the_family_in_one_storage_call(memory_storage):
    first = first_refresh_token(memory_storage)

    tokens = refresh(first)

    assert memory_storage.called() == ["grants.rotate"]
    assert refresh_tokens.parse(tokens["refresh_token"]) == (SUB, GRANT, 1)
    grant = family(memory_storage)
    assert (grant["token_hash"], grant["previous_hash"]) == (sha256_hex(tokens["refresh_token"]), sha256_hex(first))
    assert claims_of(tokens["access_token"])["grant_id"] == GRANT
    assert "nonce" not in claims_of(tokens["id_token"])  # OIDC Core §12.2
    assert refresh(tokens["refresh_token"])["refresh_token"] != tokens["refresh_token"]


def test_presenting_the_previous_token_again_revokes_the_family(memory_storage):
    """RFC 9700 §4.14.2: reuse of a rotated token means one of its holders is an attacker."""
    first = first_refresh_token(memory_storage)
    second = refresh(first)["refresh_token"]
    memory_storage.calls.clear()

    with pytest.raises(InvalidGrant) as refused:
        refresh(first)

    assert refused.value.detail == "refresh token reused; family revoked"
    assert memory_storage.called() == ["grants.rotate", "grants.get", "grants.revoke"]
    assert family(memory_storage)["status"] == "revoked"
    with pytest.raises(InvalidGrant):
        refresh(second)


def test_presenting_an_older_consumed_token_revokes_the_family(memory_storage):
    first = first_refresh_token(memory_storage)
    refresh(refresh(first)["refresh_token"])  # `first` is no longer even the previous token

    with pytest.raises(InvalidGrant) as refused:
        refresh(first)

    assert refused.value.detail == "refresh token reused; family revoked"
    assert family(memory_storage)["status"] == "revoked"


def test_a_retry_within_the_grace_window_gets_the_same_successor(memory_storage):
    first = first_refresh_token(memory_storage)
    successor = refresh(first, settings=GRACE)["refresh_token"]

    retried = refresh(first, settings=GRACE)

    assert retried["refresh_token"] == successor
    assert family(memory_storage)["status"] == "active"
    assert refresh(successor, settings=GRACE)["refresh_token"] != successor


def test_a_retry_after_the_grace_window_is_reuse(memory_storage):
    first = first_refresh_token(memory_storage)
    refresh(first, settings=GRACE)
    family(memory_storage)["rotated_at"] -= GRACE.refresh_grace_seconds + 1

    with pytest.raises(InvalidGrant):
        refresh(first, settings=GRACE)

    assert family(memory_storage)["status"] == "revoked"


def test_an_unrecognised_token_of_a_live_family_is_counted_and_logged_but_revokes_nothing(memory_storage,
                                                                                          idp_log):
    """sub and grant_id travel in access tokens: whoever saw one must not be able to end the family."""
    first = first_refresh_token(memory_storage)

    with pytest.raises(InvalidGrant) as refused:
        refresh(refresh_tokens.new_token(SUB, GRANT, 7))

    assert refused.value.detail == "unknown refresh token"
    assert family(memory_storage)["status"] == "active"
    assert list(memory_storage.throttles.values()) == [1]
    assert [entry["grant_id"] for entry in idp_log()
            if entry["msg"] == "refresh token of a known family not recognised"] == [GRANT]
    assert refresh(first)["refresh_token"]


def test_an_idle_token_expires_without_revoking_the_family(memory_storage):
    first = first_refresh_token(memory_storage)
    family(memory_storage)["token_expires_at"] = now() - 1

    with pytest.raises(InvalidGrant) as refused:
        refresh(first)

    assert refused.value.detail == "refresh token expired (idle)"
    assert family(memory_storage)["status"] == "active"


def test_another_client_cannot_refresh_nor_harm_the_family(memory_storage):
    first = first_refresh_token(memory_storage)

    with pytest.raises(InvalidGrant) as refused:
        refresh(first, client=OTHER_CLIENT)

    assert refused.value.detail == "refresh token of client-1 presented by client-2"
    assert refresh(first)["refresh_token"]


def test_a_revoked_family_refuses_its_current_token(memory_storage):
    first = first_refresh_token(memory_storage)
    family(memory_storage)["status"] = "revoked"

    with pytest.raises(InvalidGrant) as refused:
        refresh(first)

    assert refused.value.detail == "refresh token family revoked or expired"


def test_a_malformed_token_is_refused_before_any_storage_call(memory_storage):
    with pytest.raises(InvalidGrant):
        refresh("not~a~token")
    assert memory_storage.called() == []


def test_a_refresh_may_narrow_the_scope_checking_the_grant_before_rotating(memory_storage):
    first = first_refresh_token(memory_storage)

    tokens = refresh(first, scope="openid")

    assert tokens["scope"] == "openid"
    assert memory_storage.called() == ["grants.active", "grants.rotate"]


def test_a_refresh_widening_the_scope_consumes_nothing(memory_storage):
    """RFC 6749 §6: the scope "MUST NOT include any scope not originally granted"."""
    first = first_refresh_token(memory_storage)

    with pytest.raises(InvalidScope):
        refresh(first, scope="openid notes:read")

    assert "grants.rotate" not in memory_storage.called()
    assert family(memory_storage)["token_hash"] == sha256_hex(first)


# Revocation (RFC 7009) -------------------------------------------------------------------------------

def test_revoking_access_tokens_denies_each_on_its_grant_and_past_the_bound_revokes_the_grant(memory_storage,
                                                                                            monkeypatch):
    from chalicelib.storage import grants

    monkeypatch.setattr(grants, "MAX_REVOKED_JTIS", 2)
    first = redeem(issued_code(memory_storage))
    second = refresh(first["refresh_token"])
    third = refresh(second["refresh_token"])
    memory_storage.calls.clear()

    token_management.revoke(first["access_token"], CLIENT, SETTINGS)

    assert memory_storage.called() == ["grants.access_state", "grants.deny_access_token"]
    assert access_tokens.is_revoked(claims_of(first["access_token"]), SETTINGS)
    assert not access_tokens.is_revoked(claims_of(second["access_token"]), SETTINGS)
    with pytest.raises(UnauthorizedClient):
        token_management.revoke(second["access_token"], OTHER_CLIENT, SETTINGS)
    token_management.revoke(second["access_token"], CLIENT, SETTINGS)
    assert family(memory_storage)["status"] == "active"
    token_management.revoke(third["access_token"], CLIENT, SETTINGS)  # one past the bound
    assert family(memory_storage)["status"] == "revoked"


def test_revoking_a_refresh_token_revokes_its_family_in_one_call_for_its_own_client_only(memory_storage):
    first = first_refresh_token(memory_storage)

    with pytest.raises(UnauthorizedClient):
        token_management.revoke(first, OTHER_CLIENT, SETTINGS)
    assert family(memory_storage)["status"] == "active"
    memory_storage.calls.clear()

    token_management.revoke(first, CLIENT, SETTINGS)

    assert memory_storage.called() == ["grants.revoke_by_refresh_token"]
    assert family(memory_storage)["status"] == "revoked"
