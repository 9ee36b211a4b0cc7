"""The demo app of `make run` (tools/demo_app.py), started by tools.devstack next to the IdP: a user
created beforehand signs in through plain HTTP (a requests session following redirects and posting
the IdP's sign-in and consent forms) and lands on the demo's page showing the verified ID token's
claims and the userinfo response."""
from __future__ import annotations

import html
import json
import re
from urllib.parse import urlsplit

import pytest
import requests

from tests.integration.hosted_flow import PASSWORD, TIMEOUT, hidden_inputs, new_user

pytestmark = pytest.mark.integration


def post_form(session: requests.Session, page: requests.Response, action: str, origin: str, fields: dict):
    """Submit the page's form posting to `action` as a browser would (hidden fields, same-origin Origin)."""
    return session.post(f"{origin}{action}", data={**hidden_inputs(page.text, action), **fields},
                        headers={"Origin": origin}, timeout=TIMEOUT)


def shown_json(page: str, heading: str) -> dict:
    """The JSON the demo shows in the <pre> after `heading`."""
    match = re.search(re.escape(heading) + r".*?<pre>(.*?)</pre>", page, re.S)
    assert match, f"no {heading!r} section in:\n{page}"
    return json.loads(html.unescape(match.group(1)))


def test_a_user_signs_in_to_the_demo_app_and_sees_the_verified_claims_and_userinfo(launch, use_stack):
    stack = launch()
    first_line = next(line for line in stack.output().splitlines() if line.startswith("Open "))
    assert first_line == f"Open {stack.demo_url} and click Sign in."
    use_stack(stack)
    user, email = new_user(name="Alice <b>Liddell</b>")
    browser = requests.Session()

    home = browser.get(stack.demo_url, timeout=TIMEOUT)
    assert home.status_code == 200 and '<form method="get" action="/login">' in home.text

    sign_in = browser.get(f"{stack.demo_url}/login", timeout=TIMEOUT)  # -> /authorize -> the IdP's sign-in page
    assert urlsplit(sign_in.url).path == "/login" and sign_in.url.startswith(stack.base_url), sign_in.url
    authorize = sign_in.history[0].headers["Location"]
    assert "code_challenge_method=S256" in authorize and "nonce=" in authorize and "state=" in authorize
    consent = post_form(browser, sign_in, "/login", stack.base_url, {"username": email, "password": PASSWORD})
    assert urlsplit(consent.url).path == "/consent", consent.url
    page = post_form(browser, consent, "/consent", stack.base_url, {"decision": "allow"})

    assert page.status_code == 200, page.text
    assert page.url == f"{stack.demo_url}/", "back through /callback to the demo's page"
    claims = shown_json(page.text, "ID token claims")
    assert claims["iss"] == stack.base_url and claims["aud"] == "demo-app"
    assert claims["sub"] == user.pk and claims["email"] == email
    assert claims["nonce"] and claims["at_hash"]
    userinfo = shown_json(page.text, "userinfo response")
    assert userinfo["sub"] == user.pk and userinfo["name"] == "Alice <b>Liddell</b>"
    assert "<b>Liddell</b>" not in page.text, "every value is escaped"
    assert "script" not in page.headers["Content-Security-Policy"]

    signed_out = browser.post(f"{stack.demo_url}/logout", headers={"Origin": stack.demo_url}, timeout=TIMEOUT)
    assert signed_out.url == f"{stack.demo_url}/" and "ID token claims" not in signed_out.text


def test_a_callback_with_a_state_this_browser_did_not_send_is_refused(launch):
    stack = launch()
    browser = requests.Session()
    browser.get(f"{stack.demo_url}/login", timeout=TIMEOUT)  # a sign-in in flight, with its own state

    forged = browser.get(f"{stack.demo_url}/callback?code=stolen&state=forged&iss={stack.base_url}",
                         timeout=TIMEOUT)

    assert forged.status_code == 400
    assert "MismatchingStateException" in forged.text
    assert "ID token claims" not in browser.get(stack.demo_url, timeout=TIMEOUT).text
