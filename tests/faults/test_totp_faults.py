"""Fault injection for two-step verification on the account page (issue 13 §2, §3), as
tests/faults/test_account_faults.py does for the other account forms: every AWS call of each request
(DynamoDB, KMS, SES) failed in turn; the answer is the HTML 503 page (or the normal answer when the
fault was absorbed), never a 500; nothing is half-written; the retry gets the normal answer."""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

import pytest

from tests.faults.test_fault_injection import Injector, error_kinds
from tests.routes.account_flow import PASSWORD, mailbox_for, signed_in_browser
from tests.routes.flow import Browser, authorize_query, hidden


@dataclass
class Action:
    make_input: object  # world -> input
    send: object  # (world, input) -> response
    expect: int
    after_fault: object = None  # (world, input) -> None, after a 503


@dataclass
class World:
    http: object
    mailbox: object
    injector: object = None


@dataclass
class Signed:
    user: object
    browser: Browser
    token: str = ""
    secret: str = ""
    request_id: str = ""


def _code(secret: str) -> str:
    import pyotp

    return pyotp.TOTP(secret).now()


def _signed(world) -> Signed:
    from chalicelib.storage.users import create_user

    address = f"user-{secrets.token_hex(5)}@example.com"
    user = create_user(address, PASSWORD, name="Alice")
    browser = signed_in_browser(world.http, address)
    return Signed(user, browser, hidden(browser.get("/account").body, "csrf_token"))


def _pending(world) -> Signed:
    signed = _signed(world)
    assert signed.browser.post("/account/totp/start", {"csrf_token": signed.token,
                                                       "current_password": PASSWORD}).status_code == 302
    page = signed.browser.get("/account/totp")
    signed.secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page.body.decode()).group(1)
    return signed


def _enrolled(world) -> Signed:
    signed = _pending(world)
    assert signed.browser.post("/account/totp", {"csrf_token": signed.token,
                                                 "code": _code(signed.secret)}).status_code == 200
    return signed


def _with_request(make):
    def make_input(world) -> Signed:
        from chalicelib.oauth.clients import create_client

        signed = make(world)
        client, _ = create_client(client_name="Notes", client_type="public",
                                  redirect_uris=["http://127.0.0.1:5000/cb"], grant_types=["authorization_code"],
                                  scopes=["openid", "email"])
        location = Browser(world.http).get("/authorize?" + authorize_query(client.client_id)).headers["Location"]
        signed.request_id = re.search(r"request_id=([^&]+)", location).group(1)
        return signed

    return make_input


def _kinds(sub):
    from chalicelib.storage.users import get_user

    return set(get_user(sub).factors or ())


def _still_pending(world, v):
    from chalicelib.storage import factors

    assert factors.get(v.user.pk, "totp").pending and _kinds(v.user.pk) == set()
    assert factors.get(v.user.pk, "recovery") is None


def _still_enrolled(world, v):
    from chalicelib.storage import factors

    assert _kinds(v.user.pk) == {"totp", "recovery"}
    assert not factors.get(v.user.pk, "totp").pending and factors.get(v.user.pk, "recovery") is not None


def _not_stepped_up(world, v):
    from chalicelib.hashing import sha256_hex
    from chalicelib.storage import sessions

    _still_pending(world, v)
    (value,) = [c for k, c in v.browser.cookies.items() if k.endswith("idp_session")]
    assert sessions.get(sha256_hex(value)).amr == ("pwd",)


def _post(path, fields):
    def send(world, v):
        return v.browser.post(path, {"csrf_token": v.token, **fields(v)})

    return send


ACTIONS = {
    "POST /account/totp/start": Action(_signed, _post("/account/totp/start", lambda v: {
        "current_password": PASSWORD}), 302),
    "GET /account/totp": Action(_pending, lambda w, v: v.browser.get("/account/totp"), 200),
    "POST /account/totp": Action(_pending, _post("/account/totp", lambda v: {"code": _code(v.secret)}), 200,
                                 after_fault=_still_pending),
    "POST /account/totp/remove": Action(_enrolled, _post("/account/totp/remove", lambda v: {
        "current_password": PASSWORD}), 302, after_fault=_still_enrolled),
    "POST /account/recovery-codes": Action(_enrolled, _post("/account/recovery-codes", lambda v: {
        "current_password": PASSWORD}), 200),
    "GET /account/security": Action(_with_request(_signed),
                                    lambda w, v: v.browser.get(f"/account/security?request_id={v.request_id}"), 200),
    "POST /account/security (start)": Action(_with_request(_signed), _post("/account/security", lambda v: {
        "step": "start", "request_id": v.request_id, "current_password": PASSWORD}), 302),
    "POST /account/security (confirm)": Action(_with_request(_pending), _post("/account/security", lambda v: {
        "step": "confirm", "request_id": v.request_id, "code": _code(v.secret)}), 200, after_fault=_not_stepped_up),
    "POST /account/security/continue": Action(_with_request(_enrolled), _post("/account/security/continue", lambda v: {
        "request_id": v.request_id}), 302),
}


#: Requests that seal or open a TOTP secret.
SEALING = {"POST /account/totp/start", "GET /account/totp", "POST /account/totp", "POST /account/security (confirm)"}


@pytest.fixture
def world(keys, tmp_path, monkeypatch):
    from chalice.test import Client

    from app import app

    mailbox = mailbox_for(tmp_path, monkeypatch)
    with Client(app, stage_name="local") as client:
        yield World(client.http, mailbox)
    from chalicelib import aws

    for service in ("dynamodb", "secretsmanager", "kms", "sesv2"):
        aws.client(service).meta.events.unregister("before-call", unique_id=f"fault-injector-{service}")


@pytest.mark.parametrize("label", list(ACTIONS))
def test_no_fault_of_any_call_of_two_step_verification_answers_500_or_leaves_a_half_change(label, world):
    action = ACTIONS[label]
    injector = world.injector = Injector()
    baseline_input = action.make_input(world)
    baseline = injector.run(lambda: action.send(world, baseline_input))
    assert baseline.status_code == action.expect, (label, baseline.status_code, baseline.body[:300])
    calls = list(injector.calls)
    assert calls, label
    if label in SEALING:  # the secret's KMS call is failed too
        assert any(call.startswith("kms.") for call in calls), calls
    for index, call in enumerate(calls):
        for kind in error_kinds(call):
            value = action.make_input(world)
            response = injector.run(lambda: action.send(world, value), fail_at=index, kind=kind)
            where = f"{label}: {index}:{call} {kind}"
            assert response.status_code != 500, f"{where}: 500 {response.body[:300]!r}"
            if response.status_code == 503:
                assert response.headers["Content-Type"].startswith("text/html"), where
                assert b"Please try again" in response.body, where
                assert response.headers["Retry-After"].isdigit(), where
                if action.after_fault:
                    action.after_fault(world, value)
                retry = injector.run(lambda: action.send(world, value))
                assert retry.status_code == action.expect, f"{where}: retry {retry.status_code} {retry.body[:300]!r}"
            else:
                assert response.status_code == action.expect, f"{where}: {response.status_code} {response.body[:300]!r}"
