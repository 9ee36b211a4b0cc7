"""The account page in a real headless Chromium against a running devstack: changing the email
address through the link in the outbox (.eml under OUTBOX_DIR), then deleting the account.

The stack runs with OUTBOX_DIR set and this process verifies the sender identity in its moto
server (moto's SES refuses unverified senders), so the messages the IdP sends land as files here.
"""
from __future__ import annotations

import email
import email.policy
import re
import secrets

import pytest

from tests.integration import test_hosted_pages_browser as hosted_pages
from tests.integration.conftest import Stack

PASSWORD = hosted_pages.PASSWORD
chromium = hosted_pages.chromium  # the session's headless Chromium, and a fresh tab per test (fixtures)
tab = hosted_pages.tab

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def outbox_stack(tmp_path_factory):
    directory = tmp_path_factory.mktemp("account-idp")
    stack = Stack(directory / "state", "secretsmanager", directory, extra_env={"OUTBOX_DIR": str(directory / "outbox")})
    stack.outbox = directory / "outbox"
    stack.wait_ready()
    yield stack
    stack.kill()
    print(stack.output())


@pytest.fixture
def account(outbox_stack, use_stack):
    """A user in the stack, and the sender identity verified in its moto server."""
    from chalicelib.aws import client
    from chalicelib.config import settings
    from chalicelib.storage.users import create_user

    use_stack(outbox_stack)
    client("sesv2").create_email_identity(EmailIdentity=settings().email_from)
    address = f"alice-{secrets.token_hex(4)}@example.com"
    user = create_user(address, PASSWORD, name="Alice Liddell")
    return outbox_stack, user, address


def newest_message_to(outbox, address: str):
    from chalicelib import mail

    for path in reversed(mail.outbox(outbox)):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if message["To"] == address:
            return message
    raise AssertionError(f"no message to {address}")


def test_change_the_email_address_by_the_emailed_link_then_delete_the_account(tab, account):
    from chalicelib.storage.users import find_user_by_email, get_user

    stack, user, address = account
    page, base = tab.page, stack.base_url
    page.set_viewport_size({"width": 390, "height": 800})  # a phone

    page.goto(f"{base}/account")
    assert page.url == f"{base}/account/login"
    page.get_by_label("Email").fill(address)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(f"{base}/account")
    assert page.get_by_role("heading", name="Your account").is_visible()

    # Change the address: the new one must prove itself through the link.
    new_address = f"new-{secrets.token_hex(4)}@example.com"
    page.get_by_label("New email address").fill(new_address)
    page.locator("#email_password").fill(PASSWORD)
    page.get_by_role("button", name="Send confirmation link").click()
    page.wait_for_url(f"{base}/account?done=email_sent")
    assert "we sent a link" in page.get_by_role("status").inner_text()
    body = newest_message_to(stack.outbox, new_address).get_body(("plain",)).get_content()
    link = re.search(r"http://\S+/account/email/confirm\?token=[0-9A-Z]+", body).group(0)

    page.goto(link)
    assert new_address in page.locator("main").inner_text()
    assert get_user(user.pk).email == address, "opening the link changes nothing"
    page.get_by_role("button", name="Change my email address").click()
    assert "Your email address was changed" in page.get_by_role("status").inner_text()
    assert get_user(user.pk).email == new_address
    notice = newest_message_to(stack.outbox, address)
    assert notice["Subject"] == "Your email address was changed"

    # Delete the account (the session is still this browser's).
    page.goto(f"{base}/account")
    page.locator("#delete_password").fill(PASSWORD)
    page.get_by_role("button", name="Delete my account").click()
    assert "Your account was deleted" in page.get_by_role("status").inner_text()
    assert newest_message_to(stack.outbox, new_address)["Subject"] == "Your account was deleted"
    assert find_user_by_email(new_address) is None and get_user(user.pk).deleted_at is not None
    assert tab.csp_violations() == []

    page.goto(f"{base}/account")
    assert page.url == f"{base}/account/login", "signed out"
    page.get_by_label("Email").fill(new_address)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    assert "Incorrect email or password." in page.get_by_role("alert").inner_text()
