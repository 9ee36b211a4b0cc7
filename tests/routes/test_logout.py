"""/logout as the end-session endpoint (OpenID Connect RP-Initiated Logout 1.0), and what signing out
puts on the logout queue for back-channel logout (Back-Channel Logout 1.0): one message, none when
the session issued nothing, never an outbound request on the request path, and a queue fault never
stops the sign-out. The queue is an in-memory fake (tests/fakes/logout_queue.py); the delivery side
runs against the moto server's SQS in tests/integration/test_backchannel_logout.py."""
from __future__ import annotations

import json
from urllib.parse import urlencode, urlsplit

import jwt
import pytest

from tests.routes.flow import Browser, hidden, query_of, redeem, sign_in_and_consent, authorize_query

BYE = "https://app.example.com/bye"
MALFORMED_OR_REFUSED = b"sign-out request could not be checked"


@pytest.fixture
def rp(aws):
    """An admin-created app that registered a post-logout redirect and a back-channel URI."""
    from chalicelib.oauth.clients import create_client

    client, _ = create_client(client_name="Notes App", client_type="public",
                              redirect_uris=["http://127.0.0.1:5000/cb"], scopes=["openid", "email"],
                              post_logout_redirect_uris=[BYE, "https://app.example.com/bye?from=idp"],
                              backchannel_logout_uri="http://127.0.0.1:9/backchannel")
    return client


@pytest.fixture
def other_rp(aws):
    from chalicelib.oauth.clients import create_client

    client, _ = create_client(client_name="Billing", client_type="public", redirect_uris=["http://127.0.0.1:5000/cb"],
                              scopes=["openid", "email"], post_logout_redirect_uris=["https://billing.example.com/"])
    return client


@pytest.fixture
def queue(monkeypatch):
    from tests.fakes import logout_queue

    return logout_queue.install(monkeypatch)


@pytest.fixture
def no_outbound(monkeypatch):
    """Any outbound HTTP request (chalicelib/outbound.py, the only way out) fails the test."""
    from chalicelib import outbound

    def refuse(*args, **kwargs):
        raise AssertionError(f"outbound request on the request path: {args[:2]}")

    monkeypatch.setattr(outbound, "send", refuse)


def id_token_of(browser: Browser, client, http) -> str:
    code = query_of(sign_in_and_consent(browser, client.client_id))["code"]
    response = redeem(http, client.client_id, code)
    assert response.status_code == 200, response.body
    return json.loads(response.body)["id_token"]


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def still_signed_in(browser: Browser, client) -> bool:
    """prompt=none answers login_required only without a session (a public client's consent is
    asked again every time: consent_required means signed in)."""
    response = browser.get("/authorize?" + authorize_query(client.client_id, prompt="none"))
    return query_of(response.headers["Location"]).get("error") != "login_required"


def logout(browser: Browser, **params):
    return browser.get("/logout?" + urlencode(params))


# Discovery and sid ----------------------------------------------------------------------------------

def test_discovery_advertises_the_end_session_endpoint_and_back_channel_logout_with_sid(http):
    document = json.loads(http.get("/.well-known/openid-configuration").body)
    assert document["end_session_endpoint"] == "http://localhost:8000/logout"
    assert document["backchannel_logout_supported"] is True
    assert document["backchannel_logout_session_supported"] is True
    assert "sid" in document["claims_supported"]


def test_the_id_token_names_its_session_by_a_sid_that_is_neither_the_cookie_nor_its_hash(http, rp, alice):
    from chalicelib.hashing import sha256_hex
    from chalicelib.oauth.backchannel_logout import session_id
    from chalicelib.oauth.sessions import cookie_name
    from chalicelib.config import settings

    browser = Browser(http)
    sid = claims_of(id_token_of(browser, rp, http))["sid"]
    cookie = browser.cookies[cookie_name(settings())]
    assert sid == session_id(sha256_hex(cookie)) and sid not in (cookie, sha256_hex(cookie))
    assert len(sid) == 32


# RP-initiated logout --------------------------------------------------------------------------------

def test_the_hint_of_this_very_session_signs_out_at_once_and_returns_to_the_app_with_state(
        http, rp, alice, queue, no_outbound):
    browser = Browser(http)
    hint = id_token_of(browser, rp, http)
    response = logout(browser, id_token_hint=hint, post_logout_redirect_uri=BYE, state="st-1")
    assert response.status_code == 302
    assert response.headers["Location"] == BYE + "?state=st-1"
    assert "Max-Age=0" in str(response.headers["Set-Cookie"])
    assert not still_signed_in(browser, rp)
    [message] = queue.take()
    assert message["kind"] == "session" and message["sid"] == claims_of(hint)["sid"]
    assert message["sub"] == alice.pk and len(message["grant_ids"]) == 1


def test_state_is_added_to_a_registered_uri_that_has_a_query_of_its_own(http, rp, alice, queue):
    browser = Browser(http)
    hint = id_token_of(browser, rp, http)
    response = logout(browser, id_token_hint=hint, post_logout_redirect_uri=BYE + "?from=idp", state="a b")
    assert response.headers["Location"] == BYE + "?from=idp&state=a+b"


def test_without_a_hint_the_user_is_asked_first_and_the_confirmation_returns_to_the_app(http, rp, alice, queue):
    browser = Browser(http)
    sign_in_and_consent(browser, rp.client_id)
    page = logout(browser, client_id=rp.client_id, post_logout_redirect_uri=BYE, state="s2")
    assert page.status_code == 200 and b"Sign out?" in page.body and b"app.example.com" in page.body
    assert "https://app.example.com" in page.headers["Content-Security-Policy"]  # form-action: the redirect after it
    assert still_signed_in(browser, rp) and queue.messages == []
    done = browser.post("/logout", {"csrf_token": hidden(page.body, "csrf_token"), "client_id": rp.client_id,
                                    "post_logout_redirect_uri": hidden(page.body, "post_logout_redirect_uri"),
                                    "state": hidden(page.body, "state")})
    assert done.status_code == 302 and done.headers["Location"] == BYE + "?state=s2"
    assert not still_signed_in(browser, rp)


def test_the_hint_of_another_session_only_asks(http, rp, alice, queue):
    first, second = Browser(http), Browser(http)
    hint = id_token_of(first, rp, http)
    sign_in_and_consent(second, rp.client_id)
    page = logout(second, id_token_hint=hint, post_logout_redirect_uri=BYE)
    assert page.status_code == 200 and b"Sign out?" in page.body
    assert still_signed_in(second, rp) and still_signed_in(first, rp)


def test_a_browser_without_a_session_is_asked_too_rather_than_bounced_on(http, rp, alice, queue):
    browser = Browser(http)
    hint = id_token_of(browser, rp, http)
    stranger = Browser(http)
    page = logout(stranger, id_token_hint=hint, post_logout_redirect_uri=BYE)
    assert page.status_code == 200 and "Location" not in page.headers and b"Sign out?" in page.body


def test_an_expired_hint_still_identifies_the_app_and_the_session(http, rp, alice, queue):
    from chalicelib.keys import keyring
    from chalicelib.tokens import jwt as our_jwt

    browser = Browser(http)
    claims = claims_of(id_token_of(browser, rp, http))
    expired = our_jwt.encode({**claims, "iat": claims["iat"] - 7200, "exp": claims["iat"] - 3600},
                             keyring.current_signer(), typ="JWT")
    response = logout(browser, id_token_hint=expired, post_logout_redirect_uri=BYE)
    assert response.status_code == 302 and response.headers["Location"] == BYE
    assert not still_signed_in(browser, rp)


def forged(claims: dict, kid: str) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec

    return jwt.encode(claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256",
                      headers={"kid": kid, "typ": "JWT"})


@pytest.mark.parametrize("tamper", ["forged signature", "another issuer", "an access token", "garbage", "alg none"])
def test_a_hint_that_is_not_our_id_token_is_refused_without_redirect_or_sign_out(http, rp, alice, queue, tamper):
    from chalicelib.keys import keyring
    from chalicelib.tokens import jwt as our_jwt

    browser = Browser(http)
    real = id_token_of(browser, rp, http)
    claims, kid = claims_of(real), jwt.get_unverified_header(real)["kid"]
    hint = {
        "forged signature": lambda: forged(claims, kid),
        "another issuer": lambda: our_jwt.encode({**claims, "iss": "https://evil.example"}, keyring.current_signer()),
        "an access token": lambda: our_jwt.encode(claims, keyring.current_signer(), typ="at+jwt"),
        "garbage": lambda: "not.a.token",
        "alg none": lambda: jwt.encode(claims, None, algorithm="none", headers={"kid": kid, "typ": "JWT"}),
    }[tamper]()
    response = logout(browser, id_token_hint=hint, post_logout_redirect_uri=BYE, state="s")
    assert response.status_code == 400 and "Location" not in response.headers
    assert MALFORMED_OR_REFUSED in response.body
    assert still_signed_in(browser, rp) and queue.messages == []


def test_client_id_must_be_an_audience_of_the_hint(http, rp, other_rp, alice, queue):
    browser = Browser(http)
    hint = id_token_of(browser, rp, http)
    response = logout(browser, id_token_hint=hint, client_id=other_rp.client_id,
                      post_logout_redirect_uri="https://billing.example.com/")
    assert response.status_code == 400 and "Location" not in response.headers
    assert still_signed_in(browser, rp)


@pytest.mark.parametrize("params", [
    {"post_logout_redirect_uri": "https://evil.example/"},  # registered by nobody
    {"post_logout_redirect_uri": "https://billing.example.com/"},  # registered by another client
    {"post_logout_redirect_uri": BYE + "/"},  # not an exact match
], ids=["unregistered", "another-clients", "not-exact"])
def test_an_unregistered_post_logout_redirect_uri_is_never_followed(http, rp, other_rp, alice, queue, params):
    browser = Browser(http)
    hint = id_token_of(browser, rp, http)
    for identified in ({"id_token_hint": hint}, {"client_id": rp.client_id}):
        response = logout(browser, **identified, **params, state="s")
        assert response.status_code == 400 and "Location" not in response.headers
    assert still_signed_in(browser, rp)


def test_a_post_logout_redirect_uri_without_a_client_is_refused(http, rp, alice, queue):
    response = logout(Browser(http), post_logout_redirect_uri=BYE)
    assert response.status_code == 400 and "Location" not in response.headers


def test_ui_locales_picks_the_confirmation_pages_language(http, rp):
    page = logout(Browser(http), client_id=rp.client_id, ui_locales="de")
    assert "<h1>Abmelden?</h1>" in page.body.decode()


def test_the_confirmation_form_is_csrf_protected_even_with_app_parameters(http, rp, alice, queue):
    browser = Browser(http)
    sign_in_and_consent(browser, rp.client_id)
    response = browser.post("/logout", {"csrf_token": "forged", "client_id": rp.client_id,
                                        "post_logout_redirect_uri": BYE})
    assert response.status_code == 403 and "Location" not in response.headers
    assert still_signed_in(browser, rp)


def test_an_app_may_post_the_end_session_request(http, rp, alice, queue):
    browser = Browser(http)
    hint = id_token_of(browser, rp, http)
    response = browser.post("/logout", {"id_token_hint": hint, "post_logout_redirect_uri": BYE, "state": "p"},
                            extra={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 302 and response.headers["Location"] == BYE + "?state=p"


# What signing out enqueues ----------------------------------------------------------------------------

def test_the_sign_out_page_enqueues_one_message_naming_the_sessions_grants_and_sends_nothing(
        http, rp, alice, queue, no_outbound):
    browser = Browser(http)
    hint = id_token_of(browser, rp, http)
    page = browser.get("/logout")
    assert browser.post("/logout", {"csrf_token": hidden(page.body, "csrf_token")}).status_code == 200
    [message] = queue.take()
    assert message == {"kind": "session", "sub": alice.pk, "sid": claims_of(hint)["sid"],
                       "grant_ids": message["grant_ids"]} and len(message["grant_ids"]) == 1


def test_a_session_that_issued_nothing_enqueues_nothing(http, rp, alice, queue):
    browser = Browser(http)
    sign_in_and_consent(browser, rp.client_id, consent=False)  # signed in, no code, no grant
    page = browser.get("/logout")
    assert browser.post("/logout", {"csrf_token": hidden(page.body, "csrf_token")}).status_code == 200
    assert queue.messages == []


def test_a_queue_fault_is_logged_and_the_user_is_signed_out_all_the_same(http, rp, alice, queue, idp_log):
    browser = Browser(http)
    hint = id_token_of(browser, rp, http)
    queue.failing = True
    response = logout(browser, id_token_hint=hint, post_logout_redirect_uri=BYE)
    assert response.status_code == 302 and response.headers["Location"] == BYE
    assert not still_signed_in(browser, rp)
    assert any(e["msg"].startswith("back-channel logout not queued") and e["level"] == "ERROR" for e in idp_log())


def test_signing_out_everywhere_enqueues_one_message_for_the_user(http, rp, alice, queue, no_outbound):
    from chalicelib.accounts.account import sign_out_everywhere
    from chalicelib.log import now

    id_token_of(Browser(http), rp, http)
    before = now()
    sign_out_everywhere(alice.pk)
    [message] = queue.take()
    assert message["kind"] == "user" and message["sub"] == alice.pk and before <= message["since"] <= now()


@pytest.mark.parametrize("command", [["users", "disable"], ["users", "signout"], ["users", "mfa", "reset"]])
def test_the_admin_commands_that_end_every_session_enqueue_one_message(http, rp, alice, queue, command):
    from tools import admin

    assert admin.main([*command, alice.email], environ={}) == 0
    [message] = queue.take()
    assert message["kind"] == "user" and message["sub"] == alice.pk


# Registration ---------------------------------------------------------------------------------------

def test_registration_takes_and_returns_the_logout_metadata(http):
    from tests.routes.flow import register_public_agent

    body = register_public_agent(http, post_logout_redirect_uris=["http://127.0.0.1/bye"],
                                 backchannel_logout_uri="http://127.0.0.1:7000/bc",
                                 backchannel_logout_session_required=True)
    assert body["post_logout_redirect_uris"] == ["http://127.0.0.1/bye"]
    assert body["backchannel_logout_uri"] == "http://127.0.0.1:7000/bc"
    assert body["backchannel_logout_session_required"] is True


@pytest.mark.parametrize("metadata", [
    {"backchannel_logout_uri": "http://rp.example.com/bc"},  # http off loopback
    {"backchannel_logout_uri": "https://rp.example.com/bc#frag"},  # §2.2: no fragment
    {"backchannel_logout_uri": "http://localhost:8000/logout"},  # this server
    {"backchannel_logout_session_required": True},  # without a URI
    {"backchannel_logout_session_required": "yes"},
    {"post_logout_redirect_uris": ["https://app.example.com/bye#x"]},
    {"post_logout_redirect_uris": "https://app.example.com/bye"},
], ids=["http", "fragment", "us", "required-alone", "not-bool", "uri-fragment", "not-a-list"])
def test_registration_refuses_logout_metadata_that_breaks_a_rule(http, metadata):
    body = {"client_name": "Agent", "redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none",
            **metadata}
    response = http.post("/register", body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and json.loads(response.body)["error"] == "invalid_client_metadata"


def test_the_return_host_on_the_confirmation_page_is_the_registered_uris(http, rp):
    page = logout(Browser(http), client_id=rp.client_id, post_logout_redirect_uri=BYE)
    assert urlsplit(BYE).netloc.encode() in page.body and b"Notes App" in page.body
