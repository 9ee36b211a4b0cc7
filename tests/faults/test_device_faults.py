"""Fault injection for the device authorization grant (RFC 8628), as tests/faults/test_fault_injection.py
does for the other endpoints: every AWS call of each request failed in turn (throttled, failing, timed
out, a transaction cancelled by throttling, a write's answer lost). The answer is then the 503 (JSON
for the API, the HTML page for /device), or the normal answer when the fault was absorbed, never a
500; nothing is half-done (an approval is all or nothing, a redemption cut short is put back), and
the retry of the same request gets the normal answer."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest

from chalicelib.capabilities import DEVICE_CODE
from tests.faults.test_fault_injection import Injector, error_kinds
from tests.routes.account_flow import account_sign_in
from tests.routes.flow import FORM, Browser, hidden


@dataclass
class Action:
    make_input: object  # world -> input
    send: object  # (world, input) -> response
    expect: tuple  # acceptable (status, error or None) answers
    after_fault: object = None  # (world, input) -> None, after a 503


@dataclass
class World:
    http: object
    client_id: str
    clock: list


def _start(world) -> dict:
    response = world.http.post("/device_authorization", body=f"client_id={world.client_id}".encode(), headers=FORM)
    assert response.status_code == 200, response.body
    return json.loads(response.body)


def _signed_in(world) -> Browser:
    browser = Browser(world.http)
    assert account_sign_in(browser).status_code == 302
    return browser


def _poll(world, started):
    world.clock[0] += 60  # every attempt, retries too, comes after the interval
    return world.http.post("/token", body=urlencode({"grant_type": DEVICE_CODE, "device_code": started["device_code"],
                                                     "client_id": world.client_id}).encode(), headers=FORM)


def _consent_form(world):
    started = _start(world)
    browser = _signed_in(world)
    page = browser.get("/device")
    consent = browser.post("/device", {"csrf_token": hidden(page.body, "csrf_token"), "user_code": started["user_code"]})
    assert consent.status_code == 200, consent.body
    return started, browser, {"csrf_token": hidden(consent.body, "csrf_token"), "user_code": started["user_code"],
                              "decision": "allow"}


def _approved(world):
    started, browser, form = _consent_form(world)
    assert browser.post("/device/consent", form).status_code == 200
    return started


def _lookup_form(world):
    started = _start(world)
    browser = _signed_in(world)
    page = browser.get("/device")
    return browser, {"csrf_token": hidden(page.body, "csrf_token"), "user_code": started["user_code"]}


def _still_pending(world, value):
    response = _poll(world, value[0])
    assert json.loads(response.body)["error"] == "authorization_pending", "an approval was half written"


ACTIONS = {
    "POST /device_authorization": Action(lambda w: None, lambda w, v: w.http.post(
        "/device_authorization", body=f"client_id={w.client_id}".encode(), headers=FORM), ((200, None),)),
    # A lost answer to the poll's write makes its resend look early: slow_down is right then too.
    "POST /token pending": Action(_start, _poll, ((400, "authorization_pending"), (400, "slow_down"))),
    "POST /token approved": Action(_approved, _poll, ((200, None),)),
    "GET /device": Action(_signed_in, lambda w, v: v.get("/device"), ((200, None),)),
    "POST /device": Action(_lookup_form, lambda w, v: v[0].post("/device", v[1]), ((200, None),)),
    "POST /device/consent": Action(_consent_form, lambda w, v: v[1].post("/device/consent", v[2]), ((200, None),),
                                   after_fault=_still_pending),
}


@pytest.fixture
def world(keys, monkeypatch):
    from chalice.test import Client

    from app import app
    from chalicelib.config import settings
    from chalicelib.grants import device_code
    from chalicelib.oauth.clients import create_client
    from chalicelib.storage.users import create_user

    monkeypatch.setenv("DEVICE_USER_CODE_ATTEMPTS", "100000")
    monkeypatch.setenv("DEVICE_CODE_TTL", "100000000")  # the clock moves a minute per poll
    settings.cache_clear()
    clock = [0]
    monkeypatch.setattr(device_code, "now", lambda: int(time.time()) + clock[0])
    create_user("alice@example.com", "correct horse battery")
    client, _ = create_client(client_name="Shell Agent", client_type="public",
                              grant_types=[DEVICE_CODE, "refresh_token"], scopes=["openid", "email", "offline_access"])
    with Client(app, stage_name="local") as test_client:
        yield World(test_client.http, client.client_id, clock)
    from chalicelib import aws

    for service in ("dynamodb", "secretsmanager", "kms"):
        aws.client(service).meta.events.unregister("before-call", unique_id=f"fault-injector-{service}")


def _answer(response):
    error = json.loads(response.body).get("error") if response.status_code != 200 and \
        response.headers.get("Content-Type", "").startswith("application/json") else None
    return response.status_code, error


@pytest.mark.parametrize("label", list(ACTIONS))
def test_no_fault_of_any_call_of_the_device_flow_answers_500_or_leaves_a_half_change(label, world):
    action = ACTIONS[label]
    injector = Injector()
    baseline_input = action.make_input(world)
    baseline = injector.run(lambda: action.send(world, baseline_input))
    assert _answer(baseline) in action.expect, (label, baseline.status_code, baseline.body[:300])
    calls = list(injector.calls)
    assert calls, label
    for index, call in enumerate(calls):
        for kind in error_kinds(call):
            value = action.make_input(world)
            response = injector.run(lambda: action.send(world, value), fail_at=index, kind=kind)
            where = f"{label}: {index}:{call} {kind}"
            assert response.status_code != 500, f"{where}: 500 {response.body[:300]!r}"
            if response.status_code == 503:
                assert response.headers["Retry-After"].isdigit(), where
                if action.after_fault:
                    action.after_fault(world, value)
                retry = injector.run(lambda: action.send(world, value))
                assert _answer(retry) in action.expect, f"{where}: retry {retry.status_code} {retry.body[:300]!r}"
            else:
                assert _answer(response) in action.expect, f"{where}: {response.status_code} {response.body[:300]!r}"
