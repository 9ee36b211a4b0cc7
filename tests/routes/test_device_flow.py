"""The device authorization grant (RFC 8628): /device_authorization, polling /token, the /device page."""
from __future__ import annotations

import json
import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from chalicelib.capabilities import DEVICE_CODE
from tests.routes.account_flow import account_sign_in
from tests.routes.flow import FORM, ISSUER, Browser, hidden


@pytest.fixture
def device_client(aws):
    from chalicelib.oauth.clients import create_client

    client, _ = create_client(client_name="Shell Agent", client_type="public", grant_types=[DEVICE_CODE, "refresh_token"],
                              scopes=["openid", "email", "offline_access"])
    return client


@pytest.fixture
def clock(monkeypatch):
    """The token endpoint's clock for the device grant, moved on by `clock.advance(seconds)`: polls
    are spaced by the interval without sleeping."""

    class Clock:
        offset = 0

        def advance(self, seconds):
            self.offset += seconds

    state = Clock()
    from chalicelib.grants import device_code

    monkeypatch.setattr(device_code, "now", lambda: int(time.time()) + state.offset)
    return state


def start(http, client_id, **params):
    body = "&".join(f"{k}={v}" for k, v in {"client_id": client_id, **params}.items())
    return http.post("/device_authorization", body=body.encode(), headers=FORM)


def started(http, client_id, **params) -> dict:
    response = start(http, client_id, **params)
    assert response.status_code == 200, response.body
    return json.loads(response.body)


def poll(http, client_id, device_code, clock=None):
    if clock is not None:
        clock.advance(60)  # well past any interval
    from urllib.parse import urlencode

    return http.post("/token", body=urlencode({"grant_type": DEVICE_CODE, "device_code": device_code,
                                               "client_id": client_id}).encode(), headers=FORM)


def error_of(response) -> str:
    return json.loads(response.body)["error"]


def signed_in(http) -> Browser:
    browser = Browser(http)
    assert account_sign_in(browser).status_code == 302
    return browser


def look_up(browser, user_code):
    page = browser.get("/device")
    assert page.status_code == 200, page.body
    return browser.post("/device", {"csrf_token": hidden(page.body, "csrf_token"), "user_code": user_code})


def decide(browser, user_code, decision="allow"):
    consent = look_up(browser, user_code)
    assert consent.status_code == 200, consent.body
    assert b"Shell Agent" in consent.body
    return browser.post("/device/consent", {"csrf_token": hidden(consent.body, "csrf_token"),
                                            "user_code": hidden(consent.body, "user_code"), "decision": decision})


# /device_authorization -------------------------------------------------------------------------------

def test_device_authorization_answers_every_rfc8628_field(http, device_client):
    response = start(http, device_client.client_id, scope="openid%20email")
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    body = json.loads(response.body)
    assert re.fullmatch(r"[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}", body["user_code"])
    assert body["verification_uri"] == f"{ISSUER}/device"
    assert parse_qs(urlsplit(body["verification_uri_complete"]).query) == {"user_code": [body["user_code"]]}
    assert body["expires_in"] == 600 and body["interval"] == 5
    assert len(body["device_code"]) > 40


def test_discovery_names_the_endpoint_and_the_grant(http):
    document = json.loads(http.get("/.well-known/openid-configuration").body)
    assert document["device_authorization_endpoint"] == f"{ISSUER}/device_authorization"
    assert DEVICE_CODE in document["grant_types_supported"]


def test_device_code_secret_is_stored_only_as_a_hash(http, device_client):
    from chalicelib.storage.models import DeviceAuthorizationModel

    body = started(http, device_client.client_id)
    items = list(DeviceAuthorizationModel.scan())
    assert len(items) == 1
    stored = json.dumps(items[0].attribute_values, default=str)
    secret = body["device_code"].split(".", 1)[1]
    assert secret not in stored and body["user_code"].replace("-", "") not in stored


def test_a_client_without_the_grant_is_refused(http, public_client):
    response = start(http, public_client.client_id)
    assert response.status_code == 400 and error_of(response) == "unauthorized_client"


def test_a_scope_the_client_may_not_ask_for_is_refused(http, device_client):
    response = start(http, device_client.client_id, scope="openid%20admin")
    assert response.status_code == 400 and error_of(response) == "invalid_scope"


def test_an_unknown_client_is_refused(http):
    response = start(http, "nobody")
    assert response.status_code == 401 and error_of(response) == "invalid_client"


def test_a_confidential_client_must_authenticate(http, aws):
    from chalicelib.oauth.clients import create_client

    client, _ = create_client(client_name="Build Bot", client_type="confidential", grant_types=[DEVICE_CODE])
    response = start(http, client.client_id)
    assert response.status_code == 401 and error_of(response) == "invalid_client"


# Polling ---------------------------------------------------------------------------------------------

def test_pending_then_approved_gives_tokens_once(http, device_client, alice, clock):
    body = started(http, device_client.client_id, scope="openid%20email%20offline_access")
    pending = poll(http, device_client.client_id, body["device_code"])
    assert pending.status_code == 400 and error_of(pending) == "authorization_pending"

    done = decide(signed_in(http), body["user_code"])
    assert done.status_code == 200 and b"You can return to your device" in done.body

    tokens = poll(http, device_client.client_id, body["device_code"], clock)
    assert tokens.status_code == 200, tokens.body
    answer = json.loads(tokens.body)
    assert {"access_token", "id_token", "refresh_token"} <= set(answer) and answer["scope"] == "openid email offline_access"
    import jwt

    claims = jwt.decode(answer["access_token"], options={"verify_signature": False})
    assert claims["sub"] == alice.pk and claims["client_id"] == device_client.client_id

    again = poll(http, device_client.client_id, body["device_code"], clock)
    assert again.status_code == 400 and error_of(again) == "invalid_grant"


def test_the_refresh_token_of_a_device_grant_refreshes(http, device_client, alice, clock):
    body = started(http, device_client.client_id, scope="openid%20offline_access")
    decide(signed_in(http), body["user_code"])
    refresh = json.loads(poll(http, device_client.client_id, body["device_code"], clock).body)["refresh_token"]
    response = http.post("/token", body=f"grant_type=refresh_token&refresh_token={refresh}&client_id="
                         f"{device_client.client_id}".encode(), headers=FORM)
    assert response.status_code == 200, response.body


def test_polling_too_fast_is_slow_down_and_the_interval_grows(http, device_client, clock):
    from chalicelib.storage.device_codes import key
    from chalicelib.storage.models import DeviceAuthorizationModel

    body = started(http, device_client.client_id)
    assert error_of(poll(http, device_client.client_id, body["device_code"])) == "authorization_pending"
    first = poll(http, device_client.client_id, body["device_code"])
    assert first.status_code == 400 and error_of(first) == "slow_down"
    second = poll(http, device_client.client_id, body["device_code"])
    assert error_of(second) == "slow_down"
    item = DeviceAuthorizationModel.get(key(body["user_code"].replace("-", "")))
    assert item.interval == 15, "each slow_down adds 5 seconds (RFC 8628 §3.5)"
    clock.advance(14)
    assert error_of(poll(http, device_client.client_id, body["device_code"])) == "slow_down", \
        "the grown interval is enforced"
    clock.advance(40)
    assert error_of(poll(http, device_client.client_id, body["device_code"])) == "authorization_pending"


def test_denied_is_access_denied(http, device_client, alice, clock):
    body = started(http, device_client.client_id)
    done = decide(signed_in(http), body["user_code"], decision="deny")
    assert done.status_code == 200 and b"was not allowed" in done.body
    response = poll(http, device_client.client_id, body["device_code"], clock)
    assert response.status_code == 400 and error_of(response) == "access_denied"


def test_an_expired_device_code_is_expired_token(http, device_client, clock):
    body = started(http, device_client.client_id)
    clock.advance(601)
    response = poll(http, device_client.client_id, body["device_code"])
    assert response.status_code == 400 and error_of(response) == "expired_token"


@pytest.mark.parametrize("tamper", ["other_secret", "other_client", "malformed"])
def test_a_wrong_device_code_is_invalid_grant(http, device_client, aws, tamper, clock):
    from chalicelib.oauth.clients import create_client

    body = started(http, device_client.client_id)
    client_id, code = device_client.client_id, body["device_code"]
    if tamper == "other_secret":
        code = code.split(".")[0] + ".x" + code.split(".")[1][1:]
    elif tamper == "other_client":
        other, _ = create_client(client_name="Other", client_type="public", grant_types=[DEVICE_CODE])
        client_id = other.client_id
    else:
        code = "not-a-device-code"
    response = poll(http, client_id, code, clock)
    assert response.status_code == 400 and error_of(response) == "invalid_grant"
    # The real device is unaffected.
    assert error_of(poll(http, device_client.client_id, body["device_code"], clock)) == "authorization_pending"


def test_a_missing_device_code_is_invalid_request(http, device_client):
    response = http.post("/token", body=f"grant_type={DEVICE_CODE}&client_id={device_client.client_id}".encode(),
                         headers=FORM)
    assert response.status_code == 400 and error_of(response) == "invalid_request"


def test_a_client_without_the_grant_cannot_poll(http, public_client):
    response = http.post("/token", body=f"grant_type={DEVICE_CODE}&device_code=BCDFGHJK.x&client_id="
                         f"{public_client.client_id}".encode(), headers=FORM)
    assert response.status_code == 400 and error_of(response) == "unauthorized_client"


# The /device page ----------------------------------------------------------------------------------

def test_the_page_signs_in_first_and_comes_back_with_the_code(http, device_client, alice):
    body = started(http, device_client.client_id)
    browser = Browser(http)
    path = urlsplit(body["verification_uri_complete"])
    response = browser.get(f"{path.path}?{path.query}")
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith("/account/login?continue=device&user_code=")
    page = browser.get(location)
    signed = browser.post(location, {"csrf_token": hidden(page.body, "csrf_token"), "username": "alice@example.com",
                                     "password": "correct horse battery"})
    assert signed.status_code == 302 and signed.headers["Location"] == f"/device?user_code={body['user_code']}"
    form = browser.get(signed.headers["Location"])
    assert form.status_code == 200
    # Filled in, not submitted: the link alone approves nothing.
    assert f'value="{body["user_code"]}"' in form.body.decode()
    assert 'autocomplete="off"' in form.body.decode() and 'autocapitalize="characters"' in form.body.decode()
    assert error_of(poll(http, device_client.client_id, body["device_code"])) == "authorization_pending"


def test_a_user_with_a_second_factor_comes_back_to_the_device_page_after_it(http, device_client, alice):
    """The continuation survives /mfa: its forms keep `?continue=device&user_code=...`, and a proved
    second factor ends on the device page with the code, not on the account page."""
    from tests.routes.test_second_factor import code_now, enrol_totp

    enrol_totp(alice.pk)
    body = started(http, device_client.client_id)
    browser = Browser(http)
    location = f"/account/login?continue=device&user_code={body['user_code']}"
    page = browser.get(location)
    signed = browser.post(location, {"csrf_token": hidden(page.body, "csrf_token"), "username": "alice@example.com",
                                     "password": "correct horse battery"})
    mfa = signed.headers["Location"]
    assert signed.status_code == 302 and mfa == f"/mfa?continue=device&user_code={body['user_code']}"
    form = browser.get(mfa)
    assert f'action="/mfa?continue=device&amp;user_code={body["user_code"]}"' in form.body.decode()
    proved = browser.post(mfa, {"csrf_token": hidden(form.body, "csrf_token"), "request_id": "", "method": "totp",
                                "code": code_now()})
    assert proved.status_code == 302 and proved.headers["Location"] == f"/device?user_code={body['user_code']}"
    assert look_up(browser, body["user_code"]).status_code == 200


def test_the_sign_in_continuation_is_only_the_device_page(http, alice):
    browser = Browser(http)
    location = "/account/login?continue=https://evil.example/&user_code=BCDF-GHJK"
    page = browser.get(location)
    signed = browser.post(location, {"csrf_token": hidden(page.body, "csrf_token"), "username": "alice@example.com",
                                     "password": "correct horse battery"})
    assert signed.headers["Location"] == "/account"


@pytest.mark.parametrize("typed", ["bcdf ghjk", "BCDFGHJK", "bcdf-ghjk", " Bc-Df-Gh-Jk "])
def test_typed_codes_are_forgiving(http, device_client, alice, typed, monkeypatch):
    from chalicelib.oauth import device_flow

    monkeypatch.setattr(device_flow, "new_user_code", lambda: "BCDFGHJK")
    started(http, device_client.client_id)
    response = look_up(signed_in(http), typed)
    assert response.status_code == 200 and b"Shell Agent" in response.body


@pytest.mark.parametrize("typed, status", [("AEIOUAEI", 400), ("BCDFGHJ", 400), ("BCDFGHJK", 400)])
def test_a_wrong_code_is_refused_on_the_page(http, device_client, alice, typed, status):
    response = look_up(signed_in(http), typed)
    assert response.status_code == status and b"Shell Agent" not in response.body


def test_the_forms_refuse_cross_site_posts_and_missing_tokens(http, device_client, alice):
    body = started(http, device_client.client_id)
    browser = signed_in(http)
    page = browser.get("/device")
    token = hidden(page.body, "csrf_token")
    cross = browser.post("/device", {"csrf_token": token, "user_code": body["user_code"]},
                         extra={"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403
    assert browser.post("/device", {"user_code": body["user_code"]}).status_code == 403
    consent = look_up(browser, body["user_code"])
    cross = browser.post("/device/consent", {"csrf_token": hidden(consent.body, "csrf_token"),
                                             "user_code": body["user_code"], "decision": "allow"},
                         extra={"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403
    assert error_of(poll(http, device_client.client_id, body["device_code"])) == "authorization_pending"


def test_the_consent_token_is_bound_to_the_code_looked_up(http, device_client, alice, clock):
    """The consent step cannot be used to try codes past the throttle: its token names one code."""
    mine = started(http, device_client.client_id)
    theirs = started(http, device_client.client_id)
    browser = signed_in(http)
    consent = look_up(browser, mine["user_code"])
    response = browser.post("/device/consent", {"csrf_token": hidden(consent.body, "csrf_token"),
                                                "user_code": theirs["user_code"], "decision": "allow"})
    assert response.status_code == 403
    assert error_of(poll(http, device_client.client_id, theirs["device_code"], clock)) == "authorization_pending"


def test_guessing_user_codes_is_throttled(http, device_client, alice, monkeypatch):
    from chalicelib.config import settings

    monkeypatch.setenv("DEVICE_USER_CODE_ATTEMPTS", "3")
    monkeypatch.setenv("LOGIN_THROTTLE_WINDOW", "100000000")
    settings.cache_clear()
    body = started(http, device_client.client_id)
    browser = signed_in(http)
    for guess in ("BBBBBBBB", "CCCCCCCC", "DDDDDDDD"):
        assert look_up(browser, guess).status_code == 400
    refused = look_up(browser, body["user_code"])
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert b"Shell Agent" not in refused.body, "even the right code is not looked up past the limit"
    # Another session from the same address is held by the address's counter.
    other = look_up(signed_in(http), body["user_code"])
    assert other.status_code == 429


def test_a_decided_code_cannot_be_decided_again(http, device_client, alice):
    body = started(http, device_client.client_id)
    browser = signed_in(http)
    decide(browser, body["user_code"], decision="deny")
    again = look_up(browser, body["user_code"])
    assert again.status_code == 400 and b"Shell Agent" not in again.body


def test_a_signed_out_approval_goes_to_sign_in(http, device_client, alice):
    body = started(http, device_client.client_id)
    browser = signed_in(http)
    consent = look_up(browser, body["user_code"])
    browser.cookies.clear()
    response = browser.post("/device/consent", {"csrf_token": hidden(consent.body, "csrf_token"),
                                                "user_code": body["user_code"], "decision": "allow"})
    assert response.status_code == 403, "the token was bound to the cookie that is gone"


def test_dynamodb_calls_of_each_device_path(http, device_client, alice, clock, api_role_allows_every_dynamodb_call):
    """Warm containers: /device_authorization one PutItem; a poll one UpdateItem (slow_down two); the
    redemption two (the claim, the grant's family), as a code's; the page's lookup and decision four."""
    calls = api_role_allows_every_dynamodb_call

    def operations(send):
        del calls[:]
        response = send()
        return response, [c["operation"] for c in calls]

    warm = started(http, device_client.client_id)  # warms the client cache, and its poll the key ring's
    poll(http, device_client.client_id, warm["device_code"])
    body, ops = operations(lambda: start(http, device_client.client_id))
    assert ops == ["PutItem"]
    body = json.loads(body.body)
    _, ops = operations(lambda: poll(http, device_client.client_id, body["device_code"]))
    assert ops == ["UpdateItem"]
    _, ops = operations(lambda: poll(http, device_client.client_id, body["device_code"]))
    assert ops == ["UpdateItem", "UpdateItem"]

    browser = signed_in(http)
    page = browser.get("/device")
    consent, ops = operations(lambda: browser.post("/device", {"csrf_token": hidden(page.body, "csrf_token"),
                                                               "user_code": body["user_code"]}))
    assert ops == ["GetItem", "GetItem", "TransactWriteItems", "GetItem"]  # session, user, counters, authorization
    done, ops = operations(lambda: browser.post("/device/consent", {
        "csrf_token": hidden(consent.body, "csrf_token"), "user_code": body["user_code"], "decision": "allow"}))
    assert done.status_code == 200 and ops == ["GetItem", "GetItem", "GetItem", "TransactWriteItems"]

    tokens, ops = operations(lambda: poll(http, device_client.client_id, body["device_code"], clock))
    assert tokens.status_code == 200 and ops == ["UpdateItem", "UpdateItem"]


# Review: the device client's sign-in requirements -------------------------------------------------

def _strict_client(**restriction):
    """A device client that, at /authorize, would take only a second factor or only its own
    connection (its require_mfa / connections)."""
    from chalicelib.oauth.clients import create_client
    from chalicelib.storage.clients import forget_cached_clients, set_client_connections, set_client_require_mfa

    client, _ = create_client(client_name="Shell Agent", client_type="public", grant_types=[DEVICE_CODE],
                              scopes=["openid", "email"])
    if restriction.get("require_mfa"):
        assert set_client_require_mfa(client.client_id, True)
    if restriction.get("connections"):
        assert set_client_connections(client.client_id, restriction["connections"])
    forget_cached_clients()
    return client


@pytest.mark.parametrize("restriction", [{"require_mfa": True}, {"connections": ("acme",)}], ids=["mfa", "connection"])
def test_a_session_the_client_would_refuse_at_authorize_cannot_approve_its_device(http, aws, alice, clock, restriction):
    """Review attack: /authorize steps a password-only session up for a client that requires a second
    factor, and refuses it for a client restricted to a connection (federation/home_realm); the device
    page must not let that same session approve the client's device instead."""
    client = _strict_client(**restriction)
    body = started(http, client.client_id, scope="openid")
    browser = signed_in(http)
    consent = look_up(browser, body["user_code"])
    assert consent.status_code == 403 and b'name="decision"' not in consent.body
    # Nor with a consent form kept from elsewhere: the CSRF token for this code, posted directly.
    from chalicelib.config import settings
    from chalicelib.oauth import sessions

    cookie = browser.cookies[sessions.cookie_name(settings())]
    token = sessions.csrf_token(cookie, f"device-consent#{body['user_code'].replace('-', '')}")
    done = browser.post("/device/consent", {"csrf_token": token, "user_code": body["user_code"], "decision": "allow"})
    assert done.status_code == 403 and b"You can return to your device" not in done.body
    answer = poll(http, client.client_id, body["device_code"], clock)
    assert answer.status_code == 400 and error_of(answer) == "authorization_pending"


def test_the_device_page_still_serves_a_client_the_session_satisfies(http, aws, alice, clock):
    """The control: the same client without the restriction is approved by this session, with the
    consent token the attack above posts directly."""
    from chalicelib.config import settings
    from chalicelib.oauth import sessions

    client = _strict_client()
    body = started(http, client.client_id, scope="openid")
    browser = signed_in(http)
    assert look_up(browser, body["user_code"]).status_code == 200
    token = sessions.csrf_token(browser.cookies[sessions.cookie_name(settings())],
                                f"device-consent#{body['user_code'].replace('-', '')}")
    done = browser.post("/device/consent", {"csrf_token": token, "user_code": body["user_code"], "decision": "allow"})
    assert done.status_code == 200 and b"You can return to your device" in done.body
    assert poll(http, client.client_id, body["device_code"], clock).status_code == 200
