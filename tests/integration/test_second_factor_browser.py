"""TOTP and recovery codes in a real headless Chromium against a running devstack: enrol an
authenticator app on the account page (codes computed here, as the app would), sign in to an app
with password + code, a replayed code refused, a recovery code working once, and an app's
acr_values stepping a password session up on /mfa. Screenshots of the pages go to tmp_path."""
from __future__ import annotations

import re
import time

import pyotp
import pytest

from tests.integration import test_hosted_pages_browser as hosted_pages
from tests.integration.test_hosted_pages_browser import open_sign_in, sign_in, wait_for_client
from tests.integration.test_passkeys_browser import session_amr, sign_out

PASSWORD = hosted_pages.PASSWORD
chromium = hosted_pages.chromium
tab = hosted_pages.tab
registered = hosted_pages.registered
loopback = hosted_pages.loopback
loopback_server = hosted_pages.loopback_server

pytestmark = pytest.mark.integration

MFA_ACR = "urn:serverless-idp:acr:mfa"


def enter_code(page, code: str) -> None:
    page.get_by_label("Code from your authenticator app").fill(code)
    page.get_by_role("button", name="Verify").click()
    page.wait_for_load_state()


def enter_recovery_code(page, code: str) -> None:
    page.get_by_text("Use a recovery code").click()
    page.get_by_label("Recovery code").fill(code)
    page.get_by_role("button", name="Use recovery code").click()
    page.wait_for_load_state()


def test_totp_enrolment_sign_in_replay_recovery_code_and_step_up(tab, registered, loopback, tmp_path):
    page, base = tab.page, registered.stack.base_url
    page.set_viewport_size({"width": 390, "height": 900})  # a phone

    # A password session (the account page's own sign-in), then the authenticator app set up in it.
    page.goto(f"{base}/account/login")
    page.get_by_label("Email").fill(registered.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(f"{base}/account")
    page.locator("#totp_start_password").fill(PASSWORD)
    page.get_by_role("button", name="Set up an authenticator app").click()
    page.wait_for_url(f"{base}/account/totp")
    assert page.locator("svg.qr").is_visible()
    page.screenshot(path=str(tmp_path / "totp-enrolment.png"), full_page=True)
    totp = pyotp.TOTP(page.locator("#totp-secret").inner_text().strip())
    enrolled_at = time.time()
    enrolment_code = totp.at(enrolled_at)
    page.get_by_label("2. Enter the 6-digit code the app shows").fill(enrolment_code)
    page.get_by_role("button", name="Turn on").click()
    page.wait_for_load_state()
    codes = re.findall(r"\b[0-9A-Z]{5}-[0-9A-Z]{5}\b", page.locator("ol.codes").inner_text())
    assert len(codes) == 10, codes
    page.screenshot(path=str(tmp_path / "recovery-codes.png"), full_page=True)
    assert session_amr(page, base) == ["pwd"], "setting a factor up is no sign-in with it"

    # Step-up: the app asks for the mfa level; this password session proves it on /mfa.
    request = registered.authorization_request()
    page.goto(request.url + "&acr_values=" + MFA_ACR)
    page.wait_for_url(f"{base}/mfa?request_id=*")
    assert "The app asks for more proof that it is you." in page.locator("main").inner_text()
    page.screenshot(path=str(tmp_path / "mfa-step-up.png"), full_page=True)
    enter_recovery_code(page, codes[0])
    page.wait_for_url(f"{base}/consent?*")
    assert session_amr(page, base) == ["pwd", "otp", "mfa"]
    page.get_by_role("button", name="Allow").click()
    wait_for_client(tab, loopback)
    loopback.hits.clear()

    # Password, then the app's code: the enrolment's code again is refused, a newer one works.
    sign_out(page, base)
    open_sign_in(tab, registered)
    sign_in(tab, registered)
    page.wait_for_url(f"{base}/mfa")
    page.screenshot(path=str(tmp_path / "mfa.png"), full_page=True)
    enter_code(page, enrolment_code)
    assert "already used" in page.get_by_role("alert").inner_text()
    enter_code(page, totp.at(enrolled_at + 30))  # the next time step (within the ±1 step the server allows)
    page.wait_for_url(f"{base}/consent?*")
    assert session_amr(page, base) == ["pwd", "otp", "mfa"]
    page.get_by_role("button", name="Allow").click()
    wait_for_client(tab, loopback)
    loopback.hits.clear()

    # A recovery code works once.
    sign_out(page, base)
    open_sign_in(tab, registered)
    sign_in(tab, registered)
    page.wait_for_url(f"{base}/mfa")
    enter_recovery_code(page, codes[0])
    assert page.url == f"{base}/mfa" and "already used" in page.get_by_role("alert").inner_text()
    enter_recovery_code(page, codes[1].lower())
    page.wait_for_url(f"{base}/consent?*")
    assert tab.csp_violations() == [], tab.console
