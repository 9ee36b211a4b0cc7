"""A minimal cookie-keeping browser over chalice.test.Client, for driving hosted-page flows."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlencode, urlsplit

from chalicelib.oauth import pkce

VERIFIER = "v" * 20 + "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw"
REDIRECT_URI = "http://127.0.0.1:5000/cb"
ISSUER = "http://localhost:8000"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def hidden(body: bytes, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', body.decode())
    assert match, f"no hidden field {name}"
    return match.group(1)


def reference(body: bytes) -> str:
    """The request id an error page shows for support ("Reference: <id>")."""
    match = re.search(r"Reference: ([0-9a-f-]+)</p>", body.decode())
    assert match, "no reference on the page"
    return match.group(1)


def error_page_logs(entries: list[dict]) -> list[dict]:
    """The log entries of error pages (see the idp_log fixture)."""
    return [entry for entry in entries if entry["msg"] == "error page"]


def query_of(location: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@dataclass
class Browser:
    http: object
    cookies: dict = field(default_factory=dict)
    headers: dict = field(default_factory=lambda: {"Origin": ISSUER})

    def _send(self, method, path, body=None, extra=None):
        headers = {**(extra or {})}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if method == "post":
            headers = {**FORM, **self.headers, **headers}
            response = self.http.post(path, body=urlencode(body or {}).encode(), headers=headers)
        else:
            response = self.http.get(path, headers=headers)
        set_cookie = response.headers.get("Set-Cookie") or []
        for cookie in [set_cookie] if isinstance(set_cookie, str) else set_cookie:
            name, value = cookie.split(";", 1)[0].split("=", 1)
            if "Max-Age=0" in cookie:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return response

    def get(self, path, **kw):
        return self._send("get", path, **kw)

    def post(self, path, body, **kw):
        return self._send("post", path, body, **kw)


def authorize_query(client, **overrides) -> str:
    params = {
        "client_id": client, "redirect_uri": REDIRECT_URI, "response_type": "code",
        "scope": "openid email", "state": "xyz-state", "nonce": "n-0S6", "code_challenge": pkce.s256(VERIFIER),
        "code_challenge_method": "S256", **overrides,
    }
    return urlencode({k: v for k, v in params.items() if v is not None}, doseq=True)


def sign_in_and_consent(browser: Browser, client_id: str, *, email="alice@example.com",
                        password="correct horse battery", consent=True, **overrides):
    """Run /authorize -> sign-in -> consent; return the final redirect Location."""
    response = browser.get("/authorize?" + authorize_query(client_id, **overrides))
    assert response.status_code == 302, response.body
    location = response.headers["Location"]
    if location.startswith("/login"):
        page = browser.get(location)
        response = browser.post("/login", {"request_id": hidden(page.body, "request_id"),
                                           "csrf_token": hidden(page.body, "csrf_token"),
                                           "username": email, "password": password})
        assert response.status_code == 302, response.body
        location = response.headers["Location"]
    if location.startswith("/consent"):
        page = browser.get(location)
        assert page.status_code == 200, page.body
        response = browser.post("/consent", {"request_id": hidden(page.body, "request_id"),
                                             "csrf_token": hidden(page.body, "csrf_token"),
                                             "decision": "allow" if consent else "deny"})
        assert response.status_code == 302, response.body
        location = response.headers["Location"]
    return location


def redeem(http, client_id, code, *, verifier=VERIFIER, redirect_uri=REDIRECT_URI, auth=None, extra=None):
    body = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
            "code_verifier": verifier, **(extra or {})}
    if auth is None:
        body["client_id"] = client_id
    headers = {**FORM, **({"Authorization": auth} if auth else {})}
    return http.post("/token", body=urlencode({k: v for k, v in body.items() if v is not None}).encode(),
                     headers=headers)


def register_public_agent(http, **metadata) -> dict:
    """Self-register (RFC 7591) a public agent with a loopback redirect; returns the response body."""
    import json

    body = {"client_name": "Agent", "redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"], **metadata}
    response = http.post("/register", body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    assert response.status_code == 201, response.body
    return json.loads(response.body)
