"""32 concurrent redemptions of one authorization code: exactly one succeeds.

Both servers of `make run` handle requests concurrently: chalice local's LocalDevServer is a
ThreadingMixIn HTTPServer (a thread per connection) and the moto server is werkzeug with
threaded=True. So the HTTP test really races 32 POST /token requests through the running stack,
each ending in its own conditional UpdateItem. The second test races `consume()` itself from 32
threads of this process against the same moto server, without the HTTP layer in between, so the
UpdateItems arrive as close together as they can.

Each test proves the race reached DynamoDB: the stack's moto server records every request it serves
(its recorder file under the state dir), and both count 32 UpdateItem calls for the code.

Stock moto checks a condition and applies the write without a lock in between, so two racers could
both win (about 2% of races); `make run` therefore serves moto through tools/moto_server.py, which
makes each DynamoDB action atomic as DynamoDB's own conditional writes are.
"""
from __future__ import annotations

import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import pytest
import requests

from tests.integration.hosted_flow import REDIRECT_URI, TIMEOUT, HostedPages, new_client, new_user, query_of
from tests.integration.moto_recording import update_items

pytestmark = pytest.mark.integration

RACERS = 32
RACE_TIMEOUT = 30


def race(fn, n: int = RACERS) -> list:
    """Run fn(i) in n threads released together by a barrier; results in order, bounded in time."""
    barrier = threading.Barrier(n)

    def run(i):
        barrier.wait(timeout=RACE_TIMEOUT)
        return fn(i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        futures = [pool.submit(run, i) for i in range(n)]
        return [future.result(timeout=RACE_TIMEOUT) for future in futures]


class SignedIn:
    """A user signed in to a public client on the stack, consent given: each code() is one
    GET /authorize answered straight away with a fresh code (the first one signs in and consents)."""

    def __init__(self, stack, scope: str = "openid email", grant_types=("authorization_code",)):
        from chalicelib.oauth import pkce

        client, _ = new_client("public", scopes=scope.split(), grant_types=grant_types)
        _, self.email = new_user()
        self.client_id = client.client_id
        self.verifier = secrets.token_urlsafe(48)
        self.pages = HostedPages(stack.base_url)
        self.query = urlencode({"response_type": "code", "client_id": self.client_id, "redirect_uri": REDIRECT_URI,
                                "scope": scope, "state": "s", "code_challenge": pkce.s256(self.verifier),
                                "code_challenge_method": "S256"})

    def code(self) -> str:
        location = self.pages.authorize(f"/authorize?{self.query}", self.email)
        assert location.startswith(REDIRECT_URI + "?"), location
        return query_of(location)["code"]

    def token_request(self, code: str) -> str:
        return urlencode({"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
                          "code_verifier": self.verifier, "client_id": self.client_id})


def update_items_for_code(stack, code: str) -> int:
    """How many UpdateItem requests on this code's item the stack's moto server has served."""
    from chalicelib.hashing import sha256_hex
    from chalicelib.storage.models import AuthorizationCodeModel

    return update_items(stack, AuthorizationCodeModel.Meta.table_name, {"code_hash": {"S": sha256_hex(code)}})


def grant_of(code: str):
    from chalicelib.hashing import sha256_hex
    from chalicelib.storage.models import AuthorizationCodeModel, GrantModel

    record = AuthorizationCodeModel.get(sha256_hex(code), consistent_read=True)
    return GrantModel.get(record.sub, record.grant_id, consistent_read=True)


def test_32_concurrent_token_requests_for_one_code_over_http_exactly_one_succeeds(idp, use_stack):
    use_stack(idp)
    user = SignedIn(idp)
    # Warm the server's paths first (a redemption and a replay of another code), so the racing
    # requests are not spread out by the server building its DynamoDB clients on first use.
    warm_up = user.token_request(user.code())
    assert post_token(requests, idp, warm_up)[0] == 200
    assert post_token(requests, idp, warm_up) == (400, "invalid_grant")

    # One kept-alive connection per racer, opened beforehand: chalice local's listen backlog is
    # socketserver's default of 5, and a burst of 32 connects overflows it (connections reset).
    # Each connection has its own handler thread in the server, so the 32 requests run in parallel.
    sessions = [requests.Session() for _ in range(RACERS)]
    for session in sessions:
        assert session.get(f"{idp.base_url}/jwks", timeout=TIMEOUT).status_code == 200
    code = user.code()
    body = user.token_request(code)

    results = race(lambda i: post_token(sessions[i], idp, body, full=True))

    successes = [payload for status, payload in results if status == 200]
    failures = [(status, payload.get("error")) for status, payload in results if status != 200]
    assert len(successes) == 1, results
    assert failures == [(400, "invalid_grant")] * (RACERS - 1), failures
    assert update_items_for_code(idp, code) == RACERS, "every request raced the conditional write"

    # A replay revokes the grant, and with it the winner's tokens.
    assert grant_of(code).status == "revoked"
    userinfo = requests.get(f"{idp.base_url}/userinfo", timeout=TIMEOUT,
                            headers={"Authorization": f"Bearer {successes[0]['access_token']}"})
    assert userinfo.status_code == 401, userinfo.text
    assert userinfo.json()["error"] == "invalid_token"
    assert 'error="invalid_token"' in userinfo.headers["WWW-Authenticate"]
    for session in sessions:
        session.close()


def post_token(http, stack, body: str, full: bool = False):
    response = http.post(f"{stack.base_url}/token", data=body, timeout=RACE_TIMEOUT,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    payload = response.json()
    return (response.status_code, payload) if full else (response.status_code, payload.get("error"))


def test_32_threads_consuming_one_code_against_the_moto_server_exactly_one_wins(idp, use_stack):
    from chalicelib.errors import InvalidGrant
    from chalicelib.grants.authorization_code import _refused
    from chalicelib.log import now
    from chalicelib.storage import codes
    from chalicelib.storage.models import AuthorizationCodeModel, GrantModel

    use_stack(idp)
    user = SignedIn(idp)
    code = user.code()

    def attempt(_):
        outcome = codes.consume(code, user.client_id, now())
        if isinstance(outcome, codes.Refused):
            try:
                _refused(outcome)  # what the token endpoint does with a refusal: a replay revokes
            except InvalidGrant as exc:
                return exc.error
        return "consumed"

    # Build the pynamodb connections and botocore clients before the race, so the threads race the
    # write itself rather than client construction. They are shared, as in a Lambda container:
    # botocore clients are thread-safe and each call still sends its own HTTP request (counted
    # below from the moto server's own record).
    for model in (AuthorizationCodeModel, GrantModel):
        model._get_connection().connection.client  # noqa: B018
    outcomes = race(attempt)

    assert sorted(outcomes) == ["consumed"] + ["invalid_grant"] * (RACERS - 1), outcomes
    assert update_items_for_code(idp, code) == RACERS, "every thread sent its own conditional write"
    assert grant_of(code).status == "revoked", "the losers' replays revoked the grant"


# Refresh tokens (RFC 6749 §6): the family must end up intact or revoked, never forked ------------

def refresh_body(user: SignedIn, token: str) -> str:
    return urlencode({"grant_type": "refresh_token", "refresh_token": token, "client_id": user.client_id})


def grant_of_token(token: str):
    """The grant item (the family's state) a refresh token names."""
    from chalicelib.oauth.refresh_tokens import parse
    from chalicelib.storage.models import GrantModel

    sub, grant_id, _ = parse(token)
    return GrantModel.get(sub, grant_id, consistent_read=True)


def test_32_concurrent_refreshes_over_http_one_winner_and_the_family_revoked(idp, use_stack):
    """REFRESH_GRACE_SECONDS=0 (the stack's default): one request rotates; the 31 others present a
    consumed token, which is reuse, so the family is revoked, winner's successor included."""
    use_stack(idp)
    user = SignedIn(idp, scope="notes offline_access", grant_types=("authorization_code", "refresh_token"))
    sessions = [requests.Session() for _ in range(RACERS)]
    for session in sessions:
        assert session.get(f"{idp.base_url}/jwks", timeout=TIMEOUT).status_code == 200
    first = post_token(requests, idp, user.token_request(user.code()), full=True)[1]
    token = first["refresh_token"]
    assert post_token(requests, idp, refresh_body(user, post_token(
        requests, idp, user.token_request(user.code()), full=True)[1]["refresh_token"]))[0] == 200  # warm-up

    results = race(lambda i: post_token(sessions[i], idp, refresh_body(user, token), full=True))

    winners = [payload for status, payload in results if status == 200]
    assert len(winners) == 1, results
    assert sorted(payload["error"] for status, payload in results if status != 200) == \
        ["invalid_grant"] * (RACERS - 1)
    from chalicelib.hashing import sha256_hex

    grant = grant_of_token(token)
    assert grant.status == "revoked"
    assert (grant.previous_hash, grant.token_hash) == (sha256_hex(token), sha256_hex(winners[0]["refresh_token"])), \
        "the presented token was rotated exactly once, into the winner's successor: no fork"
    assert post_token(requests, idp, refresh_body(user, winners[0]["refresh_token"]))[1] == "invalid_grant"
    for session in sessions:
        session.close()


def test_32_concurrent_refreshes_within_the_grace_window_all_get_the_same_successor(idp, use_stack, monkeypatch):
    """With a grace window, racers that lose get the winner's successor: the family stays intact
    with exactly one successor. Raced in-process against the stack's moto server over HTTP."""
    from chalicelib.config import settings
    from chalicelib.errors import InvalidGrant
    from chalicelib.oauth import refresh_tokens
    from chalicelib.hashing import sha256_hex
    from chalicelib.storage.models import GrantModel

    use_stack(idp)
    monkeypatch.setenv("REFRESH_GRACE_SECONDS", "30")
    settings.cache_clear()
    user = SignedIn(idp, scope="notes offline_access", grant_types=("authorization_code", "refresh_token"))
    token = post_token(requests, idp, user.token_request(user.code()), full=True)[1]["refresh_token"]
    for model in (GrantModel,):
        model._get_connection().connection.client  # noqa: B018 - build clients before the race

    def attempt(_):
        try:
            return refresh_tokens.rotate(settings(), token, user.client_id)[1]
        except InvalidGrant as exc:
            return exc.error

    successors = race(attempt)

    assert len(set(successors)) == 1 and successors[0] != "invalid_grant", successors
    grant = grant_of_token(token)
    assert grant.status == "active"
    assert (grant.previous_hash, grant.token_hash) == (sha256_hex(token), sha256_hex(successors[0])), \
        "rotated once: one live successor"
