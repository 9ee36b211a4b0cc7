"""Back-channel logout end to end (OpenID Connect Back-Channel Logout 1.0) on the moto server's SQS:
a sign-out puts one message on the queue; the delivery handler (as the local poller runs it,
tools/logout_poller.py, with the same function as the Lambda) fans it out to one message per
relying party and POSTs each a logout token; two loopback relying parties verify the tokens with
PyJWT against our JWKS. One of them fails twice: it is retried (its message comes back) while the
other got its token on the first pass and is never sent it again."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import jwt
import pytest

from tests.routes.flow import Browser, hidden, query_of, redeem, sign_in_and_consent

EVENT = "http://schemas.openid.net/event/backchannel-logout"


class RelyingParty:
    """A loopback HTTP server taking logout tokens at /bc; answers 500 to the first `fail_first` posts."""

    def __init__(self, fail_first: int = 0):
        self.tokens: list[str] = []
        self.attempts = 0
        self.fail_first = fail_first
        party = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                party.attempts += 1
                ok = party.attempts > party.fail_first
                if ok:
                    assert self.headers["Content-Type"] == "application/x-www-form-urlencoded"
                    party.tokens.append(parse_qs(body)["logout_token"][0])
                self.send_response(200 if ok else 500)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}/bc"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stack(aws_server):
    """The app over chalice.test.Client, its AWS calls going to the moto server; a logout queue whose
    messages come back at once when not deleted (visibility timeout 0), so a retry needs no waiting."""
    from chalice.test import Client

    from app import app
    from chalicelib import logout_queue
    from chalicelib.config import settings
    from chalicelib.keys import keyring

    keyring.ensure_keys()
    logout_queue.ensure_queue(settings(), visibility_timeout=0)
    with Client(app, stage_name="local") as client:
        yield client.http


@pytest.fixture
def parties():
    made = [RelyingParty(), RelyingParty(fail_first=2)]
    yield made
    for party in made:
        party.close()


def client_for(party: RelyingParty, name: str):
    from chalicelib.oauth.clients import create_client

    client, _ = create_client(client_name=name, client_type="public", redirect_uris=["http://127.0.0.1:5000/cb"],
                              scopes=["openid", "email"], backchannel_logout_uri=party.uri)
    return client


def poll_until_quiet(passes: int = 10) -> list[tuple[int, int]]:
    """Run the poller until a pass finds nothing; each pass's (handled, failed)."""
    from chalicelib.config import settings
    from tools.logout_poller import poll_once

    results = []
    for _ in range(passes):
        handled, failed = poll_once(settings(), wait_seconds=0)
        results.append((handled, failed))
        if handled == failed == 0:
            break
    return results


def verify(token: str, client_id: str) -> dict:
    """As a relying party does (§2.6): signature with our JWKS, typ, iss, aud, iat/exp, events, no nonce."""
    from chalicelib.keys import keyring

    header = jwt.get_unverified_header(token)
    assert header["typ"] == "logout+jwt"
    key = next(k for k in keyring.cached_jwks(refresh=True)["keys"] if k["kid"] == header["kid"])
    claims = jwt.decode(token, jwt.PyJWK(key).key, algorithms=[key["alg"]], audience=client_id,
                        issuer="http://localhost:8000", options={"require": ["iat", "exp", "jti", "events"]})
    assert claims["events"] == {EVENT: {}} and "nonce" not in claims and claims["exp"] - claims["iat"] == 120
    return claims


def test_a_sign_out_reaches_every_relying_party_and_a_failing_one_is_retried_alone(stack, parties, alice_on_server):
    from chalicelib import logout_queue
    from chalicelib.config import settings

    steady, flaky = parties
    clients = [client_for(steady, "Steady"), client_for(flaky, "Flaky")]
    browser = Browser(stack)
    sids = []
    for client in clients:
        code = query_of(sign_in_and_consent(browser, client.client_id))["code"]
        id_token = json.loads(redeem(stack, client.client_id, code).body)["id_token"]
        sids.append(jwt.decode(id_token, options={"verify_signature": False})["sid"])
    assert sids[0] == sids[1]  # one browser session, two apps

    page = browser.get("/logout")
    assert browser.post("/logout", {"csrf_token": hidden(page.body, "csrf_token")}).status_code == 200
    assert steady.attempts == flaky.attempts == 0  # the request path sent nothing: it only enqueued
    [(_, queued)] = logout_queue.receive(settings(), wait_seconds=0)  # exactly one message, put back at once
    assert queued["kind"] == "session" and len(queued["grant_ids"]) == 2

    passes = poll_until_quiet()
    # The fan-out, then the steady party's delivery on its first try and the flaky party's after two failures.
    assert sum(failed for _, failed in passes) == 2 and sum(handled for handled, _ in passes) == 3
    assert steady.attempts == 1 and flaky.attempts == 3
    for party, client in zip(parties, clients):
        [token] = party.tokens
        claims = verify(token, client.client_id)
        assert claims["sid"] == sids[0] and claims["sub"] == alice_on_server.pk


def test_signing_out_everywhere_tells_each_party_the_subject_alone(stack, parties, alice_on_server):
    from chalicelib.accounts.account import sign_out_everywhere

    steady, flaky = parties
    flaky.fail_first = 0
    clients = [client_for(steady, "Steady"), client_for(flaky, "Flaky")]
    for client in clients:  # two browsers: two sessions
        code = query_of(sign_in_and_consent(Browser(stack), client.client_id))["code"]
        assert redeem(stack, client.client_id, code).status_code == 200
    sign_out_everywhere(alice_on_server.pk)
    poll_until_quiet()
    for party, client in zip(parties, clients):
        [token] = party.tokens
        claims = verify(token, client.client_id)
        assert claims["sub"] == alice_on_server.pk and "sid" not in claims


@pytest.fixture
def alice_on_server(aws_server):
    from chalicelib.storage.users import create_user

    return create_user("alice@example.com", "correct horse battery", name="Alice Liddell")
