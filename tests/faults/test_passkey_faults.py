"""Fault injection for the passkey endpoints (sign-in with a passkey alone on /login and
/account/login; the account page's list, add, rename, remove), as tests/faults/test_account_faults.py
does for the account pages: every AWS call of each request failed in turn; never a 500, the 503 is
the HTML page with Retry-After, nothing is half-written (no session without the challenge spent, no
passkey without its entry on the user), and the same request retried without a fault succeeds: a
fault spends no challenge."""
from __future__ import annotations

import secrets
from dataclasses import dataclass

import pytest

from tests.faults.test_fault_injection import Injector, error_kinds
from tests.routes.account_flow import PASSWORD, signed_in_browser
from tests.routes.flow import Browser, authorize_query, hidden
from tests.routes.test_passkeys import options_of, passkey_browser
from tests.webauthn_authenticator import SoftAuthenticator, b64


@dataclass
class Case:
    user: object
    authenticator: SoftAuthenticator
    browser: Browser | None = None
    form: dict | None = None


def _user(http, *, with_passkey: bool) -> Case:
    from chalicelib.log import now
    from chalicelib.storage import factors
    from chalicelib.storage.users import create_user

    user = create_user(f"user-{secrets.token_hex(5)}@example.com", PASSWORD)
    authenticator = SoftAuthenticator(user_handle=user.pk.encode())
    if with_passkey:
        assert factors.add_passkey(user.pk, credential_id=b64(authenticator.credential_id),
                                   public_key=b64(authenticator.cose_key()), sign_count=0, transports=["internal"],
                                   backup_eligible=False, name="Key", challenge=secrets.token_urlsafe(16),
                                   challenge_expires_at=now() + 600)
    return Case(user, authenticator)


def _login_with_passkey(http) -> Case:
    from chalicelib.oauth.clients import create_client

    case = _user(http, with_passkey=True)
    client, _ = create_client(client_name="App", client_type="public", redirect_uris=["http://127.0.0.1:5000/cb"],
                              scopes=["openid", "email"])
    case.browser = Browser(http)
    location = case.browser.get("/authorize?" + authorize_query(client.client_id)).headers["Location"]
    page = case.browser.get(location)
    case.form = {"request_id": hidden(page.body, "request_id"), "csrf_token": hidden(page.body, "csrf_token"),
                 "method": "passkey", "credential": case.authenticator.get(options_of(page.body))}
    return case


def _account_login_with_passkey(http) -> Case:
    case = _user(http, with_passkey=True)
    case.browser = Browser(http)
    page = case.browser.get("/account/login")
    case.form = {"csrf_token": hidden(page.body, "csrf_token"), "method": "passkey",
                 "credential": case.authenticator.get(options_of(page.body))}
    return case


def _adding(http) -> Case:
    case = _user(http, with_passkey=False)
    case.browser = signed_in_browser(http, case.user.email)
    page = case.browser.get("/account")
    case.form = {"csrf_token": hidden(page.body, "csrf_token"), "name": "Laptop", "current_password": PASSWORD,
                 "credential": case.authenticator.create(options_of(page.body))}
    return case


def _signed_in_with_passkey(http) -> Case:
    case = _user(http, with_passkey=True)
    case.browser = passkey_browser(http, case.authenticator)
    page = case.browser.get("/account")
    case.form = {"csrf_token": hidden(page.body, "csrf_token"), "credential_id": b64(case.authenticator.credential_id)}
    return case


def _consistent(case: Case) -> None:
    """The factors table and the user's `factors` set agree."""
    from chalicelib.storage import factors
    from chalicelib.storage.users import get_user

    assert {p.factor_id for p in factors.passkeys(case.user.pk)} == set(get_user(case.user.pk).factors or ())


ACTIONS = {
    "POST /login passkey": (_login_with_passkey, lambda c: c.browser.post("/login", c.form), 302),
    "POST /account/login passkey": (_account_login_with_passkey,
                                    lambda c: c.browser.post("/account/login", c.form), 302),
    "GET /account with passkeys": (_signed_in_with_passkey, lambda c: c.browser.get("/account"), 200),
    "POST /account/passkeys/add": (_adding, lambda c: c.browser.post("/account/passkeys/add", c.form), 302),
    "POST /account/passkeys/rename": (_signed_in_with_passkey, lambda c: c.browser.post(
        "/account/passkeys/rename", {**c.form, "name": "Renamed"}), 302),
    "POST /account/passkeys/delete": (_signed_in_with_passkey, lambda c: c.browser.post(
        "/account/passkeys/delete", {**c.form, "current_password": PASSWORD}), 302),
}


def _unregister_injectors():
    """The injector's hooks stay on the (long-lived) clients under fixed ids and consult the module
    that registered them: when test_fault_injection ran before under another module name (pytest's
    own import of it), its hooks would shadow this module's. Start and leave with none."""
    from chalicelib import aws

    for service in ("dynamodb", "secretsmanager", "kms", "sesv2"):
        aws.client(service).meta.events.unregister("before-call", unique_id=f"fault-injector-{service}")


@pytest.fixture
def http(keys):
    from chalice.test import Client

    from app import app

    _unregister_injectors()
    with Client(app, stage_name="local") as client:
        yield client.http
    _unregister_injectors()


def sessions_of(sub: str) -> list:
    from chalicelib.storage.models import SessionModel

    return [s for s in SessionModel.scan(consistent_read=True) if getattr(s, "sub", None) == sub]


@pytest.mark.parametrize("label", list(ACTIONS))
def test_no_fault_of_a_passkey_endpoint_answers_500_or_leaves_a_half_write(label, http):
    make, send, expect = ACTIONS[label]
    injector = Injector()
    case = make(http)  # outside injector.run: not failed
    baseline = injector.run(lambda: send(case))
    assert baseline.status_code == expect, (label, baseline.status_code, baseline.body[:300])
    calls = list(injector.calls)
    assert calls, label
    for index, call in enumerate(calls):
        for kind in error_kinds(call):
            case = make(http)
            sessions_before = len(sessions_of(case.user.pk))
            response = injector.run(lambda: send(case), fail_at=index, kind=kind)
            where = f"{label}: {index}:{call} {kind}"
            assert response.status_code != 500, f"{where}: 500 {response.body[:300]!r}"
            _consistent(case)
            if response.status_code == 503:
                assert response.headers["Content-Type"].startswith("text/html"), where
                assert b"Please try again" in response.body and response.headers["Retry-After"].isdigit(), where
                assert len(sessions_of(case.user.pk)) <= sessions_before + 1, where
                retry = injector.run(lambda: send(case))
                assert retry.status_code == expect, f"{where}: retry {retry.status_code} {retry.body[:300]!r}"
                _consistent(case)
            else:
                assert response.status_code == expect, f"{where}: {response.status_code} {response.body[:300]!r}"
