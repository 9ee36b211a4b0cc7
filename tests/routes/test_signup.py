"""Self-service sign-up and email verification (issue 12 §1, §2, §6-§9): /signup, /check-email,
/verify-email and its resend and continue, and REQUIRE_VERIFIED_EMAIL."""
from __future__ import annotations

import email
import json
import re
from email import policy

import pytest

from tests.routes.flow import sign_in_and_consent, Browser, authorize_query, hidden, query_of, redeem

PASSWORD = "plover xylophone meadow"
OTHER_PASSWORD = "quartz lantern orchard"


@pytest.fixture
def outbox(aws, tmp_path, monkeypatch):
    """SES (moto) with the sender verified, every message copied to a directory: returns a function
    listing the messages sent so far as (to, subject, plain text)."""
    from chalicelib import mail
    from chalicelib.aws import client
    from chalicelib.config import settings

    monkeypatch.setenv("OUTBOX_DIR", str(tmp_path))
    settings.cache_clear()
    client("sesv2").create_email_identity(EmailIdentity=settings().email_from)

    def messages():
        parsed = [email.message_from_bytes(p.read_bytes(), policy=policy.default) for p in mail.outbox(tmp_path)]
        return [(m["To"], m["Subject"], m.get_body(("plain",)).get_content()) for m in parsed]

    return messages


def configure(monkeypatch, **env):
    from chalicelib.config import settings

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings.cache_clear()
    # Read now: during a request chalice.test.Client lays the local stage's variables
    # (.chalice/config.json, SIGNUP_MODE=open) over the environment.
    settings()


@pytest.fixture
def open_signup(monkeypatch, outbox):
    configure(monkeypatch, SIGNUP_MODE="open", REQUIRE_VERIFIED_EMAIL="true")
    return outbox


def signup_page(browser, client_id, **overrides):
    location = browser.get("/authorize?" + authorize_query(client_id, **overrides)).headers["Location"]
    assert location.startswith("/login?request_id=")
    login = browser.get(location)
    return login, query_of(location)["request_id"]


def sign_up(browser, client_id, address, password=PASSWORD, name="Alice", request_id=None, **overrides):
    if request_id is None:
        _, request_id = signup_page(browser, client_id, **overrides)
    page = browser.get(f"/signup?request_id={request_id}")
    assert page.status_code == 200, page.body
    return browser.post("/signup", {"request_id": request_id, "csrf_token": hidden(page.body, "csrf_token"),
                                    "email": address, "password": password, "name": name})


def token_of(message) -> str:
    return re.search(r"/verify-email\?token=([0-9A-Z]+)", message[2]).group(1)


def code_of(message) -> str:
    return re.search(r"enter this code on the page that asked for it: ([0-9A-Z-]+)", message[2]).group(1)


def user(address):
    from chalicelib.storage.users import find_user_by_email

    return find_user_by_email(address)


def confirm(browser, token, password=None):
    """Open the link and press Confirm (with `password` typed, when the page asks for it)."""
    page = browser.get(f"/verify-email?token={token}")
    assert page.status_code == 200, page.body
    form = {"token": hidden(page.body, "token"), "csrf_token": hidden(page.body, "csrf_token")}
    if password is not None:
        form["password"] = password
    return browser.post("/verify-email", form)


def consent(browser, location):
    page = browser.get(location)
    assert page.status_code == 200, page.body
    return browser.post("/consent", {"request_id": hidden(page.body, "request_id"),
                                     "csrf_token": hidden(page.body, "csrf_token"), "decision": "allow"})


# SIGNUP_MODE and the sign-in page's link -------------------------------------------------------------

@pytest.mark.parametrize("mode", ["invite", "off"])
def test_signup_is_closed_unless_open_and_the_sign_in_page_does_not_offer_it(http, public_client, outbox,
                                                                            monkeypatch, mode):
    configure(monkeypatch, SIGNUP_MODE=mode)
    browser = Browser(http)
    login, request_id = signup_page(browser, public_client.client_id)
    assert b"/signup" not in login.body
    assert browser.get(f"/signup?request_id={request_id}").status_code == 403
    response = browser.post("/signup", {"request_id": request_id, "csrf_token": hidden(login.body, "csrf_token"),
                                        "email": "new@example.com", "password": PASSWORD})
    assert response.status_code == 403 and b"Sign-up is not available" in response.body
    assert user("new@example.com") is None and outbox() == []


def test_the_default_signup_mode_is_invite_and_the_local_stage_opens_it():
    from chalicelib.config import Settings

    assert Settings(stage="prod", issuer="https://login.example.com").signup_mode == "invite"
    import pathlib

    config = json.loads((pathlib.Path(__file__).resolve().parents[2] / ".chalice" / "config.json").read_text())
    assert config["stages"]["local"]["environment_variables"]["SIGNUP_MODE"] == "open"
    assert "SIGNUP_MODE" not in config["stages"]["prod"]["environment_variables"]


def test_the_sign_in_page_links_to_signup_with_the_pending_request(http, public_client, open_signup):
    login, request_id = signup_page(Browser(http), public_client.client_id)
    assert f'href="/signup?request_id={request_id}"'.encode() in login.body


def test_the_signup_form_uses_standard_autocomplete_tokens(http, public_client, open_signup):
    browser = Browser(http)
    _, request_id = signup_page(browser, public_client.client_id)
    page = browser.get(f"/signup?request_id={request_id}").body.decode()
    assert 'autocomplete="email"' in page and 'autocomplete="new-password"' in page and 'autocomplete="name"' in page


# A new address ----------------------------------------------------------------------------------------

def test_a_new_address_gets_an_unverified_account_a_verification_email_and_the_check_email_page(
        http, public_client, open_signup):
    response = sign_up(Browser(http), public_client.client_id, "New.User@Example.com")
    assert response.status_code == 200 and b"Check your email" in response.body
    assert 'autocomplete="one-time-code"' in response.body.decode()
    created = user("new.user@example.com")
    assert created is not None and created.email_verified is False and created.name == "Alice"
    [message] = open_signup()
    assert message[0] == "new.user@example.com" and message[1] == "Confirm your email address"
    assert len(token_of(message)) == 26 and len(code_of(message)) == 26 + 5


def test_an_address_outside_the_domain_allow_list_is_refused_and_nothing_written(http, public_client,
                                                                                 open_signup, monkeypatch):
    configure(monkeypatch, SIGNUP_EMAIL_DOMAINS="example.com")
    response = sign_up(Browser(http), public_client.client_id, "eve@example.org")
    assert response.status_code == 400 and b"allowed domain" in response.body
    assert user("eve@example.org") is None and open_signup() == []
    assert sign_up(Browser(http), public_client.client_id, "bob@example.com").status_code == 200


@pytest.mark.parametrize("password, says", [("password123", b"too common"), ("short", b"at least 8"),
                                            ("weak.user@example.com", b"email address")])
def test_a_weak_password_re_shows_the_form_with_the_reason_and_writes_nothing(http, public_client, open_signup,
                                                                              password, says):
    response = sign_up(Browser(http), public_client.client_id, "weak.user@example.com", password=password)
    assert response.status_code == 400 and says in response.body
    assert b'value="weak.user@example.com"' in response.body  # the form keeps what was typed
    assert user("weak.user@example.com") is None and open_signup() == []


# Enumeration: one answer, one argon2id -----------------------------------------------------------------

def _masked(body: bytes) -> bytes:
    return re.sub(rb'name="csrf_token" value="[^"]*"', b'name="csrf_token" value="*"', body)


def test_the_answer_is_byte_identical_for_a_new_a_verified_and_an_unverified_address(
        http, public_client, open_signup, monkeypatch):
    from chalicelib import passwords
    from chalicelib.storage.users import create_user

    create_user("verified@example.com", OTHER_PASSWORD, email_verified=True)
    create_user("unverified@example.com", OTHER_PASSWORD)
    hashed = []
    original = passwords.hash_password
    monkeypatch.setattr(passwords, "hash_password", lambda p: hashed.append(p) or original(p))

    answers, costs = {}, {}
    for address in ("new@example.com", "verified@example.com", "unverified@example.com"):
        browser = Browser(http)
        _, request_id = signup_page(browser, public_client.client_id)
        before = len(hashed)
        # The same request for each: the page quotes the address and the request id.
        response = sign_up(browser, public_client.client_id, "ANY@example.com".replace("ANY", address.split("@")[0]),
                           request_id=request_id)
        answers[address] = (response.status_code, _masked(response.body).replace(request_id.encode(), b"RID")
                            .replace(address.encode(), b"ADDRESS"), len(response.headers["Set-Cookie"]))
        costs[address] = len(hashed) - before
    assert answers["new@example.com"] == answers["verified@example.com"] == answers["unverified@example.com"]
    assert costs == {"new@example.com": 1, "verified@example.com": 1, "unverified@example.com": 1}


def test_a_verified_address_is_left_alone_and_its_owner_is_told(http, public_client, open_signup):
    from chalicelib.passwords import verify_password
    from chalicelib.storage.users import create_user

    owner = create_user("owner@example.com", OTHER_PASSWORD, email_verified=True)
    browser = Browser(http)
    assert sign_up(browser, public_client.client_id, "owner@example.com").status_code == 200
    after = user("owner@example.com")
    assert after.pk == owner.pk and verify_password(OTHER_PASSWORD, after.password_hash)
    assert after.session_generation == owner.session_generation
    [message] = open_signup()
    assert message[1] == "Someone tried to create an account with your email address"
    assert "verify-email" not in message[2] and "request_id" not in message[2]
    # The browser is not signed in as the owner: its new cookie has no session.
    response = browser.get("/authorize?" + authorize_query(public_client.client_id))
    assert response.headers["Location"].startswith("/login?")


def test_signing_up_again_for_an_unverified_address_replaces_it_and_ends_the_earlier_sign_up(
        http, public_client, open_signup):
    """A pre-registration (someone else signs up with your address first) does not survive."""
    from chalicelib.oauth import sessions
    from chalicelib.passwords import verify_password

    attacker = Browser(http)
    assert sign_up(attacker, public_client.client_id, "victim@example.com", password=OTHER_PASSWORD,
                   name="Mallory").status_code == 200
    attacker_session = sessions.cookie_name(__import__("chalicelib.config", fromlist=["settings"]).settings())
    assert sessions.load(attacker.cookies[attacker_session]) is None, "a sign-up signs nobody in"
    # The attacker signs in with the password she chose: an unverified account's session.
    sign_in_and_consent(attacker, public_client.client_id, email="victim@example.com", password=OTHER_PASSWORD)
    assert sessions.load(attacker.cookies[attacker_session]) is not None

    victim = Browser(http)
    assert sign_up(victim, public_client.client_id, "victim@example.com", name="Victor").status_code == 200
    replaced = user("victim@example.com")
    assert verify_password(PASSWORD, replaced.password_hash) and not verify_password(OTHER_PASSWORD,
                                                                                    replaced.password_hash)
    assert replaced.name == "Victor"
    assert sessions.load(attacker.cookies[attacker_session]) is None, "the earlier sign-up's session survived"
    assert sessions.load(victim.cookies[attacker_session]) is None
    # Whichever link the victim opens, the attacker's tab does not continue as the account.
    first, second = open_signup()
    response = confirm(victim, token_of(second))
    assert response.status_code == 302


# Limits and SES failures -------------------------------------------------------------------------------

def test_too_many_signups_answer_429_with_retry_after_on_the_same_page(http, public_client, open_signup,
                                                                       monkeypatch):
    configure(monkeypatch, ACCOUNT_ACTIONS_PER_ADDRESS="1")
    assert sign_up(Browser(http), public_client.client_id, "busy@example.com").status_code == 200
    response = sign_up(Browser(http), public_client.client_id, "busy@example.com")
    assert response.status_code == 429 and int(response.headers["Retry-After"]) > 0
    assert b"Check your email" in response.body and b"Too many requests" in response.body
    assert len(open_signup()) == 1


def test_when_ses_fails_the_user_sees_a_clear_page_nothing_is_kept_and_a_retry_signs_up(
        http, public_client, open_signup, monkeypatch):
    from botocore.exceptions import ClientError

    from chalicelib import aws

    ses = aws.client("sesv2")
    real = ses.send_email

    def refusing(**kwargs):
        raise ClientError({"Error": {"Code": "TooManyRequestsException", "Message": "slow down"}}, "SendEmail")

    browser = Browser(http)
    _, request_id = signup_page(browser, public_client.client_id)
    monkeypatch.setattr(ses, "send_email", refusing)
    response = sign_up(browser, public_client.client_id, "retry@example.com", request_id=request_id)
    assert response.status_code == 503 and response.headers["Retry-After"].isdigit()
    assert b"We could not send the email" in response.body
    assert user("retry@example.com") is None, "a user was left behind"
    assert open_signup() == []

    monkeypatch.setattr(ses, "send_email", real)
    assert sign_up(browser, public_client.client_id, "retry@example.com", request_id=request_id).status_code == 200
    assert user("retry@example.com") is not None and len(open_signup()) == 1


# Verification ------------------------------------------------------------------------------------------

def test_the_link_continues_the_request_in_the_same_browser_and_the_id_token_says_verified(
        http, public_client, open_signup):
    import jwt

    browser = Browser(http)
    assert sign_up(browser, public_client.client_id, "carol@example.com").status_code == 200
    token = token_of(open_signup()[0])
    # A link previewer or mail scanner fetches the link, twice: nothing is consumed.
    assert Browser(http).get(f"/verify-email?token={token}").status_code == 200
    assert browser.get(f"/verify-email?token={token}").status_code == 200
    response = confirm(browser, token)
    assert response.status_code == 302 and response.headers["Location"].startswith("/consent?")
    assert user("carol@example.com").email_verified is True
    location = consent(browser, response.headers["Location"]).headers["Location"]
    tokens = json.loads(redeem(http, public_client.client_id, query_of(location)["code"]).body)
    claims = jwt.decode(tokens["id_token"], options={"verify_signature": False})
    assert claims["email"] == "carol@example.com" and claims["email_verified"] is True


def test_a_link_opened_elsewhere_confirms_and_the_waiting_tab_continues(http, public_client, open_signup):
    browser = Browser(http)
    page = sign_up(browser, public_client.client_id, "dave@example.com")
    token = token_of(open_signup()[0])
    # Nobody is signed in by a sign-up: Continue leads to the sign-in page, before the address is
    # confirmed as after (the same for every address, so it tells nobody which have an account).
    waiting = browser.post("/verify-email/continue", {"request_id": hidden(page.body, "request_id"),
                                                      "csrf_token": hidden(page.body, "csrf_token")})
    assert waiting.status_code == 302 and waiting.headers["Location"].startswith("/login?")

    phone = Browser(http)
    elsewhere = confirm(phone, token, password=PASSWORD)
    assert elsewhere.status_code == 200 and b"You can close this tab" in elsewhere.body
    assert phone.cookies.keys() <= {"idp_session"} and user("dave@example.com").email_verified

    response = browser.post("/verify-email/continue", {"request_id": hidden(page.body, "request_id"),
                                                       "csrf_token": hidden(page.body, "csrf_token")})
    assert response.status_code == 302 and response.headers["Location"].startswith("/login?")
    login = browser.get(response.headers["Location"])
    signed_in = browser.post("/login", {"request_id": hidden(login.body, "request_id"),
                                        "csrf_token": hidden(login.body, "csrf_token"),
                                        "username": "dave@example.com", "password": PASSWORD})
    assert signed_in.status_code == 302 and signed_in.headers["Location"].startswith("/consent?")


def test_a_stranger_pre_registering_a_victims_address_is_not_verified_by_the_victims_click(
        http, public_client, open_signup):
    """Pre-account hijacking: Mallory signs up with Victor's address; Victor gets the email and, not
    knowing better, opens it and presses Confirm. In his browser the page asks for the account's
    password, which he does not know: Mallory's account stays unverified (so no app gets a code for
    it), and Victor's own sign-up later replaces it."""
    mallory = Browser(http)
    assert sign_up(mallory, public_client.client_id, "victor@example.com", password=OTHER_PASSWORD).status_code == 200
    token = token_of(open_signup()[0])

    victor = Browser(http)
    page = victor.get(f"/verify-email?token={token}")
    assert page.status_code == 200 and b'autocomplete="current-password"' in page.body
    for attempt in (None, "", PASSWORD):  # no password, an empty one, his own guess
        response = confirm(victor, token, password=attempt)
        assert response.status_code == 401 and b"not the password of this account" in response.body
    assert user("victor@example.com").email_verified is False
    # The link was not spent by the refusals: in Mallory's own browser it would still work, and
    # nothing Victor did verified her account.
    from chalicelib.log import now
    from chalicelib.storage import links

    assert not isinstance(links.peek(token, "verify_email", now()), links.Refused)


def test_wrong_passwords_on_a_link_opened_elsewhere_are_limited(http, public_client, open_signup):
    from chalicelib.accounts.verification import PASSWORD_ATTEMPTS

    browser = Browser(http)
    assert sign_up(browser, public_client.client_id, "wendy@example.com").status_code == 200
    token = token_of(open_signup()[0])
    other = Browser(http)
    for _ in range(PASSWORD_ATTEMPTS):
        assert confirm(other, token, password="not it at all").status_code == 401
    # Past the limit even the right password is not checked: ask for a new email.
    limited = confirm(other, token, password=PASSWORD)
    assert limited.status_code == 429 and user("wendy@example.com").email_verified is False


def test_in_the_browser_that_signed_up_the_link_needs_no_password(http, public_client, open_signup):
    browser = Browser(http)
    assert sign_up(browser, public_client.client_id, "xena@example.com").status_code == 200
    page = browser.get(f"/verify-email?token={token_of(open_signup()[0])}")
    assert page.status_code == 200 and b'type="password"' not in page.body


def test_the_typed_code_in_its_grouped_form_confirms_like_the_link(http, public_client, open_signup):
    browser = Browser(http)
    page = sign_up(browser, public_client.client_id, "erin@example.com")
    code = code_of(open_signup()[0]).lower().replace("-", " - ")
    response = browser.post("/verify-email", {"code": code, "email": "erin@example.com",
                                              "request_id": hidden(page.body, "request_id"),
                                              "csrf_token": hidden(page.body, "csrf_token")})
    assert response.status_code == 302 and response.headers["Location"].startswith("/consent?")


def test_a_wrong_code_re_shows_the_page(http, public_client, open_signup):
    browser = Browser(http)
    page = sign_up(browser, public_client.client_id, "fay@example.com")
    response = browser.post("/verify-email", {"code": "0" * 26, "email": "fay@example.com",
                                              "request_id": hidden(page.body, "request_id"),
                                              "csrf_token": hidden(page.body, "csrf_token")})
    assert response.status_code == 400 and b"That code is not valid" in response.body
    assert user("fay@example.com").email_verified is False


def test_a_link_is_consumed_once(http, public_client, open_signup):
    browser = Browser(http)
    sign_up(browser, public_client.client_id, "gus@example.com")
    token = token_of(open_signup()[0])
    page = browser.get(f"/verify-email?token={token}")
    form = {"token": token, "csrf_token": hidden(page.body, "csrf_token")}
    assert browser.post("/verify-email", form).status_code == 302
    from chalicelib.oauth.sessions import csrf_token

    # Confirming signed this browser in (a new cookie): its CSRF token follows the cookie.
    form["csrf_token"] = csrf_token(browser.cookies["idp_session"], "verify-email")
    again = browser.post("/verify-email", form)
    assert again.status_code == 400 and b"This link was already used" in again.body
    assert browser.get(f"/verify-email?token={token}").status_code == 400


def test_a_token_of_another_purpose_is_refused(http, open_signup, alice):
    from chalicelib.log import now
    from chalicelib.storage import links

    token = links.issue("reset_password", email=alice.email, sub=alice.pk, at=now(), ttl=600)
    browser = Browser(http)
    page = browser.get(f"/verify-email?token={token}")
    assert page.status_code == 400 and b"This link is not valid" in page.body
    anonymous = browser.get("/verify-email?token=" + links.new_token())
    form = {"token": token, "csrf_token": re.search(rb'value="([^"]+)"', anonymous.body) and ""}
    assert browser.post("/verify-email", form).status_code == 403  # no CSRF token: refused before anything
    assert links.peek(token, "reset_password", now()) is not None and not isinstance(
        links.peek(token, "reset_password", now()), links.Refused)


def test_an_expired_link_is_refused(http, open_signup, alice):
    from chalicelib.log import now
    from chalicelib.storage import links

    token = links.issue("verify_email", email=alice.email, sub=alice.pk, at=now() - 100, ttl=50)
    page = Browser(http).get(f"/verify-email?token={token}")
    assert page.status_code == 400 and b"This link has expired" in page.body
    assert user(alice.email).email_verified is False


def test_a_link_for_an_address_the_user_no_longer_has_verifies_nothing(http, open_signup, alice):
    from chalicelib.log import now
    from chalicelib.storage import links

    token = links.issue("verify_email", email="old@example.com", sub=alice.pk, at=now(), ttl=600)
    response = confirm(Browser(http), token)
    assert response.status_code == 400 and b"This link is not valid" in response.body
    assert user(alice.email).email_verified is False


def test_resend_issues_a_fresh_link_and_the_earlier_one_still_works(http, public_client, open_signup):
    browser = Browser(http)
    page = sign_up(browser, public_client.client_id, "hal@example.com")
    response = browser.post("/verify-email/resend", {"email": "hal@example.com",
                                                     "request_id": hidden(page.body, "request_id"),
                                                     "csrf_token": hidden(page.body, "csrf_token")})
    assert response.status_code == 200 and b"we sent a new email" in response.body
    first, second = open_signup()
    assert token_of(first) != token_of(second)
    assert confirm(browser, token_of(first)).status_code == 302


def test_resend_for_an_address_without_a_pending_verification_sends_nothing_and_looks_the_same(
        http, public_client, open_signup, alice):
    browser = Browser(http)
    page = sign_up(browser, public_client.client_id, "ivy@example.com")
    open_signup()
    bodies = []
    for address in ("ivy@example.com", "nobody@example.com"):
        response = browser.post("/verify-email/resend", {"email": address, "request_id": hidden(page.body, "request_id"),
                                                         "csrf_token": hidden(page.body, "csrf_token")})
        bodies.append(response.body.replace(address.encode(), b"ADDRESS"))
    assert bodies[0] == bodies[1] and len(open_signup()) == 2


def test_resend_is_limited(http, public_client, open_signup, monkeypatch):
    configure(monkeypatch, ACCOUNT_ACTIONS_PER_ADDRESS="1")
    browser = Browser(http)
    page = sign_up(browser, public_client.client_id, "jo@example.com")
    form = {"email": "jo@example.com", "request_id": hidden(page.body, "request_id"),
            "csrf_token": hidden(page.body, "csrf_token")}
    assert browser.post("/verify-email/resend", form).status_code == 200
    limited = browser.post("/verify-email/resend", form)
    assert limited.status_code == 429 and limited.headers["Retry-After"].isdigit()


def test_a_cross_site_post_is_refused(http, public_client, open_signup):
    browser = Browser(http)
    _, request_id = signup_page(browser, public_client.client_id)
    page = browser.get(f"/signup?request_id={request_id}")
    response = browser.post("/signup", {"request_id": request_id, "csrf_token": hidden(page.body, "csrf_token"),
                                        "email": "x@example.com", "password": PASSWORD},
                            extra={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403 and user("x@example.com") is None


def test_a_verification_link_sent_before_someone_signed_up_again_verifies_nothing(http, public_client,
                                                                                   open_signup):
    """Victor signs up; before he confirms, Mallory signs up again for his unverified address (her
    password replaces his). Victor's link, opened in his own browser or typed as a code, must not
    verify the account that now has Mallory's password."""
    victor = Browser(http)
    page = sign_up(victor, public_client.client_id, "victor2@example.com")
    first = open_signup()[0]
    mallory = Browser(http)
    assert sign_up(mallory, public_client.client_id, "victor2@example.com", password=OTHER_PASSWORD).status_code == 200

    response = confirm(victor, token_of(first))
    assert response.status_code == 400
    typed = victor.post("/verify-email", {"code": code_of(first), "email": "victor2@example.com",
                                          "request_id": hidden(page.body, "request_id"),
                                          "csrf_token": hidden(page.body, "csrf_token")})
    assert typed.status_code in (400, 401)
    assert user("victor2@example.com").email_verified is False


def test_a_code_typed_in_another_browser_asks_for_the_password(http, public_client, open_signup):
    browser = Browser(http)
    assert sign_up(browser, public_client.client_id, "yara@example.com").status_code == 200
    code = code_of(open_signup()[0])
    elsewhere = Browser(http)
    page = elsewhere.get(f"/verify-email?token={code}")  # this browser's CSRF token for the form
    asked = elsewhere.post("/verify-email", {"code": code, "email": "yara@example.com", "request_id": "",
                                             "csrf_token": hidden(page.body, "csrf_token")})
    assert asked.status_code == 200 and b'autocomplete="current-password"' in asked.body
    assert user("yara@example.com").email_verified is False
    wrong = elsewhere.post("/verify-email", {"code": code, "password": OTHER_PASSWORD, "email": "yara@example.com",
                                             "request_id": "", "csrf_token": hidden(page.body, "csrf_token")})
    assert wrong.status_code == 401 and user("yara@example.com").email_verified is False


def test_non_ascii_csrf_tokens_and_cookies_are_refused_not_500(http, public_client):
    browser = Browser(http)
    _, request_id = signup_page(browser, public_client.client_id)
    forged = browser.post("/signup", {"request_id": request_id, "csrf_token": "é" * 43,
                                      "email": "zoe@example.com", "password": PASSWORD})
    assert forged.status_code == 403
    from chalicelib.oauth.sessions import csrf_valid

    assert csrf_valid("é" * 40, "signup", "é" * 43) is False  # a forged non-ASCII cookie and token


def test_a_name_with_bidirectional_overrides_is_refused(http, public_client, open_signup):
    response = sign_up(Browser(http), public_client.client_id, "zed@example.com", name="Eve\u202eadmin")
    assert response.status_code == 400 and user("zed@example.com") is None


def test_following_up_a_sign_up_tells_nothing_about_the_address(http, public_client, open_signup, alice):
    """The answers are identical, and so is what the cookie they set does next: /authorize sends both
    browsers to the sign-in page (a session for a new address, but none for an existing account's,
    would tell which addresses have an account)."""
    answers = []
    for address in ("alice@example.com", "newcomer@example.com"):
        browser = Browser(http)
        assert sign_up(browser, public_client.client_id, address).status_code == 200
        follow = browser.get("/authorize?" + authorize_query(public_client.client_id))
        answers.append((follow.status_code, follow.headers["Location"].split("?")[0]))
    assert answers[0] == answers[1] == (302, "/login")
