"""Fault injection for the account pages (issue 12 §4), as tests/faults/test_fault_injection.py
does for the OAuth endpoints: every AWS call of each request failed in turn (throttled, failing,
timed out, a transaction cancelled by throttling, a write's answer lost), and each time the answer
is the HTML 503 page (or the normal answer when the fault was absorbed), never a 500; nothing is
left half-done (checked per action), and the retry of the same request gets the normal answer."""
from __future__ import annotations

import secrets
from dataclasses import dataclass

import pytest

from tests.faults.test_fault_injection import Injector, error_kinds
from tests.routes.account_flow import PASSWORD, mailbox_for, post_form, signed_in_browser
from tests.routes.flow import Browser, hidden

NEW_PASSWORD = "a brand new passphrase 7"


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


def _user(world):
    from chalicelib.storage.users import create_user

    address = f"user-{secrets.token_hex(5)}@example.com"
    user = create_user(address, PASSWORD, name="Alice")
    return user, address, signed_in_browser(world.http, address)


def _password_unchanged(world, value):
    from chalicelib.passwords import verify_password
    from chalicelib.storage.users import get_user

    assert verify_password(PASSWORD, get_user(value[0].pk).password_hash), "the password changed on a 503"


def _not_deleted(world, value):
    from chalicelib.storage.users import find_user_by_email, get_user

    assert get_user(value[0].pk).deleted_at is None and find_user_by_email(value[1]).pk == value[0].pk


def _address_unchanged(world, value):
    from chalicelib.storage.users import get_user

    assert get_user(value[0].pk).email == value[1]


def _email_link(world):
    user, address, browser = _user(world)
    new_address = f"new-{secrets.token_hex(5)}@example.com"
    response = post_form(browser, "/account/email", {"new_email": new_address, "current_password": PASSWORD})
    assert response.status_code == 302, response.body
    link = world.mailbox.link(new_address)
    stranger = Browser(world.http)  # the link opened in another browser, its page already loaded
    page = stranger.get(link)
    return user, address, link, {"csrf_token": hidden(page.body, "csrf_token"), "token": hidden(page.body, "token")}, \
        stranger


def _confirm(world, value):
    return value[4].post("/account/email/confirm", value[3])


def _login_form(world):
    from chalicelib.storage.users import create_user

    address = f"user-{secrets.token_hex(5)}@example.com"
    create_user(address, PASSWORD)
    visitor = Browser(world.http)
    page = visitor.get("/account/login")
    return visitor, {"csrf_token": hidden(page.body, "csrf_token"), "username": address, "password": PASSWORD}


ACTIONS = {
    "GET /account": Action(_user, lambda w, v: v[2].get("/account"), 200),
    "POST /account/login": Action(_login_form, lambda w, v: v[0].post("/account/login", v[1]), 302),
    "POST /account/profile": Action(_user, lambda w, v: post_form(v[2], "/account/profile", {
        "name": "Alice L", "given_name": "Alice", "locale": "en-GB"}), 302),
    "POST /account/password": Action(_user, lambda w, v: post_form(v[2], "/account/password", {
        "current_password": PASSWORD, "new_password": NEW_PASSWORD}), 302, after_fault=_password_unchanged),
    "POST /account/email": Action(_user, lambda w, v: post_form(v[2], "/account/email", {
        "new_email": f"other-{secrets.token_hex(4)}@example.com", "current_password": PASSWORD}), 302),
    "GET /account/email/confirm": Action(_email_link, lambda w, v: Browser(w.http).get(v[2]), 200),
    "POST /account/email/confirm": Action(_email_link, _confirm, 200, after_fault=_address_unchanged),
    "POST /account/signout": Action(_user, lambda w, v: post_form(v[2], "/account/signout", {}), 302),
    "POST /account/apps/revoke": Action(_user, lambda w, v: post_form(v[2], "/account/apps/revoke", {
        "client_id": "some-client"}), 302),
    "POST /account/delete": Action(_user, lambda w, v: post_form(v[2], "/account/delete", {
        "current_password": PASSWORD}), 200, after_fault=_not_deleted),
}


@pytest.fixture
def world(keys, tmp_path, monkeypatch):
    from chalice.test import Client

    from app import app

    # Every request here comes from one address: its hourly email-change limit is not under test.
    monkeypatch.setenv("ACCOUNT_ACTIONS_PER_IP", "100000")
    mailbox = mailbox_for(tmp_path, monkeypatch)
    with Client(app, stage_name="local") as client:
        yield World(client.http, mailbox)
    # The injector's hooks stay registered on the (long-lived) clients under fixed ids and consult
    # the injector module they were registered from: when pytest imports test_fault_injection under
    # another name than this module did, its own hooks would never be registered. Leave none behind.
    from chalicelib import aws

    for service in ("dynamodb", "secretsmanager", "kms"):
        aws.client(service).meta.events.unregister("before-call", unique_id=f"fault-injector-{service}")


@pytest.mark.parametrize("label", list(ACTIONS))
def test_no_fault_of_any_call_of_the_account_pages_answers_500_or_leaves_a_half_change(label, world, monkeypatch):
    action = ACTIONS[label]
    injector = Injector()
    # The form's page is fetched by post_form before posting: keep the injector to the post itself.
    def post_with_page_unfailed(browser, path, fields, *, headers=None):
        injector.active = False
        page = browser.get("/account")
        injector.active = True
        return browser.post(path, {"csrf_token": hidden(page.body, "csrf_token"), **fields}, extra=headers)

    monkeypatch.setitem(globals(), "post_form", post_with_page_unfailed)
    baseline_input = action.make_input(world)
    baseline = injector.run(lambda: action.send(world, baseline_input))
    assert baseline.status_code == action.expect, (label, baseline.status_code, baseline.body[:300])
    calls = [c for c in injector.calls]
    assert calls, label
    for index, call in enumerate(calls):
        for kind in error_kinds(call):
            value = action.make_input(world)
            response = injector.run(lambda: action.send(world, value), fail_at=index, kind=kind)
            where = f"{label}: {index}:{call} {kind}"
            assert response.status_code != 500, f"{where}: 500 {response.body[:300]!r}"
            if response.status_code == 503:
                assert response.headers["Content-Type"].startswith("text/html"), where
                # The fixed 503 page: "try again", or for SES its own "could not send the email" page.
                assert b"Please try again" in response.body or (
                    call.startswith("sesv2.") and b"We couldn't send the email" in response.body), where
                assert response.headers["Retry-After"].isdigit(), where
                if action.after_fault:
                    action.after_fault(world, value)
                retry = injector.run(lambda: action.send(world, value))
                assert retry.status_code == action.expect, f"{where}: retry {retry.status_code} {retry.body[:300]!r}"
            else:
                assert response.status_code == action.expect, f"{where}: {response.status_code} {response.body[:300]!r}"
