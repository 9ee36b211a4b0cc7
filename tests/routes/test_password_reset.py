"""Forgot / reset password (issue 12 §3, §6, §7): one answer whatever the address, a GET never
consumes, a refused password spends nothing, one winner per link, and a reset ends every session
and refresh-token family."""
from __future__ import annotations

import json
import re
import threading

import pytest

from tests.routes.flow import Browser, authorize_query, hidden, query_of, redeem, sign_in_and_consent
from tests.routes.mailbox import mailbox  # noqa: F401 - fixture
from tests.routes.test_refresh import refresh

NEW_PASSWORD = "a brand new passphrase"
OLD_PASSWORD = "correct horse battery"
SCOPE = "openid email offline_access"


@pytest.fixture
def refreshing_client(aws):
    from chalicelib.oauth.clients import create_client

    client, _ = create_client(client_name="Agent", client_type="public", redirect_uris=["http://127.0.0.1/cb"],
                              grant_types=["authorization_code", "refresh_token"],
                              scopes=["openid", "email", "offline_access"])
    return client


def login_location(browser, client_id) -> str:
    response = browser.get("/authorize?" + authorize_query(client_id))
    assert response.headers["Location"].startswith("/login?request_id=")
    return response.headers["Location"]


def ask_for_reset(browser, email, request_id=""):
    page = browser.get("/forgot-password" + (f"?request_id={request_id}" if request_id else ""))
    assert page.status_code == 200
    return browser.post("/forgot-password", {"csrf_token": hidden(page.body, "csrf_token"),
                                             "request_id": hidden(page.body, "request_id"), "email": email})


def reset_link(mailbox, to="alice@example.com") -> str:
    mails = [m for m in mailbox.messages(to) if m.subject == "Reset your password"]
    assert mails, "no reset email"
    return mails[-1].link("/reset-password")


def post_new_password(browser, link, password=NEW_PASSWORD, page=None):
    page = page or browser.get(link)
    assert page.status_code == 200, page.body
    return browser.post("/reset-password", {"csrf_token": hidden(page.body, "csrf_token"),
                                            "token": hidden(page.body, "token"), "password": password})


def sign_in_status(http, client_id, email, password) -> int:
    """302 when the sign-in succeeds, 401 when refused."""
    visitor = Browser(http)
    page = visitor.get(login_location(visitor, client_id))
    return visitor.post("/login", {"request_id": hidden(page.body, "request_id"),
                                   "csrf_token": hidden(page.body, "csrf_token"),
                                   "username": email, "password": password}).status_code


def masked(body: bytes) -> bytes:
    return re.sub(rb'name="csrf_token" value="[^"]*"', b'name="csrf_token" value=""', body)


# The sign-in page and the request ------------------------------------------------------------------

def test_the_sign_in_page_links_to_forgot_password_with_its_request(browser, public_client, alice):
    location = login_location(browser, public_client.client_id)
    request_id = query_of(location)["request_id"]
    page = browser.get(location)
    assert f'href="/forgot-password?request_id={request_id}"' in page.body.decode()
    forgot = browser.get(f"/forgot-password?request_id={request_id}")
    body = forgot.body.decode()
    assert hidden(forgot.body, "request_id") == request_id
    assert 'name="email" type="email" autocomplete="username" required' in body
    assert forgot.headers["Cache-Control"] == "no-store" and "frame-ancestors 'none'" in \
        forgot.headers["Content-Security-Policy"]


@pytest.mark.parametrize("email", ["alice@example.com", "nobody@example.com", "bob@example.com", "not an email"])
def test_the_answer_is_the_same_page_for_known_unknown_and_disabled_addresses(browser, mailbox, alice, email,
                                                                              api_role_allows_every_dynamodb_call):
    from chalicelib.storage.users import create_user, set_user_disabled

    set_user_disabled(create_user("bob@example.com", "bob's long password").pk, True)
    reference = ask_for_reset(Browser(browser.http), "nobody@example.com")
    calls = api_role_allows_every_dynamodb_call
    calls.clear()
    response = ask_for_reset(browser, email)
    assert response.status_code == 200
    assert masked(response.body) == masked(reference.body)
    assert b"If an account exists for that address" in response.body
    sent = mailbox.messages(email)
    assert len(sent) == (1 if email == "alice@example.com" else 0)  # disabled users get nothing either
    # The same DynamoDB work up to the link: limits, claim, user; the known address adds the link.
    operations = [call["operation"] for call in calls if call["params"].get("TableName", "").find("links") < 0]
    assert operations == ["TransactWriteItems", "GetItem", "GetItem"]


def test_the_reset_email_links_to_the_form_and_says_how_long_it_works(browser, mailbox, alice):
    ask_for_reset(browser, "Alice@Example.com ")
    mail, = mailbox.messages("alice@example.com")
    assert mail.subject == "Reset your password"
    assert mail.link("/reset-password").startswith("/reset-password?token=")
    assert "30 minutes" in mail.text and "30 minutes" in mail.html


def test_limits_answer_429_with_retry_after_on_the_same_page_for_any_address(browser, mailbox, alice, monkeypatch):
    from chalicelib.config import settings

    monkeypatch.setenv("ACCOUNT_ACTIONS_PER_ADDRESS", "1")
    settings.cache_clear()
    pages = {}
    for email in ("alice@example.com", "nobody@example.com"):
        assert ask_for_reset(browser, email).status_code == 200
        refused = ask_for_reset(browser, email)
        assert refused.status_code == 429 and refused.headers["Retry-After"].isdigit()
        assert b"Too many attempts" in refused.body
        pages[email] = masked(refused.body)
    assert pages["alice@example.com"] == pages["nobody@example.com"]
    assert len(mailbox.messages("alice@example.com")) == 1


def test_ses_failing_on_forgot_shows_a_clear_page_and_the_retry_works(browser, aws, tmp_path, monkeypatch, alice):
    from chalicelib.aws import client
    from chalicelib.config import settings

    monkeypatch.setenv("OUTBOX_DIR", str(tmp_path))
    settings.cache_clear()
    # moto's SES refuses a sender that is not a verified identity: SES refusing the message.
    response = ask_for_reset(browser, "alice@example.com")
    assert response.status_code == 503 and response.headers["Retry-After"].isdigit()
    assert b"We couldn't send the email" in response.body and b"Nothing was changed" in response.body
    assert list(tmp_path.glob("*.eml")) == []
    client("sesv2").create_email_identity(EmailIdentity=settings().email_from)
    assert ask_for_reset(browser, "alice@example.com").status_code == 200
    assert len(list(tmp_path.glob("*.eml"))) == 1


def test_a_cross_site_post_is_refused(browser, mailbox, alice):
    page = browser.get("/forgot-password")
    response = browser.post("/forgot-password", {"csrf_token": hidden(page.body, "csrf_token"),
                                                 "email": "alice@example.com"}, extra={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403 and mailbox.messages() == []


# The link --------------------------------------------------------------------------------------------

def test_the_form_names_the_account_for_password_managers(browser, mailbox, alice):
    ask_for_reset(browser, "alice@example.com")
    body = browser.get(reset_link(mailbox)).body.decode()
    assert '<input type="hidden" name="username" autocomplete="username" value="alice@example.com">' in body
    assert 'type="password" autocomplete="new-password"' in body


def test_a_get_never_consumes_the_link(browser, mailbox, alice):
    ask_for_reset(browser, "alice@example.com")
    link = reset_link(mailbox)
    for _ in range(3):  # a mail scanner, a link preview, the user
        assert browser.get(link).status_code == 200
    assert post_new_password(browser, link).status_code == 200


def test_a_refused_password_does_not_spend_the_link(browser, mailbox, alice):
    ask_for_reset(browser, "alice@example.com")
    link = reset_link(mailbox)
    for weak in ("short", "password123", "alice@example.com1"):
        refused = post_new_password(browser, link, weak)
        assert refused.status_code == 400 and b'class="alert"' in refused.body
    assert post_new_password(browser, link).status_code == 200


def test_a_link_works_once(browser, mailbox, alice):
    ask_for_reset(browser, "alice@example.com")
    link = reset_link(mailbox)
    page = browser.get(link)
    assert post_new_password(browser, link, page=page).status_code == 200
    again = post_new_password(browser, link, "yet another passphrase", page=page)
    assert again.status_code == 400 and b"This link was already used" in again.body
    assert browser.get(link).status_code == 400
    assert sign_in_status(browser.http, _client(), "alice@example.com", "yet another passphrase") == 401


def _client():
    from chalicelib.oauth.clients import create_client

    client, _ = create_client(client_name="Other", client_type="public", redirect_uris=["http://127.0.0.1/cb"],
                              scopes=["openid", "email"])
    return client.client_id


@pytest.mark.parametrize("token", ["", "0" * 26, "not-a-token", "x" * 500])
def test_unknown_tokens_get_the_fixed_page(browser, aws, token):
    response = browser.get(f"/reset-password?token={token}")
    assert response.status_code == 400 and b"This link is not valid" in response.body


def test_an_expired_link_is_refused(browser, mailbox, alice, monkeypatch):
    ask_for_reset(browser, "alice@example.com")
    link = reset_link(mailbox)
    page = browser.get(link)
    monkeypatch.setattr("chalicelib.log.now", lambda: 4_000_000_000)
    assert b"This link has expired" in browser.get(link).body
    assert b"This link has expired" in post_new_password(browser, link, page=page).body


def test_a_reset_link_does_nothing_once_the_user_is_disabled(browser, mailbox, alice):
    from chalicelib.passwords import verify_password
    from chalicelib.storage.users import get_user, set_user_disabled

    ask_for_reset(browser, "alice@example.com")
    link = reset_link(mailbox)
    page = browser.get(link)
    set_user_disabled(alice.pk, True)
    response = post_new_password(browser, link, page=page)
    assert response.status_code == 400 and b"This link is not valid" in response.body
    assert verify_password(OLD_PASSWORD, get_user(alice.pk).password_hash)


# What a reset does -------------------------------------------------------------------------------------

def test_a_reset_changes_the_password_and_ends_every_session_and_refresh_token(browser, http, mailbox, alice,
                                                                              refreshing_client):
    code = query_of(sign_in_and_consent(browser, refreshing_client.client_id, scope=SCOPE))
    tokens = json.loads(redeem(http, refreshing_client.client_id, code["code"]).body)
    assert not browser.get("/authorize?" + authorize_query(refreshing_client.client_id)).headers[
        "Location"].startswith("/login?")  # signed in

    other = Browser(http)
    ask_for_reset(other, "alice@example.com")
    response = post_new_password(other, reset_link(mailbox))
    assert response.status_code == 200 and b"Password changed" in response.body

    assert json.loads(refresh(http, refreshing_client.client_id, tokens["refresh_token"]).body)["error"] == \
        "invalid_grant"
    assert browser.get("/authorize?" + authorize_query(refreshing_client.client_id)).headers[
        "Location"].startswith("/login?")  # the session ended
    assert sign_in_status(http, refreshing_client.client_id, "alice@example.com", OLD_PASSWORD) == 401
    assert sign_in_status(http, refreshing_client.client_id, "alice@example.com", NEW_PASSWORD) == 302
    notice, = [m for m in mailbox.messages("alice@example.com") if m.subject == "Your password was changed"]
    assert "signed out" in notice.text


def test_a_reset_verifies_the_address(browser, mailbox, alice):
    from chalicelib.storage.users import get_user

    assert get_user(alice.pk).email_verified is False
    ask_for_reset(browser, "alice@example.com")
    post_new_password(browser, reset_link(mailbox))
    assert get_user(alice.pk).email_verified is True


def test_after_a_reset_the_page_leads_back_to_the_waiting_sign_in(browser, mailbox, alice, public_client):
    request_id = query_of(login_location(browser, public_client.client_id))["request_id"]
    ask_for_reset(browser, "alice@example.com", request_id)
    response = post_new_password(browser, reset_link(mailbox))
    assert f'href="/login?request_id={request_id}"'.encode() in response.body


def test_without_a_live_request_the_page_just_says_done(browser, mailbox, alice):
    ask_for_reset(browser, "alice@example.com", "gone-request-id")
    response = post_new_password(browser, reset_link(mailbox))
    assert response.status_code == 200 and b"/login" not in response.body
    assert b"sign in to the app you were using" in response.body


def test_the_reset_stands_when_the_changed_notice_cannot_be_sent(browser, mailbox, alice, monkeypatch):
    from chalicelib import mail
    from chalicelib.errors import EmailNotSent
    from chalicelib.passwords import verify_password
    from chalicelib.storage.users import get_user

    ask_for_reset(browser, "alice@example.com")
    link = reset_link(mailbox)
    send = mail.send

    def failing_notice(to, template, **kwargs):
        if template == "password_changed":
            raise EmailNotSent("ses down")
        return send(to, template, **kwargs)

    monkeypatch.setattr(mail, "send", failing_notice)
    assert post_new_password(browser, link).status_code == 200
    assert verify_password(NEW_PASSWORD, get_user(alice.pk).password_hash)


def test_a_fault_after_the_consume_puts_the_link_back(browser, mailbox, alice, monkeypatch):
    from chalicelib.storage import grants

    ask_for_reset(browser, "alice@example.com")
    link = reset_link(mailbox)
    page = browser.get(link)
    revoke = grants.revoke_all_of_user

    def failing(*args, **kwargs):
        from chalicelib.errors import TemporarilyUnavailable

        raise TemporarilyUnavailable("dynamodb down", retry_after=1)

    monkeypatch.setattr(grants, "revoke_all_of_user", failing)
    assert post_new_password(browser, link, page=page).status_code == 503
    monkeypatch.setattr(grants, "revoke_all_of_user", revoke)
    assert post_new_password(browser, link, page=page).status_code == 200


def test_concurrent_posts_of_one_link_have_exactly_one_winner(aws_server, monkeypatch):
    """Eight threads submit one reset link at once against the moto server: one reset, seven refusals."""
    from chalicelib import mail
    from chalicelib.accounts import recovery
    from chalicelib.log import now
    from chalicelib.storage import links
    from chalicelib.storage.users import create_user

    monkeypatch.setattr(mail, "send", lambda *args, **kwargs: None)
    user = create_user("alice@example.com", OLD_PASSWORD)
    token = links.issue("reset_password", email=user.email, sub=user.pk, at=now(), ttl=600)
    results, barrier = [], threading.Barrier(8)

    def submit(i):
        barrier.wait()
        results.append(recovery.reset_password(token, f"{NEW_PASSWORD} {i}"))

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(isinstance(r, recovery.Reset) for r in results) == 1
    assert sorted(r.reason for r in results if isinstance(r, links.Refused)) == ["used"] * 7
