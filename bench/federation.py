"""The federation and logout request paths of issue 15 (signing in through an upstream identity
provider, home-realm discovery, RP-initiated and back-channel logout) for `make bench`'s fourth
table: what each request needs and how it is made.

Issue 15's closing note gives the DynamoDB calls and handler CPU of its new request paths. As for
issues 12 and 13 (bench/self_service.py, bench/second_factor.py), bench/request_cpu.py (CPU, calls;
moto server) and bench/dynamodb_calls.py (calls only, in-process moto; smoke-tested by
tests/integration/test_federation_bench.py) measure `paths(...)` on `seed(...)`'s data. Besides
DynamoDB they count what these paths add: SQS SendMessage (a sign-out with grants enqueues one
back-channel logout message: chalicelib/oauth/backchannel_logout.py), Secrets Manager (the
connection's client secret), KMS, SES (the notice that a sign-in was linked) and outbound HTTP
requests (chalicelib/outbound.send: the upstream's token endpoint, a relying party's back-channel
logout URI).

The upstream is real HTTP on loopback: tests/fakes/upstream.FakeUpstream (discovery, JWKS, token,
ES256-signed ID tokens), run by `serve()` in a process of its own so that its CPU (signing the ID
token, answering) is not counted as the handler's (time.process_time counts every thread of this
process). `serve()` adds what a browser does at the upstream (GET /authorize, which signs the user
in as `bench_sub` with `bench_email` and redirects back to our callback with code, state and iss)
and a relying party's back-channel logout URI (POST /backchannel answers 200). The connection is
made as an operator makes it (federation/connections.validate, storage/connections.add_connection,
its client secret in Secrets Manager).

Steady state: a container caches the enabled connections (one Scan per CLIENT_CACHE_SECONDS, set
high here so no run of the table falls on a re-read), the connection's secret (300 s), and the
upstream's discovery document and JWKS (their Cache-Control, clamped to [300 s, 1 day]; the child
sends a day). The measuring loop's first, unmeasured run of each path fills those caches; the table
counts the requests after it. A cold container adds the Scan to its first sign-in page, a GET of the
discovery document to its first start, and a GetSecretValue and a GET of the JWKS to its first
callback. A callback makes one outbound request once warm, to the token endpoint: the fake's ID token
carries email and email_verified, so userinfo is not asked (federation/upstream._with_userinfo asks it
only for a missing email or an operator's own claim mapping).

Inputs, made outside the measurement: each callback row gets a fresh browser that went to the
upstream (through /authorize?idp_hint=, which skips our sign-in page) and came back with a code:
(a) a returning user (linked once, consent remembered: straight back to the app), (b) a new upstream
subject with a new address (just-in-time provisioning, then consent), (c) a fresh local account whose
verified address is in a domain the connection is trusted for (linked automatically: one email),
(d) a linked user with TOTP (sent to /mfa). The logout rows sign a fresh browser in with a password
(argon2id outside the measurement) at a relying party that registered a back-channel URI, and
redeem its code (a grant of the session: what makes the sign-out enqueue). The delivery function
(chalicelib/blueprints/logout_delivery.deliver_logout, a Lambda fed by SQS) is invoked through
Chalice's handler as Lambda invokes it, its CPU timed around that handler: with a session message
(fan-out: the user's grants, then one message per relying party) and with a delivery message (a
logout token signed and POSTed to the relying party, which answers 200).
"""
from __future__ import annotations

import sys
from pathlib import Path

#: The connection id, and the domain it claims for home-realm discovery and is trusted for (a
#: verified address there links automatically).
CONNECTION = "bench"
DOMAIN = "acme.test"
PASSWORD = "plover xylophone meadow"
#: The relying party of the logout rows: its redirect (https: consent remembered after the first
#: time), its post-logout redirect.
RP_REDIRECT = "https://rp.example.com/cb"
RP_BYE = "https://rp.example.com/bye"

#: The connections cached for the whole table (see the module docstring); mail and account-action
#: limits as issue 12's table sets them.
ENV = {"REQUIRE_VERIFIED_EMAIL": "true", "CLIENT_CACHE_SECONDS": "86400", "ACCOUNT_ACTIONS_PER_IP": "1000000",
       "ACCOUNT_ACTIONS_PER_ADDRESS": "1000000", "EMAILS_PER_ADDRESS_PER_HOUR": "1000000"}


def start_upstream() -> str:
    """`serve()` in a child process; its URL (the upstream's issuer, and the relying party's host).
    The child ends when this process does (its stdin closes)."""
    import atexit
    import subprocess

    child = subprocess.Popen([sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    atexit.register(child.terminate)
    url = child.stdout.readline().strip()
    if not url.startswith("http://127.0.0.1:"):
        raise SystemExit(f"the bench upstream did not start: {url!r}")
    return url


def serve() -> None:
    """The child: FakeUpstream with a browser's visit to /authorize, a day's Cache-Control on the
    JWKS, and a relying party's back-channel logout URI; prints its URL, serves until stdin closes."""
    from urllib.parse import parse_qsl, urlencode, urlsplit

    from tests.fakes.upstream import FakeUpstream, _answer

    class BenchUpstream(FakeUpstream):
        def _serve(self, request, method):
            parts = urlsplit(request.path)
            if parts.path == "/authorize" and method == "GET":
                query = dict(parse_qsl(parts.query))
                sub, email = query.pop("bench_sub"), query.pop("bench_email")
                params = self.authorize("?" + urlencode(query), sub=sub, email=email)
                request.send_response(302)
                request.send_header("Location", f"{query['redirect_uri']}?{urlencode(params)}")
                request.send_header("Content-Length", "0")
                request.end_headers()
                return None
            if parts.path == "/jwks":
                import json

                import jwt

                jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.key.public_key()))
                return _answer(request, 200, {"keys": [{**jwk, "kid": self.jwks_kid, "use": "sig", "alg": "ES256"}]},
                               {"Cache-Control": "max-age=86400"})
            if parts.path == "/backchannel" and method == "POST":
                request.rfile.read(int(request.headers.get("Content-Length") or 0))
                request.send_response(200)
                request.send_header("Content-Length", "0")
                request.end_headers()
                return None
            return super()._serve(request, method)

    upstream = BenchUpstream()
    print(upstream.issuer, flush=True)
    sys.stdin.read()  # until the parent goes
    upstream.close()


def seed(scenario) -> None:
    """The upstream (a child process) and its connection, the relying party of the logout rows,
    FACTOR_KMS_KEY_ID's key and the SES sender (issue 13's seed), and the logout queue. Call after
    bench/scenario.seed(), with ENV in the environment. Sets scenario.federation_upstream and
    scenario.rp."""
    from chalicelib import logout_queue
    from chalicelib.config import settings
    from chalicelib.federation.connections import Connection, secret_name, store_secret, validate
    from chalicelib.oauth.clients import create_client
    from chalicelib.storage.connections import add_connection
    from tests.fakes.upstream import CLIENT_ID, CLIENT_SECRET

    from bench import second_factor

    second_factor.seed(scenario)  # clears the settings cache: ENV is read from here on
    s = settings()
    url = start_upstream()
    fields = validate(settings=s, preset="oidc", connection_id=CONNECTION, display_name="Acme SSO",
                      client_id=CLIENT_ID, issuer=url, domains=(DOMAIN,), trusted_email_domains=(DOMAIN,))
    connection = Connection(**fields, secret_name=secret_name(CONNECTION, s))
    assert add_connection(connection), "the bench connection exists already"
    store_secret(connection.secret_name, {"client_secret": CLIENT_SECRET}, stage=s.stage)
    logout_queue.ensure_queue(s)
    scenario.federation_upstream = url
    scenario.rp, _ = create_client(client_name="Bench RP", client_type="public", redirect_uris=[RP_REDIRECT],
                                   scopes=["openid", "email"], post_logout_redirect_uris=[RP_BYE],
                                   backchannel_logout_uri=f"{url}/backchannel")


def paths(http, scenario) -> dict:
    """label -> (make_input or None, request(input) -> response): the fourth table's rows."""
    import itertools
    import json
    from types import SimpleNamespace
    from urllib.parse import urlencode, urlsplit

    import pyotp

    from app import app
    from bench.scenario import SCOPE, WEB_APP
    from chalice.test import TestEventsClient
    from chalicelib import secret_box
    from chalicelib.oauth.backchannel_logout import DELIVER, SESSION, session_id
    from chalicelib.storage import factors, grants
    from chalicelib.storage.users import create_user
    from tests.routes.flow import Browser, authorize_query, hidden, query_of, redeem, sign_in_and_consent

    public, rp = scenario.public, scenario.rp
    authorize = "/authorize?" + authorize_query(public.client_id, scope=SCOPE, redirect_uri=WEB_APP)
    numbers = itertools.count()

    def expect(response, status: int, location: str | None = None):
        """The request did what the row says (measure() only checks the status class)."""
        assert response.status_code == status, (response.status_code, response.body[:300])
        if location is not None:
            assert response.headers["Location"].startswith(location), response.headers["Location"]
        return response

    def at_upstream(location: str, sub: str, email: str) -> str:
        """The browser at the upstream: signed in there as `sub`, sent back; our callback's path and query."""
        parts = urlsplit(location)
        connection = http_client(parts.hostname, parts.port)
        connection.request("GET", f"{parts.path}?{parts.query}&{urlencode({'bench_sub': sub, 'bench_email': email})}")
        answer = connection.getresponse()
        answer.read()
        connection.close()
        assert answer.status == 302, answer.status
        back = urlsplit(answer.getheader("Location"))
        return f"{back.path}?{back.query}"

    def back_from_upstream(sub: str, email: str):
        """A fresh browser back from the upstream with a code, and the callback it is to open."""
        visitor = Browser(http)
        location = expect(visitor.get(authorize + "&" + urlencode({"idp_hint": CONNECTION})), 303).headers["Location"]
        return visitor, at_upstream(location, sub, email)

    def finish_at_client(visitor, response) -> str:
        """Through consent (allow) to the app; the final Location."""
        location = expect(response, 302).headers["Location"]
        if location.startswith("/consent"):
            page = expect(visitor.get(location), 200)
            location = visitor.post("/consent", {"request_id": hidden(page.body, "request_id"),
                                                 "csrf_token": hidden(page.body, "csrf_token"),
                                                 "decision": "allow"}).headers["Location"]
        assert location.startswith(WEB_APP), location
        return location

    def fresh(kind: str) -> str:
        return f"{kind}-{next(numbers)}"

    def login_page():
        visitor = Browser(http)
        return visitor, expect(visitor.get(authorize), 302, "/login").headers["Location"]

    def hrd_form():
        visitor, location = login_page()
        page = expect(visitor.get(location), 200)
        return visitor, {"request_id": hidden(page.body, "request_id"), "csrf_token": hidden(page.body, "csrf_token"),
                         "username": f"{fresh('erin')}@{DOMAIN}", "password": ""}

    def button_form():
        visitor, location = login_page()
        page = expect(visitor.get(location), 200)
        assert b"Acme SSO" in page.body
        return visitor, {"request_id": hidden(page.body, "request_id"), "csrf_token": hidden(page.body, "csrf_token"),
                         "connection": CONNECTION}

    # A returning user: provisioned and consented once, now linked.
    visitor, back = back_from_upstream("returning-up", "returning@example.com")
    finish_at_client(visitor, visitor.get(back))

    # A linked user with TOTP: linked automatically first (an automatic link waits for a second
    # factor the user already has), then TOTP enrolled through storage as bench/second_factor.py does.
    totp_sub = create_user(f"totp@{DOMAIN}", PASSWORD, email_verified=True).pk
    visitor, back = back_from_upstream("totp-up", f"totp@{DOMAIN}")
    finish_at_client(visitor, visitor.get(back))
    assert factors.start_totp(totp_sub, secret_box.seal(pyotp.random_base32(), purpose="totp", subject=totp_sub),
                              started_by=None)
    assert factors.activate_totp(totp_sub, 1)

    def auto_link_input():
        number = next(numbers)
        create_user(f"link-{number}@{DOMAIN}", PASSWORD, email_verified=True)
        return back_from_upstream(f"link-up-{number}", f"link-{number}@{DOMAIN}")

    def jit_input():
        number = next(numbers)
        return back_from_upstream(f"jit-up-{number}", f"jit-{number}@example.com")

    # The logout rows: a fresh session of a password user at the relying party, with a grant.
    logout_user = "logout@example.com"
    create_user(logout_user, PASSWORD, email_verified=True)

    def signed_in_with_grant():
        visitor = Browser(http)
        location = sign_in_and_consent(visitor, rp.client_id, email=logout_user, password=PASSWORD,
                                       redirect_uri=RP_REDIRECT)
        response = redeem(http, rp.client_id, query_of(location)["code"], redirect_uri=RP_REDIRECT)
        assert response.status_code == 200, response.body
        return visitor, json.loads(response.body)["id_token"]

    def sign_out_form():
        visitor, _ = signed_in_with_grant()
        page = expect(visitor.get("/logout"), 200)
        return visitor, {"csrf_token": hidden(page.body, "csrf_token")}

    def end_session_request():
        visitor, id_token = signed_in_with_grant()
        return visitor, "/logout?" + urlencode({"id_token_hint": id_token, "post_logout_redirect_uri": RP_BYE,
                                                "state": "bench"})

    # The delivery function's messages: a session of a user of its own with one grant at the relying
    # party (the fan-out reads every grant of the user: one, throughout), and the delivery to it.
    fan_out_user = create_user("fan-out@example.com", PASSWORD, email_verified=True).pk
    visitor = Browser(http)
    code = query_of(sign_in_and_consent(visitor, rp.client_id, email="fan-out@example.com", password=PASSWORD,
                                        redirect_uri=RP_REDIRECT))["code"]
    assert redeem(http, rp.client_id, code, redirect_uri=RP_REDIRECT).status_code == 200
    [grant] = grants.for_logout(fan_out_user)
    session_message = {"kind": SESSION, "sub": fan_out_user, "sid": session_id(grant.session_hash),
                       "grant_ids": [grant.grant_id]}
    delivery_message = {"kind": DELIVER, "client_id": rp.client_id, "sub": fan_out_user,
                        "sid": session_id(grant.session_hash)}
    events = TestEventsClient(app)
    context = SimpleNamespace(function_name="deliver_logout", memory_limit_in_mb=256, aws_request_id="bench",
                              get_remaining_time_in_millis=lambda: 30_000)

    def deliver(message):
        """The Lambda function as SQS invokes it, with one message; it raises to have SQS retry."""
        def run(_):
            app.handler_map["deliver_logout"](events.generate_sqs_event([json.dumps(message)]), context)
            return SimpleNamespace(status_code=200, body=b"")
        return run

    def get(visitor_and_path):
        return visitor_and_path[0].get(visitor_and_path[1])

    def post(path, status, location=None):
        return lambda value: expect(value[0].post(path, value[1]), status, location)

    def callback(status, location):
        return lambda value: expect(get(value), status, location)

    upstream = scenario.federation_upstream
    return {
        "GET /login (with a connection's button)": (login_page, lambda value: expect(get(value), 200)),
        "POST /federation/start (the button)": (button_form, post("/federation/start", 303, upstream)),
        "GET /federation/callback (returning linked user)": (
            lambda: back_from_upstream("returning-up", "returning@example.com"), callback(302, WEB_APP)),
        "GET /federation/callback (just-in-time account)": (jit_input, callback(302, "/consent")),
        "GET /federation/callback (automatic link)": (auto_link_input, callback(302, "/consent")),
        "GET /federation/callback (linked user with TOTP)": (
            lambda: back_from_upstream("totp-up", f"totp@{DOMAIN}"), callback(302, "/mfa")),
        "POST /login (home-realm address: to the upstream)": (hrd_form, post("/login", 303, upstream)),
        "GET /authorize (idp_hint: to the upstream)": (
            lambda: Browser(http),
            lambda visitor: expect(visitor.get(authorize + "&" + urlencode({"idp_hint": CONNECTION})), 303,
                                   upstream)),
        "POST /logout (session with a grant)": (sign_out_form, post("/logout", 200)),
        "GET /logout (id_token_hint of this session)": (end_session_request,
                                                         lambda value: expect(get(value), 302, RP_BYE)),
        "deliver_logout (session message: fan-out)": (None, deliver(session_message)),
        "deliver_logout (delivery: logout token POST)": (None, deliver(delivery_message)),
    }


def http_client(host: str, port: int):
    import http.client

    return http.client.HTTPConnection(host, port, timeout=5)


if __name__ == "__main__" and sys.argv[1:] == ["--serve"]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    serve()
