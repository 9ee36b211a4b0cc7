"""The session cookie under cookie tossing: raw Cookie headers as a browser would send them when a
sibling subdomain (or another port of the same host) has planted cookies of its own."""
from __future__ import annotations

import json

import jwt
import pytest

from tests.routes.flow import Browser, authorize_query, hidden, query_of, redeem, sign_in_and_consent

WEB_APP = "https://app.example.com/cb"  # an https redirect: consent is remembered, so prompt=none answers
SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}
PASSWORD = "correct horse battery"


@pytest.fixture(params=["http://localhost:8000", "https://login.example.com"],
                ids=["idp_session", "__Host-idp_session"])
def cookie_name(request, aws, monkeypatch) -> str:
    """Both names the app uses: the local http issuer's and the https issuer's __Host- cookie."""
    from chalicelib.config import settings
    from chalicelib.oauth import sessions

    monkeypatch.setenv("ISSUER", request.param)
    settings.cache_clear()
    return sessions.cookie_name(settings())


@pytest.fixture
def mallory(aws):
    from chalicelib.storage.users import create_user

    return create_user("mallory@example.com", PASSWORD)


def session_of(http, client_id: str, email: str, name: str) -> str:
    """Sign `email` in (and consent) in a fresh browser; return its session cookie value."""
    browser = Browser(http, headers=SAME_ORIGIN)
    sign_in_and_consent(browser, client_id, email=email, redirect_uri=WEB_APP)
    return browser.cookies[name]


def silent_authorize(http, client_id: str, cookie_header: str):
    return http.get("/authorize?" + authorize_query(client_id, prompt="none", redirect_uri=WEB_APP),
                    headers={"Cookie": cookie_header})


def signed_in_as(http, client_id: str, response) -> str:
    """The `sub` a prompt=none answer signed in, or its error."""
    params = query_of(response.headers["Location"])
    if "code" not in params:
        return params["error"]
    tokens = json.loads(redeem(http, client_id, params["code"], redirect_uri=WEB_APP).body)
    return jwt.decode(tokens["id_token"], options={"verify_signature": False})["sub"]


def set_cookies(response) -> list[str]:
    value = response.headers.get("Set-Cookie") or []
    return [value] if isinstance(value, str) else value


def test_a_tossed_cookie_cannot_sign_the_victim_in_as_the_attacker(http, cookie_name, public_client, alice,
                                                                   mallory):
    """A sibling subdomain sets `a=x <name>=<attacker's session>`; the browser sends it after ours.
    Split on whitespace (http.cookies), it would override the victim's session (login CSRF)."""
    victim = session_of(http, public_client.client_id, alice.email, cookie_name)
    attacker = session_of(http, public_client.client_id, mallory.email, cookie_name)
    tossed = f"a=x {cookie_name}={attacker}"

    response = silent_authorize(http, public_client.client_id, f"{cookie_name}={victim}; {tossed}")
    assert signed_in_as(http, public_client.client_id, response) == alice.pk
    alone = silent_authorize(http, public_client.client_id, tossed)
    assert signed_in_as(http, public_client.client_id, alone) == "login_required"


@pytest.mark.parametrize("header", ["junk; {name}={value}", "{name}={value}; junk", "=; {name}={value}"])
def test_a_nameless_cookie_does_not_hide_the_session(http, cookie_name, public_client, alice, header):
    victim = session_of(http, public_client.client_id, alice.email, cookie_name)
    response = silent_authorize(http, public_client.client_id, header.format(name=cookie_name, value=victim))
    assert signed_in_as(http, public_client.client_id, response) == alice.pk


def test_a_session_cookie_sent_twice_is_no_session_and_is_cleared(http, cookie_name, public_client, alice, mallory):
    """Which of two same-named cookies is ours cannot be told (path, parent domain, browser quirk):
    neither is used, and ours is cleared."""
    victim = session_of(http, public_client.client_id, alice.email, cookie_name)
    attacker = session_of(http, public_client.client_id, mallory.email, cookie_name)
    for header in (f"{cookie_name}={victim}; {cookie_name}={attacker}",
                   f"{cookie_name}={attacker}; {cookie_name}={victim}"):
        response = silent_authorize(http, public_client.client_id, header)
        assert signed_in_as(http, public_client.client_id, response) == "login_required"
        [cleared] = set_cookies(response)
        assert cleared.startswith(f"{cookie_name}=;") and "Max-Age=0" in cleared and "Path=/" in cleared

    pending = http.get("/authorize?" + authorize_query(public_client.client_id, redirect_uri=WEB_APP,
                                                       prompt="consent"),
                       headers={"Cookie": f"{cookie_name}={victim}"}).headers["Location"]
    assert pending.startswith("/consent?")
    consent = http.get(pending, headers={"Cookie": f"{cookie_name}={victim}; {cookie_name}={attacker}"})
    assert consent.status_code == 302 and consent.headers["Location"].startswith("/login?")
    assert [c.split(";")[0] for c in set_cookies(consent)] == [f"{cookie_name}="]


def test_csrf_tokens_are_never_keyed_by_a_planted_cookie_value(http, cookie_name, public_client, mallory):
    """CSRF tokens are HMAC(cookie value, purpose). A value the attacker planted (tossed, or one of
    two same-named cookies) is one they can compute tokens for: a login form posted with it must
    fail on the token alone, and the sign-in page must key its token by a fresh secret."""
    from chalicelib.oauth import sessions
    from chalicelib.storage.models import SessionModel

    planted = "p" * 43
    request_id = query_of(http.get("/authorize?" + authorize_query(public_client.client_id)).headers["Location"])[
        "request_id"]
    forged = {"request_id": request_id, "csrf_token": sessions.csrf_token(planted, "login"),
              "username": mallory.email, "password": PASSWORD}
    victim_anonymous = "v" * 43
    for header in (f"a=x {cookie_name}={planted}",
                   f"{cookie_name}={victim_anonymous}; {cookie_name}={planted}",
                   f"{cookie_name}={planted}; {cookie_name}={victim_anonymous}"):
        browser = Browser(http, headers=SAME_ORIGIN)
        response = browser.post("/login", forged, extra={"Cookie": header})
        assert response.status_code == 403, header
        assert b"submitted from another site or has expired" in response.body
        assert SessionModel.count() == 0, "nobody was signed in"

        page = Browser(http, headers=SAME_ORIGIN).get(f"/login?request_id={request_id}", extra={"Cookie": header})
        [fresh] = set_cookies(page)
        value = fresh.split(";")[0].split("=", 1)[1]
        assert value not in (planted, victim_anonymous) and len(value) >= 43
        assert hidden(page.body, "csrf_token") == sessions.csrf_token(value, "login")
