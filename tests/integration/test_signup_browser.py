"""Sign-up end to end in headless Chromium against a running stack (issue 12's browser test): the
sign-in page's "Create account" link, the form, the verification link read from the stack's outbox
(.eml files under OUTBOX_DIR), consent, and an ID token that says `email_verified: true`.

The stack runs the local stage's settings (SIGNUP_MODE=open from .chalice/config.json,
REQUIRE_VERIFIED_EMAIL's default, on)."""
from __future__ import annotations

import base64
import email
import hashlib
import re
import secrets
from email import policy
from urllib.parse import urlencode

import jwt
import pytest
import requests

from tests.integration.conftest import Stack
from tests.integration.test_hosted_pages_browser import (  # noqa: F401 - fixtures
    chromium,
    loopback,
    loopback_server,
    tab,
    wait_for_client,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def mail_stack(tmp_path, use_stack):
    """A stack of its own that copies every email to an outbox, with SES's sender verified."""
    from chalicelib.aws import client
    from chalicelib.config import settings

    outbox = tmp_path / "outbox"
    stack = Stack(tmp_path / "state", "secretsmanager", tmp_path, extra_env={"OUTBOX_DIR": str(outbox)})
    try:
        stack.wait_ready()
        use_stack(stack)
        client("sesv2").create_email_identity(EmailIdentity=settings().email_from)
        yield stack, outbox
    finally:
        stack.kill()
        print(stack.output())


def newest_link(outbox) -> str:
    [path] = sorted(outbox.glob("*.eml"))
    message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    return re.search(r"http\S+/verify-email\?token=[0-9A-Z]+", message.get_body(("plain",)).get_content()).group(0)


def test_sign_up_verify_by_the_emailed_link_consent_and_an_id_token_with_a_verified_email(mail_stack, tab,
                                                                                        loopback):
    from chalicelib.oauth.clients import create_client

    stack, outbox = mail_stack
    base, page = stack.base_url, tab.page
    client, _ = create_client(client_name="Notes App", client_type="public", redirect_uris=[loopback.redirect_uri],
                              scopes=["openid", "email", "profile"])
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    page.goto(f"{base}/authorize?" + urlencode({
        "response_type": "code", "client_id": client.client_id, "redirect_uri": loopback.redirect_uri,
        "scope": "openid email profile", "state": "s1", "nonce": "n1", "code_challenge": challenge,
        "code_challenge_method": "S256"}))
    page.get_by_role("link", name="Create account").click()
    assert page.url.startswith(f"{base}/signup?request_id="), page.url

    address = f"newcomer-{secrets.token_hex(4)}@example.com"
    page.fill("input[autocomplete=email]", address)
    page.fill("input[autocomplete=new-password]", "plover xylophone meadow")
    page.fill("input[autocomplete=name]", "Nora Newcomer")
    page.get_by_role("button", name="Create account").click()
    page.wait_for_load_state()
    assert page.get_by_role("heading").inner_text() == "Check your email"
    assert page.locator("input[autocomplete=one-time-code]").count() == 1

    page.goto(newest_link(outbox))  # the same browser opens the emailed link
    assert page.get_by_role("heading").inner_text() == "Confirm your email address"
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url(f"{base}/consent?*")
    page.get_by_role("button", name="Allow").click()
    params = wait_for_client(tab, loopback)
    assert params["state"] == "s1"

    tokens = requests.post(f"{base}/token", data={
        "grant_type": "authorization_code", "code": params["code"], "redirect_uri": loopback.redirect_uri,
        "client_id": client.client_id, "code_verifier": verifier}, timeout=10).json()
    claims = jwt.decode(tokens["id_token"], options={"verify_signature": False})
    assert (claims["email"], claims["email_verified"], claims["name"]) == (address, True, "Nora Newcomer")
    assert not tab.csp_violations(), tab.console
