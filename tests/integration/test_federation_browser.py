"""Signing in through an upstream IdP in a real headless Chromium (issue 15): the downstream stack's
sign-in page shows "Sign in with Example Corp", the button takes the browser to the upstream (a
second stack of this IdP, on 127.0.0.1), which signs in and asks for consent, and the browser comes
back through our callback and consent to the app with a code. Chromium enforces the sign-in page's
CSP form-action on the redirect that follows the button's POST, which a plain HTTP client would not.

The stacks are the session's `federated` pair (tests/integration/federation_stacks.py); the app's
redirect URI is the loopback server of test_hosted_pages_browser.
"""
from __future__ import annotations


import pytest
import requests

from tests.integration import test_hosted_pages_browser as hosted_pages
from tests.integration.federation_stacks import (CONNECTION_NAME, CORP_DOMAIN, PASSWORD, AuthorizationRequest, admin,
                                                 new_user, unique, verify_id_token)

chromium = hosted_pages.chromium  # the session's headless Chromium, and a fresh tab per test (fixtures)
tab = hosted_pages.tab
loopback_server = hosted_pages.loopback_server
loopback = hosted_pages.loopback

pytestmark = pytest.mark.integration

PHONE = {"width": 390, "height": 800}


def test_sign_in_with_the_upstream_in_a_browser_reaches_the_app_with_a_code(tab, federated, loopback, tmp_path):
    fed = federated
    down, up = fed.downstream.base_url, fed.upstream.base_url
    app = admin(fed.downstream, "clients", "create", "--name", "Notes App", "--public", "--redirect-uri",
                loopback.redirect_uri, "--scope", "openid", "--scope", "email", "--scope", "profile")
    email = unique("ada", CORP_DOMAIN)
    new_user(fed.upstream, email)
    request = AuthorizationRequest.make(down, app["client_id"], loopback.redirect_uri)
    page = tab.page
    page.set_viewport_size(PHONE)

    page.goto(request.url)
    assert page.url.startswith(f"{down}/login?request_id="), page.url
    button = page.get_by_role("button", name=f"Sign in with {CONNECTION_NAME}")
    assert button.is_visible()
    page.screenshot(path=tmp_path / "sign-in-with-upstream.png", full_page=True)

    button.click()
    page.wait_for_url(f"{up}/login?*")  # the redirect after the POST passed the page's form-action
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(f"{up}/consent?*")
    assert page.get_by_role("heading").inner_text() == "Allow Downstream IdP?"
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url(f"{down}/consent?*")  # back through our callback: a new account, asked for the app
    assert page.get_by_role("heading").inner_text() == "Allow Notes App?"
    assert f"Signed in as {email}" in page.locator("main").inner_text()
    page.get_by_role("button", name="Allow").click()

    params = hosted_pages.wait_for_client(tab, loopback)
    assert params["state"] == request.state and params["iss"] == down
    tokens = requests.post(f"{down}/token", timeout=10, data={
        "grant_type": "authorization_code", "code": params["code"], "client_id": app["client_id"],
        "redirect_uri": loopback.redirect_uri, "code_verifier": request.verifier})
    assert tokens.status_code == 200, tokens.text
    claims = verify_id_token(fed.downstream, tokens.json()["id_token"], app["client_id"], request.nonce)
    assert claims["email"] == email and "fed" in claims["amr"]
    assert tab.csp_violations() == [], tab.console

    # The account page lists the upstream sign-in of the new account.
    page.goto(f"{down}/account")
    section = page.locator("section", has=page.get_by_role("heading", name="Linked sign-ins"))
    assert CONNECTION_NAME in section.inner_text() and email in section.inner_text()
    page.screenshot(path=tmp_path / "account.png", full_page=True)
    section.screenshot(path=tmp_path / "linked-sign-ins.png")
    assert tab.csp_violations() == [], tab.console
