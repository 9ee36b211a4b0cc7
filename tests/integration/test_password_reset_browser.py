"""Forgot password end to end in headless Chromium against a running stack (issue 12 §3): the
sign-in page's "Forgot password?" -> the reset email, read from the local outbox (.eml under
OUTBOX_DIR) -> a new password -> back to the waiting sign-in, where the old password fails and the
new one works."""
from __future__ import annotations

import email
import email.policy
import re
import secrets

import pytest

from tests.integration.conftest import Stack
from tests.integration.test_hosted_pages_browser import (  # noqa: F401 - fixtures
    PASSWORD, Registered, chromium, loopback, loopback_server, open_sign_in, sign_in, tab)

pytestmark = pytest.mark.integration
NEW_PASSWORD = "a fresh and unusual passphrase"


@pytest.fixture(scope="module")
def mail_stack(tmp_path_factory):
    """A stack whose emails land in an outbox directory this test reads."""
    directory = tmp_path_factory.mktemp("reset")
    stack = Stack(directory / "state", "secretsmanager", directory, extra_env={"OUTBOX_DIR": str(directory / "outbox")})
    stack.outbox = directory / "outbox"
    stack.wait_ready()
    yield stack
    stack.kill()
    print(stack.output())


@pytest.fixture
def registered(mail_stack, use_stack, loopback) -> Registered:
    from chalicelib.aws import client
    from chalicelib.config import settings
    from chalicelib.oauth.clients import create_client
    from chalicelib.storage.users import create_user

    use_stack(mail_stack)
    client("sesv2").create_email_identity(EmailIdentity=settings().email_from)  # moto refuses unverified senders
    app, _ = create_client(client_name="Notes App", client_type="public", redirect_uris=[loopback.redirect_uri],
                           scopes=["openid", "email", "profile"])
    address = f"alice-{secrets.token_hex(4)}@example.com"
    create_user(address, PASSWORD, name="Alice Liddell")
    return Registered(mail_stack, app.client_id, address, loopback.redirect_uri)


def reset_link_from_outbox(stack, to: str) -> str:
    for path in sorted(stack.outbox.glob("*.eml"), reverse=True):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if message["To"] == to and message["Subject"] == "Reset your password":
            text = message.get_body(("plain",)).get_content()
            return re.search(r"http://\S+/reset-password\?token=\S+", text).group(0)
    raise AssertionError(f"no reset email for {to} in {stack.outbox}")


def test_forgot_password_reset_then_only_the_new_password_signs_in(tab, registered):
    page, base = tab.page, registered.stack.base_url
    open_sign_in(tab, registered)
    page.get_by_role("link", name="Forgot password?").click()
    assert page.url.startswith(f"{base}/forgot-password?request_id=")
    page.get_by_label("Email").fill(registered.email)
    page.get_by_role("button", name="Send reset link").click()
    assert page.get_by_role("heading").inner_text() == "Check your email"

    page.goto(reset_link_from_outbox(registered.stack, registered.email))
    assert page.get_by_role("heading").inner_text() == "Choose a new password"
    assert page.locator("input[autocomplete=new-password]").count() == 1
    page.get_by_label("New password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    assert page.get_by_role("heading").inner_text() == "Password changed"

    page.get_by_role("link", name="Sign in").click()  # back to the request that was waiting
    assert page.url.startswith(f"{base}/login?request_id=")
    assert sign_in(tab, registered, PASSWORD).status == 401
    assert "Incorrect email or password." in page.locator("main").inner_text()
    response = sign_in(tab, registered, NEW_PASSWORD)
    assert response.status == 302 and page.url.startswith(f"{base}/consent?request_id="), page.url
    assert not tab.csp_violations(), tab.console


def invitation_link_from_outbox(stack, to: str) -> str:
    for path in sorted(stack.outbox.glob("*.eml"), reverse=True):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if message["To"] == to and message["Subject"] == "You have been invited":
            text = message.get_body(("plain",)).get_content()
            return re.search(r"http://\S+/invitation\?token=\S+", text).group(0)
    raise AssertionError(f"no invitation for {to} in {stack.outbox}")


def test_an_invitation_from_the_outbox_sets_up_a_verified_account_signed_in_on_this_device(
        tab, registered, monkeypatch):
    """Issue 12 §5 end to end: an operator's invitation email -> the invitee chooses a password ->
    signed in, with a verified address: the app's request goes straight to consent."""
    from chalicelib.accounts.invitations import invite
    from chalicelib.config import settings

    page, base = tab.page, registered.stack.base_url
    invitee = f"bob-{secrets.token_hex(4)}@example.com"
    # `./idp-admin users invite` runs in the operator's process: here, this one, sending through the
    # stack's SES into the stack's outbox.
    monkeypatch.setenv("OUTBOX_DIR", str(registered.stack.outbox))
    settings.cache_clear()
    invite(invitee, "Bob")
    link = invitation_link_from_outbox(registered.stack, invitee)

    page.goto(link)
    assert page.get_by_role("heading").inner_text() == "Set up your account"
    assert page.get_by_label("Name (optional)").input_value() == "Bob"
    assert page.locator("input[autocomplete=new-password]").count() == 1
    page.get_by_label("Password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Create account").click()
    assert page.get_by_role("heading").inner_text() == "Your account is ready"
    assert "You are signed in on this device." in page.locator("main").inner_text()

    # The link is spent: opening it again says so, and creates nothing.
    page.goto(link)
    assert page.get_by_role("heading").inner_text() == "This link doesn't work"

    as_invitee = Registered(registered.stack, registered.client_id, invitee, registered.redirect_uri)
    page.goto(as_invitee.authorization_request().url)
    assert page.url.startswith(f"{base}/consent?request_id="), page.url
    assert not tab.csp_violations(), tab.console
