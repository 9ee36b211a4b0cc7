"""Signing in through an upstream identity provider (issue 15): state and browser binding, the
three rules (linked identity, existing account, just-in-time provisioning), linking only with
proof, the second factor after the upstream, amr "fed", and the account page's linked sign-ins.

The upstream protocol is helper U's (chalicelib/federation/upstream.py, tested against real
providers there); here `upstream.start` / `upstream.finish` answer as a test says
(tests/routes/federation_fakes.FakeUpstream), so each rule of the flow is driven exactly.
"""
from __future__ import annotations

import json
from urllib.parse import urlencode

import jwt as pyjwt
import pytest

from tests.routes.account_flow import PASSWORD, mailbox_for, post_form, signed_in_browser
from tests.routes.federation_fakes import FakeUpstream, connection
from tests.routes.flow import Browser, authorize_query, hidden, query_of, redeem

ACME = "acme"      # trusted for acme.test addresses
SOCIAL = "social"  # trusted for nothing


@pytest.fixture
def upstream(aws, monkeypatch):
    return FakeUpstream().install(monkeypatch, [
        connection(ACME, trusted_email_domains=("acme.test",), acr_mapping={"strong": "urn:serverless-idp:acr:mfa"},
                   domains=("acme.test",)),
        connection(SOCIAL, display_name="Social", trusted_email_domains=())])


@pytest.fixture
def mailbox(aws, tmp_path, monkeypatch):
    return mailbox_for(tmp_path, monkeypatch)


@pytest.fixture
def bob(aws):
    from chalicelib.storage.users import create_user

    return create_user("bob@acme.test", PASSWORD, name="Bob", email_verified=True)


@pytest.fixture
def alice(aws):
    """The account owners here confirmed their address: linking into an unconfirmed account is
    refused (test_an_emailed_link_does_not_link_into_an_account_nobody_verified)."""
    from chalicelib.storage.users import create_user

    return create_user("alice@example.com", "correct horse battery", name="Alice Liddell", email_verified=True)


def start(browser: Browser, client_id: str, connection_id: str = ACME, **overrides) -> str:
    """/authorize -> the sign-in page's button -> 303 to the upstream; returns the state sent there."""
    response = browser.get("/authorize?" + authorize_query(client_id, **overrides))
    assert response.status_code == 302 and response.headers["Location"].startswith("/login"), response.body
    page = browser.get(response.headers["Location"])
    assert b"Sign in with Acme SSO" in page.body
    response = browser.post("/federation/start", {"request_id": hidden(page.body, "request_id"),
                                                  "csrf_token": hidden(page.body, "csrf_token"),
                                                  "connection": connection_id})
    assert response.status_code == 303, response.body
    assert response.headers["Location"].startswith(FakeUpstream.AUTHORIZE)
    return query_of(response.headers["Location"])["state"]


def callback(browser: Browser, state: str, code: str, **extra):
    return browser.get("/federation/callback?" + urlencode({"code": code, "state": state, **extra}))


def finish_at_client(browser: Browser, response) -> str:
    """Follow the consent page (if any) to the client; returns the code."""
    assert response.status_code == 302, response.body
    location = response.headers["Location"]
    if location.startswith("/consent"):
        page = browser.get(location)
        response = browser.post("/consent", {"request_id": hidden(page.body, "request_id"),
                                             "csrf_token": hidden(page.body, "csrf_token"), "decision": "allow"})
        location = response.headers["Location"]
    assert location.startswith("http://127.0.0.1:5000/cb"), location
    return query_of(location)["code"]


def id_token(http, client_id, code) -> dict:
    response = redeem(http, client_id, code)
    assert response.status_code == 200, response.body
    return pyjwt.decode(json.loads(response.body)["id_token"], options={"verify_signature": False})


def identity_of(connection_id, upstream_sub):
    from chalicelib.storage.federated_identities import identity_key
    from chalicelib.storage.models import IdentityClaimModel

    try:
        return IdentityClaimModel.get(identity_key(connection_id, upstream_sub), consistent_read=True)
    except IdentityClaimModel.DoesNotExist:
        return None


def signed_in(browser: Browser) -> bool:
    from chalicelib.oauth.sessions import load

    return load(browser.cookies.get("idp_session")) is not None


def session_count() -> int:
    from chalicelib.storage.models import SessionModel

    return sum(1 for item in SessionModel.scan() if item.session_hash and "#" not in item.session_hash)


# Just-in-time provisioning and returning users -----------------------------------------------------

def test_a_new_user_with_a_verified_email_gets_an_account_without_a_password(http, upstream, public_client):
    from chalicelib.storage.users import find_user_by_email

    browser = Browser(http)
    state = start(browser, public_client.client_id)
    code = upstream.answer("up-1", "Carol@Example.com", name="Carol C", given_name="Carol", locale="en-GB")
    code = finish_at_client(browser, callback(browser, state, code))
    claims = id_token(http, public_client.client_id, code)
    user = find_user_by_email("carol@example.com")
    assert user is not None and user.password_hash is None and user.email_verified
    assert (user.name, user.given_name, user.locale) == ("Carol C", "Carol", "en-GB")
    assert user.identities == {f"{ACME}#up-1"} and identity_of(ACME, "up-1").sub == user.pk
    assert claims["sub"] == user.pk and claims["amr"] == ["fed"]
    assert claims["acr"] == "urn:serverless-idp:acr:password"


def test_a_returning_identity_signs_in_its_user_again(http, upstream, public_client):
    first, second = Browser(http), Browser(http)
    code = finish_at_client(first, callback(first, start(first, public_client.client_id),
                                            upstream.answer("up-1", "carol@example.com")))
    sub = id_token(http, public_client.client_id, code)["sub"]
    # The upstream's email may change since; the identity decides.
    code = finish_at_client(second, callback(second, start(second, public_client.client_id),
                                             upstream.answer("up-1", "carol@elsewhere.example")))
    assert id_token(http, public_client.client_id, code)["sub"] == sub


def test_an_unverified_email_makes_no_account(http, upstream, public_client):
    from chalicelib.storage.users import find_user_by_email

    browser = Browser(http)
    state = start(browser, public_client.client_id)
    response = callback(browser, state, upstream.answer("up-2", "dave@example.com", email_verified=False))
    assert response.status_code == 400
    assert b"must share a verified email address" in response.body
    assert find_user_by_email("dave@example.com") is None and identity_of(ACME, "up-2") is None


def test_no_email_at_all_makes_no_account(http, upstream, public_client):
    browser = Browser(http)
    response = callback(browser, start(browser, public_client.client_id), upstream.answer("up-3", None))
    assert response.status_code == 400 and identity_of(ACME, "up-3") is None


# State and browser binding ----------------------------------------------------------------------------

def test_a_state_works_once(http, upstream, public_client):
    browser = Browser(http)
    state = start(browser, public_client.client_id)
    code = upstream.answer("up-1", "carol@example.com")
    assert callback(browser, state, code).status_code == 302
    sessions = session_count()
    replay = callback(browser, state, upstream.answer("up-1", "carol@example.com"))
    assert replay.status_code == 400 and b"already finished" in replay.body
    assert session_count() == sessions
    assert len(upstream.finished) == 1, "a replayed state never reaches the upstream's token endpoint"


def test_a_callback_from_another_browser_is_refused_login_csrf(http, upstream, public_client):
    """An attacker signs in at the upstream with their own account and sends the callback URL to the
    victim: the victim's browser lacks the binding cookie, so it is not signed in as the attacker."""
    attacker, victim = Browser(http), Browser(http)
    state = start(attacker, public_client.client_id)
    code = upstream.answer("attacker", "mallory@example.com")
    response = callback(victim, state, code)
    assert response.status_code == 403
    assert not signed_in(victim)
    assert upstream.finished == [] and identity_of(ACME, "attacker") is None
    # The state is spent: the attacker cannot use it afterwards either.
    assert callback(attacker, state, code).status_code == 400


def test_a_forged_binding_cookie_is_refused(http, upstream, public_client):
    browser = Browser(http)
    state = start(browser, public_client.client_id)
    browser.cookies["idp_fed"] = "x" * 43
    assert callback(browser, state, upstream.answer("up-1", "carol@example.com")).status_code == 403


def test_a_callback_without_state_changes_nothing(http, upstream, public_client):
    browser = Browser(http)
    start(browser, public_client.client_id)
    response = browser.get("/federation/callback?" + urlencode({"code": upstream.answer("up-1", "c@example.com")}))
    assert response.status_code == 400 and upstream.finished == []


def test_a_form_post_callback_continues_as_a_get_with_the_same_parameters(http, upstream, public_client):
    browser = Browser(http)
    state = start(browser, public_client.client_id)
    code = upstream.answer("up-1", "carol@example.com")
    # The upstream's page posts cross-site: no cookie of ours comes with it, nothing is decided.
    response = http.post("/federation/callback", body=urlencode({"code": code, "state": state}).encode(),
                         headers={"Content-Type": "application/x-www-form-urlencoded", "Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 303 and upstream.finished == []
    assert query_of(response.headers["Location"]) == {"code": code, "state": state}
    assert browser.get(response.headers["Location"]).status_code == 302


def test_the_users_cancelling_at_the_upstream_returns_to_the_sign_in_page(http, upstream, public_client):
    browser = Browser(http)
    state = start(browser, public_client.client_id)
    response = browser.get("/federation/callback?" + urlencode(
        {"state": state, "error": "access_denied", "error_description": "<b>Call +1 555 0100</b>"}))
    assert response.status_code == 302 and response.headers["Location"].startswith("/login?request_id=")
    page = browser.get(response.headers["Location"])
    assert page.status_code == 200 and b"was cancelled" in page.body
    assert b"555" not in page.body and b"<b>" not in page.body
    # The request is still pending: a password sign-in can finish it, and a reload shows the same page.
    assert hidden(page.body, "request_id")
    assert browser.get(response.headers["Location"]).status_code == 200
    # The notice comes from a fixed list: anything else in the URL shows nothing.
    other = browser.get(response.headers["Location"].replace("upstream_cancelled", "<b>evil</b>"))
    assert other.status_code == 200 and b"evil" not in other.body and b"was cancelled" not in other.body


def test_another_upstream_error_is_shown_on_our_page_never_redirected(http, upstream, public_client):
    browser = Browser(http)
    state = start(browser, public_client.client_id)
    response = browser.get("/federation/callback?" + urlencode(
        {"state": state, "error": "server_error", "error_description": "Visit evil.example to fix"}))
    assert response.status_code == 400 and "Location" not in response.headers
    assert b"evil.example" not in response.body and b"did not sign you in" in response.body


def test_a_connection_not_offered_cannot_be_started(http, upstream, public_client):
    browser = Browser(http)
    response = browser.get("/authorize?" + authorize_query(public_client.client_id))
    page = browser.get(response.headers["Location"])
    response = browser.post("/federation/start", {"request_id": hidden(page.body, "request_id"),
                                                  "csrf_token": hidden(page.body, "csrf_token"),
                                                  "connection": "nope"})
    assert response.status_code == 400 and upstream.started == []


def test_start_needs_the_sign_in_pages_csrf_token(http, upstream, public_client):
    browser = Browser(http)
    response = browser.get("/authorize?" + authorize_query(public_client.client_id))
    page = browser.get(response.headers["Location"])
    response = browser.post("/federation/start", {"request_id": hidden(page.body, "request_id"),
                                                  "csrf_token": "forged", "connection": ACME})
    assert response.status_code == 403 and upstream.started == []


# An existing account with the upstream's email --------------------------------------------------------

def test_a_verified_email_in_a_trusted_domain_links_automatically_and_tells_the_owner(http, upstream, public_client,
                                                                                       bob, mailbox):
    browser = Browser(http)
    code = finish_at_client(browser, callback(browser, start(browser, public_client.client_id),
                                              upstream.answer("bob-up", "bob@acme.test")))
    assert id_token(http, public_client.client_id, code)["sub"] == bob.pk
    assert identity_of(ACME, "bob-up").sub == bob.pk
    assert [m["Subject"] for m in mailbox.messages("bob@acme.test")] == ["A sign-in was linked to your account"]


def test_an_unverified_email_in_a_trusted_domain_is_not_linked_automatically(http, upstream, public_client, bob):
    browser = Browser(http)
    response = callback(browser, start(browser, public_client.client_id),
                        upstream.answer("mallory-up", "bob@acme.test", email_verified=False))
    assert response.status_code == 400 and b"verified email address" in response.body
    assert identity_of(ACME, "mallory-up") is None


def test_an_unverified_email_gets_the_same_answer_whether_or_not_it_has_an_account(http, upstream, public_client,
                                                                                   bob):
    """No account enumeration through an upstream that asserts addresses it did not verify."""
    import re

    answers = []
    for subject, email in (("m-1", "bob@acme.test"), ("m-2", "nobody@acme.test")):
        browser = Browser(http)
        response = callback(browser, start(browser, public_client.client_id),
                            upstream.answer(subject, email, email_verified=False))
        # The page's reference (a request id for support) differs per request by design.
        answers.append((response.status_code, re.sub(rb"Reference: [0-9a-f-]+", b"", response.body)))
    assert answers[0] == answers[1]


def test_a_verified_email_of_an_untrusted_provider_is_not_linked_automatically(http, upstream, public_client, alice):
    browser = Browser(http)
    response = callback(browser, start(browser, public_client.client_id, SOCIAL_START := ACME),
                        upstream.answer("social-up", "alice@example.com"))
    assert SOCIAL_START == ACME  # acme is trusted for acme.test only, not example.com
    assert response.headers["Location"] == "/federation/link"
    assert identity_of(ACME, "social-up") is None


def _link_page(http, upstream, public_client, email, subject="mallory-up", **answer):
    browser = Browser(http)
    response = callback(browser, start(browser, public_client.client_id), upstream.answer(subject, email, **answer))
    assert response.headers["Location"] == "/federation/link", response.body
    page = browser.get("/federation/link")
    assert page.status_code == 200
    return browser, page


def test_linking_is_refused_without_proof(http, upstream, public_client, alice):
    browser, page = _link_page(http, upstream, public_client, "alice@example.com")
    csrf = hidden(page.body, "csrf_token")
    for form in ({"action": "password", "password": "not alice's"}, {"action": "code", "code": "ABCDE-FGHJK"},
                 {"action": "link"}):
        response = browser.post("/federation/link", {"csrf_token": csrf, **form})
        assert response.status_code in (400, 401), (form, response.body)
    assert identity_of(ACME, "mallory-up") is None
    assert not signed_in(browser)


def test_the_link_page_needs_its_own_browser(http, upstream, public_client, alice):
    _link_page(http, upstream, public_client, "alice@example.com")
    assert Browser(http).get("/federation/link").status_code == 400


def test_linking_with_the_accounts_password_links_and_signs_in(http, upstream, public_client, alice, mailbox):
    browser, page = _link_page(http, upstream, public_client, "alice@example.com", "alice-up")
    response = browser.post("/federation/link", {"csrf_token": hidden(page.body, "csrf_token"),
                                                 "action": "password", "password": PASSWORD})
    code = finish_at_client(browser, response)
    claims = id_token(http, public_client.client_id, code)
    assert claims["sub"] == alice.pk and claims["amr"] == ["fed"]
    assert identity_of(ACME, "alice-up").sub == alice.pk
    assert mailbox.messages("alice@example.com")[-1]["Subject"] == "A sign-in was linked to your account"
    # The pending link is gone with it.
    assert browser.get("/federation/link").status_code == 400


def test_linking_with_the_emailed_link_works_only_in_the_browser_that_asked(http, upstream, public_client, alice,
                                                                           mailbox):
    import re

    browser, page = _link_page(http, upstream, public_client, "alice@example.com", "alice-up")
    response = browser.post("/federation/link", {"csrf_token": hidden(page.body, "csrf_token"), "action": "email"})
    assert response.status_code == 200 and b"We sent a link" in response.body
    text = mailbox.text(mailbox.messages("alice@example.com")[-1])
    path = re.search(r"http://localhost:8000(/federation/link\?token=[0-9A-Z]+)", text).group(1)
    # Whoever receives it elsewhere (the victim of someone who started a link with their own
    # upstream account) links nothing by opening it.
    elsewhere = Browser(http).get(path)
    assert elsewhere.status_code == 403 and identity_of(ACME, "alice-up") is None
    page = browser.get(path)
    assert page.status_code == 200
    response = browser.post("/federation/link", {"csrf_token": hidden(page.body, "csrf_token"), "action": "code",
                                                 "code": re.search(rb'name="code"[^>]*value="([^"]+)"',
                                                                   page.body).group(1).decode()})
    code = finish_at_client(browser, response)
    assert id_token(http, public_client.client_id, code)["sub"] == alice.pk
    assert identity_of(ACME, "alice-up").sub == alice.pk


def test_a_disabled_users_identity_signs_nobody_in(http, upstream, public_client, bob):
    from chalicelib.storage.users import set_user_disabled

    browser = Browser(http)
    finish_at_client(browser, callback(browser, start(browser, public_client.client_id),
                                       upstream.answer("bob-up", "bob@acme.test")))
    set_user_disabled(bob.pk, True)
    again = Browser(http)
    response = callback(again, start(again, public_client.client_id), upstream.answer("bob-up", "bob@acme.test"))
    assert response.status_code == 403
    assert not signed_in(again)


# Second factor -----------------------------------------------------------------------------------------

def test_a_user_with_a_second_factor_is_asked_for_it_after_the_upstream(http, upstream, public_client, bob):
    from tests.routes.test_second_factor import code_now, enrol_totp

    enrol_totp(bob.pk)
    browser = Browser(http)
    response = callback(browser, start(browser, public_client.client_id), upstream.answer("bob-up", "bob@acme.test"))
    assert response.status_code == 302 and response.headers["Location"] == "/mfa"
    assert not signed_in(browser)
    page = browser.get("/mfa")
    response = browser.post("/mfa", {"csrf_token": hidden(page.body, "csrf_token"), "method": "totp",
                                     "code": code_now(), "request_id": ""})
    claims = id_token(http, public_client.client_id, finish_at_client(browser, response))
    assert claims["amr"] == ["fed", "otp", "mfa"] and claims["acr"] == "urn:serverless-idp:acr:mfa"


def test_an_upstream_acr_mapped_to_mfa_level_needs_no_second_factor_here(http, upstream, public_client, bob):
    from tests.routes.test_second_factor import enrol_totp

    enrol_totp(bob.pk)
    browser = Browser(http)
    response = callback(browser, start(browser, public_client.client_id),
                        upstream.answer("bob-up", "bob@acme.test", acr="strong"))
    claims = id_token(http, public_client.client_id, finish_at_client(browser, response))
    assert claims["amr"] == ["fed", "mfa"] and claims["acr"] == "urn:serverless-idp:acr:mfa"


def test_prompt_login_and_max_age_go_to_the_upstream(http, upstream, public_client):
    browser = Browser(http)
    start(browser, public_client.client_id, prompt="login", max_age="60", login_hint="carol@example.com")
    assert (upstream.started[-1]["prompt"], upstream.started[-1]["max_age"],
            upstream.started[-1]["login_hint"]) == ("login", 60, "carol@example.com")


# The account page -------------------------------------------------------------------------------------

def _account_link(browser, upstream, connection_id=ACME):
    response = post_form(browser, "/account/identities/link", {"connection": connection_id,
                                                               "current_password": PASSWORD})
    assert response.status_code == 303, response.body
    return query_of(response.headers["Location"])["state"]


def test_the_account_page_links_another_sign_in_and_lists_it(http, upstream, alice):
    browser = signed_in_browser(http)
    state = _account_link(browser, upstream)
    response = callback(browser, state, upstream.answer("alice-social", "whatever@social.example"))
    assert response.status_code == 302 and response.headers["Location"] == "/account?done=identity_linked"
    page = browser.get("/account")
    assert b"Linked sign-ins" in page.body and b"whatever@social.example" in page.body
    assert identity_of(ACME, "alice-social").sub == alice.pk


def test_an_identity_linked_to_another_user_is_refused(http, upstream, public_client, alice, bob):
    bobs = Browser(http)
    finish_at_client(bobs, callback(bobs, start(bobs, public_client.client_id),
                                    upstream.answer("bob-up", "bob@acme.test")))
    browser = signed_in_browser(http)
    response = callback(browser, _account_link(browser, upstream), upstream.answer("bob-up", "bob@acme.test"))
    assert response.status_code == 409 and b"already linked to another account" in response.body
    assert identity_of(ACME, "bob-up").sub == bob.pk
    from chalicelib.storage.users import get_user

    assert not get_user(alice.pk).identities


def test_removing_a_linked_sign_in_needs_the_password(http, upstream, alice):
    browser = signed_in_browser(http)
    callback(browser, _account_link(browser, upstream), upstream.answer("alice-up", None))
    value = f"{ACME}#alice-up"
    response = post_form(browser, "/account/identities/remove", {"identity": value, "current_password": "wrong"})
    assert response.status_code == 401 and identity_of(ACME, "alice-up") is not None
    response = post_form(browser, "/account/identities/remove", {"identity": value, "current_password": PASSWORD})
    assert response.status_code == 302 and response.headers["Location"] == "/account?done=identity_removed"
    assert identity_of(ACME, "alice-up") is None
    from chalicelib.storage.users import get_user

    assert not get_user(alice.pk).identities


def _provisioned(http, upstream, public_client, subject="up-1", email="carol@example.com"):
    browser = Browser(http)
    finish_at_client(browser, callback(browser, start(browser, public_client.client_id),
                                       upstream.answer(subject, email)))
    return browser


def test_the_last_way_in_cannot_be_removed(http, upstream, public_client):
    browser = _provisioned(http, upstream, public_client)
    response = post_form(browser, "/account/identities/remove", {"identity": f"{ACME}#up-1"})
    assert response.status_code == 409 and b"only way to sign in" in response.body
    assert identity_of(ACME, "up-1") is not None
    # With a second identity, the first can go (no password to ask for).
    callback(browser, _account_link(browser, upstream, SOCIAL), upstream.answer("up-9", None))
    response = post_form(browser, "/account/identities/remove", {"identity": f"{ACME}#up-1"})
    assert response.status_code == 302 and identity_of(ACME, "up-1") is None
    response = post_form(browser, "/account/identities/remove", {"identity": f"{SOCIAL}#up-9"})
    assert response.status_code == 409 and identity_of(SOCIAL, "up-9") is not None


def test_an_account_without_a_password_is_told_how_to_set_one(http, upstream, public_client):
    browser = _provisioned(http, upstream, public_client)
    response = post_form(browser, "/account/password", {"current_password": "", "new_password": "a brand new one!"})
    assert response.status_code == 409 and b"has no password yet" in response.body


def test_a_federated_only_user_cannot_sign_in_with_an_empty_password(http, upstream, public_client):
    _provisioned(http, upstream, public_client)
    browser = Browser(http)
    response = browser.get("/authorize?" + authorize_query(public_client.client_id))
    page = browser.get(response.headers["Location"])
    response = browser.post("/login", {"request_id": hidden(page.body, "request_id"),
                                       "csrf_token": hidden(page.body, "csrf_token"),
                                       "username": "carol@example.com", "password": "a guess"})
    assert response.status_code == 401


def test_deleting_the_account_frees_its_identities(http, upstream, alice):
    browser = signed_in_browser(http)
    callback(browser, _account_link(browser, upstream), upstream.answer("alice-up", None))
    response = post_form(browser, "/account/delete", {"current_password": PASSWORD})
    assert response.status_code == 200
    assert identity_of(ACME, "alice-up") is None


# Home-realm discovery ----------------------------------------------------------------------------------

def _login_form(browser, client_id, **overrides):
    response = browser.get("/authorize?" + authorize_query(client_id, **overrides))
    assert response.headers["Location"].startswith("/login"), response.headers
    page = browser.get(response.headers["Location"])
    return {"request_id": hidden(page.body, "request_id"), "csrf_token": hidden(page.body, "csrf_token")}


def test_an_address_of_a_claimed_domain_goes_to_its_upstream_without_a_password(http, upstream, public_client,
                                                                              argon2_evaluations):
    browser = Browser(http)
    response = browser.post("/login", {**_login_form(browser, public_client.client_id),
                                       "username": "Erin@ACME.test", "password": ""})
    assert response.status_code == 303 and response.headers["Location"].startswith(FakeUpstream.AUTHORIZE)
    assert upstream.started[-1]["login_hint"] == "Erin@ACME.test" and argon2_evaluations == []


def test_an_empty_password_for_another_address_is_asked_for_and_not_counted(http, upstream, public_client, alice,
                                                                           argon2_evaluations):
    browser = Browser(http)
    response = browser.post("/login", {**_login_form(browser, public_client.client_id),
                                       "username": "alice@example.com", "password": ""})
    assert response.status_code == 400 and b"Enter your password." in response.body
    assert argon2_evaluations == [] and upstream.started == []


@pytest.mark.parametrize("hint", [{"idp_hint": ACME}, {"login_hint": "erin@acme.test"}])
def test_authorize_with_a_hint_skips_our_sign_in_page(http, upstream, public_client, hint):
    browser = Browser(http)
    response = browser.get("/authorize?" + authorize_query(public_client.client_id, **hint))
    assert response.status_code == 303 and response.headers["Location"].startswith(FakeUpstream.AUTHORIZE)
    code = finish_at_client(browser, callback(browser, query_of(response.headers["Location"])["state"],
                                              upstream.answer("erin-up", "erin@acme.test")))
    assert id_token(http, public_client.client_id, code)["amr"] == ["fed"]


def test_an_unknown_idp_hint_shows_our_sign_in_page(http, upstream, public_client):
    response = Browser(http).get("/authorize?" + authorize_query(public_client.client_id, idp_hint="nope"))
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


# Linking waits for the second factor -------------------------------------------------------------------

def test_an_automatic_link_for_a_user_with_a_second_factor_waits_for_that_factor(http, upstream, public_client, bob):
    from tests.routes.test_second_factor import code_now, enrol_totp

    enrol_totp(bob.pk)
    browser = Browser(http)
    response = callback(browser, start(browser, public_client.client_id), upstream.answer("bob-up", "bob@acme.test"))
    assert response.headers["Location"] == "/mfa"
    assert identity_of(ACME, "bob-up") is None  # the upstream alone linked nothing
    page = browser.get("/mfa")
    response = browser.post("/mfa", {"csrf_token": hidden(page.body, "csrf_token"), "method": "totp",
                                     "code": code_now(), "request_id": ""})
    assert id_token(http, public_client.client_id, finish_at_client(browser, response))["sub"] == bob.pk
    assert identity_of(ACME, "bob-up").sub == bob.pk


def test_a_stolen_password_cannot_link_an_upstream_account_that_skips_the_second_factor(http, upstream, public_client,
                                                                                         alice):
    """The attacker knows alice's password, not her TOTP, and controls an upstream account whose acr
    the connection maps to mfa. Proving the password on the link page must not link that account,
    or its next sign-in would skip alice's second factor."""
    from tests.routes.test_second_factor import enrol_totp

    enrol_totp(alice.pk)
    browser, page = _link_page(http, upstream, public_client, "alice@example.com", "mallory-up", acr="strong")
    response = browser.post("/federation/link", {"csrf_token": hidden(page.body, "csrf_token"),
                                                 "action": "password", "password": PASSWORD})
    assert response.status_code == 302 and response.headers["Location"] == "/mfa"
    assert identity_of(ACME, "mallory-up") is None
    # Abandoning /mfa and signing in through the upstream again (strong acr) gets no session for alice.
    again = Browser(http)
    response = callback(again, start(again, public_client.client_id),
                        upstream.answer("mallory-up", "alice@example.com", acr="strong"))
    assert response.headers["Location"] == "/federation/link"
    assert not signed_in(again)


# A client restricted to its connections --------------------------------------------------------------

@pytest.fixture
def acme_only(aws):
    """Another app, whose users sign in through Acme only."""
    from chalicelib.oauth.clients import create_client
    from chalicelib.storage.clients import set_client_connections

    client, _ = create_client(client_name="Acme Portal", client_type="public",
                              redirect_uris=["http://127.0.0.1/cb"], scopes=["openid", "email", "profile"])
    assert set_client_connections(client.client_id, (ACME,))
    return client


def test_a_client_restricted_to_a_connection_offers_no_password_and_refuses_one(http, upstream, acme_only, alice):
    browser = Browser(http)
    response = browser.get("/authorize?" + authorize_query(acme_only.client_id))
    page = browser.get(response.headers["Location"])
    assert b'name="password"' not in page.body and b"Sign in with Acme SSO" in page.body
    assert b"Social" not in page.body  # only the connections the client allows
    response = browser.post("/login", {"request_id": hidden(page.body, "request_id"),
                                       "csrf_token": hidden(page.body, "csrf_token"),
                                       "username": "alice@example.com", "password": PASSWORD})
    assert response.status_code == 403 and not signed_in(browser)


def test_a_password_session_does_not_slip_past_a_clients_connection_restriction(http, upstream, public_client,
                                                                                 acme_only, alice):
    from tests.routes.flow import sign_in_and_consent

    browser = Browser(http)
    sign_in_and_consent(browser, public_client.client_id, email="alice@example.com", password=PASSWORD)
    # The same browser, signed in with a password, asks for a client that takes only Acme: sign in again.
    response = browser.get("/authorize?" + authorize_query(acme_only.client_id))
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    response = browser.get("/authorize?" + authorize_query(acme_only.client_id, prompt="none"))
    assert query_of(response.headers["Location"])["error"] == "login_required"


def test_a_session_through_the_allowed_connection_is_accepted(http, upstream, acme_only):
    browser = Browser(http)
    code = finish_at_client(browser, callback(browser, start(browser, acme_only.client_id),
                                              upstream.answer("dana-up", "dana@acme.test")))
    assert id_token(http, acme_only.client_id, code)["amr"] == ["fed"]
    # Single sign-on afterwards: the session came through Acme.
    response = browser.get("/authorize?" + authorize_query(acme_only.client_id))
    assert response.headers["Location"].startswith(("http://127.0.0.1:5000/cb", "/consent")), response.headers


def test_the_sign_in_page_names_the_upstream_in_form_action_and_the_icon_in_img_src(http, aws, monkeypatch,
                                                                                   public_client):
    """Chromium applies form-action to the redirect after a post: the upstream must be named, or the
    button's post would be blocked on its way there."""
    FakeUpstream().install(monkeypatch, [connection(ACME, icon_url="https://cdn.acme.test/logo.svg")])
    browser = Browser(http)
    response = browser.get("/authorize?" + authorize_query(public_client.client_id))
    page = browser.get(response.headers["Location"])
    policy = page.headers["Content-Security-Policy"]
    assert "https://sso.acme.test" in policy.split("form-action")[1].split(";")[0]
    assert "img-src 'self' https://cdn.acme.test;" in policy
    assert b'src="https://cdn.acme.test/logo.svg"' in page.body


# Pre-account hijacking ------------------------------------------------------------------------------------

@pytest.fixture
def pre_registered(aws):
    """Mallory signed up with the victim's address and never verified it: the account, and its
    password, are Mallory's (SIGNUP_MODE=open lets anyone do this)."""
    from chalicelib.storage.users import create_user

    return create_user("victim@acme.test", "mallory's own password")


def test_a_trusted_upstream_does_not_auto_link_into_an_account_nobody_verified(http, upstream, public_client,
                                                                                pre_registered):
    """Sudhodanan & Paverd's "classic-federated merge": the victim signing in with the upstream that
    is trusted for acme.test must not land in (and link to) the account Mallory pre-registered with
    the victim's address, whose password Mallory keeps."""
    browser = Browser(http)
    response = callback(browser, start(browser, public_client.client_id),
                        upstream.answer("victim-up", "victim@acme.test"))
    assert identity_of(ACME, "victim-up") is None
    assert not signed_in(browser)
    assert response.headers.get("Location") == "/federation/link", response.body


def test_an_emailed_link_does_not_link_into_an_account_nobody_verified(http, upstream, public_client, mailbox):
    """The emailed link proves the mailbox, not the password that someone else set before anyone
    verified the address: the victim's click must not attach their upstream account to Mallory's
    pre-registration."""
    from chalicelib.storage.users import create_user

    create_user("victim@example.com", "mallory's own password")
    browser, page = _link_page(http, upstream, public_client, "victim@example.com", "victim-up")
    response = browser.post("/federation/link", {"csrf_token": hidden(page.body, "csrf_token"), "action": "email"})
    assert response.status_code == 409 and b"not confirmed" in response.body
    assert mailbox.messages("victim@example.com") == []
    assert identity_of(ACME, "victim-up") is None and not signed_in(browser)


def test_linking_another_sign_in_needs_the_current_password(http, upstream, alice):
    """A stolen (or unattended) session must not add a way in that outlives it: an upstream
    account linked from the account page signs in after a password change, and skips the second
    factor where its acr maps to it. Like adding a passkey, it needs the current password."""
    browser = signed_in_browser(http)
    for password in (None, "wrong"):
        form = {"connection": ACME, **({"current_password": password} if password is not None else {})}
        response = post_form(browser, "/account/identities/link", form)
        assert response.status_code == 401, (password, response.body)
    assert upstream.started == []


def test_an_address_that_only_lowercases_into_an_accounts_is_not_that_account(http, upstream, public_client):
    """Python lowercases KELVIN SIGN (U+212A) to an ASCII "k": the mailbox the upstream verified,
    "\u212aarl@acme.test", is not karl@acme.test, and must neither link to nor sign in as Karl."""
    from chalicelib.storage.users import create_user

    create_user("karl@acme.test", PASSWORD, email_verified=True)
    browser = Browser(http)
    callback(browser, start(browser, public_client.client_id), upstream.answer("kelvin-up", "\u212aarl@acme.test"))
    assert identity_of(ACME, "kelvin-up") is None and not signed_in(browser)


def test_an_account_page_link_is_refused_when_another_user_signed_in_meanwhile(http, upstream, alice, bob):
    """A shared browser changes hands between the link's start and its callback: the identity must
    not land on the account of whoever started it, nor on the new user's."""
    from tests.routes.account_flow import account_sign_in

    browser = signed_in_browser(http)
    state = _account_link(browser, upstream)
    browser.post("/account/signout", {})  # alice walks away (her session ends either way below)
    browser.cookies.pop("idp_session", None)
    response = account_sign_in(browser, "bob@acme.test", PASSWORD)
    assert response.status_code == 302
    response = callback(browser, state, upstream.answer("alice-up", "alice@example.com"))
    assert response.status_code in (400, 403) and identity_of(ACME, "alice-up") is None


def test_the_federation_cookies_are_host_only_on_https():
    """__Host- (Secure, Path=/, no Domain): a sibling subdomain cannot plant a pending link or a binding."""
    from chalicelib.config import load_settings
    from chalicelib.federation import sign_in

    https = load_settings({"STAGE": "prod", "ISSUER": "https://login.example.com"})
    for header in (sign_in.binding_cookie_header(https, "", "v"), sign_in.link_cookie_header(https, "", "v")):
        assert header.startswith(("__Host-idp_fed=v;", "__Host-idp_fedlink=v;"))
        assert "Path=/;" in header and "Secure" in header and "Domain" not in header
    assert sign_in.link_cookie_name(https) == "__Host-idp_fedlink"


def test_the_account_page_of_a_provider_made_account_offers_to_set_a_password_not_to_change_one(http, upstream,
                                                                                                public_client):
    browser = _provisioned(http, upstream, public_client)
    page = browser.get("/account").body
    assert b"Set a password" in page and b'href="/forgot-password"' in page
    assert b'id="current_password"' not in page  # the change-password form needs a password there is not
    # Its only way in is not offered for removal, and a provider already linked is not offered again.
    assert b"/account/identities/remove" not in page and b"only way to sign in" in page
    assert b"Link Acme SSO" not in page and b"Link Social" in page
