"""REQUIRE_VERIFIED_EMAIL (issue 12 §2): an unverified user signs in but gets no code until verified,
decided from the session's claims (no extra DynamoDB call on the hot paths) and checked again in the
transaction that issues the code (a stale claim gets nothing)."""
from __future__ import annotations

import collections

import pytest

from tests.routes.flow import Browser, authorize_query, hidden, query_of, sign_in_and_consent
from tests.routes.test_signup import configure

#: An https redirect URI: consent is remembered (a loopback one is asked every time, RFC 8252 §8.6).
WEB = "https://app.example.com/cb"


@pytest.fixture
def dynamodb_calls(http):
    from chalicelib import aws

    calls: collections.Counter = collections.Counter()

    def count(event_name, **_):
        calls[event_name.rsplit(".", 1)[-1]] += 1

    events = aws.client("dynamodb").meta.events
    events.register("before-call.dynamodb", count)
    yield calls
    events.unregister("before-call.dynamodb", count)


def verified(user):
    from chalicelib.storage.users import mark_email_verified

    return mark_email_verified(user.pk, user.email, user.session_generation)


def test_an_unverified_user_signs_in_and_is_sent_to_verify_not_to_the_app(http, public_client, alice, monkeypatch):
    configure(monkeypatch, REQUIRE_VERIFIED_EMAIL="true")
    browser = Browser(http)
    location = sign_in_and_consent(browser, public_client.client_id)
    assert location.startswith("/check-email?request_id=")
    page = browser.get(location)
    assert page.status_code == 200 and b"alice@example.com" in page.body and b"Resend email" in page.body
    # Going to the consent page directly does not get past it either.
    request_id = query_of(location)["request_id"]
    assert browser.get(f"/consent?request_id={request_id}").headers["Location"].startswith("/check-email?")


def test_prompt_none_for_an_unverified_user_is_interaction_required(http, public_client, alice, monkeypatch):
    configure(monkeypatch, REQUIRE_VERIFIED_EMAIL="true")
    browser = Browser(http)
    sign_in_and_consent(browser, public_client.client_id)
    response = browser.get("/authorize?" + authorize_query(public_client.client_id, prompt="none"))
    assert query_of(response.headers["Location"])["error"] == "interaction_required"


def test_with_the_gate_off_an_unverified_user_gets_a_code(http, public_client, alice, monkeypatch):
    configure(monkeypatch, REQUIRE_VERIFIED_EMAIL="false")
    assert "code" in query_of(sign_in_and_consent(Browser(http), public_client.client_id))


def test_a_verified_user_gets_a_code(http, public_client, alice, monkeypatch):
    configure(monkeypatch, REQUIRE_VERIFIED_EMAIL="true")
    verified(alice)
    assert "code" in query_of(sign_in_and_consent(Browser(http), public_client.client_id))


def test_a_stale_verified_claim_in_the_session_gets_no_code(http, public_client, alice, monkeypatch):
    """The session says verified, the user record no longer does: the issuing transaction refuses."""
    from chalicelib.storage.models import UserModel

    configure(monkeypatch, REQUIRE_VERIFIED_EMAIL="true")
    verified(alice)
    browser = Browser(http)
    assert "code" in query_of(sign_in_and_consent(browser, public_client.client_id, redirect_uri=WEB))
    UserModel(pk=alice.pk).update(actions=[UserModel.email_verified.set(False)])
    response = browser.get("/authorize?" + authorize_query(public_client.client_id, redirect_uri=WEB))
    assert response.headers["Location"].startswith("/login?")


def test_the_gate_adds_no_dynamodb_call_to_authorize_signed_in_or_to_post_login(
        http, public_client, alice, monkeypatch, dynamodb_calls):
    configure(monkeypatch, REQUIRE_VERIFIED_EMAIL="true")
    verified(alice)
    browser = Browser(http)
    sign_in_and_consent(browser, public_client.client_id, redirect_uri=WEB)
    dynamodb_calls.clear()
    response = browser.get("/authorize?" + authorize_query(public_client.client_id, redirect_uri=WEB))
    assert "code" in query_of(response.headers["Location"])
    assert sum(dynamodb_calls.values()) == 2, dict(dynamodb_calls)

    visitor = Browser(http)
    page = visitor.get(visitor.get("/authorize?" + authorize_query(public_client.client_id, redirect_uri=WEB))
                       .headers["Location"])
    dynamodb_calls.clear()
    response = visitor.post("/login", {"request_id": hidden(page.body, "request_id"),
                                       "csrf_token": hidden(page.body, "csrf_token"),
                                       "username": "alice@example.com", "password": "correct horse battery"})
    assert "code" in query_of(response.headers["Location"])
    assert sum(dynamodb_calls.values()) == 5, dict(dynamodb_calls)
