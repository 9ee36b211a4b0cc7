"""What the request benchmarks run against: one API, three clients and a user, and the requests each
benchmarked path makes. bench/request_cpu.py (CPU and calls, `make bench`) and bench/dynamodb_calls.py
(calls only, in-process moto) both measure `paths(...)` on `seed()`'s data, so their figures are of
the same requests. Call `seed()` with the environment already pointing at the tables.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from urllib.parse import urlencode

#: An https redirect, so remembered consent applies (loopback public clients are asked every time).
WEB_APP = "https://app.example.com/cb"
API = "https://api.example.com"
EMAIL, PASSWORD = "alice@example.com", "correct horse battery"
SCOPE = "openid email offline_access"

#: Issue 10's targets per path: (DynamoDB calls, handler CPU in ms); None: no CPU target of its own
#: (POST /login: argon2id dominates; the target is argon2 + 5 ms, and the benchmarks subtract argon2).
TARGETS = {
    "POST /token client_credentials": (0, 0.15),
    "POST /token authorization_code": (2, 3.0),
    "POST /token refresh_token": (1, 2.0),
    "GET /authorize (signed in, consented)": (2, 3.0),
    "POST /login (returning user, consent remembered)": (5, 5.0),
    "GET /userinfo": (1, 1.5),
    "POST /introspect": (1, 1.5),
    "GET /jwks": (0, 0.1),
}


@dataclass
class Scenario:
    public: object  # the web app: a public client with refresh tokens
    service: object  # a backend job: client_credentials for the API
    service_secret: str
    api: object  # the API itself: introspects tokens for its audience
    api_secret: str


def seed() -> Scenario:
    """Tables, signing keys, the API, the clients and the user."""
    from chalicelib.keys import keyring
    from chalicelib.oauth.clients import create_client
    from chalicelib.storage.resources import register_resource
    from chalicelib.storage.tables import bootstrap_tables
    from chalicelib.storage.users import create_user

    bootstrap_tables()
    keyring.ensure_keys()
    register_resource(API, "API", ["api:read"])
    public, _ = create_client(client_name="App", client_type="public", redirect_uris=[WEB_APP],
                              grant_types=["authorization_code", "refresh_token"],
                              scopes=["openid", "email", "offline_access"])
    service, service_secret = create_client(client_name="Job", grant_types=["client_credentials"],
                                            scopes=["api:read"])
    api, api_secret = create_client(client_name="API", grant_types=["client_credentials"], scopes=[],
                                    introspects=[API])
    # Verified, as a user who signed up is once REQUIRE_VERIFIED_EMAIL (on by default) lets them in.
    create_user(EMAIL, PASSWORD, email_verified=True)
    return Scenario(public, service, service_secret, api, api_secret)


def basic(client_id: str, client_secret: str) -> dict:
    """Form headers with HTTP Basic client authentication (RFC 6749 §2.3.1)."""
    from tests.routes.flow import FORM

    credentials = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
    return {**FORM, "Authorization": f"Basic {credentials}"}


def paths(http, scenario: Scenario) -> dict:
    """label -> (make_input or None, request(input) -> response), one entry per label of TARGETS.

    Inputs are made outside the measurement. Inputs that may be used again are, so a run of a few
    hundred requests per path needs few codes: a moto server slows down as items pile up (past about
    600 codes a transaction took longer than botocore's 5 s read timeout): one refresh family
    throughout, one access token per 100 runs, a signed-in session per 100 codes (a session carries
    the ids of the grants issued through it, and inputs should not grow one without bound).
    """
    from tests.routes.flow import FORM, Browser, authorize_query, hidden, query_of, redeem, sign_in_and_consent

    public = scenario.public
    authorize = "/authorize?" + authorize_query(public.client_id, scope=SCOPE, redirect_uri=WEB_APP)
    sessions = [None, 0]

    def signed_in_browser():
        if sessions[1] % 100 == 0:
            sessions[0] = Browser(http)
            sign_in_and_consent(sessions[0], public.client_id, scope=SCOPE, redirect_uri=WEB_APP)
        sessions[1] += 1
        return sessions[0]

    def new_code():
        return query_of(sign_in_and_consent(signed_in_browser(), public.client_id, scope=SCOPE,
                                            redirect_uri=WEB_APP))["code"]

    def redeem_code(code):
        return redeem(http, public.client_id, code, redirect_uri=WEB_APP)

    refresh_chain = {}

    def refresh_token_input():
        # Each refresh hands out the successor: the next run presents it.
        return refresh_chain.get("token") or json.loads(redeem_code(new_code()).body)["refresh_token"]

    def refresh(token):
        response = http.post("/token", headers=FORM, body=urlencode(
            {"grant_type": "refresh_token", "refresh_token": token, "client_id": public.client_id}).encode())
        refresh_chain["token"] = json.loads(response.body).get("refresh_token")
        return response

    access_tokens = [None, 0]

    def user_access_token():
        # An access token is not single use, and 100 runs end well inside its lifetime.
        if access_tokens[1] % 100 == 0:
            access_tokens[0] = json.loads(redeem_code(new_code()).body)["access_token"]
        access_tokens[1] += 1
        return access_tokens[0]

    def login_form():
        # A returning user with no session (consent remembered): the login page's form, filled in.
        visitor = Browser(http)
        page = visitor.get(visitor.get(authorize).headers["Location"])
        return visitor, {"request_id": hidden(page.body, "request_id"), "csrf_token": hidden(page.body, "csrf_token"),
                         "username": EMAIL, "password": PASSWORD}

    cc = urlencode({"grant_type": "client_credentials", "resource": API}).encode()
    service_auth = basic(scenario.service.client_id, scenario.service_secret)
    rs_auth = basic(scenario.api.client_id, scenario.api_secret)

    def client_credentials(_=None):
        return http.post("/token", body=cc, headers=service_auth)

    return {
        "POST /token client_credentials": (None, client_credentials),
        "POST /token authorization_code": (new_code, redeem_code),
        "POST /token refresh_token": (refresh_token_input, refresh),
        "GET /authorize (signed in, consented)": (signed_in_browser, lambda browser: browser.get(authorize)),
        "POST /login (returning user, consent remembered)": (login_form, lambda v: v[0].post("/login", v[1])),
        "GET /userinfo": (user_access_token,
                          lambda token: http.get("/userinfo", headers={"Authorization": f"Bearer {token}"})),
        "POST /introspect": (lambda: json.loads(client_credentials().body)["access_token"],
                             lambda token: http.post("/introspect", body=urlencode({"token": token}).encode(),
                                                     headers=rs_auth)),
        "GET /jwks": (None, lambda _: http.get("/jwks")),
    }
