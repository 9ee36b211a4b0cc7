"""Fault injection for the two-step sign-in (POST /login of a user with a second factor, GET and POST
/mfa), as tests/faults/test_account_faults.py does for the account pages: every AWS call (DynamoDB,
KMS) of each request failed in turn; never a 500, the 503 is the HTML page with Retry-After, and a
fault leaves no session behind unless the code was spent with it (one transaction)."""
from __future__ import annotations

import secrets
from dataclasses import dataclass

import pyotp
import pytest

from tests.faults.test_fault_injection import Injector, error_kinds
from tests.routes.account_flow import PASSWORD
from tests.routes.flow import Browser, hidden
from tests.routes.test_second_factor import enrol_totp, give_recovery_codes


@dataclass
class Case:
    user: object
    browser: Browser
    secret: str
    code: str = ""


def _user(http) -> Case:
    from chalicelib.storage.users import create_user

    user = create_user(f"user-{secrets.token_hex(5)}@example.com", PASSWORD)
    secret = pyotp.random_base32()
    enrol_totp(user.pk, secret)
    give_recovery_codes(user.pk, ["ABCDE-FGHJK"])
    return Case(user, Browser(http), secret)


def _password_form(http) -> tuple[Case, dict]:
    case = _user(http)
    page = case.browser.get("/account/login")
    return case, {"csrf_token": hidden(page.body, "csrf_token"), "username": case.user.email, "password": PASSWORD}


def _at_second_step(http) -> tuple[Case, dict]:
    case, form = _password_form(http)
    assert case.browser.post("/account/login", form).headers["Location"] == "/mfa"
    page = case.browser.get("/mfa")
    return case, {"csrf_token": hidden(page.body, "csrf_token")}


def sessions_of(sub: str) -> list:
    from tests.routes.test_second_factor import sessions_of as of

    return of(sub)


ACTIONS = {
    "POST /account/login (second factor)": (_password_form, lambda c, f: c.browser.post("/account/login", f), 302),
    "GET /mfa": (_at_second_step, lambda c, f: c.browser.get("/mfa"), 200),
    "POST /mfa totp": (_at_second_step, lambda c, f: c.browser.post(
        "/mfa", {**f, "method": "totp", "code": pyotp.TOTP(c.secret).now()}), 302),
    "POST /mfa recovery": (_at_second_step, lambda c, f: c.browser.post(
        "/mfa", {**f, "method": "recovery", "code": "ABCDE-FGHJK"}), 302),
}


@pytest.fixture
def http(keys):
    from chalice.test import Client

    from app import app

    with Client(app, stage_name="local") as client:
        yield client.http
    from chalicelib import aws

    for service in ("dynamodb", "secretsmanager", "kms"):
        aws.client(service).meta.events.unregister("before-call", unique_id=f"fault-injector-{service}")


@pytest.mark.parametrize("label", list(ACTIONS))
def test_no_fault_of_the_two_step_sign_in_answers_500_or_leaves_a_session_without_spending(label, http):
    make, send, expect = ACTIONS[label]
    injector = Injector()
    case, form = make(http)  # outside injector.run: not failed
    baseline = injector.run(lambda: send(case, form))
    assert baseline.status_code == expect, (label, baseline.status_code, baseline.body[:300])
    calls = list(injector.calls)
    assert calls, label
    for index, call in enumerate(calls):
        for kind in error_kinds(call):
            case, form = make(http)
            response = injector.run(lambda: send(case, form), fail_at=index, kind=kind)
            where = f"{label}: {index}:{call} {kind}"
            assert response.status_code != 500, f"{where}: 500 {response.body[:300]!r}"
            if response.status_code == 503:
                assert response.headers["Content-Type"].startswith("text/html"), where
                assert b"Please try again" in response.body and response.headers["Retry-After"].isdigit(), where
                # No session unless the sign-in was in fact written (a lost answer), and then exactly one.
                assert len(sessions_of(case.user.pk)) <= 1, where
            else:
                assert response.status_code == expect, f"{where}: {response.status_code} {response.body[:300]!r}"
