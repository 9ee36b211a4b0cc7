"""The hosted pages in a real headless Chromium, against a running `make run` stack.

The client's redirect URI is a tiny HTTP server in this process (`Loopback`), which also serves the
"attacker" pages for the framing and cross-site form tests. Chromium is Debian's /usr/bin/chromium
(`make browser` installs it); Playwright only drives it, it never downloads a browser.
"""
from __future__ import annotations

import base64
import hashlib
import html
import os
import secrets
import sys
import threading
import time
import types
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
import requests

pytestmark = pytest.mark.integration

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")  # `make test` exports it
# The machine's closed network refuses Chromium's background connections; keep it from trying.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 10_000
PASSWORD = "correct horse battery"
SCOPES = "openid email profile"


# The client's side: redirect URI and attacker pages -------------------------------------------------

@dataclass
class Loopback:
    """An HTTP server on 127.0.0.1: `/cb` records every query it receives and answers a small page;
    any path in `pages` serves that HTML (with no CSP, so an attacker page may run inline script)."""

    hits: list = field(default_factory=list)
    pages: dict = field(default_factory=dict)

    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                parts = urlsplit(self.path)
                if parts.path == "/cb":
                    owner.hits.append({k: v[0] for k, v in parse_qs(parts.query).items()})
                    self._send(200, "<!doctype html><title>Notes App</title><h1>Back at the app</h1>")
                elif parts.path in owner.pages:
                    self._send(200, owner.pages[parts.path])
                else:
                    self._send(404, "not found")

            def do_POST(self):
                owner.hits.append({"method": "POST", "path": self.path})
                self._send(405, "no")

            def _send(self, status: int, body: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    @property
    def redirect_uri(self) -> str:
        return self.url("/cb")


@pytest.fixture(scope="module")
def loopback_server():
    server = Loopback()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def loopback(loopback_server):
    loopback_server.hits.clear()
    loopback_server.pages.clear()
    return loopback_server


# The browser -----------------------------------------------------------------------------------------

#: The one Playwright and Chromium of the session, and how many fixture instances hold them. Kept in
#: sys.modules, not in this module: pytest imports this file under its own name and the other browser
#: modules import it as tests.integration.test_hosted_pages_browser, two module objects.
_browser: dict = sys.modules.setdefault("tests.integration._chromium_session", types.ModuleType(
    "tests.integration._chromium_session")).__dict__
_browser.setdefault("users", 0)


@pytest.fixture(scope="session")
def chromium():
    """One headless Chromium for the session. A missing browser fails loudly: these tests are never skipped.

    Other browser test modules import this fixture, and pytest then holds one session fixture per
    module; Playwright's sync API cannot run twice in one thread, so they share one instance, which
    the last of them stops."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (as root it runs "
                    "`apt-get install --no-install-recommends chromium`) or install Debian's chromium package")
    if not _browser["users"]:
        from playwright.sync_api import sync_playwright

        playwright = sync_playwright().start()
        _browser.update(playwright=playwright, browser=playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS))
    _browser["users"] += 1
    yield _browser["browser"]
    _browser["users"] -= 1
    if not _browser["users"]:
        _browser["browser"].close()
        _browser["playwright"].stop()


@dataclass
class Tab:
    page: object
    console: list

    def csp_violations(self) -> list[str]:
        return [m for m in self.console if "Content Security Policy" in m]


@pytest.fixture
def tab(chromium):
    """A fresh browser context (no cookies) and one page in it, with its console recorded."""
    context = chromium.new_context(viewport={"width": 800, "height": 700})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
    yield Tab(page, console)
    context.close()


# The stack's side: a registered client and user ------------------------------------------------------

@dataclass
class Request:
    """One authorization request: its URL and the secrets the client keeps."""
    url: str
    state: str
    nonce: str
    verifier: str


@dataclass
class Registered:
    stack: object
    client_id: str
    email: str
    redirect_uri: str

    def authorization_request(self) -> Request:
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        query = urlencode({"response_type": "code", "client_id": self.client_id, "redirect_uri": self.redirect_uri,
                           "scope": SCOPES, "state": state, "nonce": nonce, "code_challenge": challenge,
                           "code_challenge_method": "S256"})
        return Request(f"{self.stack.base_url}/authorize?{query}", state, nonce, verifier)


@pytest.fixture
def registered(idp, use_stack, loopback) -> Registered:
    """A public client whose redirect URI is the loopback server, and a user with a unique email."""
    from chalicelib.oauth.clients import create_client
    from chalicelib.storage.users import create_user

    use_stack(idp)
    client, _ = create_client(client_name="Notes App", client_type="public", redirect_uris=[loopback.redirect_uri],
                              scopes=["openid", "email", "profile"])
    email = f"alice-{secrets.token_hex(4)}@example.com"
    # Verified: the stack runs with REQUIRE_VERIFIED_EMAIL's default (on), as a deployment does.
    create_user(email, PASSWORD, name="Alice Liddell", email_verified=True)
    return Registered(idp, client.client_id, email, loopback.redirect_uri)


def open_sign_in(tab: Tab, registered: Registered) -> Request:
    request = registered.authorization_request()
    tab.page.goto(request.url)
    assert tab.page.url.startswith(f"{registered.stack.base_url}/login?request_id="), tab.page.url
    return request


def sign_in(tab: Tab, registered: Registered, password: str = PASSWORD):
    """Fill and submit the sign-in form; returns the response to the form post."""
    page = tab.page
    page.fill("input[name=username]", registered.email)
    page.fill("input[name=password]", password)
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/login")) as posted:
        page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_load_state()
    return posted.value


def wait_for_client(tab: Tab, loopback: Loopback) -> dict:
    tab.page.wait_for_url(f"{loopback.redirect_uri}?*")
    assert tab.page.get_by_role("heading").inner_text() == "Back at the app"
    assert len(loopback.hits) == 1, loopback.hits
    return loopback.hits[0]


# Tests -----------------------------------------------------------------------------------------------

def test_sign_in_consent_and_code_redemption(tab, registered, loopback, tmp_path):
    page, base = tab.page, registered.stack.base_url
    request = open_sign_in(tab, registered)
    assert page.title() == "Sign in"
    assert "to continue to Notes App" in page.locator("main").inner_text()
    # The stylesheet loaded under style-src 'self': the button has our colour, not the UA default.
    assert page.evaluate("getComputedStyle(document.querySelector('button')).backgroundColor") == "rgb(36, 84, 214)"
    page.screenshot(path=tmp_path / "sign-in.png", full_page=True)

    response = sign_in(tab, registered)
    assert response.status == 302
    assert page.url.startswith(f"{base}/consent?request_id="), page.url
    assert page.title() == "Allow access?"
    assert page.get_by_role("heading").inner_text() == "Allow Notes App?"
    assert page.locator("ul.scopes li").all_inner_texts() == [
        "Sign you in and know who you are", "See your email address", "See your name"]
    text = page.locator("main").inner_text()
    assert f"You will be sent back to 127.0.0.1:{loopback.port}" in text
    assert f"Signed in as {registered.email}" in text
    page.screenshot(path=tmp_path / "consent.png", full_page=True)
    assert not loopback.hits, "nothing reaches the client before the user decides"

    page.get_by_role("button", name="Allow").click()
    params = wait_for_client(tab, loopback)
    assert set(params) == {"code", "state", "iss"}
    assert params["state"] == request.state and params["iss"] == base
    assert not tab.csp_violations(), tab.console

    token = requests.post(f"{base}/token", timeout=10, data={
        "grant_type": "authorization_code", "code": params["code"], "redirect_uri": registered.redirect_uri,
        "client_id": registered.client_id, "code_verifier": request.verifier})
    assert token.status_code == 200, token.text
    body = token.json()
    assert body["token_type"].lower() == "bearer" and body["access_token"]
    kid = jwt.get_unverified_header(body["id_token"])["kid"]
    jwk = next(k for k in requests.get(f"{base}/jwks", timeout=10).json()["keys"] if k["kid"] == kid)
    claims = jwt.decode(body["id_token"], jwt.PyJWK(jwk).key, algorithms=[jwk["alg"]],
                        audience=registered.client_id, issuer=base)
    assert claims["nonce"] == request.nonce
    print(f"screenshots: {tmp_path / 'sign-in.png'} {tmp_path / 'consent.png'}")


def test_deny_returns_access_denied_to_the_client(tab, registered, loopback):
    request = open_sign_in(tab, registered)
    sign_in(tab, registered)
    tab.page.get_by_role("button", name="Deny").click()
    params = wait_for_client(tab, loopback)
    assert params["error"] == "access_denied"
    assert params["state"] == request.state and params["iss"] == registered.stack.base_url
    assert set(params) <= {"error", "error_description", "state", "iss"}, "no code"


def test_sign_out_ends_the_session(tab, registered, loopback):
    page, base = tab.page, registered.stack.base_url
    request = open_sign_in(tab, registered)
    sign_in(tab, registered)
    page.get_by_role("button", name="Allow").click()
    wait_for_client(tab, loopback)
    # The SSO session is alive: prompt=none gets past sign-in. This public client's loopback redirect
    # is asked for consent every time (RFC 8252 §8.6), so it answers consent_required, not login_required.
    page.goto(request.url.replace("&state=", "&prompt=none&state="))
    assert loopback.hits[-1].get("error") == "consent_required", loopback.hits

    page.goto(f"{base}/logout")
    with page.expect_response(lambda r: r.request.method == "POST" and r.url == f"{base}/logout") as posted:
        page.get_by_role("button", name="Sign out").click()
    assert posted.value.status == 200
    assert page.get_by_role("heading").inner_text() == "You are signed out"
    page.goto(request.url.replace("&state=", "&prompt=none&state="))
    assert loopback.hits[-1].get("error") == "login_required", loopback.hits
    page.goto(request.url)
    assert page.url.startswith(f"{base}/login?request_id="), "signed out: sign in again"


def test_wrong_password_stays_on_the_sign_in_page(tab, registered, loopback):
    page = tab.page
    open_sign_in(tab, registered)
    response = sign_in(tab, registered, password="not the password")
    assert response.status == 401
    assert page.url == f"{registered.stack.base_url}/login"
    assert page.title() == "Sign in"
    assert page.get_by_role("alert").inner_text() == "Incorrect email or password."
    assert page.input_value("input[name=username]") == registered.email
    assert page.input_value("input[name=password]") == ""
    assert not loopback.hits


def test_expired_request_shows_an_error_page_and_never_reaches_the_client(tab, registered, loopback):
    from chalicelib.storage.models import AuthorizationRequestModel

    page = tab.page
    open_sign_in(tab, registered)
    request_id = page.get_attribute("input[name=request_id]", "value")
    pending = AuthorizationRequestModel.get(request_id, consistent_read=True)
    pending.update(actions=[AuthorizationRequestModel.expires_at.set(int(time.time()) - 1)])

    response = sign_in(tab, registered)
    assert response.status == 400
    assert page.title() == "Something went wrong"
    assert "This sign-in request has expired" in page.get_by_role("alert").inner_text()
    assert page.url.startswith(registered.stack.base_url)
    assert not loopback.hits


def test_sign_in_page_refuses_to_be_framed(tab, registered, loopback):
    page, base = tab.page, registered.stack.base_url
    location = requests.get(registered.authorization_request().url, allow_redirects=False, timeout=10)
    login_url = base + location.headers["Location"]
    assert login_url.startswith(f"{base}/login?request_id=")
    loopback.pages["/frame"] = (f'<!doctype html><iframe id="victim" src="{html.escape(login_url)}"></iframe>'
                                f'<iframe id="control" src="{html.escape(loopback.url("/cb"))}"></iframe>')
    framed = []
    page.on("response", lambda r: framed.append(r) if r.url == login_url else None)
    page.goto(loopback.url("/frame"), wait_until="load")

    assert [r.status for r in framed] == [200], "the server answered; Chromium must refuse to render it"
    assert framed[0].headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in framed[0].headers["content-security-policy"]
    victim = page.frame_locator("#victim")
    control = page.frame_locator("#control")
    assert control.get_by_role("heading").inner_text() == "Back at the app", "a same-origin frame renders"
    assert victim.locator("input[name=password]").count() == 0
    victim_frame = page.query_selector("#victim").content_frame()
    assert victim_frame.url.startswith("chrome-error://"), victim_frame.url  # Chromium's blank error page
    assert any("frame-ancestors" in m for m in tab.console), tab.console


@pytest.mark.parametrize("attacker_host", ["127.0.0.1", "localhost"], ids=["same-site", "cross-site"])
def test_cross_site_form_post_to_login_is_refused(tab, registered, loopback, attacker_host):
    """Login CSRF: even with the victim's own (leaked) request id and CSRF token, a form posted from
    another origin gets 403 and signs nobody in. On 127.0.0.1:<other port> the cookie is sent
    (same site), so the Origin check alone refuses it; from localhost SameSite=Lax withholds it too."""
    page, base = tab.page, registered.stack.base_url
    request = open_sign_in(tab, registered)
    fields = {"request_id": page.get_attribute("input[name=request_id]", "value"),
              "csrf_token": page.get_attribute("input[name=csrf_token]", "value"),
              "username": registered.email, "password": PASSWORD}
    inputs = "".join(f'<input type="hidden" name="{k}" value="{html.escape(v)}">' for k, v in fields.items())
    loopback.pages["/attack"] = (f'<!doctype html><form method="post" action="{base}/login">{inputs}</form>'
                                 "<script>document.forms[0].submit()</script>")

    with page.expect_response(lambda r: r.request.method == "POST" and r.url == f"{base}/login") as posted:
        page.goto(loopback.url("/attack", host=attacker_host))
    page.wait_for_load_state()
    response = posted.value
    assert response.request.header_value("origin") == f"http://{attacker_host}:{loopback.port}"
    assert response.status == 403
    assert "submitted from another site" in page.get_by_role("alert").inner_text()
    assert not loopback.hits

    # Nobody was signed in: the same browser going through /authorize is asked to sign in again.
    page.goto(request.url)
    assert page.url.startswith(f"{base}/login?request_id="), page.url


def test_a_tossed_cookie_does_not_sign_the_victim_in_as_the_attacker(chromium, tab, registered, loopback):
    """Cookie tossing: a site sharing our cookies (a sibling subdomain; here, any port of localhost)
    plants `a=x idp_session=<attacker's session>`. Chromium accepts it and sends it after ours;
    parsed on whitespace, as http.cookies does, it would sign the victim in as the attacker."""
    from chalicelib.storage.users import create_user

    page, base = tab.page, registered.stack.base_url
    attacker_email = f"mallory-{secrets.token_hex(4)}@example.com"
    create_user(attacker_email, PASSWORD, email_verified=True)
    attacker = chromium.new_context()
    attacker.set_default_timeout(TIMEOUT_MS)
    attacker_tab = Tab(attacker.new_page(), [])
    open_sign_in(attacker_tab, registered)
    sign_in(attacker_tab, Registered(registered.stack, registered.client_id, attacker_email, registered.redirect_uri))
    assert attacker_tab.page.url.startswith(f"{base}/consent?"), "the attacker holds a real session"
    [attacker_session] = [c["value"] for c in attacker.cookies() if c["name"] == "idp_session"]
    attacker.close()

    def toss(name: str) -> None:
        page.context.add_cookies([{"name": name, "value": f"x idp_session={attacker_session}",
                                   "domain": urlsplit(base).hostname, "path": "/"}])

    toss("a")
    with page.expect_request(lambda r: r.url.startswith(f"{base}/authorize?")) as sent:
        request = open_sign_in(tab, registered)  # not the attacker's consent page: asked to sign in
    assert f"a=x idp_session={attacker_session}" in sent.value.all_headers()["cookie"], "the toss travelled"

    sign_in(tab, registered)
    toss("b")  # tossed again after the victim's own cookie, so it is sent last
    page.goto(request.url)
    assert page.url.startswith(f"{base}/consent?"), page.url
    assert f"Signed in as {registered.email}" in page.locator("main").inner_text()
    assert attacker_email not in page.content()
    assert not loopback.hits
