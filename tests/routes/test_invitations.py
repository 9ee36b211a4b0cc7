"""Invitations (issue 12 §5, §6): the invitee sets a password on a page a GET never spends; the
account is created verified and signed in; an address that got an account meanwhile is refused
without spending the link."""
from __future__ import annotations

import pytest

from tests.routes.flow import Browser, authorize_query, hidden, query_of
from tests.routes.mailbox import mailbox  # noqa: F401 - fixture

PASSWORD = "a fine invitation passphrase"


@pytest.fixture
def invited(mailbox):
    """Carol is invited; returns the link's path from her email."""
    from chalicelib.accounts.invitations import invite

    invite("Carol@Example.com", "Carol")
    mail, = mailbox.messages("carol@example.com")
    assert mail.subject == "You have been invited" and "Hello Carol" in mail.text and "7 days" in mail.text
    return mail.link("/invitation")


def accept(browser, link, password=PASSWORD, name="Carol C.", page=None):
    page = page or browser.get(link)
    assert page.status_code == 200, page.body
    return browser.post("/invitation", {"csrf_token": hidden(page.body, "csrf_token"), "token": hidden(page.body, "token"),
                                        "password": password, "name": name})


def test_the_page_shows_the_address_and_the_name_to_confirm(browser, invited):
    body = browser.get(invited).body.decode()
    assert "<strong>carol@example.com</strong>" in body
    assert '<input type="hidden" name="username" autocomplete="username" value="carol@example.com">' in body
    assert 'autocomplete="name" maxlength="200" value="Carol"' in body
    assert 'type="password" autocomplete="new-password"' in body


def test_accepting_creates_a_verified_user_and_signs_them_in(browser, invited, public_client):
    from chalicelib.passwords import verify_password
    from chalicelib.storage.users import find_user_by_email

    response = accept(browser, invited)
    assert response.status_code == 200 and b"Your account is ready" in response.body
    user = find_user_by_email("carol@example.com")
    assert user.email_verified is True and user.name == "Carol C." and verify_password(PASSWORD, user.password_hash)
    # Signed in: /authorize goes on to consent, not to the sign-in page.
    assert browser.get("/authorize?" + authorize_query(public_client.client_id)).headers["Location"].startswith(
        "/consent?")


def test_the_ready_page_links_home_when_configured(browser, invited, monkeypatch):
    from chalicelib.config import settings

    monkeypatch.setenv("HOME_URL", "https://app.example.com/")
    settings.cache_clear()
    assert b'href="https://app.example.com/"' in accept(browser, invited).body


def test_a_get_never_consumes_and_a_link_works_once(browser, invited):
    for _ in range(3):
        assert browser.get(invited).status_code == 200
    page = browser.get(invited)
    assert accept(browser, invited, page=page).status_code == 200
    again = accept(Browser(browser.http), invited, page=page)
    assert again.status_code in (400, 403)
    assert b"This link was already used" in browser.get(invited).body


@pytest.mark.parametrize(("password", "name"), [("short", "Carol"), ("password123", "Carol"),
                                                ("carol@example.com", "Carol"), (PASSWORD, "x" * 201),
                                                (PASSWORD, "bell\u0007")])
def test_refused_input_does_not_spend_the_link(browser, invited, password, name):
    from chalicelib.storage.users import find_user_by_email

    refused = accept(browser, invited, password, name)
    assert refused.status_code == 400 and b'class="alert"' in refused.body
    assert find_user_by_email("carol@example.com") is None
    assert accept(browser, invited).status_code == 200


def test_an_address_that_got_an_account_meanwhile_is_refused_and_the_link_kept(browser, invited):
    from chalicelib.log import now
    from chalicelib.storage import links
    from chalicelib.storage.users import create_user

    page = browser.get(invited)
    create_user("carol@example.com", "signed up meanwhile")
    response = accept(browser, invited, page=page)
    assert response.status_code == 409 and b"You already have an account" in response.body
    assert "Set-Cookie" not in response.headers  # nobody signed in as the account's owner
    # The link is not spent: consuming it still works.
    assert isinstance(links.consume(query_of(invited)["token"], "invitation", now()), tuple)


def test_a_cross_site_post_is_refused(browser, invited):
    from chalicelib.storage.users import find_user_by_email

    page = browser.get(invited)
    response = browser.post("/invitation", {"csrf_token": hidden(page.body, "csrf_token"),
                                            "token": hidden(page.body, "token"), "password": PASSWORD},
                            extra={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403 and find_user_by_email("carol@example.com") is None


def test_the_sign_in_failing_after_creation_still_shows_the_account_ready(browser, invited, monkeypatch):
    from chalicelib.storage import sign_ins
    from chalicelib.storage.users import find_user_by_email

    def failing(*args, **kwargs):
        raise RuntimeError("dynamodb down")

    monkeypatch.setattr(sign_ins, "record_sign_in", failing)
    response = accept(browser, invited)
    assert response.status_code == 200 and b"Your account is ready" in response.body
    assert b"You are signed in" not in response.body and "Set-Cookie" not in response.headers
    assert find_user_by_email("carol@example.com").email_verified is True


@pytest.mark.parametrize("token", ["", "0" * 26])
def test_unknown_invitations_get_the_fixed_page(browser, aws, token):
    response = browser.get(f"/invitation?token={token}")
    assert response.status_code == 400 and b"This link is not valid" in response.body
    assert b"forgot-password" not in response.body
