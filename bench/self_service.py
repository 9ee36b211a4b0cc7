"""The self-service request paths of issue 12 (sign-up, email verification, password reset, the
account page) for `make bench`'s second table: what each request needs and how it is made.

Issue 12 asks for the DynamoDB calls and handler CPU of every new request path; issue 10's targets
are for the OAuth paths, and these have none. bench/request_cpu.py (CPU, calls, SES sends; moto
server) and bench/dynamodb_calls.py (calls only, in-process moto; smoke-tested by
tests/integration/test_self_service_bench.py) measure `paths(...)` on `seed(...)`'s data.

Every input is made outside the measurement, and every run gets what it would spend a fresh one of:
a fresh address to sign up, a fresh verification or reset link (its token taken from
`storage.links.issue` as it is issued, so no outbox is written), a fresh user where the request
changes the password (the reset ends the user's sessions; the account page's change ends them
too). Paths that only read, or write the same thing again, reuse one signed-in browser per 100
runs, as bench/scenario.py does.

argon2id (chalicelib/passwords.py) is timed apart and subtracted, as for POST /login: HASHES says
which paths run it and why. SES SendEmail is counted, and its botocore CPU (building and signing the
request, reading the answer) stays in the handler's figure: it is the handler's work on Lambda too.
"""
from __future__ import annotations

from contextlib import contextmanager

#: Sign-up open, and the abuse limits (accounts/limits.py) out of reach of a few hundred requests
#: from one address and one IP: the bench measures the work of an allowed request.
ENV = {"SIGNUP_MODE": "open", "REQUIRE_VERIFIED_EMAIL": "true", "ACCOUNT_ACTIONS_PER_IP": "1000000",
       "ACCOUNT_ACTIONS_PER_ADDRESS": "1000000", "EMAILS_PER_ADDRESS_PER_HOUR": "1000000"}

ACCOUNT_EMAIL = "carol@example.com"  # the account page's user (alice stays as bench/scenario.py made her)
PASSWORD = "plover xylophone meadow"
NEW_PASSWORD = "quartz lantern orchard"

#: Which paths run argon2id, and why (the table prints its median beside the handler's CPU).
HASHES = {
    "POST /signup (new address)": "hash the password",
    "POST /signup (existing verified address)": "hash the password (every case alike)",
    "POST /reset-password": "hash the new password",
    "POST /account/login": "verify the password",
    "POST /account/password": "verify the current password, hash the new one",
}


def seed(scenario) -> None:
    """The sender identity in SES (moto refuses mail from an unverified one) and the account
    page's user. Call after bench/scenario.seed(), with ENV in the environment."""
    from chalicelib.aws import client
    from chalicelib.config import settings
    from chalicelib.storage.users import create_user

    settings.cache_clear()
    client("sesv2").create_email_identity(EmailIdentity=settings().email_from)
    create_user(ACCOUNT_EMAIL, PASSWORD, "Carol", email_verified=True)


@contextmanager
def issued_tokens():
    """The tokens of the one-time links issued while inside, newest last (what the email carries)."""
    from chalicelib.storage import links

    tokens, original = [], links.issue

    def issue(*args, **kwargs):
        token = original(*args, **kwargs)
        tokens.append(token)
        return token

    links.issue = issue
    try:
        yield tokens
    finally:
        links.issue = original


def paths(http, scenario) -> dict:
    """label -> (make_input or None, request(input) -> response): the second table's rows."""
    import itertools

    from bench.scenario import EMAIL, SCOPE, WEB_APP
    from chalicelib.storage.users import create_user
    from tests.routes.flow import Browser, authorize_query, hidden, query_of

    authorize = "/authorize?" + authorize_query(scenario.public.client_id, scope=SCOPE, redirect_uri=WEB_APP)
    numbers = itertools.count()

    def fresh_address(kind: str) -> str:
        return f"bench-{kind}-{next(numbers)}@example.com"

    def pending_request():
        """A browser with an authorization request waiting at the sign-in page, and the request's id."""
        visitor = Browser(http)
        return visitor, query_of(visitor.get(authorize).headers["Location"])["request_id"]

    def signup_form(address=None):
        visitor, request_id = pending_request()
        page = visitor.get(f"/signup?request_id={request_id}")
        return visitor, {"request_id": request_id, "csrf_token": hidden(page.body, "csrf_token"),
                         "email": address or fresh_address("signup"), "password": PASSWORD, "name": "Bench"}

    def signed_up():
        """A browser that just signed up a fresh address, and the token of its verification link."""
        visitor, form = signup_form()
        with issued_tokens() as tokens:
            assert visitor.post("/signup", form).status_code == 200
        return visitor, tokens[-1]

    def verification_form():
        visitor, token = signed_up()
        page = visitor.get(f"/verify-email?token={token}")
        return visitor, {"token": token, "csrf_token": hidden(page.body, "csrf_token")}

    def forgot_form(address):
        visitor = Browser(http)
        page = visitor.get("/forgot-password")
        return visitor, {"csrf_token": hidden(page.body, "csrf_token"), "email": address}

    def reset_link():
        """A fresh user's reset link, asked for as the user would (POST /forgot-password)."""
        address = fresh_address("reset")
        create_user(address, PASSWORD, email_verified=True)
        visitor, form = forgot_form(address)
        with issued_tokens() as tokens:
            assert visitor.post("/forgot-password", form).status_code == 200
        return visitor, tokens[-1]

    def reset_form():
        visitor, token = reset_link()
        page = visitor.get(f"/reset-password?token={token}")
        return visitor, {"token": token, "csrf_token": hidden(page.body, "csrf_token"), "password": NEW_PASSWORD}

    def account_login_form(address=ACCOUNT_EMAIL):
        visitor = Browser(http)
        page = visitor.get("/account/login")
        return visitor, {"csrf_token": hidden(page.body, "csrf_token"), "username": address, "password": PASSWORD}

    def signed_in_to_account(address=ACCOUNT_EMAIL):
        visitor, form = account_login_form(address)
        response = visitor.post("/account/login", form)
        assert response.status_code == 302 and response.headers["Location"] == "/account", response.body[:300]
        return visitor

    account_browser = [None, 0]

    def account_browser_reused():
        # Reading the page and saving the profile leave the session as it was: one per 100 runs.
        if account_browser[1] % 100 == 0:
            account_browser[0] = signed_in_to_account()
        account_browser[1] += 1
        return account_browser[0]

    def account_form(visitor, fields):
        page = visitor.get("/account")
        return visitor, {"csrf_token": hidden(page.body, "csrf_token"), **fields}

    def profile_form():
        n = next(numbers)  # a change every time, as a user saving the form would make
        return account_form(account_browser_reused(), {"name": f"Carol Bench {n}", "given_name": "Carol",
                                                       "family_name": f"Bench {n}", "locale": "en"})

    def password_form():
        # A fresh user: the change ends every session of the user, this browser's too.
        address = fresh_address("password")
        create_user(address, PASSWORD, email_verified=True)
        return account_form(signed_in_to_account(address),
                            {"current_password": PASSWORD, "new_password": NEW_PASSWORD})

    def post(path):
        return lambda value: value[0].post(path, value[1])

    return {
        "GET /signup": (pending_request, lambda v: v[0].get(f"/signup?request_id={v[1]}")),
        "POST /signup (new address)": (signup_form, post("/signup")),
        "POST /signup (existing verified address)": (lambda: signup_form(EMAIL), post("/signup")),
        "GET /verify-email": (signed_up, lambda v: v[0].get(f"/verify-email?token={v[1]}")),
        "POST /verify-email (same browser)": (verification_form, post("/verify-email")),
        "POST /forgot-password (known address)": (lambda: forgot_form(EMAIL), post("/forgot-password")),
        "POST /forgot-password (unknown address)": (lambda: forgot_form(fresh_address("unknown")),
                                                    post("/forgot-password")),
        "GET /reset-password": (reset_link, lambda v: v[0].get(f"/reset-password?token={v[1]}")),
        "POST /reset-password": (reset_form, post("/reset-password")),
        "POST /account/login": (account_login_form, post("/account/login")),
        "GET /account": (account_browser_reused, lambda visitor: visitor.get("/account")),
        "POST /account/profile": (profile_form, post("/account/profile")),
        "POST /account/password": (password_form, post("/account/password")),
    }
