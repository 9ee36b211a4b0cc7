"""Two-step verification on the account page (issue 13 §2, §3): TOTP enrolment (the first code must
verify; the enrolment code cannot sign in later), recovery codes (shown once, regenerate kills the
old ones, gone with the last factor), removal, the current password before every change, the
session's factor kinds, MFA_POLICY=off, and the enrolment a sign-in requires (/account/security)."""
from __future__ import annotations

import re
import time

import pytest

from tests.routes.account_flow import PASSWORD, mailbox_for, post_form, signed_in_browser
from tests.routes.flow import Browser, authorize_query, hidden


@pytest.fixture
def mailbox(aws, tmp_path, monkeypatch):
    return mailbox_for(tmp_path, monkeypatch)


@pytest.fixture
def browser(http, alice, mailbox):
    return signed_in_browser(http)


def secret_on(page) -> str:
    match = re.search(r'id="totp-secret">([A-Z2-7]+)<', page.body.decode())
    assert match, page.body[:500]
    return match.group(1)


def code(secret: str, at: float | None = None) -> str:
    import pyotp

    return pyotp.TOTP(secret).at(time.time() if at is None else at)


def wrong_code(secret: str) -> str:
    """A code that no time step near now has: never accepted, whenever the test runs."""
    near = {code(secret, time.time() + shift) for shift in range(-90, 91, 30)}
    return next(c for c in (f"{n:06d}" for n in range(1000000)) if c not in near)


def codes_on(page) -> list[str]:
    return re.findall(r"<li>([0-9A-Z]{5}-[0-9A-Z]{5})</li>", page.body.decode())


def start(browser, password=PASSWORD):
    return post_form(browser, "/account/totp/start", {"current_password": password})


def enrol(browser) -> tuple[str, list[str], object]:
    """Start and finish a TOTP enrolment; (secret, recovery codes shown, the page that showed them)."""
    assert start(browser).headers["Location"] == "/account/totp"
    page = browser.get("/account/totp")
    secret = secret_on(page)
    done = browser.post("/account/totp", {"csrf_token": hidden(page.body, "csrf_token"), "code": code(secret)})
    assert done.status_code == 200, done.body
    return secret, codes_on(done), done


def factor(sub, factor_id):
    from chalicelib.storage import factors

    return factors.get(sub, factor_id)


def user_factors(sub):
    from chalicelib.storage.users import get_user

    return set(get_user(sub).factors or ())


def session_of(browser):
    from chalicelib.hashing import sha256_hex
    from chalicelib.storage import sessions

    (value,) = [v for k, v in browser.cookies.items() if k.endswith("idp_session")]
    return sessions.get(sha256_hex(value))


# Enrolment ---------------------------------------------------------------------------------------

def test_the_enrolment_page_shows_the_qr_code_the_key_and_the_otpauth_uri(browser, alice):
    start(browser)
    page = browser.get("/account/totp")
    body = page.body.decode()
    assert page.status_code == 200
    assert '<svg' in body and "<title>" in body and "<script" not in body
    secret = secret_on(page)
    assert f"otpauth://totp/localhost%3A8000:alice%40example.com?secret={secret}" in body.replace("&amp;", "&")
    assert 'autocomplete="one-time-code"' in body and 'inputmode="numeric"' in body
    assert "script-src" not in page.headers["Content-Security-Policy"]


def test_the_secret_is_kept_sealed_never_in_the_clear(browser, alice):
    start(browser)
    secret = secret_on(browser.get("/account/totp"))
    stored = factor(alice.pk, "totp")
    assert stored.pending and stored.sealed_secret.startswith("kms1.") and secret not in stored.sealed_secret


def test_the_first_code_activates_totp_and_makes_ten_recovery_codes_shown_once(browser, alice, mailbox):
    secret, codes, page = enrol(browser)
    assert len(codes) == 10 and b"only time they are shown" in page.body
    assert user_factors(alice.pk) == {"totp", "recovery"}
    assert not factor(alice.pk, "totp").pending
    assert len(factor(alice.pk, "recovery").code_hashes) == 10
    assert session_of(browser).factors == ("recovery", "totp")
    account = browser.get("/account").body.decode()
    assert "10 unused recovery codes left." in account
    assert not any(c in account for c in codes)
    assert "authenticator app was set up" in mailbox.text(mailbox.messages("alice@example.com")[-1])


def test_a_wrong_first_code_leaves_the_enrolment_pending(browser, alice):
    start(browser)
    page = browser.get("/account/totp")
    secret = secret_on(page)
    response = browser.post("/account/totp", {"csrf_token": hidden(page.body, "csrf_token"),
                                              "code": wrong_code(secret)})
    assert response.status_code == 400 and b"That code is not right" in response.body
    assert secret_on(response) == secret
    assert factor(alice.pk, "totp").pending and user_factors(alice.pk) == set()


@pytest.mark.parametrize("typed", ["", "12345", "abcdef", "1234567"])
def test_malformed_first_codes_change_nothing(browser, alice, typed):
    start(browser)
    page = browser.get("/account/totp")
    response = browser.post("/account/totp", {"csrf_token": hidden(page.body, "csrf_token"), "code": typed})
    assert response.status_code == 400
    assert factor(alice.pk, "totp").pending


def test_the_enrolment_code_cannot_be_used_again_at_sign_in(browser, alice):
    from chalicelib.accounts import totp
    from chalicelib.storage import factors
    from chalicelib.storage.transactions import Refused, write

    secret, _, _ = enrol(browser)
    used = totp.matching_step(secret, code(secret), time.time())
    assert factor(alice.pk, "totp").last_step == used
    # The sign-in's single use of that same step (what the /mfa page writes) is refused.
    with pytest.raises(Refused):
        write([factors.totp_step(alice.pk, used)])
    write([factors.totp_step(alice.pk, used + 1)])  # the next step works once


def test_an_enrolment_needs_the_current_password(browser, alice):
    response = start(browser, password="not the password")
    assert response.status_code == 401 and b"not your current password" in response.body
    assert factor(alice.pk, "totp") is None


def test_a_second_app_cannot_replace_an_active_one_without_removing_it(browser, alice):
    enrol(browser)
    response = start(browser)
    assert response.status_code == 409
    assert not factor(alice.pk, "totp").pending


def test_the_enrolment_page_without_an_enrolment_leads_back_to_the_account(browser):
    assert browser.get("/account/totp").headers["Location"] == "/account"


def test_an_expired_enrolment_cannot_be_finished(browser, alice, monkeypatch):
    from chalicelib.accounts import totp

    start(browser)
    page = browser.get("/account/totp")
    secret = secret_on(page)
    monkeypatch.setattr(totp, "ENROLMENT_TTL", 0)
    response = browser.post("/account/totp", {"csrf_token": hidden(page.body, "csrf_token"), "code": code(secret)})
    assert response.status_code == 409 and user_factors(alice.pk) == set()


def test_enrolment_posts_from_another_site_are_refused(browser, alice):
    start(browser)
    page = browser.get("/account/totp")
    response = browser.post("/account/totp", {"csrf_token": hidden(page.body, "csrf_token"),
                                              "code": code(secret_on(page))},
                            extra={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403 and factor(alice.pk, "totp").pending


# Recovery codes ----------------------------------------------------------------------------------

def test_new_recovery_codes_replace_every_old_one(browser, alice):
    from chalicelib.accounts.recovery_codes import code_hash

    _, old, _ = enrol(browser)
    page = post_form(browser, "/account/recovery-codes", {"current_password": PASSWORD})
    new = codes_on(page)
    assert page.status_code == 200 and len(new) == 10 and not set(new) & set(old)
    stored = factor(alice.pk, "recovery").code_hashes
    assert stored == {code_hash(c) for c in new}
    assert not stored & {code_hash(c) for c in old}


def test_recovery_codes_need_the_current_password(browser, alice):
    _, old, _ = enrol(browser)
    before = factor(alice.pk, "recovery").code_hashes
    response = post_form(browser, "/account/recovery-codes", {"current_password": "wrong"})
    assert response.status_code == 401 and not codes_on(response)
    assert factor(alice.pk, "recovery").code_hashes == before


def test_recovery_codes_are_refused_without_another_factor(browser, alice):
    response = post_form(browser, "/account/recovery-codes", {"current_password": PASSWORD})
    assert response.status_code == 409 and not codes_on(response)
    assert factor(alice.pk, "recovery") is None


def test_using_a_recovery_code_works_once(browser, alice):
    from chalicelib.accounts.recovery_codes import code_hash
    from chalicelib.storage import factors
    from chalicelib.storage.transactions import Refused, write

    _, codes, _ = enrol(browser)
    write([factors.recovery_use(alice.pk, code_hash(codes[0].lower()))])
    with pytest.raises(Refused):
        write([factors.recovery_use(alice.pk, code_hash(codes[0]))])
    assert "9 unused recovery codes left." in browser.get("/account").body.decode()


def test_the_recovery_code_used_email_says_how_many_are_left(alice, mailbox):
    from chalicelib.accounts import recovery_codes

    recovery_codes.announce_use(alice, 3)
    message = mailbox.messages("alice@example.com")[-1]
    assert message["Subject"] == "A recovery code was used to sign in"
    assert "You have 3 recovery codes left." in mailbox.text(message)


# Removal -----------------------------------------------------------------------------------------

def test_removing_the_app_removes_the_recovery_codes_when_no_other_factor_remains(browser, alice, mailbox):
    enrol(browser)
    response = post_form(browser, "/account/totp/remove", {"current_password": PASSWORD})
    assert response.headers["Location"] == "/account?done=totp_removed"
    assert factor(alice.pk, "totp") is None and factor(alice.pk, "recovery") is None
    assert user_factors(alice.pk) == set()
    assert session_of(browser).factors == ()
    assert "authenticator app was removed" in mailbox.text(mailbox.messages("alice@example.com")[-1])


def test_removing_the_app_keeps_the_recovery_codes_next_to_a_passkey(browser, alice):
    from chalicelib.storage.models import FactorModel, UserModel

    enrol(browser)
    FactorModel(sub=alice.pk, factor_id="passkey#abc", kind="passkey", created_at=1).save()
    UserModel(pk=alice.pk).update(actions=[UserModel.factors.add({"passkey#abc"})])
    post_form(browser, "/account/totp/remove", {"current_password": PASSWORD})
    assert factor(alice.pk, "totp") is None and factor(alice.pk, "recovery") is not None
    assert user_factors(alice.pk) == {"passkey#abc", "recovery"}
    assert session_of(browser).factors == ("passkey", "recovery")


def test_removing_needs_the_current_password(browser, alice):
    enrol(browser)
    response = post_form(browser, "/account/totp/remove", {"current_password": "wrong"})
    assert response.status_code == 401
    assert user_factors(alice.pk) == {"totp", "recovery"}


def test_the_last_factor_stays_when_mfa_is_required(browser, alice, monkeypatch):
    from tests.conftest import reset_process_state

    enrol(browser)
    monkeypatch.setenv("MFA_POLICY", "required")
    reset_process_state(endpoint_changed=False)
    response = post_form(browser, "/account/totp/remove", {"current_password": PASSWORD})
    assert response.status_code == 409
    assert user_factors(alice.pk) == {"totp", "recovery"}


# Policy off --------------------------------------------------------------------------------------

def test_mfa_policy_off_hides_the_section_and_its_routes(browser, alice, monkeypatch):
    from tests.conftest import reset_process_state

    assert "Two-step verification" in browser.get("/account").body.decode()
    monkeypatch.setenv("MFA_POLICY", "off")
    reset_process_state(endpoint_changed=False)
    assert "Two-step verification" not in browser.get("/account").body.decode()
    assert start(browser).headers["Location"] == "/account"
    assert factor(alice.pk, "totp") is None
    assert browser.get("/account/totp").headers["Location"] == "/account"


# Enrolment a sign-in requires ---------------------------------------------------------------------

@pytest.fixture
def pending_request(browser, aws):
    """A pending authorization request of `browser` (its /login page was shown), as /authorize
    leaves one when MFA_POLICY=required sends the user to /account/security."""
    from chalicelib.oauth.clients import create_client

    client, _ = create_client(client_name="Notes", client_type="public", redirect_uris=["http://127.0.0.1:5000/cb"],
                              grant_types=["authorization_code"], scopes=["openid", "email"])
    response = Browser(browser.http, cookies={}).get("/authorize?" + authorize_query(client.client_id))
    return re.search(r"request_id=([^&]+)", response.headers["Location"]).group(1)


def test_required_enrolment_steps_the_session_up_and_continues_the_request(browser, alice, pending_request):
    page = browser.get(f"/account/security?request_id={pending_request}")
    assert page.status_code == 200 and b'name="current_password"' in page.body
    started = browser.post("/account/security", {"csrf_token": hidden(page.body, "csrf_token"), "step": "start",
                                                 "request_id": pending_request, "current_password": PASSWORD})
    assert started.headers["Location"] == f"/account/security?request_id={pending_request}"
    page = browser.get(started.headers["Location"])
    secret = secret_on(page)
    before = session_of(browser)
    assert before.amr == ("pwd",)
    done = browser.post("/account/security", {"csrf_token": hidden(page.body, "csrf_token"), "step": "confirm",
                                              "request_id": pending_request, "code": code(secret)})
    assert done.status_code == 200 and len(codes_on(done)) == 10
    assert "/account/security/continue" in done.body.decode()
    after = session_of(browser)
    assert after.amr == ("pwd", "otp", "mfa") and after.factors == ("recovery", "totp")
    assert after.auth_time >= before.auth_time
    resumed = browser.post("/account/security/continue", {"csrf_token": hidden(done.body, "csrf_token"),
                                                          "request_id": pending_request})
    assert resumed.status_code == 302
    assert resumed.headers["Location"].startswith(("/consent", "http://127.0.0.1:5000/cb")), resumed.headers


def test_required_enrolment_without_a_session_goes_to_the_sign_in_of_the_request(http, pending_request):
    response = Browser(http).get(f"/account/security?request_id={pending_request}")
    assert response.headers["Location"] == f"/login?request_id={pending_request}"


def test_required_enrolment_of_an_unknown_request_is_the_expired_page(browser):
    assert browser.get("/account/security?request_id=nope").status_code == 400


def test_a_wrong_code_during_required_enrolment_does_not_step_up(browser, alice, pending_request):
    page = browser.get(f"/account/security?request_id={pending_request}")
    browser.post("/account/security", {"csrf_token": hidden(page.body, "csrf_token"), "step": "start",
                                       "request_id": pending_request, "current_password": PASSWORD})
    page = browser.get(f"/account/security?request_id={pending_request}")
    secret = secret_on(page)
    response = browser.post("/account/security", {"csrf_token": hidden(page.body, "csrf_token"), "step": "confirm",
                                                  "request_id": pending_request, "code": wrong_code(secret)})
    assert response.status_code == 400
    assert session_of(browser).amr == ("pwd",) and user_factors(alice.pk) == set()


def test_an_enrolment_whose_seal_does_not_open_starts_over_instead_of_failing(browser, alice):
    from chalicelib.storage.models import FactorModel

    start(browser)
    # A seal made for another user, copied onto this enrolment, does not open for this one.
    from chalicelib import secret_box

    FactorModel(sub=alice.pk, factor_id="totp").update(actions=[FactorModel.sealed_secret.set(
        secret_box.seal("JBSWY3DPEHPK3PXP", purpose="totp", subject="u_someone_else"))])
    assert browser.get("/account/totp").headers["Location"] == "/account"
    page = browser.get("/account")
    response = browser.post("/account/totp", {"csrf_token": hidden(page.body, "csrf_token"), "code": "123456"})
    assert response.status_code == 409 and user_factors(alice.pk) == set()
