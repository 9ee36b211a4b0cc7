"""The second step of a sign-in (/mfa): a password alone makes no session for a user with a second
factor; a TOTP code (RFC 6238) or a recovery code completes it, once; wrong codes are throttled."""
from __future__ import annotations

import time

import pyotp
import pytest

from tests.routes.account_flow import PASSWORD, mailbox_for
from tests.routes.flow import Browser, authorize_query, hidden, query_of, redeem

SECRET = pyotp.random_base32()
RECOVERY_CODES = ["ABCDE-FGHJK", "MNPQR-STVWX"]


def enrol_totp(sub: str, secret: str = SECRET) -> None:
    from chalicelib import secret_box
    from chalicelib.storage import factors

    assert factors.start_totp(sub, secret_box.seal(secret, purpose="totp", subject=sub))
    # Enrolled long ago: its last accepted step is far behind today's codes.
    assert factors.activate_totp(sub, 1)


def give_recovery_codes(sub: str, codes=RECOVERY_CODES) -> None:
    from chalicelib.accounts import recovery_codes
    from chalicelib.storage import factors

    assert factors.set_recovery_codes(sub, [recovery_codes.code_hash(c) for c in codes])


def code_now(secret: str = SECRET, offset: int = 0) -> str:
    return pyotp.TOTP(secret).at(time.time() + offset)


@pytest.fixture
def mailbox(aws, tmp_path, monkeypatch):
    return mailbox_for(tmp_path, monkeypatch)


@pytest.fixture
def steady_windows(monkeypatch):
    """Throttle windows of ~30 years: counts made across a test's requests never meet a window's end
    (a 900 s window would roll over mid-test every quarter hour; the codes need the real clock, so
    it cannot be frozen as tests/routes/test_login_throttle.py does)."""
    from tests.conftest import reset_process_state

    monkeypatch.setenv("LOGIN_THROTTLE_WINDOW", "1000000000")
    reset_process_state(endpoint_changed=False)


@pytest.fixture
def two_step_alice(alice):
    enrol_totp(alice.pk)
    give_recovery_codes(alice.pk)
    return alice


def password_step(browser: Browser, client_id: str, *, password=PASSWORD, **overrides):
    """/authorize -> /login with the password; returns the response to the password POST."""
    response = browser.get("/authorize?" + authorize_query(client_id, **overrides))
    assert response.status_code == 302 and response.headers["Location"].startswith("/login"), response.body
    page = browser.get(response.headers["Location"])
    return browser.post("/login", {"request_id": hidden(page.body, "request_id"),
                                   "csrf_token": hidden(page.body, "csrf_token"),
                                   "username": "alice@example.com", "password": password})


def second_step(browser: Browser, method: str, code: str):
    page = browser.get("/mfa")
    assert page.status_code == 200, page.body
    return browser.post("/mfa", {"csrf_token": hidden(page.body, "csrf_token"), "method": method, "code": code,
                                 "request_id": hidden(page.body, "request_id")})


def consent(browser: Browser, location: str) -> str:
    page = browser.get(location)
    response = browser.post("/consent", {"request_id": hidden(page.body, "request_id"),
                                         "csrf_token": hidden(page.body, "csrf_token"), "decision": "allow"})
    assert response.status_code == 302, response.body
    return response.headers["Location"]


def sessions_of(sub: str) -> list:
    from chalicelib.storage.models import SessionModel

    return [s for s in SessionModel.scan() if getattr(s, "sub", None) == sub
            and not s.session_hash.startswith(("device#", "challenge#", "mfa#"))]


def test_a_right_password_alone_makes_no_session_for_a_user_with_a_second_factor(http, two_step_alice,
                                                                                  public_client):
    browser = Browser(http)
    response = password_step(browser, public_client.client_id)
    assert response.status_code == 302 and response.headers["Location"] == "/mfa"
    assert "idp_mfa" in browser.cookies and "idp_session" not in response.headers.get("Set-Cookie", "")
    assert sessions_of(two_step_alice.pk) == []
    # Nothing behind a session is reachable: the account page asks to sign in.
    assert browser.get("/account").headers["Location"].startswith("/account/login")
    page = browser.get("/mfa")
    assert b"Code from your authenticator app" in page.body and b"Use a recovery code" in page.body


def test_a_totp_code_completes_the_sign_in_and_the_request(http, two_step_alice, public_client):
    browser = Browser(http)
    password_step(browser, public_client.client_id)
    response = second_step(browser, "totp", code_now())
    assert response.status_code == 302 and response.headers["Location"].startswith("/consent"), response.body
    assert "idp_mfa" not in browser.cookies, "the step's cookie is cleared"
    [session] = sessions_of(two_step_alice.pk)
    assert list(session.amr) == ["pwd", "otp", "mfa"]
    location = consent(browser, response.headers["Location"])
    code = query_of(location)["code"]
    assert redeem(http, public_client.client_id, code).status_code == 200


def test_a_totp_code_is_accepted_once(http, two_step_alice, public_client):
    code = code_now()
    first = Browser(http)
    password_step(first, public_client.client_id)
    assert second_step(first, "totp", code).status_code == 302
    # The same code in another sign-in (a phisher relaying it a moment later) is refused.
    second = Browser(http)
    password_step(second, public_client.client_id)
    response = second_step(second, "totp", code)
    assert response.status_code == 401 and b"already used" in response.body
    assert len(sessions_of(two_step_alice.pk)) == 1


def test_an_older_code_is_refused_after_a_newer_one(http, two_step_alice, public_client):
    browser = Browser(http)
    password_step(browser, public_client.client_id)
    assert second_step(browser, "totp", code_now()).status_code == 302
    other = Browser(http)
    password_step(other, public_client.client_id)
    previous = code_now(offset=-30)
    if previous != code_now():
        assert second_step(other, "totp", previous).status_code == 401


def test_wrong_codes_are_throttled_and_then_even_a_right_one_waits(steady_windows, http, two_step_alice,
                                                                  public_client):
    from chalicelib.config import settings

    browser = Browser(http)
    password_step(browser, public_client.client_id)
    right = code_now()
    wrong = f"{(int(right) + 500000) % 1000000:06d}"
    for _ in range(settings().mfa_max_failures):
        assert second_step(browser, "totp", wrong).status_code == 401
    response = second_step(browser, "totp", right)
    assert response.status_code == 429 and int(response.headers["Retry-After"]) > 0
    assert sessions_of(two_step_alice.pk) == []
    # A new sign-in does not reset the count: it is the user's, not the step's.
    again = Browser(http)
    password_step(again, public_client.client_id)
    assert second_step(again, "totp", right).status_code == 429


def test_a_right_code_takes_its_count_back(steady_windows, http, two_step_alice, public_client):
    from chalicelib.config import settings

    for _ in range(settings().mfa_max_failures - 1):
        browser = Browser(http)
        password_step(browser, public_client.client_id)
        assert second_step(browser, "recovery", "ZZZZZ-ZZZZZ").status_code == 401
    browser = Browser(http)
    password_step(browser, public_client.client_id)
    assert second_step(browser, "totp", code_now()).status_code == 302
    # One failure left before the limit was reached, and the success did not use it up.
    browser = Browser(http)
    password_step(browser, public_client.client_id)
    assert second_step(browser, "recovery", "ZZZZZ-ZZZZZ").status_code == 401


def test_a_recovery_code_works_once_and_its_owner_is_told(http, two_step_alice, public_client, mailbox):
    browser = Browser(http)
    password_step(browser, public_client.client_id)
    response = second_step(browser, "recovery", RECOVERY_CODES[0].lower().replace("-", " "))
    assert response.status_code == 302 and response.headers["Location"].startswith("/consent")
    [session] = sessions_of(two_step_alice.pk)
    assert "mfa" in session.amr
    assert len(mailbox.messages("alice@example.com")) == 1
    again = Browser(http)
    password_step(again, public_client.client_id)
    assert second_step(again, "recovery", RECOVERY_CODES[0]).status_code == 401
    assert second_step(again, "recovery", RECOVERY_CODES[1]).status_code == 302


def test_a_step_cookie_is_worth_nothing_for_another_user_or_tampered(http, two_step_alice, public_client):
    from chalicelib.storage.users import create_user

    bob = create_user("bob@example.com", "another fine password")
    browser = Browser(http)
    password_step(browser, public_client.client_id)
    value = browser.cookies["idp_mfa"]
    _, secret = value.split(".", 1)
    for forged in (f"{bob.pk}.{secret}", value[:-2] + "xx", "u_x.y"):
        browser.cookies["idp_mfa"] = forged
        assert browser.get("/mfa").status_code == 400
        assert browser.post("/mfa", {"method": "totp", "code": code_now(), "csrf_token": "x"}).status_code == 400
    assert sessions_of(two_step_alice.pk) == [] and sessions_of(bob.pk) == []


def test_signing_out_everywhere_between_the_steps_voids_the_step(http, two_step_alice, public_client):
    from chalicelib.storage.users import end_all_sessions

    browser = Browser(http)
    password_step(browser, public_client.client_id)
    page = browser.get("/mfa")
    end_all_sessions(two_step_alice.pk)
    response = browser.post("/mfa", {"csrf_token": hidden(page.body, "csrf_token"), "method": "totp",
                                     "code": code_now()})
    assert response.status_code == 400 and sessions_of(two_step_alice.pk) == []


def test_a_wrong_password_never_reaches_the_second_step(http, two_step_alice, public_client):
    browser = Browser(http)
    response = password_step(browser, public_client.client_id, password="not the password")
    assert response.status_code == 401 and "idp_mfa" not in browser.cookies


def test_a_password_reset_does_not_remove_or_bypass_the_second_factor(http, two_step_alice, public_client,
                                                                     mailbox):
    from chalicelib.accounts import recovery
    from chalicelib.storage import links
    from chalicelib.storage.users import get_user

    token = links.issue("reset_password", email="alice@example.com", at=int(time.time()), ttl=600,
                        sub=two_step_alice.pk)
    assert recovery.reset_password(token, "a brand new passphrase")
    assert get_user(two_step_alice.pk).factors == {"totp", "recovery"}
    browser = Browser(http)
    response = password_step(browser, public_client.client_id, password="a brand new passphrase")
    assert response.headers["Location"] == "/mfa" and sessions_of(two_step_alice.pk) == []


def test_the_account_page_sign_in_asks_for_the_second_factor_too(http, two_step_alice):
    browser = Browser(http)
    page = browser.get("/account/login")
    response = browser.post("/account/login", {"csrf_token": hidden(page.body, "csrf_token"),
                                               "username": "alice@example.com", "password": PASSWORD})
    assert response.status_code == 302 and response.headers["Location"] == "/mfa"
    response = second_step(browser, "totp", code_now())
    assert response.status_code == 302 and response.headers["Location"] == "/account"
    assert browser.get("/account").status_code == 200


def test_with_mfa_policy_off_the_password_is_enough(http, two_step_alice, public_client, monkeypatch):
    from tests.conftest import reset_process_state

    monkeypatch.setenv("MFA_POLICY", "off")
    reset_process_state(endpoint_changed=False)
    browser = Browser(http)
    response = password_step(browser, public_client.client_id)
    assert response.status_code == 302 and response.headers["Location"].startswith("/consent")


def test_the_operator_resets_the_factors_and_ends_the_sessions(http, two_step_alice, public_client, capsys):
    import json
    import os

    from chalicelib.oauth import sessions
    from chalicelib.storage.factors import of_user
    from chalicelib.storage.users import get_user
    from tools import admin

    browser = Browser(http)
    password_step(browser, public_client.client_id)
    assert second_step(browser, "totp", code_now()).status_code == 302
    assert admin.main(["users", "mfa", "reset", "alice@example.com"], environ=dict(os.environ)) == 0
    assert json.loads(capsys.readouterr().out)["factors_removed"] == 2
    assert of_user(two_step_alice.pk) == [] and not get_user(two_step_alice.pk).factors
    assert sessions.load(browser.cookies["idp_session"]) is None
    # The password alone signs in again, and the user can enrol anew.
    again = Browser(http)
    assert password_step(again, public_client.client_id).headers["Location"].startswith("/consent")
    assert admin.main(["users", "mfa", "reset", "nobody@example.com"], environ=dict(os.environ)) != 0


def test_a_totp_secret_that_no_longer_opens_refuses_codes_but_leaves_recovery_codes(http, two_step_alice,
                                                                                    public_client):
    from chalicelib import secret_box
    from chalicelib.storage.models import FactorModel

    # Sealed for another user: KMS refuses to open it under alice's context (as when the key is gone).
    item = FactorModel.get(two_step_alice.pk, "totp")
    item.update(actions=[FactorModel.sealed_secret.set(secret_box.seal(SECRET, purpose="totp", subject="u_other"))])
    browser = Browser(http)
    password_step(browser, public_client.client_id)
    assert second_step(browser, "totp", code_now()).status_code == 401
    assert second_step(browser, "recovery", RECOVERY_CODES[1]).status_code == 302


def test_acr_values_step_a_signed_in_session_up_with_a_totp_code_on_the_mfa_page(http, alice, public_client):
    import base64
    import json

    from chalicelib.hashing import sha256_hex
    from chalicelib.oauth.acr import MFA_ACR, PHR_ACR
    from chalicelib.storage import sessions
    from tests.routes.flow import sign_in_and_consent

    browser = Browser(http)
    sign_in_and_consent(browser, public_client.client_id)  # a password session; consent remembered
    enrol_totp(alice.pk)
    give_recovery_codes(alice.pk)
    assert sessions.set_factors(sha256_hex(browser.cookies["idp_session"]), ["recovery", "totp"])

    # phr cannot be reached with these factors: voluntary, so no detour (the acr says what was met).
    # (This loopback public client is asked for consent every time, RFC 8252 §8.6.)
    response = browser.get("/authorize?" + authorize_query(public_client.client_id, acr_values=PHR_ACR))
    assert response.headers["Location"].startswith("/consent?")

    response = browser.get("/authorize?" + authorize_query(public_client.client_id, acr_values=MFA_ACR))
    location = response.headers["Location"]
    assert location.startswith("/mfa?request_id="), location
    page = browser.get(location)
    assert b"The app asks for more proof" in page.body and b"Code from your authenticator app" in page.body
    form = {"csrf_token": hidden(page.body, "csrf_token"), "request_id": hidden(page.body, "request_id")}
    assert browser.post("/mfa", {**form, "method": "totp", "code": "000000" if code_now() != "000000"
                                 else "111111"}).status_code == 401
    response = browser.post("/mfa", {**form, "method": "totp", "code": code_now()})
    assert response.status_code == 302 and response.headers["Location"].startswith("/consent?")
    location = consent(browser, response.headers["Location"])
    tokens = json.loads(redeem(http, public_client.client_id, query_of(location)["code"]).body)
    body = tokens["id_token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    assert claims["acr"] == MFA_ACR and claims["amr"] == ["pwd", "otp", "mfa"]
    # The stepped-up session now meets mfa without asking again.
    again = browser.get("/authorize?" + authorize_query(public_client.client_id, acr_values=MFA_ACR))
    assert again.headers["Location"].startswith("/consent?")


def test_someone_with_the_password_cannot_lock_the_owner_out_of_a_known_device(steady_windows, http,
                                                                                two_step_alice,
                                                                                public_client, monkeypatch):
    """Whoever knows the password can use up the user's wrong codes every window; a browser the owner
    signed in from before still may try, held by its own counter (LOGIN_MAX_FAILURES_PER_DEVICE)."""
    from chalicelib.config import settings
    from tests.conftest import reset_process_state

    monkeypatch.setenv("LOGIN_MAX_FAILURES_PER_DEVICE", "2")
    reset_process_state(endpoint_changed=False)
    owner = Browser(http)
    password_step(owner, public_client.client_id)
    assert second_step(owner, "totp", code_now()).status_code == 302  # the owner's browser is now known
    attacker = Browser(http)
    password_step(attacker, public_client.client_id)
    for _ in range(settings().mfa_max_failures):
        assert second_step(attacker, "recovery", "ZZZZZ-ZZZZZ").status_code == 401
    assert second_step(attacker, "recovery", RECOVERY_CODES[0]).status_code == 429

    password_step(owner, public_client.client_id, prompt="login")  # signed in already: again
    assert second_step(owner, "recovery", "ZZZZZ-ZZZZZ").status_code == 401  # counted on the device
    response = second_step(owner, "recovery", RECOVERY_CODES[0])
    assert response.status_code == 302 and response.headers["Location"].startswith("/consent")
    # The attacker is still refused, and a known device's own limit holds it too.
    assert second_step(attacker, "recovery", RECOVERY_CODES[1]).status_code == 429
    password_step(owner, public_client.client_id, prompt="login")
    for _ in range(2):
        assert second_step(owner, "recovery", "ZZZZZ-ZZZZZ").status_code == 401
    assert second_step(owner, "recovery", RECOVERY_CODES[1]).status_code == 429


def test_deleting_the_account_removes_its_factors(http, two_step_alice, mailbox):
    from chalicelib.storage.factors import of_user
    from tests.routes.account_flow import post_form

    browser = Browser(http)
    page = browser.get("/account/login")
    browser.post("/account/login", {"csrf_token": hidden(page.body, "csrf_token"), "username": "alice@example.com",
                                    "password": PASSWORD})
    assert second_step(browser, "totp", code_now()).headers["Location"] == "/account"
    assert len(of_user(two_step_alice.pk)) == 2
    response = post_form(browser, "/account/delete", {"current_password": PASSWORD})
    assert response.status_code == 200 and of_user(two_step_alice.pk) == []


def test_a_factor_added_in_another_session_is_asked_for_not_enrolled_again_or_refused(http, alice, public_client):
    """Sessions signed in before the user set up TOTP elsewhere: a client requiring MFA, or an
    essential acr, sends them to /mfa for that factor rather than to enrolment or an unmet error."""
    import json
    from urllib.parse import quote

    from chalicelib.oauth.acr import MFA_ACR
    from chalicelib.oauth.clients import create_client
    from tests.routes.flow import sign_in_and_consent

    strict, _ = create_client(client_name="Strict", client_type="public", redirect_uris=["http://127.0.0.1/cb"],
                              scopes=["openid", "email"], require_mfa=True)
    first, second = Browser(http), Browser(http)
    for browser in (first, second):
        sign_in_and_consent(browser, public_client.client_id)  # password sessions, knowing of no factor
    enrol_totp(alice.pk)  # in a third browser

    essential = json.dumps({"id_token": {"acr": {"essential": True, "values": [MFA_ACR]}}})
    response = first.get("/authorize?" + authorize_query(public_client.client_id) + "&claims=" + quote(essential))
    assert response.headers["Location"].startswith("/mfa?request_id="), response.headers["Location"]

    location = second.get("/authorize?" + authorize_query(strict.client_id)).headers["Location"]
    assert location.startswith("/mfa?request_id="), location
    page = second.get(location)
    response = second.post("/mfa", {"csrf_token": hidden(page.body, "csrf_token"), "method": "totp",
                                    "code": code_now(), "request_id": hidden(page.body, "request_id")})
    assert response.status_code == 302 and response.headers["Location"].startswith("/consent?")
