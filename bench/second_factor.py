"""The second-factor request paths of issue 13 (TOTP, recovery codes, passkeys: the second step of a
sign-in, a passkey alone, and enrolment on the account page) for `make bench`'s third table: what
each request needs and how it is made.

Issue 13 asks for the DynamoDB calls and handler CPU of the WebAuthn and TOTP endpoints. As for
issue 12's table (bench/self_service.py), bench/request_cpu.py (CPU, calls, KMS calls, SES sends;
moto server) and bench/dynamodb_calls.py (calls only, in-process moto; smoke-tested by
tests/integration/test_second_factor_bench.py) measure `paths(...)` on `seed(...)`'s data. KMS is
counted because a TOTP secret is sealed with it (chalicelib/secret_box.py: one kms:Encrypt to
start an enrolment, one kms:Decrypt per code checked or enrolment page shown).

Every input is made outside the measurement, and every run gets a fresh one of what it spends:
- a TOTP time step is accepted once per user (RFC 6238 §5.2), so a code is checked for a fresh user
  whose TOTP was enrolled through storage (secret_box.seal, storage.factors.start_totp and
  activate_totp at time step 1, as tests/routes/test_second_factor.py does), the code from pyotp;
- a recovery code works once: a fresh user with fresh codes (accounts/recovery_codes.new_codes);
- the half-done sign-in that /mfa completes (the idp_mfa cookie) is spent by it: a fresh password
  step per run, for GET /mfa too (it is short-lived);
- a WebAuthn challenge works once: each run reads a fresh page and answers its embedded options with
  the software authenticator tests/webauthn_authenticator.py (as tests/routes/test_passkeys.py does);
  one user's passkey serves every sign-in (its counter grows by one per assertion), and each
  registration is a fresh user's (a user may hold MAX_PASSKEYS);
- finishing a TOTP enrolment spends the pending one: a fresh user, started through storage.
Starting an enrolment (it replaces the pending one), showing it and making new recovery codes (they
replace the old ones) spend nothing: one signed-in browser each per 100 runs, as bench/scenario.py does.

argon2id (chalicelib/passwords.py) is timed apart and subtracted, as for POST /login: HASHES says
which paths run it and why. KMS and SES calls are counted, and their botocore CPU stays in the
handler's figure (shown apart too): it is the handler's work on Lambda as well.
"""
from __future__ import annotations

#: As issue 12's table: the per-address mail limit (a factor_changed notice per new set of recovery
#: codes) and the account-action limits out of reach of a few hundred requests from one address and IP.
ENV = {"REQUIRE_VERIFIED_EMAIL": "true", "ACCOUNT_ACTIONS_PER_IP": "1000000",
       "ACCOUNT_ACTIONS_PER_ADDRESS": "1000000", "EMAILS_PER_ADDRESS_PER_HOUR": "1000000"}

PASSWORD = "plover xylophone meadow"

#: Which paths run argon2id, and why (the table prints its median beside the handler's CPU).
HASHES = {
    "POST /login (password; user with TOTP)": "verify the password",
    "POST /account/passkeys/add": "verify the current password",
    "POST /account/totp/start": "verify the current password",
    "POST /account/recovery-codes": "verify the current password",
}


def seed(scenario) -> None:
    """FACTOR_KMS_KEY_ID's key (as the local stack's bootstrap makes it) and the sender identity in
    SES (moto refuses mail from an unverified one; issue 12's seed may have made it already). Call
    after bench/scenario.seed(), with ENV in the environment."""
    from botocore.exceptions import ClientError

    from chalicelib.aws import client
    from chalicelib.config import settings
    from tools.devstack import ensure_symmetric_key

    settings.cache_clear()
    ensure_symmetric_key(settings().factor_kms_key_id, "bench: seals TOTP secrets")
    try:
        client("sesv2").create_email_identity(EmailIdentity=settings().email_from)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "AlreadyExistsException":
            raise


def paths(http, scenario) -> dict:
    """label -> (make_input or None, request(input) -> response): the third table's rows."""
    import html
    import itertools
    import json
    import re

    import pyotp

    from bench.scenario import SCOPE, WEB_APP
    from chalicelib import secret_box
    from chalicelib.accounts import recovery_codes
    from chalicelib.hashing import sha256_hex
    from chalicelib.storage import factors
    from chalicelib.storage.users import create_user
    from tests.routes.flow import Browser, authorize_query, hidden
    from tests.webauthn_authenticator import SoftAuthenticator

    authorize = "/authorize?" + authorize_query(scenario.public.client_id, scope=SCOPE, redirect_uri=WEB_APP)
    numbers = itertools.count()

    def options_of(body: bytes) -> dict:
        """The WebAuthn options a page embeds for static/passkeys.js."""
        match = re.search(r'<script type="application/json" id="webauthn-options">(.*?)</script>', body.decode(), re.S)
        assert match, "no WebAuthn options on the page"
        return json.loads(html.unescape(match.group(1)))

    def expect(response, status: int, location: str | None = None):
        """The request did what the row says (measure() only checks for 200 or 302; a refused form
        re-renders with 4xx, but a lost session redirects to the sign-in page with 302)."""
        assert response.status_code == status, (response.status_code, response.body[:300])
        if location is not None:
            assert response.headers["Location"].startswith(location), response.headers["Location"]
        return response

    def start_totp(sub: str, secret: str, visitor=None) -> None:
        # An enrolment is shown to, and confirmed by, only the session that started it.
        started_by = sha256_hex(visitor.cookies["idp_session"]) if visitor is not None else None
        assert factors.start_totp(sub, secret_box.seal(secret, purpose="totp", subject=sub), started_by=started_by)

    def enrol_totp(sub: str, secret: str) -> None:
        """An active TOTP factor, enrolled long ago: its last accepted time step is 1."""
        start_totp(sub, secret)
        assert factors.activate_totp(sub, 1)

    def fresh_user(kind: str, *, totp_secret: str | None = None, codes=()) -> tuple[str, str]:
        """A new verified user (address, sub), with an active TOTP factor and recovery codes when asked."""
        address = f"bench-{kind}-{next(numbers)}@example.com"
        sub = create_user(address, PASSWORD, email_verified=True).pk
        if totp_secret:
            enrol_totp(sub, totp_secret)
        if codes:
            assert factors.set_recovery_codes(sub, [recovery_codes.code_hash(code) for code in codes])
        return address, sub

    def login_page(visitor=None):
        """A browser at the sign-in page of a pending authorization request, and the page."""
        visitor = visitor or Browser(http)
        page = visitor.get(expect(visitor.get(authorize), 302, "/login").headers["Location"])
        return visitor, expect(page, 200)

    def password_form(address: str):
        visitor, page = login_page()
        return visitor, {"request_id": hidden(page.body, "request_id"), "csrf_token": hidden(page.body, "csrf_token"),
                         "username": address, "password": PASSWORD}

    def at_second_step(address: str):
        """A browser whose password was right for `address` (a user with a second factor): /mfa next."""
        visitor, form = password_form(address)
        expect(visitor.post("/login", form), 302, "/mfa")
        return visitor

    def mfa_form(address: str, method: str, answer):
        """The /mfa form of a fresh second step: `answer(page)` gives the code or credential field."""
        visitor = at_second_step(address)
        page = expect(visitor.get("/mfa"), 200)
        field, value = answer(page)
        return visitor, {"csrf_token": hidden(page.body, "csrf_token"), "request_id": hidden(page.body, "request_id"),
                         "method": method, field: value}

    def signed_in_to_account(address: str) -> Browser:
        visitor = Browser(http)
        page = visitor.get("/account/login")
        expect(visitor.post("/account/login", {"csrf_token": hidden(page.body, "csrf_token"), "username": address,
                                               "password": PASSWORD}), 302, "/account")
        return visitor

    def account_form(visitor: Browser, page="/account", **fields):
        body = expect(visitor.get(page), 200).body
        return visitor, {"csrf_token": hidden(body, "csrf_token"), **fields}

    def reused(make, every: int = 100):
        """make() once per `every` runs: for requests that spend nothing."""
        held = [None, 0]

        def get():
            if held[1] % every == 0:
                held[0] = make()
            held[1] += 1
            return held[0]
        return get

    # A user with TOTP for the password step (it spends nothing of the user's factors).
    totp_user, _ = fresh_user("totp", totp_secret=pyotp.random_base32())

    # A user with a passkey, registered through the account page, for the passkey sign-ins.
    (passkey_user, _), authenticator = fresh_user("passkey"), SoftAuthenticator()
    visitor, form = account_form(signed_in_to_account(passkey_user), name="Bench key", current_password=PASSWORD)
    form["credential"] = authenticator.create(options_of(visitor.get("/account").body))
    expect(visitor.post("/account/passkeys/add", form), 302, "/account?done=passkey_added")

    def totp_code_form():
        secret = pyotp.random_base32()
        address, _ = fresh_user("mfa-totp", totp_secret=secret)
        return mfa_form(address, "totp", lambda page: ("code", pyotp.TOTP(secret).now()))

    def recovery_code_form():
        codes = recovery_codes.new_codes(2)
        address, _ = fresh_user("mfa-recovery", totp_secret=pyotp.random_base32(), codes=codes)
        return mfa_form(address, "recovery", lambda page: ("code", codes[0]))

    def passkey_second_step_form():
        return mfa_form(passkey_user, "passkey", lambda page: ("credential", authenticator.get(options_of(page.body))))

    def passkey_alone_form():
        visitor, page = login_page()
        assert b'autocomplete="username webauthn"' in page.body
        return visitor, {"request_id": hidden(page.body, "request_id"), "csrf_token": hidden(page.body, "csrf_token"),
                         "method": "passkey", "credential": authenticator.get(options_of(page.body))}

    def registration_form():
        # A fresh user: the user item names every passkey, and a user may hold MAX_PASSKEYS.
        visitor, form = account_form(signed_in_to_account(fresh_user("register")[0]), name="Laptop",
                                     current_password=PASSWORD)
        form["credential"] = SoftAuthenticator().create(options_of(visitor.get("/account").body))
        return visitor, form

    def enrolling():
        """Signed in, then an enrolment started through storage: GET /account/totp has one to show,
        and POST /account/totp/start replaces it (a started one is never active)."""
        address, sub = fresh_user("enrol")
        visitor = signed_in_to_account(address)
        start_totp(sub, pyotp.random_base32(), visitor)
        return visitor

    enrolling_browser = reused(enrolling)

    def first_code_form():
        # A fresh user: the first code activates (spends) the pending enrolment, started through storage.
        address, sub = fresh_user("first-code")
        visitor, secret = signed_in_to_account(address), pyotp.random_base32()
        start_totp(sub, secret, visitor)
        return account_form(visitor, "/account/totp", code=pyotp.TOTP(secret).now())

    def with_totp_signed_in():
        # Signed in with the password first, then TOTP enrolled through storage: new recovery codes
        # need another factor, and signing in after enrolment would spend a time step.
        address, sub = fresh_user("recovery")
        visitor = signed_in_to_account(address)
        enrol_totp(sub, pyotp.random_base32())
        return visitor

    recovery_browser = reused(with_totp_signed_in)

    def post(path, status=302, location=None):
        return lambda value: expect(value[0].post(path, value[1]), status, location)

    return {
        "POST /login (password; user with TOTP)": (lambda: password_form(totp_user), post("/login", 302, "/mfa")),
        "GET /mfa": (lambda: at_second_step(totp_user), lambda visitor: expect(visitor.get("/mfa"), 200)),
        "POST /mfa (TOTP code)": (totp_code_form, post("/mfa", 302, "/consent")),
        "POST /mfa (recovery code)": (recovery_code_form, post("/mfa", 302, "/consent")),
        "POST /mfa (passkey as second factor)": (passkey_second_step_form, post("/mfa", 302, "/consent")),
        "POST /login (passkey alone)": (passkey_alone_form, post("/login", 302, "/consent")),
        "POST /account/passkeys/add": (registration_form, post("/account/passkeys/add", 302,
                                                               "/account?done=passkey_added")),
        "POST /account/totp/start": (lambda: account_form(enrolling_browser(), current_password=PASSWORD),
                                     post("/account/totp/start", 302, "/account/totp")),
        "GET /account/totp": (enrolling_browser, lambda visitor: expect(visitor.get("/account/totp"), 200)),
        "POST /account/totp (first code)": (first_code_form, post("/account/totp", 200)),
        "POST /account/recovery-codes": (lambda: account_form(recovery_browser(), current_password=PASSWORD),
                                         post("/account/recovery-codes", 200)),
    }
