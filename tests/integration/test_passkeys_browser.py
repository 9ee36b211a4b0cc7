"""Passkeys in a real headless Chromium with a CDP virtual authenticator (ctap2, internal, resident
keys, user verification), against a running devstack at http://localhost:PORT (browsers refuse
WebAuthn for an IP-address RP ID): register a passkey on the account page, sign out, sign in with the
passkey alone (the button, and the username field's autofill where the browser offers conditional
UI), then password + passkey through /mfa. Screenshots of the pages go to tmp_path for a look."""
from __future__ import annotations

import pytest

from tests.integration import test_hosted_pages_browser as hosted_pages
from tests.integration.test_hosted_pages_browser import open_sign_in, sign_in, wait_for_client

PASSWORD = hosted_pages.PASSWORD
chromium = hosted_pages.chromium
tab = hosted_pages.tab
registered = hosted_pages.registered
loopback = hosted_pages.loopback
loopback_server = hosted_pages.loopback_server

pytestmark = pytest.mark.integration


def virtual_authenticator(page) -> tuple[object, str]:
    """A platform authenticator in this tab (Chrome DevTools Protocol, WebAuthn domain)."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    found = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True, "hasUserVerification": True,
        "isUserVerified": True, "automaticPresenceSimulation": True}})
    return cdp, found["authenticatorId"]


def without_conditional_ui(page) -> None:
    """This tab's pages from now on see a browser that offers no passkeys in autofill."""
    page.add_init_script("PublicKeyCredential.isConditionalMediationAvailable = "
                         "function () { return Promise.resolve(false); };")


def sign_out(page, base: str) -> None:
    page.goto(f"{base}/logout")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_load_state()


def session_amr(page, base: str):
    from chalicelib.hashing import sha256_hex
    from chalicelib.storage import sessions

    [cookie] = [c for c in page.context.cookies(base) if c["name"] == "idp_session"]
    session = sessions.get(sha256_hex(cookie["value"]))
    return list(session.amr) if session else None


def test_register_a_passkey_then_sign_in_with_it_alone_and_as_a_second_factor(tab, registered, loopback, tmp_path):
    from chalicelib.storage import factors
    from chalicelib.storage.users import find_user_by_email

    page, base = tab.page, registered.stack.base_url
    assert base.startswith("http://localhost:"), base
    page.set_viewport_size({"width": 390, "height": 900})  # a phone
    cdp, authenticator_id = virtual_authenticator(page)

    # Register on the account page.
    page.goto(f"{base}/account/login")
    page.get_by_label("Email").fill(registered.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(f"{base}/account")
    page.get_by_label("Name of the new passkey").fill("Test laptop")
    page.locator("#new_passkey_password").fill(PASSWORD)
    page.screenshot(path=str(tmp_path / "account-add-passkey.png"), full_page=True)
    page.get_by_role("button", name="Add a passkey").click()
    page.wait_for_url(f"{base}/account?done=passkey_added")
    assert "Your passkey was added" in page.get_by_role("status").inner_text()
    assert "Test laptop" in page.locator("main").inner_text()
    page.screenshot(path=str(tmp_path / "account-passkeys.png"), full_page=True)
    user = find_user_by_email(registered.email)
    [passkey] = factors.passkeys(user.pk)
    assert passkey.name == "Test laptop"
    [credential] = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})["credentials"]
    assert credential["isResidentCredential"] and credential["rpId"] == "localhost"
    assert tab.csp_violations() == [], tab.console

    # Sign out, then sign in to an app with the passkey alone, by the username field's autofill
    # (conditional UI: the virtual authenticator answers it at once, as if the user picked it).
    sign_out(page, base)
    page.goto(registered.authorization_request().url)
    page.wait_for_url(f"{base}/consent?*")
    assert session_amr(page, base) == ["hwk", "user", "mfa"]
    page.get_by_role("button", name="Allow").click()
    wait_for_client(tab, loopback)
    assert factors.passkeys(user.pk)[0].last_used_at is not None
    loopback.hits.clear()

    # Again with the button, in a browser without conditional UI.
    sign_out(page, base)
    without_conditional_ui(page)
    open_sign_in(tab, registered)
    assert page.locator("#username").get_attribute("autocomplete") == "username webauthn"
    page.screenshot(path=str(tmp_path / "login-with-passkey.png"), full_page=True)
    page.get_by_role("button", name="Sign in with a passkey").click()
    page.wait_for_url(f"{base}/consent?*")  # a loopback client's consent is asked each time
    assert session_amr(page, base) == ["hwk", "user", "mfa"]
    page.get_by_role("button", name="Allow").click()
    wait_for_client(tab, loopback)
    loopback.hits.clear()

    # Password, then the passkey as the second factor (/mfa).
    sign_out(page, base)
    open_sign_in(tab, registered)
    sign_in(tab, registered)
    page.wait_for_url(f"{base}/mfa")
    page.screenshot(path=str(tmp_path / "mfa-passkey.png"), full_page=True)
    page.get_by_role("button", name="Use a passkey").click()
    page.wait_for_url(f"{base}/consent?*")
    assert session_amr(page, base) == ["pwd", "hwk", "user", "mfa"]
    page.get_by_role("button", name="Allow").click()
    wait_for_client(tab, loopback)
    assert tab.csp_violations() == [], tab.console


def test_a_cancelled_ceremony_shows_a_message_on_the_page(tab, registered, tmp_path):
    """No authenticator answers (the user cancels): the page says so, in its own (translated) words."""
    page, base = tab.page, registered.stack.base_url
    cdp, authenticator_id = virtual_authenticator(page)
    cdp.send("WebAuthn.setUserVerified", {"authenticatorId": authenticator_id, "isUserVerified": False})
    without_conditional_ui(page)
    open_sign_in(tab, registered)
    page.get_by_role("button", name="Sign in with a passkey").click()
    alert = page.locator("[data-webauthn-error]:visible")
    alert.wait_for()
    assert alert.inner_text() == "No passkey was used. Try again, or sign in with your password."
    assert page.url.startswith(f"{base}/login?")
    page.screenshot(path=str(tmp_path / "login-passkey-cancelled.png"), full_page=True)
    assert tab.csp_violations() == [], tab.console
