"""The authorization endpoint's decision (OIDC Core §3.1.2.4-§3.1.2.6, RFC 6749 §4.1.2) on the
in-memory storage: no moto, no HTTP, no AWS. A signed-in, consented request is answered with one
storage call (the transaction that issues the code, checking session, user, consent and request at
once); every refusal of that transaction leads to the page, or the error, it names."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from chalicelib.config import Settings
from chalicelib.errors import RedirectableError
from chalicelib.hashing import sha256_hex
from chalicelib.log import now
from chalicelib.oauth import authorization, consent, pkce, sessions
from chalicelib.storage import codes
from chalicelib.storage.authorization_requests import PendingRequest

# The fake's users have unverified addresses; REQUIRE_VERIFIED_EMAIL's gate has its own tests below.
SETTINGS = Settings(stage="local", issuer="http://localhost:8000", require_verified_email=False)
SUB, CLIENT_ID, COOKIE = "u_alice", "client-1", "the session cookie value"
SESSION = sha256_hex(COOKIE)
REDIRECT = "https://app.example.com/cb"
USER_CLAIMS = {"name": "Alice", "email": "alice@example.com", "email_verified": True}
#: What the requests below ask for: openid and email for the default audience (no resource named).
ASKED = {f"openid {SETTINGS.default_audience}", f"email {SETTINGS.default_audience}"}


def pending(**overrides) -> PendingRequest:
    """A request as /authorize validated it."""
    at = now()
    values = dict(request_id="request-1", client_id=CLIENT_ID, redirect_uri=REDIRECT, scopes=("openid", "email"),
                  state="state-1", nonce="nonce-1", code_challenge=pkce.s256("v" * 43), code_challenge_method="S256",
                  created_at=at, expires_at=at + SETTINGS.request_ttl)
    return PendingRequest(**{**values, **overrides})


@pytest.fixture
def signed_in(memory_storage):
    """Alice's session as /authorize loads it (without reading the user: the issuing transaction
    checks it), her consent to exactly what the request asks, and the stored request (each written
    through the core)."""
    at = now()
    memory_storage.add_user(SUB)
    memory_storage.add_session(SESSION, SUB, auth_time=at - 5, expires_at=at + 600, user_claims=USER_CLAIMS)
    authorization.remember_consent(SUB, CLIENT_ID, authorization.consent_wanted(pending(), SETTINGS))
    authorization.store(pending())
    session = sessions.load(COOKIE, check_user=False)
    memory_storage.calls.clear()
    return session


def decide(session, request=None, *, just_signed_in=False, stored=True):
    return authorization.decide(request or pending(), session, just_signed_in=just_signed_in, settings=SETTINGS,
                                stored=stored)


def redirected_error(session, request=None, **kwargs) -> tuple[str, str]:
    with pytest.raises(RedirectableError) as raised:
        decide(session, request, **kwargs)
    assert raised.value.redirect_uri == REDIRECT
    return raised.value.oauth_error.error, raised.value.state


def nothing_issued(memory) -> bool:
    return memory.grants == {} and memory.codes == {}


def test_the_consent_asked_for_is_per_audience_pairs():
    assert consent.pairs(authorization.consent_wanted(pending(), SETTINGS)) == ASKED


def test_signed_in_and_consented_redirects_with_a_code_in_one_storage_call(memory_storage, signed_in):
    decision = decide(signed_in)

    assert decision.action == "redirect"
    assert memory_storage.called() == ["codes.issue"]
    location = urlsplit(decision.location)
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    query = {name: values[0] for name, values in parse_qs(location.query).items()}
    assert (query["state"], query["iss"]) == ("state-1", SETTINGS.issuer)  # RFC 9207
    code = codes.consume(query["code"], CLIENT_ID, now())
    assert (code.sub, code.nonce, code.redirect_uri, code.scopes, code.user_claims) == \
        (SUB, "nonce-1", REDIRECT, ("openid", "email"), USER_CLAIMS)
    grant = memory_storage.grants[(SUB, code.grant_id)]
    assert (grant["session_hash"], grant["expires_at"] - grant["created_at"]) == \
        (SESSION, SETTINGS.refresh_token_absolute_ttl)
    assert memory_storage.sessions[SESSION]["grant_ids"] == {code.grant_id}  # sign-out will find it
    assert "request-1" not in memory_storage.authorization_requests  # finished: a double submit gets nothing


def test_a_request_answered_at_once_was_never_stored_and_finishes_nothing(memory_storage, signed_in):
    memory_storage.authorization_requests.clear()

    assert decide(signed_in, stored=False).action == "redirect"


def test_without_remembered_consent_the_consent_page_is_next_and_nothing_is_issued(memory_storage, signed_in):
    memory_storage.consents.clear()

    assert decide(signed_in).action == "consent"
    assert memory_storage.called() == ["codes.issue"] and nothing_issued(memory_storage)
    assert "request-1" in memory_storage.authorization_requests


def test_consent_to_part_of_the_request_is_not_consent_to_all_of_it(memory_storage, signed_in):
    memory_storage.consents.clear()
    memory_storage.add_consent(SUB, CLIENT_ID, {f"openid {SETTINGS.default_audience}"})

    assert decide(signed_in).action == "consent" and nothing_issued(memory_storage)


def test_prompt_none_without_consent_is_consent_required(memory_storage, signed_in):
    memory_storage.consents.clear()

    assert redirected_error(signed_in, pending(prompt=("none",))) == ("consent_required", "state-1")
    assert nothing_issued(memory_storage)


def test_without_a_session_the_sign_in_page_is_next_and_storage_is_not_asked(memory_storage):
    assert decide(None).action == "login"
    assert redirected_error(None, pending(prompt=("none",))) == ("login_required", "state-1")
    assert memory_storage.called() == []


@pytest.mark.parametrize("change", [
    lambda memory: memory.end_all_sessions(SUB),
    lambda memory: memory.users[SUB].update(disabled=True),
], ids=["signed out everywhere", "disabled"])
def test_a_session_its_user_no_longer_backs_goes_to_sign_in(memory_storage, signed_in, change):
    """The session was read without its user; the issuing transaction finds the user changed."""
    change(memory_storage)

    assert decide(signed_in).action == "login"
    assert memory_storage.called() == ["codes.issue"] and nothing_issued(memory_storage)
    assert redirected_error(signed_in, pending(prompt=("none",)))[0] == "login_required"


def test_a_session_ended_after_it_was_read_sends_the_browser_to_sign_in(memory_storage, signed_in):
    """Signed out in another tab between the read and the write: nothing is issued, and the user is
    asked to sign in again (not bounced to the client with an error they did not ask for)."""
    memory_storage.sessions[SESSION]["revoked"] = True

    assert decide(signed_in).action == "login"
    assert memory_storage.called() == ["codes.issue"] and nothing_issued(memory_storage)


def test_with_prompt_none_a_session_ended_after_it_was_read_is_login_required(memory_storage, signed_in):
    memory_storage.sessions[SESSION]["revoked"] = True

    assert redirected_error(signed_in, pending(prompt=("none",))) == ("login_required", "state-1")
    assert nothing_issued(memory_storage)


def test_a_request_finished_in_another_tab_is_invalid_request(memory_storage, signed_in):
    memory_storage.authorization_requests.clear()

    assert redirected_error(signed_in) == ("invalid_request", "state-1")
    assert nothing_issued(memory_storage)


@pytest.mark.parametrize("request_", [
    pending(prompt=("consent",)),
    # RFC 8252 §8.6: a public client on a loopback redirect could be any program on the device.
    pending(client_public=True, redirect_uri="http://127.0.0.1/cb"),
], ids=["prompt=consent", "always ask"])
def test_the_consent_page_is_shown_without_attempting_to_issue(memory_storage, signed_in, request_):
    """The page reads the user instead (the transaction would have checked it), so it is never
    shown to a session its user no longer backs."""
    assert decide(signed_in, request_).action == "consent"
    assert memory_storage.called() == ["users.get_user"] and nothing_issued(memory_storage)

    memory_storage.end_all_sessions(SUB)
    assert decide(signed_in, request_).action == "login"


def test_prompt_login_needs_a_sign_in_for_this_very_request(memory_storage, signed_in):
    request = pending(prompt=("login",))

    assert decide(signed_in, request).action == "login"
    assert memory_storage.called() == []
    assert decide(signed_in, request, just_signed_in=True).action == "redirect"


def test_a_session_older_than_max_age_must_sign_in_again(memory_storage, signed_in):
    """OIDC Core §3.1.2.1: max_age bounds the time since the user authenticated."""
    assert decide(signed_in, pending(max_age=1)).action == "login"
    assert memory_storage.called() == []
    assert decide(signed_in, pending(max_age=60)).action == "redirect"


def test_issuing_after_the_consent_page_checks_no_remembered_consent(memory_storage, signed_in):
    """consent_pairs=None: the user has just consented on the page (and it was written first)."""
    memory_storage.consents.clear()

    location = authorization.issue_code(pending(), signed_in, SETTINGS, consent_pairs=None)

    assert "code=" in location and len(memory_storage.grants) == 1


def test_issuing_after_the_consent_page_for_a_user_signed_out_since_is_login_required(memory_storage, signed_in):
    memory_storage.end_all_sessions(SUB)

    with pytest.raises(RedirectableError) as raised:
        authorization.issue_code(pending(), signed_in, SETTINGS, consent_pairs=None)

    assert raised.value.oauth_error.error == "login_required" and nothing_issued(memory_storage)
