"""The account page (/account, issue 12 §4 and §10): its own sign-in, profile claims, password and
email changes, sign out everywhere, apps, deletion; every form defended against cross-site posts."""
from __future__ import annotations

import json
from urllib.parse import urlencode

import jwt as pyjwt
import pytest

from tests.routes.account_flow import PASSWORD, account_sign_in, mailbox_for, post_form, signed_in_browser
from tests.routes.flow import FORM, Browser, hidden, query_of, redeem, sign_in_and_consent

NEW_PASSWORD = "a brand new passphrase 7"
SCOPE = "openid email profile offline_access"


@pytest.fixture
def mailbox(aws, tmp_path, monkeypatch):
    return mailbox_for(tmp_path, monkeypatch)


@pytest.fixture
def app_client(aws):
    """An https web app: consent is remembered (not asked every time), with refresh tokens."""
    from chalicelib.oauth.clients import create_client

    client, _ = create_client(client_name="Notes App", client_type="public", redirect_uris=["https://app.example.com/cb"],
                              grant_types=["authorization_code", "refresh_token"],
                              scopes=["openid", "email", "profile", "offline_access"])
    return client


def tokens(http, client, *, browser=None, email="alice@example.com", password=PASSWORD, scope=SCOPE):
    browser = browser or Browser(http)
    location = sign_in_and_consent(browser, client.client_id, email=email, password=password, scope=scope,
                                   redirect_uri="https://app.example.com/cb")
    response = redeem(http, client.client_id, query_of(location)["code"], redirect_uri="https://app.example.com/cb")
    assert response.status_code == 200, response.body
    return browser, json.loads(response.body)


def refresh(http, client, token):
    return http.post("/token", headers=FORM, body=urlencode(
        {"grant_type": "refresh_token", "refresh_token": token, "client_id": client.client_id}).encode())


def refused_grant(http, client, token) -> bool:
    response = refresh(http, client, token)
    return response.status_code == 400 and json.loads(response.body)["error"] == "invalid_grant"


def id_token_claims(body: dict) -> dict:
    return pyjwt.decode(body["id_token"], options={"verify_signature": False})


def userinfo(http, access_token):
    return json.loads(http.get("/userinfo", headers={"Authorization": f"Bearer {access_token}"}).body)


def user(sub):
    from chalicelib.storage.users import get_user

    return get_user(sub)


def account_throttle_failures() -> int:
    from chalicelib.storage.models import ThrottleModel

    return sum(int(t.failures) for t in ThrottleModel.scan(consistent_read=True) if t.pk.startswith("account#"))


# Signing in to the account page -------------------------------------------------------------------------

def test_the_account_page_without_a_session_sends_to_its_own_sign_in(http, alice):
    response = Browser(http).get("/account")
    assert response.status_code == 302 and response.headers["Location"] == "/account/login"


def test_signing_in_to_the_account_page_needs_no_authorization_request(http, alice):
    browser = signed_in_browser(http)
    page = browser.get("/account")
    assert page.status_code == 200 and b"alice@example.com" in page.body
    for token in (b'autocomplete="name"', b'autocomplete="given-name"', b'autocomplete="family-name"',
                  b'autocomplete="current-password"', b'autocomplete="new-password"', b'autocomplete="username"'):
        assert token in page.body


def test_a_wrong_password_at_the_account_sign_in_is_refused(http, alice):
    response = account_sign_in(Browser(http), password="not the password")
    assert response.status_code == 401 and b"Incorrect email or password." in response.body


@pytest.mark.parametrize("path", ["/account/profile", "/account/password", "/account/email", "/account/signout",
                                  "/account/apps/revoke", "/account/delete"])
def test_every_account_form_refuses_a_cross_site_post_or_a_missing_csrf_token(http, alice, path):
    browser = signed_in_browser(http)
    fields = {"name": "Mallory", "current_password": PASSWORD, "new_password": NEW_PASSWORD,
              "new_email": "mallory@example.com", "client_id": "x"}
    cross_site = post_form(browser, path, fields, headers={"Sec-Fetch-Site": "cross-site"})
    assert cross_site.status_code == 403
    no_token = browser.post(path, fields)
    assert no_token.status_code == 403
    after = user(alice.pk)
    assert after.name == "Alice Liddell" and after.email == "alice@example.com" and after.deleted_at is None
    assert browser.get("/account").status_code == 200, "the session survived"


# Profile claims ---------------------------------------------------------------------------------------------

def test_profile_claims_are_released_by_the_profile_scope_only(http, alice, app_client):
    browser = signed_in_browser(http)
    response = post_form(browser, "/account/profile", {"name": "Alice Liddell", "given_name": "Alice",
                                                       "family_name": "Liddell", "locale": "en_gb"})
    assert response.status_code == 302 and response.headers["Location"] == "/account?done=profile"
    stored = user(alice.pk)
    assert (stored.given_name, stored.family_name, stored.locale) == ("Alice", "Liddell", "en-GB")

    # The browser that made the change: its session carries the new claims into ID tokens at once.
    _, with_profile = tokens(http, app_client, browser=browser)
    claims = id_token_claims(with_profile)
    assert claims["given_name"] == "Alice" and claims["family_name"] == "Liddell" and claims["locale"] == "en-GB"
    assert isinstance(claims["updated_at"], int) and claims["updated_at"] == int(stored.updated_at)
    info = userinfo(http, with_profile["access_token"])
    assert info["given_name"] == "Alice" and info["locale"] == "en-GB" and info["updated_at"] == claims["updated_at"]

    _, without = tokens(http, app_client, scope="openid email")
    assert not {"name", "given_name", "family_name", "locale", "updated_at"} & set(id_token_claims(without))
    assert not {"name", "given_name", "family_name", "locale", "updated_at"} & set(userinfo(http, without["access_token"]))


@pytest.mark.parametrize(("field", "value"), [("locale", "not a tag"), ("given_name", "Al\u0007ice"),
                                              ("family_name", "x" * 201)])
def test_a_bad_profile_field_is_refused_and_changes_nothing(http, alice, field, value):
    browser = signed_in_browser(http)
    response = post_form(browser, "/account/profile", {"name": "Changed", field: value})
    assert response.status_code == 400 and b'class="alert"' in response.body
    assert user(alice.pk).name == "Alice Liddell"


def test_the_admin_cli_updates_profile_claims(alice, capsys):
    import os

    from tools import admin

    assert admin.main(["users", "update", "alice@example.com", "--given-name", "Alice", "--locale", "de-ch"],
                      environ=dict(os.environ)) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["given_name"] == "Alice" and printed["locale"] == "de-CH" and printed["name"] == "Alice Liddell"
    assert admin.main(["users", "update", alice.pk, "--name", ""], environ=dict(os.environ)) == 0
    stored = user(alice.pk)
    assert stored.name is None and stored.given_name == "Alice" and stored.locale == "de-CH"
    assert admin.main(["users", "update", alice.pk, "--locale", "english please"], environ=dict(os.environ)) == 2
    assert user(alice.pk).locale == "de-CH"


# Password ------------------------------------------------------------------------------------------------

def test_a_wrong_current_password_is_refused_and_counted_like_a_sign_in_attempt(http, alice):
    browser = signed_in_browser(http)
    before = account_throttle_failures()
    response = post_form(browser, "/account/password", {"current_password": "wrong guess here",
                                                        "new_password": NEW_PASSWORD})
    assert response.status_code == 401 and b"That is not your current password." in response.body
    assert account_throttle_failures() == before + 1
    from chalicelib.passwords import verify_password

    assert verify_password(PASSWORD, user(alice.pk).password_hash)


def test_the_sign_in_throttle_stops_guessing_the_current_password(http, alice, monkeypatch):
    from chalicelib.config import settings

    monkeypatch.setenv("LOGIN_MAX_FAILURES_PER_ACCOUNT", "2")
    monkeypatch.setenv("LOGIN_MAX_FAILURES_PER_IP", "2")
    monkeypatch.setenv("LOGIN_MAX_FAILURES_PER_DEVICE", "1")
    settings.cache_clear()
    browser = signed_in_browser(http)
    statuses = [post_form(browser, "/account/password", {"current_password": f"wrong guess {i}",
                                                         "new_password": NEW_PASSWORD}).status_code
                for i in range(4)]
    # Past the account's limit this browser, a known device of the account (it signed in), has
    # its own small budget (oauth/login.py), then it is refused like any other.
    assert statuses == [401, 401, 401, 429]
    response = post_form(browser, "/account/password", {"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert response.status_code == 429 and response.headers["Retry-After"].isdigit()


def test_a_weak_new_password_is_refused(http, alice):
    browser = signed_in_browser(http)
    for weak, message in (("short", b"password must be at least 8 characters"),
                          ("alice@example.com1", b"password must not be your email address"),
                          ("password123", b"password is too common")):
        response = post_form(browser, "/account/password", {"current_password": PASSWORD, "new_password": weak})
        assert response.status_code == 400 and message in response.body, weak
    from chalicelib.passwords import verify_password

    assert verify_password(PASSWORD, user(alice.pk).password_hash)


def test_changing_the_password_ends_every_session_and_refresh_family_and_sends_a_notice(http, alice, app_client,
                                                                                       mailbox):
    other_browser, family = tokens(http, app_client)
    browser = signed_in_browser(http)
    response = post_form(browser, "/account/password", {"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert response.status_code == 302 and response.headers["Location"] == "/account/login?done=password"
    assert refused_grant(http, app_client, family["refresh_token"])
    assert browser.get("/account").status_code == 302, "this browser signs in again"
    assert other_browser.get("/account").status_code == 302
    assert account_sign_in(Browser(http)).status_code == 401, "the old password is dead"
    assert account_sign_in(Browser(http), password=NEW_PASSWORD).status_code == 302
    [notice] = mailbox.messages("alice@example.com")
    assert notice["Subject"] == "Your password was changed"


# Sign out everywhere --------------------------------------------------------------------------------------

def test_sign_out_everywhere_ends_sessions_and_refresh_families(http, alice, app_client):
    other_browser, family = tokens(http, app_client)
    browser = signed_in_browser(http)
    response = post_form(browser, "/account/signout", {})
    assert response.status_code == 302 and response.headers["Location"] == "/account/login?done=signed_out"
    assert refused_grant(http, app_client, family["refresh_token"])
    assert browser.get("/account").status_code == 302 and other_browser.get("/account").status_code == 302
    assert user(alice.pk).session_generation == 1


# Email change ------------------------------------------------------------------------------------------------

def request_change(browser, new_email, password=PASSWORD):
    return post_form(browser, "/account/email", {"new_email": new_email, "current_password": password})


def test_changing_the_email_address_verifies_the_new_one_and_tells_the_old_one(http, alice, mailbox):
    browser = signed_in_browser(http)
    response = request_change(browser, "Alice@New.example")
    assert response.status_code == 302 and response.headers["Location"] == "/account?done=email_sent"
    assert user(alice.pk).email == "alice@example.com", "nothing changes before the link is used"
    link = mailbox.link("alice@new.example")

    # A GET (a mail scanner, a link preview) shows a button and uses nothing, however often.
    stranger = Browser(http)
    for _ in range(2):
        page = stranger.get(link)
        assert page.status_code == 200 and b"alice@new.example" in page.body
    assert user(alice.pk).email == "alice@example.com"

    confirmed = stranger.post("/account/email/confirm", {"csrf_token": hidden(page.body, "csrf_token"),
                                                         "token": hidden(page.body, "token")})
    assert confirmed.status_code == 200, confirmed.body
    changed = user(alice.pk)
    assert changed.email == "alice@new.example" and changed.email_verified
    [notice] = mailbox.messages("alice@example.com")
    assert notice["Subject"] == "Your email address was changed" and "alice@new.example" in mailbox.text(notice)
    assert account_sign_in(Browser(http), "alice@new.example").status_code == 302
    assert account_sign_in(Browser(http), "alice@example.com").status_code == 401
    again = stranger.post("/account/email/confirm", {"csrf_token": hidden(page.body, "csrf_token"),
                                                     "token": hidden(page.body, "token")})
    assert again.status_code == 400 and b"already used" in again.body


def test_an_email_change_link_post_from_another_site_is_refused(http, alice, mailbox):
    request_change(signed_in_browser(http), "alice@new.example")
    stranger = Browser(http)
    page = stranger.get(mailbox.link("alice@new.example"))
    response = stranger.post("/account/email/confirm", {"csrf_token": hidden(page.body, "csrf_token"),
                                                        "token": hidden(page.body, "token")},
                             extra={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403 and user(alice.pk).email == "alice@example.com"


def test_an_email_change_to_a_taken_address_reveals_nothing_and_changes_nothing(http, alice, mailbox):
    import re

    from chalicelib.storage.users import create_user

    bob = create_user("bob@example.com", "another fine passphrase")
    browser = signed_in_browser(http)
    free = request_change(browser, "carol@example.com")
    taken = request_change(browser, "bob@example.com")
    assert (free.status_code, free.headers["Location"]) == (taken.status_code, taken.headers["Location"])
    # Per-render randoms aside (form tokens, the WebAuthn challenge), the two pages are the same.
    page_after = [re.sub(rb'value="[^"]*"|"challenge": "[^"]*"', b"", browser.get(r.headers["Location"]).body)
                  for r in (free, taken)]
    assert page_after[0] == page_after[1]
    assert mailbox.messages("bob@example.com") == [], "the taken address's owner gets nothing"
    assert user(alice.pk).email == "alice@example.com" and user(bob.pk).email == "bob@example.com"


def test_an_address_taken_after_the_link_was_sent_is_not_switched(http, alice, mailbox):
    from chalicelib.storage.users import create_user, find_user_by_email

    request_change(signed_in_browser(http), "carol@example.com")
    carol = create_user("carol@example.com", "carol's own passphrase")
    stranger = Browser(http)
    page = stranger.get(mailbox.link("carol@example.com"))
    response = stranger.post("/account/email/confirm", {"csrf_token": hidden(page.body, "csrf_token"),
                                                        "token": hidden(page.body, "token")})
    assert response.status_code == 409
    assert user(alice.pk).email == "alice@example.com" and find_user_by_email("carol@example.com").pk == carol.pk
    assert find_user_by_email("alice@example.com").pk == alice.pk


def test_an_email_change_needs_the_current_password(http, alice, mailbox):
    response = request_change(signed_in_browser(http), "alice@new.example", password="not my password")
    assert response.status_code == 401 and mailbox.messages() == []


# Apps -------------------------------------------------------------------------------------------------------

def test_the_apps_list_shows_the_allowed_client_and_revoking_it_ends_its_refresh_tokens(http, alice, app_client):
    from chalicelib.storage import consents

    _, family = tokens(http, app_client)
    browser = signed_in_browser(http)
    page = browser.get("/account")
    assert b"Notes App" in page.body and b"Last used:" in page.body and b"offline_access" in page.body
    response = post_form(browser, "/account/apps/revoke", {"client_id": app_client.client_id})
    assert response.status_code == 302 and response.headers["Location"] == "/account?done=app_revoked"
    assert refused_grant(http, app_client, family["refresh_token"])
    assert consents.client_ids(alice.pk) == []
    assert b"Notes App" not in browser.get("/account").body
    # The app must ask again: the next authorization shows the consent page.
    from tests.routes.flow import authorize_query

    again = browser.get("/authorize?" + authorize_query(app_client.client_id, scope=SCOPE,
                                                        redirect_uri="https://app.example.com/cb"))
    assert again.headers["Location"].startswith("/consent?")


# Deletion -----------------------------------------------------------------------------------------------------

def test_deleting_the_account_needs_the_password(http, alice):
    browser = signed_in_browser(http)
    response = post_form(browser, "/account/delete", {"current_password": "not my password"})
    assert response.status_code == 401 and user(alice.pk).deleted_at is None


def test_deleting_the_account_kills_tokens_frees_the_address_and_leaves_a_tombstone_without_personal_data(
        http, alice, app_client, mailbox):
    from chalicelib.storage import consents
    from chalicelib.storage.models import GrantModel, UserModel
    from chalicelib.storage.users import create_user, find_user_by_email

    other_browser, family = tokens(http, app_client)
    browser = signed_in_browser(http)
    response = post_form(browser, "/account/delete", {"current_password": PASSWORD})
    assert response.status_code == 200 and b"Your account was deleted" in response.body
    assert refused_grant(http, app_client, family["refresh_token"])
    assert http.get("/userinfo", headers={"Authorization": f"Bearer {family['access_token']}"}).status_code == 401
    assert browser.get("/account").status_code == 302 and other_browser.get("/account").status_code == 302

    raw = UserModel.get(alice.pk, consistent_read=True).attribute_values
    assert set(raw) <= {"pk", "disabled", "deleted_at", "session_generation", "email_verified", "created_at",
                        "updated_at"}, raw
    assert raw["disabled"] is True and raw["deleted_at"]
    assert consents.client_ids(alice.pk) == []
    assert all(g.user_claims is None for g in GrantModel.query(alice.pk, consistent_read=True))
    [notice] = mailbox.messages("alice@example.com")
    assert notice["Subject"] == "Your account was deleted"

    assert account_sign_in(Browser(http)).status_code == 401, "the old address signs in like an unknown one"
    assert find_user_by_email("alice@example.com") is None
    again = create_user("alice@example.com", PASSWORD)
    assert again.pk != alice.pk, "the address signs up again as a new subject"


def test_a_deleted_subject_is_never_issued_again(http, alice, monkeypatch):
    from pynamodb.exceptions import TransactWriteError

    from chalicelib.storage import users
    from chalicelib.storage.models import UserModel

    browser = signed_in_browser(http)
    assert post_form(browser, "/account/delete", {"current_password": PASSWORD}).status_code == 200
    # Even if the random subject came up again, the tombstone's key refuses it.
    monkeypatch.setattr(users, "new_secret", lambda n: alice.pk.removeprefix("u_"))
    with pytest.raises(TransactWriteError):
        users.create_user("someone@example.com", "yet another passphrase")
    assert UserModel.get(alice.pk, consistent_read=True).email is None
    assert users.find_user_by_email("someone@example.com") is None


def test_a_deleted_account_cannot_be_re_enabled(http, alice):
    """`./idp-admin users enable` on a tombstone: nothing to enable, and it stays disabled."""
    from chalicelib.storage import users
    from chalicelib.storage.models import UserModel

    browser = signed_in_browser(http)
    assert post_form(browser, "/account/delete", {"current_password": PASSWORD}).status_code == 200
    assert users.set_user_disabled(alice.pk, False) is False
    assert UserModel.get(alice.pk, consistent_read=True).disabled is True


@pytest.mark.parametrize("ending", ["sign out everywhere", "password change", "password reset"])
def test_an_email_change_link_dies_with_the_sessions_it_was_asked_from(http, alice, mailbox, ending):
    """A stolen password lets a thief ask for an email change and keep the link; the owner then
    changes the password (or resets it, or signs out everywhere). The old link must not move the
    account to the thief's address afterwards."""
    from chalicelib.storage.users import set_password

    thief = signed_in_browser(http)
    request_change(thief, "thief@evil.example")
    link = mailbox.link("thief@evil.example")
    if ending == "sign out everywhere":
        assert post_form(signed_in_browser(http), "/account/signout", {}).status_code in (200, 302)
    elif ending == "password change":
        assert post_form(signed_in_browser(http), "/account/password",
                         {"current_password": PASSWORD, "new_password": NEW_PASSWORD}).status_code in (200, 302)
    else:
        assert set_password(alice.pk, NEW_PASSWORD, email="alice@example.com", reason="reset")

    page = thief.get(link)
    confirmed = thief.post("/account/email/confirm", {"csrf_token": hidden(page.body, "csrf_token"),
                                                      "token": hidden(page.body, "token")})
    assert confirmed.status_code != 200 or b"changed" not in confirmed.body
    assert user(alice.pk).email == "alice@example.com"
