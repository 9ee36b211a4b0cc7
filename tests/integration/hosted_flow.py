"""Drive a running stack's hosted sign-in and consent pages over real HTTP, as a browser would
without JavaScript: GET /authorize, follow to /login, post the form (hidden fields from the HTML,
Origin header, cookies kept), follow to /consent, allow, and stop at the redirect to the client.

Clients and users are created directly in the stack's tables (the `use_stack` fixture points this
process at the stack's moto server); every helper makes unique ones, since the `idp` stack is shared.
"""
from __future__ import annotations

import secrets
from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlsplit

import requests

TIMEOUT = 10
PASSWORD = "correct horse battery staple"
REDIRECT_URI = "http://127.0.0.1:5000/cb"


class _HiddenInputs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.forms: dict[str, dict[str, str]] = {}
        self._action: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            # The first form posting to an action is the page's own; a later one (the sign-in page's
            # "Sign in with a passkey", posting to /login too) is for the script this client is not.
            action = attrs.get("action") or ""
            self._action = None if action in self.forms else action
            if self._action is not None:
                self.forms[action] = {}
        elif tag == "input" and attrs.get("type") == "hidden" and self._action is not None:
            self.forms[self._action][attrs["name"]] = attrs.get("value") or ""

    def handle_endtag(self, tag):
        if tag == "form":
            self._action = None


def hidden_inputs(html: str, action: str) -> dict[str, str]:
    """The hidden inputs of the page's first form that posts to `action`."""
    parser = _HiddenInputs()
    parser.feed(html)
    assert action in parser.forms, f"no form posting to {action} in:\n{html}"
    return parser.forms[action]


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def new_user(name: str = "Alice Liddell"):
    """A fresh user in the stack's tables (use_stack first); returns (user, email)."""
    from chalicelib.storage.users import create_user

    email = f"user-{secrets.token_hex(6)}@example.com"
    # Verified: stacks run with REQUIRE_VERIFIED_EMAIL's default (on), as a deployment does.
    return create_user(email, PASSWORD, name=name, email_verified=True), email


def new_client(client_type: str = "public", auth_method: str | None = None,
               scopes=("openid", "email", "profile"), grant_types=("authorization_code",)):
    """A fresh client in the stack's tables (use_stack first); returns (client, secret or None)."""
    from chalicelib.oauth.clients import create_client

    return create_client(client_name=f"Interop {client_type} {auth_method or ''}".strip(), client_type=client_type,
                         redirect_uris=[REDIRECT_URI], scopes=list(scopes), grant_types=list(grant_types),
                         token_endpoint_auth_method=auth_method)


class HostedPages:
    """A cookie-keeping user agent for one stack's hosted pages."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.http = requests.Session()
        # The CSRF defence wants the form's own origin, as a browser sends on a same-origin POST.
        self.origin = {"Origin": base_url}

    def _get(self, url: str) -> requests.Response:
        return self.http.get(urljoin(self.base_url, url), allow_redirects=False, timeout=TIMEOUT)

    def _post_form(self, action: str, page: requests.Response, fields: dict) -> requests.Response:
        body = {**hidden_inputs(page.text, action), **fields}
        return self.http.post(urljoin(self.base_url, action), data=body, headers=self.origin,
                              allow_redirects=False, timeout=TIMEOUT)

    def authorize(self, authorization_url: str, email: str, password: str = PASSWORD, *, redirect: int = 302) -> str:
        """Sign in and allow; returns the final redirect Location (to the client's redirect URI).
        `redirect`: the status of every redirect on the way (303 under PROFILE=fapi2)."""
        response = self._get(authorization_url)
        assert response.status_code == redirect, response.text
        location = response.headers["Location"]
        if urlsplit(location).path == "/login":
            page = self._get(location)
            assert page.status_code == 200, page.text
            response = self._post_form("/login", page, {"username": email, "password": password})
            assert response.status_code == redirect, response.text
            location = response.headers["Location"]
        if urlsplit(location).path == "/consent":
            page = self._get(location)
            assert page.status_code == 200, page.text
            response = self._post_form("/consent", page, {"decision": "allow"})
            assert response.status_code == redirect, response.text
            location = response.headers["Location"]
        return location
