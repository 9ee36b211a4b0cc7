"""Ending a user's sessions for good (disable, `users signout`) and ending one session (sign-out),
including the races with a sign-in or a code being issued at the same moment."""
from __future__ import annotations

import json
import os
from urllib.parse import urlencode

import pytest

from tests.routes.flow import FORM, Browser, authorize_query, hidden, query_of, redeem, sign_in_and_consent

PASSWORD = "correct horse battery"


@pytest.fixture
def refreshing_client(aws):
    from chalicelib.oauth.clients import create_client

    client, _ = create_client(client_name="Agent", client_type="public", redirect_uris=["http://127.0.0.1/cb"],
                              grant_types=["authorization_code", "refresh_token"],
                              scopes=["openid", "email", "offline_access"])
    return client


@pytest.fixture
def bob(aws):
    from chalicelib.storage.users import create_user

    return create_user("bob@example.com", PASSWORD)


def tokens_for(http, client, email="alice@example.com", browser=None):
    """Sign in (in a new browser unless given one) and redeem the code: (browser, token response)."""
    browser = browser or Browser(http)
    code = query_of(sign_in_and_consent(browser, client.client_id, email=email, scope="openid email offline_access"))
    response = redeem(http, client.client_id, code["code"])
    assert response.status_code == 200, response.body
    return browser, json.loads(response.body)


def refresh(http, client, token):
    return http.post("/token", headers=FORM, body=urlencode(
        {"grant_type": "refresh_token", "refresh_token": token, "client_id": client.client_id}).encode())


def silent(browser, client) -> dict:
    """prompt=none: what the client hears back (this loopback client is asked to consent every time,
    so a live session answers consent_required and a dead one login_required)."""
    query = authorize_query(client.client_id, prompt="none", scope="openid email offline_access")
    return query_of(browser.get("/authorize?" + query).headers["Location"])


def error_of(response) -> str:
    assert response.status_code == 400, response.body
    return json.loads(response.body)["error"]


def consent_page(browser, client):
    """A signed-in browser's consent page for a new request (asked every time for this client)."""
    page = browser.get("/authorize?" + authorize_query(client.client_id, scope="openid offline_access"))
    assert page.headers["Location"].startswith("/consent?")
    return browser.get(page.headers["Location"])


def allow(browser, page):
    return browser.post("/consent", {"request_id": hidden(page.body, "request_id"),
                                     "csrf_token": hidden(page.body, "csrf_token"), "decision": "allow"})


def signout_cli(who: str) -> int:
    from tools import admin

    return admin.main(["users", "signout", who], environ=dict(os.environ))


def test_re_enabling_a_user_does_not_revive_their_sessions_or_refresh_tokens(http, refreshing_client, alice):
    from chalicelib.storage.users import set_user_disabled

    browser, tokens = tokens_for(http, refreshing_client)
    assert silent(browser, refreshing_client)["error"] == "consent_required", "signed in"
    set_user_disabled(alice.pk, True)
    set_user_disabled(alice.pk, False)

    assert silent(browser, refreshing_client)["error"] == "login_required"
    assert error_of(refresh(http, refreshing_client, tokens["refresh_token"])) == "invalid_grant"
    # The user may sign in again and gets a working session.
    browser, tokens = tokens_for(http, refreshing_client, browser=browser)
    assert silent(browser, refreshing_client)["error"] == "consent_required"
    assert refresh(http, refreshing_client, tokens["refresh_token"]).status_code == 200


def test_users_signout_ends_every_session_and_refresh_token_of_that_user_only(http, refreshing_client, alice, bob,
                                                                            capsys):
    laptop, laptop_tokens = tokens_for(http, refreshing_client)
    phone, phone_tokens = tokens_for(http, refreshing_client)
    other, other_tokens = tokens_for(http, refreshing_client, email=bob.email)

    assert signout_cli(alice.email) == 0
    assert json.loads(capsys.readouterr().out) == {"sub": alice.pk, "email": alice.email, "signed_out": True}

    for browser, tokens in ((laptop, laptop_tokens), (phone, phone_tokens)):
        assert silent(browser, refreshing_client)["error"] == "login_required"
        assert error_of(refresh(http, refreshing_client, tokens["refresh_token"])) == "invalid_grant"
        userinfo = http.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
        assert userinfo.status_code == 401
    assert silent(other, refreshing_client)["error"] == "consent_required", "bob is still signed in"
    assert refresh(http, refreshing_client, other_tokens["refresh_token"]).status_code == 200


def test_sign_out_everywhere_finds_a_grant_made_an_instant_before_through_a_consistent_read(
        http, refreshing_client, alice, monkeypatch):
    """An eventually consistent index could miss a grant made just before, and refresh does not read
    the user: the sweep must query the grants table itself, strongly consistent, and revoke it."""
    from chalicelib.oauth.refresh_tokens import parse
    from chalicelib.storage.models import GrantModel
    from chalicelib.storage.users import end_all_sessions

    _, tokens = tokens_for(http, refreshing_client)
    sub, grant_id, _ = parse(tokens["refresh_token"])
    queries = []
    real_query = GrantModel.query.__func__

    def recording_query(cls, *args, **kwargs):
        queries.append(kwargs.get("consistent_read"))
        return real_query(cls, *args, **kwargs)

    monkeypatch.setattr(GrantModel, "query", classmethod(recording_query))
    assert end_all_sessions(alice.pk)
    assert queries == [True], "the sweep reads the table strongly consistently, not an index"
    assert GrantModel.get(sub, grant_id).status == "revoked"
    assert error_of(refresh(http, refreshing_client, tokens["refresh_token"])) == "invalid_grant"


def test_a_code_issued_while_the_user_is_signed_out_everywhere_is_refused(http, refreshing_client, alice,
                                                                        monkeypatch):
    """Race: /authorize loads a live session, then the admin signs the user out everywhere (whose
    sweep cannot see a grant that does not exist yet), then the code and grant are written."""
    from chalicelib.oauth import sessions
    from chalicelib.storage.users import end_all_sessions

    browser, _ = tokens_for(http, refreshing_client)
    page = consent_page(browser, refreshing_client)
    real_load = sessions.load

    def load_then_sign_out_everywhere(cookie_value, **kwargs):
        session = real_load(cookie_value, **kwargs)
        assert end_all_sessions(session.sub)
        return session

    from chalicelib.storage.models import GrantModel

    grants_before = GrantModel.count()
    monkeypatch.setattr(sessions, "load", load_then_sign_out_everywhere)
    params = query_of(allow(browser, page).headers["Location"])
    # The transaction that would write the grant checks the user's generation: nothing is issued.
    assert params["error"] == "login_required" and "code" not in params
    assert GrantModel.count() == grants_before


def test_a_sign_in_racing_sign_out_everywhere_yields_a_dead_session(http, public_client, alice, monkeypatch):
    """Race: the password is checked (the user read), then the user is signed out everywhere, then
    the session is written. It is born with the old generation: dead, and no code is issued through it."""
    from chalicelib.oauth import login
    from chalicelib.storage.users import end_all_sessions

    web_app = "https://app.example.com/cb"  # consent is remembered: the sign-in itself issues the code
    sign_in_and_consent(Browser(http), public_client.client_id, redirect_uri=web_app)
    real_authenticate = login.authenticate

    def authenticate_then_sign_out_everywhere(*args):
        user = real_authenticate(*args)
        assert end_all_sessions(user.pk)
        return user

    monkeypatch.setattr(login, "authenticate", authenticate_then_sign_out_everywhere)
    browser = Browser(http)
    location = sign_in_and_consent(browser, public_client.client_id, redirect_uri=web_app)
    assert location.startswith("/login?"), "sent back to sign in, not to the client with a code"
    again = browser.get("/authorize?" + authorize_query(public_client.client_id, prompt="none", redirect_uri=web_app))
    assert query_of(again.headers["Location"])["error"] == "login_required"


def test_no_code_is_issued_through_a_session_signed_out_meanwhile(http, refreshing_client, alice, monkeypatch):
    """Race: /authorize loads a live session, the user signs out in another tab (sign-out revokes
    the session's grants, but this one is not written yet), then the code would be issued. The
    transaction that writes the grant checks the session is still live, so nothing is issued."""
    from chalicelib.oauth import sessions
    from chalicelib.storage.models import GrantModel

    browser, _ = tokens_for(http, refreshing_client)
    page = consent_page(browser, refreshing_client)
    grants_before = GrantModel.count()
    real_load = sessions.load

    def load_then_sign_out(cookie_value, **kwargs):
        session = real_load(cookie_value, **kwargs)
        sessions.end(cookie_value)
        return session

    monkeypatch.setattr(sessions, "load", load_then_sign_out)
    response = allow(browser, page)
    assert response.status_code == 302
    params = query_of(response.headers["Location"])
    assert params["error"] == "login_required" and params["state"] == "xyz-state" and "code" not in params
    assert GrantModel.count() == grants_before


def test_sign_out_reaches_a_grant_the_session_index_has_not_seen_yet(http, refreshing_client, alice, monkeypatch):
    """No index is consulted (an eventually consistent one could miss a grant made a moment before
    sign-out), and refresh does not re-read the session. Sign-out reads the session's own list of
    grants back from the update that revokes it, so the family still ends."""
    from chalicelib.oauth.refresh_tokens import parse
    from chalicelib.storage.models import GrantModel

    browser, tokens = tokens_for(http, refreshing_client)
    sub, grant_id, _ = parse(tokens["refresh_token"])
    monkeypatch.setattr(GrantModel, "query", lambda *a, **kw: iter(()))  # any query would see nothing
    page = browser.get("/logout")
    assert browser.post("/logout", {"csrf_token": hidden(page.body, "csrf_token")}).status_code == 200
    assert GrantModel.get(sub, grant_id).status == "revoked"
    assert error_of(refresh(http, refreshing_client, tokens["refresh_token"])) == "invalid_grant"


def test_a_code_issued_while_another_is_written_through_the_same_session_is_retried_not_an_error(
        http, refreshing_client, alice, monkeypatch):
    """Signing in to two apps at once writes the session item twice; DynamoDB cancels one of the two
    transactions with TransactionConflict. That one is tried again, not answered with a 500."""
    from types import SimpleNamespace

    from chalicelib import aws

    conflicts = []

    def conflict_once(params, **_):
        # The transaction that issues the code (it writes the codes table); Allow remembers the
        # consent in a transaction of its own first.
        if conflicts or b'-codes"' not in params["body"]:
            return None  # send the request for real
        conflicts.append(1)
        parsed = {"Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
                  "CancellationReasons": [{"Code": "None"}, {"Code": "None"}, {"Code": "TransactionConflict"}],
                  "ResponseMetadata": {"HTTPStatusCode": 400}}
        return SimpleNamespace(status_code=400, headers={}), parsed

    browser, _ = tokens_for(http, refreshing_client)
    events = aws.client("dynamodb").meta.events
    events.register("before-call.dynamodb.TransactWriteItems", conflict_once)
    try:  # signed in already: straight to consent, whose Allow writes the grant, the code and the session
        location = sign_in_and_consent(browser, refreshing_client.client_id, scope="openid email offline_access")
    finally:
        events.unregister("before-call.dynamodb.TransactWriteItems", conflict_once)
    assert conflicts, "the conflict was injected"
    assert "code" in query_of(location), location
