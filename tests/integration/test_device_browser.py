"""The device page (RFC 8628 §3.3) in a real headless Chromium at phone width against a running
devstack: a device asks for a code; the user opens verification_uri_complete, signs in, finds the
code filled in, confirms it, allows the device client by name, and is told to return to the device,
which then gets its tokens. And a typed code in another shape (lower case, spaces) works too."""
from __future__ import annotations

import re

import pytest
import requests

from chalicelib.capabilities import DEVICE_CODE
from tests.integration import test_hosted_pages_browser as hosted_pages
from tests.integration.hosted_flow import TIMEOUT, new_client, new_user

PASSWORD = "correct horse battery staple"  # hosted_flow.new_user's
chromium = hosted_pages.chromium  # the session's headless Chromium, and a fresh tab per test (fixtures)
tab = hosted_pages.tab

pytestmark = pytest.mark.integration


@pytest.fixture
def device(idp, use_stack):
    use_stack(idp)
    client, _ = new_client("public", scopes=("openid", "email"), grant_types=(DEVICE_CODE,))
    _, email = new_user()
    started = requests.post(f"{idp.base_url}/device_authorization", timeout=TIMEOUT,
                            data={"client_id": client.client_id, "scope": "openid email"}).json()
    return idp, client, email, started


def poll(stack, client, started):
    return requests.post(f"{stack.base_url}/token", timeout=TIMEOUT, data={
        "grant_type": DEVICE_CODE, "device_code": started["device_code"], "client_id": client.client_id})


def pending(started) -> bool:
    from chalicelib.log import now
    from chalicelib.storage import device_codes

    return device_codes.find(started["user_code"].replace("-", ""), now()).status == "pending"


def sign_in(page, email):
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()


def test_open_the_link_sign_in_confirm_and_allow_then_the_device_gets_tokens(tab, device):
    stack, client, email, started = device
    page, base = tab.page, stack.base_url
    page.set_viewport_size({"width": 390, "height": 800})  # a phone

    page.goto(started["verification_uri_complete"])
    assert page.url.startswith(f"{base}/account/login?continue=device")
    sign_in(page, email)
    page.wait_for_url(re.compile(re.escape(f"{base}/device?user_code=")))
    field = page.get_by_label("Code")
    assert field.input_value() == started["user_code"], "the link fills the code in"
    assert field.get_attribute("autocomplete") == "off" and field.get_attribute("autocapitalize") == "characters"
    assert pending(started), "and approves nothing by itself"
    # Nothing sticks out of a phone's width.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390

    page.get_by_role("button", name="Continue").click()
    assert page.get_by_role("heading", name=f"Allow {client.client_name} on your device?").is_visible()
    assert started["user_code"] in page.locator("main").inner_text()
    page.get_by_role("button", name="Allow").click()
    assert page.get_by_role("heading", name="Device connected").is_visible()
    assert "You can return to your device." in page.get_by_role("status").inner_text()
    assert tab.csp_violations() == []

    tokens = poll(stack, client, started)
    assert tokens.status_code == 200, tokens.text
    assert {"access_token", "id_token"} <= set(tokens.json())


def test_a_code_typed_in_lower_case_with_spaces_is_found_and_can_be_denied(tab, device):
    stack, client, email, started = device
    page, base = tab.page, stack.base_url
    page.set_viewport_size({"width": 390, "height": 800})

    page.goto(f"{base}/device")
    sign_in(page, email)
    page.wait_for_url(f"{base}/device")
    page.get_by_label("Code").fill("nope")
    page.get_by_role("button", name="Continue").click()
    assert "Enter the 8 letters your device shows" in page.get_by_role("alert").inner_text()
    page.get_by_label("Code").fill(started["user_code"].lower().replace("-", " "))
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("button", name="Deny").click()
    assert page.get_by_role("heading", name="Access denied").is_visible()
    assert tab.csp_violations() == []
    response = poll(stack, client, started)
    assert response.status_code == 400 and response.json()["error"] == "access_denied"
