"""Fault injection on the pages of password reset and invitations (issue 12 §8 "no half-made state"),
the same way as test_fault_injection.py: each AWS call of a request fails in turn (DynamoDB, and
here SES v2 too), and:
- the answer is never a 500: the 503 page with Retry-After, or the normal answer when the fault
  is absorbed by design (the password_changed notice; the sign-in after an invitation was accepted);
- after a 503 nothing is spent: the reset or invitation link still opens its form, no user was
  created, and the same form posted again (no fault) succeeds.
"""
from __future__ import annotations

import itertools

import pytest

from tests.faults.test_fault_injection import FAILING, THROTTLE, Injector, error_kinds
from tests.routes.flow import Browser, hidden

PASSWORD = "a sturdy new passphrase"
_serial = itertools.count()


#: The injector of the running test. Its own hooks (own unique ids), not test_fault_injection's:
#: pytest may hold that module twice (collected, and imported here), and a hook registered through
#: one copy would consult that copy's injector, never the other's.
_current: list = []


def _hook(client):
    def before_call(model, params, **_):
        return _current[0].before_call(client, model, params) if _current else None

    return before_call


class SesInjector(Injector):
    """test_fault_injection's injector, on SES v2 as well."""

    def install(self):
        from chalicelib import aws

        _current[:] = [self]
        for service in ("dynamodb", "secretsmanager", "kms", "sesv2"):
            client = aws.client(service)
            client.meta.events.register("before-call", _hook(client), unique_id=f"account-fault-injector-{service}")


@pytest.fixture
def world(keys, monkeypatch):
    from chalice.test import Client

    from app import app
    from chalicelib.aws import client
    from chalicelib.config import settings
    from chalicelib.storage.users import create_user

    for name in ("ACCOUNT_ACTIONS_PER_ADDRESS", "ACCOUNT_ACTIONS_PER_IP", "EMAILS_PER_ADDRESS_PER_HOUR"):
        monkeypatch.setenv(name, "100000")
    settings.cache_clear()
    monkeypatch.setitem(THROTTLE, "sesv2", "TooManyRequestsException")
    monkeypatch.setitem(FAILING, "sesv2", "InternalFailure")
    client("sesv2").create_email_identity(EmailIdentity=settings().email_from)
    user = create_user("frank@example.com", "frank's first passphrase")
    with Client(app, stage_name="local") as chalice_client:
        yield chalice_client.http, user


def _form(http, path, purpose, **issue):
    """A browser on the form of a fresh link: (browser, form fields)."""
    from chalicelib.log import now
    from chalicelib.storage import links

    token = links.issue(purpose, at=now(), ttl=600, **issue)
    browser = Browser(http)
    page = browser.get(f"{path}?token={token}")
    assert page.status_code == 200, page.body
    return browser, {"csrf_token": hidden(page.body, "csrf_token"), "token": token, "password": PASSWORD}


def _reset_input(http, user):
    return _form(http, "/reset-password", "reset_password", email=user.email, sub=user.pk)


def _invitation_input(http, user):
    return _form(http, "/invitation", "invitation", email=f"guest{next(_serial)}@example.com")


def _forgot_input(http, user):
    browser = Browser(http)
    page = browser.get("/forgot-password")
    return browser, {"csrf_token": hidden(page.body, "csrf_token"), "email": user.email, "request_id": ""}


def _link_unspent(purpose):
    def check(value):
        from chalicelib.log import now
        from chalicelib.storage import links
        from chalicelib.storage.users import find_user_by_email

        link = links.peek(value[1]["token"], purpose, now())
        assert not isinstance(link, links.Refused), f"the link was spent: {link}"
        if purpose == "invitation":
            assert find_user_by_email(link.email) is None, "an invitee's user was created by a failed request"
    return check


ENDPOINTS = {
    "POST /forgot-password": (_forgot_input, "/forgot-password", None),
    "POST /reset-password": (_reset_input, "/reset-password", _link_unspent("reset_password")),
    "POST /invitation": (_invitation_input, "/invitation", _link_unspent("invitation")),
}


@pytest.mark.parametrize("label", ENDPOINTS)
def test_no_fault_of_any_call_spends_a_link_or_answers_500(label, world):
    http, user = world
    make_input, path, after_fault = ENDPOINTS[label]
    injector = SesInjector()
    clean = make_input(http, user)
    baseline = injector.run(lambda: clean[0].post(path, clean[1]))
    assert baseline.status_code == 200, baseline.body[:300]
    calls = list(injector.calls)
    assert label == "POST /invitation" or any(call.startswith("sesv2.") for call in calls), calls
    for index, call in enumerate(calls):
        for kind in error_kinds(call):
            value = make_input(http, user)
            response = injector.run(lambda: value[0].post(path, value[1]), fail_at=index, kind=kind)
            where = f"{label}: {call} {kind}"
            assert response.status_code in (200, 503), f"{where}: {response.status_code} {response.body[:300]!r}"
            if response.status_code == 503:
                assert response.headers.get("Retry-After", "").isdigit(), where
                assert response.headers["Content-Type"].startswith("text/html"), where
                assert b"try again" in response.body, where
                if after_fault:
                    after_fault(value)
                retry = injector.run(lambda: value[0].post(path, value[1]))
                assert retry.status_code == 200, f"{where}: retry {retry.status_code} {retry.body[:300]!r}"
