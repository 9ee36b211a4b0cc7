"""Security review of issue 13 (second factors, passkeys, step-up): attacks found by the review,
each failing before its fix."""
from __future__ import annotations

import json
import re

import pytest

from tests.routes.account_flow import PASSWORD, mailbox_for, post_form, signed_in_browser
from tests.routes.flow import Browser, authorize_query, hidden
from tests.routes.test_account_totp import code, secret_on, session_of


@pytest.fixture
def mailbox(aws, tmp_path, monkeypatch):
    return mailbox_for(tmp_path, monkeypatch)


# 1. A pending TOTP enrolment is the user's, not the session's -----------------------------------

def test_a_borrowed_signed_in_browser_cannot_read_the_secret_of_an_enrolment_started_elsewhere(http, alice,
                                                                                              mailbox):
    owner = signed_in_browser(http)      # the user, at home
    borrowed = signed_in_browser(http)   # a browser left signed in (shared PC); its holder knows no password
    assert post_form(owner, "/account/totp/start", {"current_password": PASSWORD}).status_code == 302
    secret = secret_on(owner.get("/account/totp"))
    page = borrowed.get("/account/totp")
    # The borrower learns the TOTP secret the owner is about to scan: the second factor is copied.
    assert secret not in page.body.decode(), "another session of the user is shown the enrolment's secret"


def test_a_borrowed_browser_cannot_step_itself_up_with_an_enrolment_started_elsewhere(http, alice, mailbox):
    """MFA_POLICY=required / a client's require_mfa: the borrower (no password) cannot enrol, but
    can confirm the owner's enrolment on /account/security and its own session becomes pwd+otp+mfa."""
    from chalicelib.oauth.clients import create_client

    owner, borrowed = signed_in_browser(http), signed_in_browser(http)
    client, _ = create_client(client_name="Notes", client_type="public", redirect_uris=["http://127.0.0.1:5000/cb"],
                              grant_types=["authorization_code"], scopes=["openid", "email"])
    response = Browser(http, cookies={}).get("/authorize?" + authorize_query(client.client_id))
    request_id = re.search(r"request_id=([^&]+)", response.headers["Location"]).group(1)
    assert post_form(owner, "/account/totp/start", {"current_password": PASSWORD}).status_code == 302
    secret = secret_on(owner.get("/account/totp"))  # say the borrower saw it over the owner's shoulder
    page = borrowed.get(f"/account/security?request_id={request_id}")
    assert secret not in page.body.decode()
    done = borrowed.post("/account/security", {"csrf_token": hidden(page.body, "csrf_token"), "step": "confirm",
                                               "request_id": request_id, "code": code(secret)})
    assert session_of(borrowed).amr == ("pwd",), (done.status_code, session_of(borrowed).amr)


# 2. Malformed passkey credentials ----------------------------------------------------------------

NESTED = "[" * 9000  # under MAX_CREDENTIAL_JSON (16 KiB): json.loads raises RecursionError, not ValueError


def test_a_deeply_nested_credential_on_the_mfa_page_is_not_a_500(http, keys):
    # No cookie, no CSRF token: _factor_ids parses the credential before anything is checked.
    response = Browser(http).post("/mfa", {"method": "passkey", "credential": NESTED})
    assert response.status_code < 500, response.status_code


def test_a_deeply_nested_credential_on_the_sign_in_page_is_not_a_500(http, alice, public_client):
    browser = Browser(http)
    page = browser.get(browser.get("/authorize?" + authorize_query(public_client.client_id)).headers["Location"])
    response = browser.post("/login", {"request_id": hidden(page.body, "request_id"),
                                       "csrf_token": hidden(page.body, "csrf_token"), "method": "passkey",
                                       "credential": NESTED})
    assert response.status_code < 500, response.status_code
