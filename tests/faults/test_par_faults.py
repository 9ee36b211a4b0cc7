"""Fault injection for pushed authorization requests (RFC 9126), as tests/faults/test_fault_injection.py
does for the other endpoints: every AWS call of each request failed in turn (throttled, failing, timed
out, a transaction cancelled by throttling, a write's answer lost). The answer is the 503 (JSON at
/par, the HTML page at /authorize) or, when the fault was absorbed, the normal answer; never a 500.
A fault after /authorize spent the request_uri puts it back (chalicelib/undo.py), so the user's
reload, the retry here, gets the normal answer with the same request_uri."""
from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest

from chalicelib.oauth import pkce
from tests.faults.test_fault_injection import Injector, error_kinds
from tests.routes.flow import FORM, VERIFIER, Browser, sign_in_and_consent

REDIRECT = "https://app.example.com/cb"  # https: consent is remembered (RFC 8252 §8.6 asks loopback every time)


@dataclass
class Action:
    make_input: object  # world -> input
    send: object  # (world, input) -> response
    expect: int
    location: str  # how the normal answer's Location starts ("" for none)


@dataclass
class World:
    http: object
    client_id: str
    signed_in: Browser


def _pushed(world) -> str:
    response = world.http.post("/par", headers=FORM, body=urlencode({
        "client_id": world.client_id, "response_type": "code", "redirect_uri": REDIRECT, "scope": "openid email",
        "state": "s", "code_challenge": pkce.s256(VERIFIER), "code_challenge_method": "S256"}).encode())
    assert response.status_code == 201, response.body
    return json.loads(response.body)["request_uri"]


def _authorize(browser, world, request_uri):
    return browser.get("/authorize?" + urlencode({"client_id": world.client_id, "request_uri": request_uri}))


ACTIONS = {
    "POST /par": Action(lambda w: None, lambda w, _: w.http.post("/par", headers=FORM, body=urlencode({
        "client_id": w.client_id, "response_type": "code", "redirect_uri": REDIRECT, "scope": "openid",
        "code_challenge": pkce.s256(VERIFIER), "code_challenge_method": "S256"}).encode()), 201, ""),
    "GET /authorize request_uri (no session)": Action(
        _pushed, lambda w, uri: _authorize(Browser(w.http), w, uri), 302, "/login"),
    "GET /authorize request_uri (signed in, consented)": Action(
        _pushed, lambda w, uri: _authorize(w.signed_in, w, uri), 302, REDIRECT + "?code="),
}


@pytest.fixture
def world(keys, monkeypatch):
    from chalice.test import Client

    from app import app
    from chalicelib.oauth.clients import create_client
    from chalicelib.storage.users import create_user

    create_user("alice@example.com", "correct horse battery", email_verified=True)
    client, _ = create_client(client_name="Notes", client_type="public", redirect_uris=[REDIRECT],
                              scopes=["openid", "email"])
    with Client(app, stage_name="local") as test_client:
        browser = Browser(test_client.http)
        sign_in_and_consent(browser, client.client_id, redirect_uri=REDIRECT)
        yield World(test_client.http, client.client_id, browser)
    from chalicelib import aws

    for service in ("dynamodb", "secretsmanager", "kms"):
        aws.client(service).meta.events.unregister("before-call", unique_id=f"fault-injector-{service}")


def _normal(response, action) -> bool:
    return response.status_code == action.expect and response.headers.get("Location", "").startswith(action.location)


@pytest.mark.parametrize("label", list(ACTIONS))
def test_no_fault_of_any_call_answers_500_or_spends_the_request_uri(label, world):
    action = ACTIONS[label]
    injector = Injector()
    baseline_input = action.make_input(world)
    baseline = injector.run(lambda: action.send(world, baseline_input))
    assert _normal(baseline, action), (label, baseline.status_code, baseline.headers.get("Location"))
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
                if label == "POST /par":
                    assert json.loads(response.body)["error"] == "temporarily_unavailable", where
                else:
                    assert response.headers["Content-Type"].startswith("text/html"), where
                retry = injector.run(lambda: action.send(world, value))
                assert _normal(retry, action), f"{where}: retry {retry.status_code} {retry.body[:300]!r}"
            else:
                assert _normal(response, action), f"{where}: {response.status_code} {response.body[:300]!r}"
