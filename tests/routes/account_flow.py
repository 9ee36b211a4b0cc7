"""Helpers for the account page's route tests: a mailbox (moto SES + the .eml outbox), signing in
to /account, and posting its forms."""
from __future__ import annotations

import email
import email.policy
import re
from pathlib import Path

from tests.routes.flow import Browser, hidden

PASSWORD = "correct horse battery"


class Mailbox:
    """The messages the IdP sent, read from OUTBOX_DIR (written only once SES took them)."""

    def __init__(self, directory: Path):
        self.directory = directory

    def messages(self, to: str | None = None) -> list:
        from chalicelib import mail

        found = [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
                 for p in mail.outbox(self.directory)]
        return [m for m in found if to is None or m["To"] == to]

    def text(self, message) -> str:
        return message.get_body(("plain",)).get_content()

    def link(self, to: str) -> str:
        """The path of the newest link to /account/email/confirm sent to `to`."""
        body = self.text(self.messages(to)[-1])
        return re.search(r"http://localhost:8000(/account/email/confirm\?token=[0-9A-Z]+)", body).group(1)


def mailbox_for(tmp_path, monkeypatch) -> Mailbox:
    from chalicelib.aws import client
    from chalicelib.config import settings
    from tests.conftest import reset_process_state

    monkeypatch.setenv("OUTBOX_DIR", str(tmp_path / "outbox"))
    reset_process_state(endpoint_changed=False)
    client("sesv2").create_email_identity(EmailIdentity=settings().email_from)
    return Mailbox(tmp_path / "outbox")


def account_sign_in(browser: Browser, email_address="alice@example.com", password=PASSWORD):
    page = browser.get("/account/login")
    assert page.status_code == 200, page.body
    return browser.post("/account/login", {"csrf_token": hidden(page.body, "csrf_token"), "username": email_address,
                                           "password": password})


def signed_in_browser(http, email_address="alice@example.com", password=PASSWORD) -> Browser:
    browser = Browser(http)
    response = account_sign_in(browser, email_address, password)
    assert response.status_code == 302 and response.headers["Location"] == "/account", response.body
    return browser


def post_form(browser: Browser, path: str, fields: dict, *, headers=None):
    """Post one of the account page's forms with the page's CSRF token."""
    page = browser.get("/account")
    assert page.status_code == 200, page.body
    return browser.post(path, {"csrf_token": hidden(page.body, "csrf_token"), **fields}, extra=headers)
