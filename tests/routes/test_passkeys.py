"""Passkeys through the pages (issue 13 §1): registration on the account page, sign-in with a passkey
alone on /login and /account/login, and every way an assertion must be refused. The browser side is
tests/webauthn_authenticator.SoftAuthenticator (the bytes a browser would post)."""
from __future__ import annotations

import html
import json
import re

import jwt as pyjwt
import pytest

from tests.routes.account_flow import PASSWORD, mailbox_for, post_form, signed_in_browser
from tests.routes.flow import Browser, authorize_query, hidden, query_of, redeem
from tests.webauthn_authenticator import SoftAuthenticator, b64


@pytest.fixture
def mailbox(aws, tmp_path, monkeypatch):
    return mailbox_for(tmp_path, monkeypatch)


def options_of(body: bytes) -> dict:
    match = re.search(r'<script type="application/json" id="webauthn-options">(.*?)</script>', body.decode(), re.S)
    assert match, "no WebAuthn options on the page"
    return json.loads(html.unescape(match.group(1)))


def register(http, authenticator: SoftAuthenticator, *, browser=None, name="Laptop", password=PASSWORD,
             credential=None):
    """Sign in to the account page (unless `browser` is) and add a passkey made by `authenticator`."""
    browser = browser or signed_in_browser(http)
    page = browser.get("/account")
    assert page.status_code == 200, page.body
    options = options_of(page.body)
    response = browser.post("/account/passkeys/add", {
        "csrf_token": hidden(page.body, "csrf_token"), "name": name, "current_password": password,
        "credential": credential if credential is not None else authenticator.create(options)})
    return browser, response


def user_of(sub):
    from chalicelib.storage.users import get_user

    return get_user(sub)


def passkeys_of(sub):
    from chalicelib.storage import factors

    return factors.passkeys(sub)


def start_login(http, client_id, browser=None, **overrides):
    browser = browser or Browser(http)
    response = browser.get("/authorize?" + authorize_query(client_id, **overrides))
    assert response.status_code == 302 and response.headers["Location"].startswith("/login"), response.body
    page = browser.get(response.headers["Location"])
    assert page.status_code == 200, page.body
    return browser, page


def passkey_login(browser, page, credential: str):
    return browser.post("/login", {"request_id": hidden(page.body, "request_id"),
                                   "csrf_token": hidden(page.body, "csrf_token"), "method": "passkey",
                                   "credential": credential})


def passkey_browser(http, authenticator: SoftAuthenticator) -> Browser:
    """A browser signed in to the account page with `authenticator`'s passkey alone (a user with a
    passkey is asked for it after the password: /mfa, not these tests' subject)."""
    browser = Browser(http)
    page = browser.get("/account/login")
    response = browser.post("/account/login", {"csrf_token": hidden(page.body, "csrf_token"), "method": "passkey",
                                               "credential": authenticator.get(options_of(page.body))})
    assert response.status_code == 302 and response.headers["Location"] == "/account", response.body
    return browser


@pytest.fixture
def registered(http, alice, mailbox):
    authenticator = SoftAuthenticator()
    _, response = register(http, authenticator)
    assert response.status_code == 302 and response.headers["Location"] == "/account?done=passkey_added", \
        response.body
    return authenticator


# Registration ---------------------------------------------------------------------------------------

def test_the_account_page_offers_a_discoverable_passkey_with_user_verification_bound_to_the_user(http, alice):
    page = signed_in_browser(http).get("/account")
    options = options_of(page.body)
    assert options["rp"]["id"] == "localhost"
    # user.id is the subject's bytes: opaque, no personal data (WebAuthn §14.6.1).
    assert options["user"] == {"id": b64(alice.pk.encode()), "name": "alice@example.com",
                               "displayName": "Alice Liddell"}
    assert options["authenticatorSelection"] == {"residentKey": "required", "requireResidentKey": True,
                                                 "userVerification": "required"}
    assert [p["alg"] for p in options["pubKeyCredParams"]] == [-7, -8, -257] and options["attestation"] == "none"
    assert b'src="/assets/passkeys.js"' in page.body
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]


def test_pages_without_the_passkey_ceremony_allow_no_script_at_all(http, alice, public_client):
    """Only a page that runs passkeys.js gets script-src 'self'; the rest stay at default-src 'none'."""
    from tests.routes.flow import sign_in_and_consent

    browser = Browser(http)
    location = sign_in_and_consent(browser, public_client.client_id, consent=True)
    assert "code=" in location
    for path in ("/logout", "/forgot-password", "/signup"):
        response = browser.get(path)
        csp = response.headers.get("Content-Security-Policy", "")
        assert csp.startswith("default-src 'none'") and "script-src" not in csp, (path, csp)


def test_adding_a_passkey_stores_it_names_it_on_the_user_updates_the_session_and_emails(http, alice, mailbox):
    from chalicelib.oauth import sessions as session_core
    from chalicelib.storage import sessions

    authenticator = SoftAuthenticator()
    browser, response = register(http, authenticator, name="Work laptop")
    assert response.status_code == 302, response.body
    [passkey] = passkeys_of(alice.pk)
    assert passkey.name == "Work laptop" and passkey.sign_count == 1 and passkey.transports == ("internal",)
    assert user_of(alice.pk).factors == {passkey.factor_id}
    session = sessions.get(session_core.sha256_hex(browser.cookies["idp_session"]))
    assert session.factors == ("passkey",)
    [message] = mailbox.messages("alice@example.com")
    assert message["Subject"] == "Your sign-in methods were changed" and \
        "A passkey named \"Work laptop\" was added" in mailbox.text(message)
    page = browser.get("/account")
    assert b"Work laptop" in page.body and b"Not used yet" in page.body
    # The authenticator that holds it is excluded from making another.
    assert [c["id"] for c in options_of(page.body)["excludeCredentials"]] == [b64(authenticator.credential_id)]


def test_adding_a_passkey_needs_the_current_password(http, alice, mailbox):
    _, response = register(http, SoftAuthenticator(), password="not my password")
    assert response.status_code == 401 and b"That is not your current password." in response.body
    assert passkeys_of(alice.pk) == [] and not user_of(alice.pk).factors


def test_a_registration_from_another_origin_is_refused(http, alice, mailbox):
    _, response = register(http, SoftAuthenticator(origin="https://evil.example"))
    assert response.status_code == 400 and b"The passkey could not be added." in response.body
    assert passkeys_of(alice.pk) == []


def test_a_registration_without_user_verification_is_refused(http, alice, mailbox):
    _, response = register(http, SoftAuthenticator(user_verified=False))
    assert response.status_code == 400 and passkeys_of(alice.pk) == []


def test_a_registration_challenge_works_once(http, alice, mailbox):
    browser = signed_in_browser(http)
    page = browser.get("/account")
    options = options_of(page.body)
    first, second = SoftAuthenticator(), SoftAuthenticator()
    for authenticator, expected in ((first, 302), (second, 409)):
        response = browser.post("/account/passkeys/add", {
            "csrf_token": hidden(page.body, "csrf_token"), "name": "Key", "current_password": PASSWORD,
            "credential": authenticator.create(options)})
        assert response.status_code == expected, response.body
    assert [p.credential_id for p in passkeys_of(alice.pk)] == [b64(first.credential_id)]


def test_a_registration_challenge_of_another_browser_is_refused(http, alice, mailbox):
    page = signed_in_browser(http).get("/account")
    other = signed_in_browser(http)
    response = other.post("/account/passkeys/add", {
        "csrf_token": hidden(other.get("/account").body, "csrf_token"), "name": "Key", "current_password": PASSWORD,
        "credential": SoftAuthenticator().create(options_of(page.body))})
    assert response.status_code == 400 and passkeys_of(alice.pk) == []


def test_a_bad_name_or_a_malformed_credential_changes_nothing(http, alice, mailbox):
    _, response = register(http, SoftAuthenticator(), name="   ")
    assert response.status_code == 400 and b"Give the passkey a name" in response.body
    _, response = register(http, SoftAuthenticator(), credential='{"id": "x", "response": []}')
    assert response.status_code == 400
    assert passkeys_of(alice.pk) == [] and mailbox.messages() == []


def test_renaming_and_removing_a_passkey(http, alice, registered, mailbox):
    browser = passkey_browser(http, registered)
    credential_id = b64(registered.credential_id)
    response = post_form(browser, "/account/passkeys/rename", {"credential_id": credential_id, "name": "Phone"})
    assert response.status_code == 302 and passkeys_of(alice.pk)[0].name == "Phone"
    response = post_form(browser, "/account/passkeys/delete", {"credential_id": credential_id,
                                                               "current_password": "wrong"})
    assert response.status_code == 401 and len(passkeys_of(alice.pk)) == 1
    response = post_form(browser, "/account/passkeys/delete", {"credential_id": credential_id,
                                                               "current_password": PASSWORD})
    assert response.status_code == 302 and response.headers["Location"] == "/account?done=passkey_removed"
    assert passkeys_of(alice.pk) == [] and not user_of(alice.pk).factors
    assert mailbox.messages("alice@example.com")[-1]["Subject"] == "Your sign-in methods were changed"
    assert 'The passkey named "Phone" was removed' in mailbox.text(mailbox.messages("alice@example.com")[-1])


def test_removing_the_last_factor_takes_the_recovery_codes_with_it_unless_policy_requires_one(
        http, alice, registered, mailbox, monkeypatch):
    from tests.conftest import reset_process_state
    from tests.routes.test_second_factor import enrol_totp, give_recovery_codes

    give_recovery_codes(alice.pk)
    browser = passkey_browser(http, registered)
    credential_id = b64(registered.credential_id)
    monkeypatch.setenv("MFA_POLICY", "required")
    reset_process_state(endpoint_changed=False)
    response = post_form(browser, "/account/passkeys/delete", {"credential_id": credential_id,
                                                               "current_password": PASSWORD})
    assert response.status_code == 409 and len(passkeys_of(alice.pk)) == 1
    monkeypatch.setenv("MFA_POLICY", "optional")
    reset_process_state(endpoint_changed=False)
    enrol_totp(alice.pk)
    # Another factor (TOTP) remains: the recovery codes stay with it.
    response = post_form(browser, "/account/passkeys/delete", {"credential_id": credential_id,
                                                               "current_password": PASSWORD})
    assert response.status_code == 302 and user_of(alice.pk).factors == {"totp", "recovery"}


def test_removing_the_only_factor_removes_the_recovery_codes_too(http, alice, registered, mailbox):
    from chalicelib.storage.factors import get
    from tests.routes.test_second_factor import give_recovery_codes

    give_recovery_codes(alice.pk)
    browser = passkey_browser(http, registered)
    response = post_form(browser, "/account/passkeys/delete", {"credential_id": b64(registered.credential_id),
                                                               "current_password": PASSWORD})
    # Alone, recovery codes would be the second factor every sign-in spends one of.
    assert response.status_code == 302 and not user_of(alice.pk).factors and get(alice.pk, "recovery") is None


def test_another_users_passkey_cannot_be_renamed_or_removed(http, alice, registered, mailbox):
    from chalicelib.storage.users import create_user
    create_user("bob@example.com", PASSWORD)
    bob = signed_in_browser(http, "bob@example.com")
    for path, fields in (("/account/passkeys/rename", {"name": "Mine now"}),
                         ("/account/passkeys/delete", {"current_password": PASSWORD})):
        response = post_form(bob, path, {"credential_id": b64(registered.credential_id), **fields})
        assert response.status_code == 404, response.body
    assert passkeys_of(alice.pk)[0].name == "Laptop"


def test_mfa_policy_off_hides_passkeys(http, alice, registered, monkeypatch, public_client):
    from tests.conftest import reset_process_state

    monkeypatch.setenv("MFA_POLICY", "off")
    reset_process_state(endpoint_changed=False)
    page = signed_in_browser(http).get("/account")
    assert b"webauthn-options" not in page.body and b"Passkeys" not in page.body
    browser, login_page = start_login(http, public_client.client_id)
    assert b"webauthn-options" not in login_page.body and b'autocomplete="username"' in login_page.body
    response = passkey_login(browser, login_page, registered.get({"challenge": "AAAA"}))
    assert response.status_code == 401


# Sign-in with a passkey alone -------------------------------------------------------------------------

def test_signing_in_with_a_passkey_alone_gets_a_code_with_passkey_amr(http, alice, registered, public_client,
                                                                      api_role_allows_every_dynamodb_call):
    browser, page = start_login(http, public_client.client_id, prompt="login consent")
    assert b'autocomplete="username webauthn"' in page.body
    options = options_of(page.body)
    assert options["userVerification"] == "required" and options["allowCredentials"] == []
    calls = api_role_allows_every_dynamodb_call
    calls.clear()
    response = passkey_login(browser, page, registered.get(options))
    assert [c["operation"] for c in calls] == ["BatchGetItem", "TransactWriteItems"]
    assert response.status_code == 302 and response.headers["Location"].startswith("/consent"), response.body
    from chalicelib.oauth import sessions as session_core
    from chalicelib.storage import sessions

    session = sessions.get(session_core.sha256_hex(browser.cookies["idp_session"]))
    assert session.sub == alice.pk and list(session.amr) == ["hwk", "user", "mfa"] and session.factors == ("passkey",)
    assert passkeys_of(alice.pk)[0].sign_count == 2 and passkeys_of(alice.pk)[0].last_used_at is not None


def test_a_synced_passkey_counts_as_swk(http, alice, mailbox, public_client):
    from chalicelib.oauth import sessions as session_core
    from chalicelib.storage import sessions

    authenticator = SoftAuthenticator(backup_eligible=True, fixed_count=0)
    register(http, authenticator)
    browser, page = start_login(http, public_client.client_id)
    response = passkey_login(browser, page, authenticator.get(options_of(page.body)))
    assert response.status_code == 302, response.body
    assert sessions.get(session_core.sha256_hex(browser.cookies["idp_session"])).amr == ("swk", "user", "mfa")
    # A counter that stays 0 (synced passkeys) is no regression: it signs in again.
    browser, page = start_login(http, public_client.client_id)
    assert passkey_login(browser, page, authenticator.get(options_of(page.body))).status_code == 302


def replayer(browser: Browser) -> Browser:
    """Another browser holding a copy of `browser`'s cookies as they are now (the worst case: whoever
    replays also has the cookie the challenge is bound to)."""
    return Browser(browser.http, cookies=dict(browser.cookies))


def test_a_replayed_assertion_is_refused(http, alice, registered, public_client, idp_log):
    browser, page = start_login(http, public_client.client_id)
    copy = replayer(browser)
    assertion = registered.get(options_of(page.body))
    assert passkey_login(browser, page, assertion).status_code == 302
    response = passkey_login(copy, page, assertion)
    assert response.status_code == 401 and b"That passkey could not sign you in." in response.body
    # The counter it carries is no longer above the stored one (the challenge marker would refuse it next).
    assert [e["reason"] for e in idp_log() if e["msg"] == "passkey sign-in refused"] == ["sign counter regression"]


def test_a_challenge_works_once_even_with_a_fresh_signature(http, alice, registered, public_client, idp_log):
    """Same challenge, a new signature with a higher counter: only the used-challenge marker refuses it."""
    browser, page = start_login(http, public_client.client_id)
    copy = replayer(browser)
    options = options_of(page.body)
    assert passkey_login(browser, page, registered.get(options)).status_code == 302
    response = passkey_login(copy, page, registered.get(options))
    assert response.status_code == 401 and b"That passkey could not sign you in." in response.body
    [replayed] = [e for e in idp_log() if e["msg"] == "passkey assertion replayed"]
    assert replayed["refused"] == ["challenge"]
    assert passkeys_of(alice.pk)[0].sign_count == 2  # the refused one changed nothing


def test_an_assertion_from_another_origin_or_rp_is_refused(http, alice, registered, public_client):
    for kwargs in ({"origin": "https://login.evil.example"}, {"rp_id": "evil.example"}, {"origin": "http://localhost:9999"}):
        browser, page = start_login(http, public_client.client_id)
        anonymous = browser.cookies["idp_session"]
        response = passkey_login(browser, page, registered.get(options_of(page.body), **kwargs))
        assert response.status_code == 401 and b"That passkey could not sign you in." in response.body, kwargs
        assert browser.cookies["idp_session"] == anonymous  # no session was made


def test_a_counter_regression_is_refused_and_logged(http, alice, registered, public_client, idp_log):
    registered.count = 0  # a clone of the authenticator, from before its last use
    browser, page = start_login(http, public_client.client_id)
    response = passkey_login(browser, page, registered.get(options_of(page.body)))
    assert response.status_code == 401
    warnings = [e for e in idp_log() if "sign counter" in e["msg"]]
    assert warnings and warnings[0]["credential_id"]


def test_an_assertion_naming_another_user_is_refused(http, alice, registered, public_client, mailbox):
    from chalicelib.storage.users import create_user

    bob = create_user("bob@example.com", PASSWORD)
    browser, page = start_login(http, public_client.client_id)
    # Alice's key, claiming to be Bob: Bob has no such passkey.
    response = passkey_login(browser, page, registered.get(options_of(page.body), user_handle=bob.pk.encode()))
    assert response.status_code == 401
    # Bob's own passkey, but signed by Alice's key under Bob's credential id: the signature fails.
    bobs = SoftAuthenticator()
    register(http, bobs, browser=signed_in_browser(http, "bob@example.com"))
    browser, page = start_login(http, public_client.client_id)
    response = passkey_login(browser, page, registered.get(options_of(page.body), user_handle=bob.pk.encode(),
                                                           credential_id=bobs.credential_id))
    assert response.status_code == 401


def test_a_passkey_without_user_verification_cannot_sign_in_alone(http, alice, registered, public_client):
    registered.user_verified = False
    browser, page = start_login(http, public_client.client_id)
    assert passkey_login(browser, page, registered.get(options_of(page.body))).status_code == 401


def test_a_disabled_user_cannot_sign_in_with_a_passkey(http, alice, registered, public_client):
    from chalicelib.storage.users import set_user_disabled

    set_user_disabled(alice.pk, True)
    browser, page = start_login(http, public_client.client_id)
    assert passkey_login(browser, page, registered.get(options_of(page.body))).status_code == 401


def test_a_challenge_of_another_browser_or_purpose_is_refused(http, alice, registered, public_client):
    _, page = start_login(http, public_client.client_id)
    stolen = options_of(page.body)
    browser, page = start_login(http, public_client.client_id)
    assert passkey_login(browser, page, registered.get(stolen)).status_code == 401
    account_options = options_of(passkey_browser(http, registered).get("/account").body)  # a registration challenge
    browser, page = start_login(http, public_client.client_id)
    assert passkey_login(browser, page, registered.get(account_options)).status_code == 401


def test_malformed_credentials_answer_the_sign_in_page(http, alice, public_client):
    for credential in ("", "{", "[]", '{"id": 5}', json.dumps({"id": "abc", "response": {"userHandle": "%%%"}}),
                       "x" * 20000):
        browser, page = start_login(http, public_client.client_id)
        response = passkey_login(browser, page, credential)
        assert response.status_code == 401 and b"That passkey could not sign you in." in response.body, credential


def test_a_passkey_sign_in_ends_in_tokens_for_the_app(http, alice, registered, public_client):
    browser, page = start_login(http, public_client.client_id)
    response = passkey_login(browser, page, registered.get(options_of(page.body)))
    location = response.headers["Location"]
    page = browser.get(location)
    response = browser.post("/consent", {"request_id": hidden(page.body, "request_id"),
                                         "csrf_token": hidden(page.body, "csrf_token"), "decision": "allow"})
    code = query_of(response.headers["Location"])["code"]
    tokens = json.loads(redeem(http, public_client.client_id, code).body)
    assert pyjwt.decode(tokens["id_token"], options={"verify_signature": False})["sub"] == alice.pk


def test_the_account_page_signs_in_with_a_passkey_alone(http, alice, registered):
    browser = Browser(http)
    page = browser.get("/account/login")
    assert b'autocomplete="username webauthn"' in page.body
    response = browser.post("/account/login", {"csrf_token": hidden(page.body, "csrf_token"), "method": "passkey",
                                               "credential": registered.get(options_of(page.body))})
    assert response.status_code == 302 and response.headers["Location"] == "/account", response.body
    assert browser.get("/account").status_code == 200


def test_a_passkey_sign_in_post_from_another_site_is_refused(http, alice, registered, public_client):
    browser, page = start_login(http, public_client.client_id)
    credential = registered.get(options_of(page.body))
    response = browser.post("/login", {"request_id": hidden(page.body, "request_id"),
                                       "csrf_token": hidden(page.body, "csrf_token"), "method": "passkey",
                                       "credential": credential}, extra={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403


def test_the_passkey_script_is_served_static_with_nosniff(http):
    response = http.get("/assets/passkeys.js")
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/javascript")
    assert response.headers["X-Content-Type-Options"] == "nosniff" and b"navigator.credentials" in response.body


# A passkey as the second factor (/mfa, chalicelib/blueprints/mfa.py) -----------------------------------

def password_then_mfa_page(http, client_id):
    browser, page = start_login(http, client_id)
    response = browser.post("/login", {"request_id": hidden(page.body, "request_id"),
                                       "csrf_token": hidden(page.body, "csrf_token"),
                                       "username": "alice@example.com", "password": PASSWORD})
    assert response.status_code == 302 and response.headers["Location"] == "/mfa", response.body
    page = browser.get("/mfa")
    assert page.status_code == 200, page.body
    return browser, page


def test_password_and_passkey_sign_in_through_the_second_step(http, alice, registered, public_client):
    from chalicelib.oauth import sessions as session_core
    from chalicelib.storage import sessions

    browser, page = password_then_mfa_page(http, public_client.client_id)
    options = options_of(page.body)
    assert [c["id"] for c in options["allowCredentials"]] == [b64(registered.credential_id)]
    assert options["userVerification"] == "preferred"
    response = browser.post("/mfa", {"request_id": hidden(page.body, "request_id"),
                                     "csrf_token": hidden(page.body, "csrf_token"), "method": "passkey",
                                     "credential": registered.get(options)})
    assert response.status_code == 302 and response.headers["Location"].startswith("/consent"), response.body
    session = sessions.get(session_core.sha256_hex(browser.cookies["idp_session"]))
    assert list(session.amr) == ["pwd", "hwk", "user", "mfa"]


def test_a_sign_in_challenge_cannot_be_used_as_a_second_factor(http, alice, registered, public_client):
    """Challenges are bound to their purpose and subject: one minted for /login (no subject) is refused
    by /mfa, even from the same browser."""
    browser, login_page = start_login(http, public_client.client_id)
    login_options = options_of(login_page.body)
    response = browser.post("/login", {"request_id": hidden(login_page.body, "request_id"),
                                       "csrf_token": hidden(login_page.body, "csrf_token"),
                                       "username": "alice@example.com", "password": PASSWORD})
    page = browser.get(response.headers["Location"])
    response = browser.post("/mfa", {"request_id": hidden(page.body, "request_id"),
                                     "csrf_token": hidden(page.body, "csrf_token"), "method": "passkey",
                                     "credential": registered.get(login_options)})
    assert response.status_code == 401 and sessions_of(browser) is None


def sessions_of(browser):
    from chalicelib.oauth import sessions as session_core

    return session_core.load(browser.cookies.get("idp_session"))
