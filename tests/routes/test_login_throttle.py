"""Sign-in throttling, attacked through POST /login: nobody (not even someone sharing the owner's
address) can lock an owner out of a device they have signed in from before, signing the owner out
everywhere forgets their devices, and no failure costs (in DynamoDB calls or argon2id evaluations)
something that tells whether the account exists."""
from __future__ import annotations

import pytest

from chalicelib.hashing import new_secret, sha256_hex
from tests.routes.flow import Browser, authorize_query, hidden, sign_in_and_consent

PASSWORD = "correct horse battery"
MALLORY = "mallory's own password"
WINDOW = 900
#: Frozen sign-in clock: 300 s into a throttle window, so Retry-After is exactly 600.
FROZEN = 2_000_000 * WINDOW + 300
TOO_MANY_FOR_ACCOUNT = (b"Too many attempts for this account. Signing in from a device you have used before still "
                        b"works; otherwise wait a few minutes and try again.")
TOO_MANY_FROM_IP = b"Too many attempts. Wait a few minutes and try again."


@pytest.fixture(autouse=True)
def frozen_sign_in_clock(monkeypatch):
    """The throttle's windows never roll over mid-test."""
    from chalicelib.oauth import login

    monkeypatch.setattr(login, "now", lambda: FROZEN)


def login_form(browser: Browser, client_id: str, email: str) -> dict:
    """Open the sign-in page (prompt=login, so a signed-in browser gets it too)."""
    location = browser.get("/authorize?" + authorize_query(client_id, prompt="login")).headers["Location"]
    page = browser.get(location)
    return {"request_id": hidden(page.body, "request_id"), "csrf_token": hidden(page.body, "csrf_token"),
            "username": email}


def sign_in(browser: Browser, client_id: str, email: str = "alice@example.com", password: str = PASSWORD):
    return browser.post("/login", {**login_form(browser, client_id, email), "password": password})


def lock_out(http, client_id: str, email: str = "alice@example.com") -> None:
    """The attack: N+1 wrong guesses from the attacker's own browser."""
    from chalicelib.config import settings

    attacker = Browser(http)
    form = login_form(attacker, client_id, email)
    limit = settings().login_max_failures_per_account
    assert [attacker.post("/login", {**form, "password": f"guess {i}"}).status_code for i in range(limit + 1)] == \
        [401] * limit + [429]


def known_device(http, client_id: str, email: str = "alice@example.com", password: str = PASSWORD) -> Browser:
    """A browser that has signed in as `email` before."""
    browser = Browser(http)
    sign_in_and_consent(browser, client_id, email=email, password=password)
    assert "idp_device" in browser.cookies
    return browser


def assert_refused(response, message: bytes = TOO_MANY_FOR_ACCOUNT) -> None:
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "600", "the seconds left in the window"
    assert message in response.body


def test_a_known_device_signs_in_while_the_account_is_under_attack(http, public_client, alice):
    owner = known_device(http, public_client.client_id)
    lock_out(http, public_client.client_id)
    response = sign_in(owner, public_client.client_id)
    assert response.status_code == 302 and response.headers["Location"].startswith("/consent")


def test_a_new_browser_is_refused_with_retry_after_while_the_account_is_under_attack(http, public_client, alice):
    lock_out(http, public_client.client_id)
    assert_refused(sign_in(Browser(http), public_client.client_id))


def test_another_users_known_device_does_not_unlock_the_account(http, public_client, alice):
    from chalicelib.storage.users import create_user

    create_user("mallory@example.com", MALLORY)
    mallory = known_device(http, public_client.client_id, "mallory@example.com", MALLORY)
    lock_out(http, public_client.client_id)
    assert_refused(sign_in(mallory, public_client.client_id))


@pytest.mark.parametrize("forge", ["random", "stored hash", "overlong"])
def test_a_forged_device_cookie_does_not_unlock_the_account(http, public_client, alice, forge):
    owner = known_device(http, public_client.client_id)
    lock_out(http, public_client.client_id)
    stolen_hash = sha256_hex(owner.cookies["idp_device"])  # what the table holds, read from a backup say
    forged = {"random": new_secret(), "stored hash": stolen_hash, "overlong": owner.cookies["idp_device"] * 3}[forge]
    attacker = Browser(http, cookies={"idp_device": forged})
    assert_refused(sign_in(attacker, public_client.client_id))


def test_an_expired_known_device_does_not_unlock_the_account(http, public_client, alice, monkeypatch):
    """DynamoDB's TTL deletes late (moto never): the expiry is checked when the record is read."""
    from chalicelib.config import settings
    from chalicelib.log import now as real_now
    from chalicelib.storage import devices

    owner = known_device(http, public_client.client_id)
    lock_out(http, public_client.client_id)
    monkeypatch.setattr(devices, "now", lambda: real_now() + settings().known_device_ttl + 1)
    assert_refused(sign_in(owner, public_client.client_id))


def sign_out_everywhere_with_the_cli(user) -> None:
    import os

    from tools import admin

    assert admin.main(["users", "signout", user.email], environ=dict(os.environ)) == 0


def disable_and_re_enable(user) -> None:
    from chalicelib.storage.users import set_user_disabled

    assert set_user_disabled(user.pk, True) and set_user_disabled(user.pk, False)


@pytest.mark.parametrize("end_sessions", [sign_out_everywhere_with_the_cli, disable_and_re_enable],
                         ids=["users signout", "disable then re-enable"])
def test_signing_a_user_out_everywhere_forgets_their_known_devices(http, public_client, alice, end_sessions):
    """The device may be the very reason for the sign-out (a stolen laptop): its cookie must not
    keep getting past the account limit. Signing in again from it is what makes it known again,
    and over the limit that is refused like any new browser's: the owner waits for the window."""
    owner = known_device(http, public_client.client_id)
    end_sessions(alice)
    lock_out(http, public_client.client_id)
    assert_refused(sign_in(owner, public_client.client_id))


def test_a_device_that_signs_in_again_after_a_sign_out_everywhere_is_known_again(http, public_client, alice):
    from chalicelib.storage.users import end_all_sessions

    owner = known_device(http, public_client.client_id)
    end_all_sessions(alice.pk)
    assert sign_in(owner, public_client.client_id).status_code == 302, "under the limit: a fresh sign-in"
    lock_out(http, public_client.client_id)
    assert sign_in(owner, public_client.client_id).headers["Location"].startswith("/consent")


def test_a_known_device_still_needs_the_password_and_its_guesses_count(http, public_client, alice):
    from chalicelib.oauth import throttle

    owner = known_device(http, public_client.client_id)
    lock_out(http, public_client.client_id)
    key = throttle.window_key("account", sha256_hex("alice@example.com"), WINDOW, FROZEN)
    before = throttle.count(key)
    wrong = sign_in(owner, public_client.client_id, password="not the password")
    assert wrong.status_code == 401 and b"Incorrect email or password." in wrong.body
    assert throttle.count(key) == before + 1


def use_up_the_per_ip_limit(http, client_id: str, monkeypatch, limit: int = 3) -> None:
    """The attack from behind a shared address (NAT, carrier-grade NAT, a company's egress): wrong
    guesses at other accounts until the address is over its limit. Chalice's test client sends
    every request from one address."""
    from chalicelib.config import settings

    monkeypatch.setenv("LOGIN_MAX_FAILURES_PER_IP", str(limit))
    settings.cache_clear()
    attacker = Browser(http)
    for i in range(limit):
        form = login_form(attacker, client_id, f"user{i}@example.com")
        assert attacker.post("/login", {**form, "password": "wrong password"}).status_code == 401


def test_an_attacker_sharing_the_owners_address_does_not_lock_out_the_owners_known_device(http, public_client,
                                                                                          alice, monkeypatch):
    """Before, the per-IP limit refused even a known device: one attacker behind a NAT locked out
    everyone behind it. Now the owner's device gets past it; a new browser there still does not."""
    owner = known_device(http, public_client.client_id)
    use_up_the_per_ip_limit(http, public_client.client_id, monkeypatch)
    assert sign_in(owner, public_client.client_id).headers["Location"].startswith("/consent")
    assert_refused(sign_in(Browser(http), public_client.client_id), TOO_MANY_FROM_IP)


def test_a_known_device_of_another_account_does_not_get_past_the_per_ip_limit(http, public_client, alice,
                                                                              monkeypatch):
    from chalicelib.storage.users import create_user

    create_user("mallory@example.com", MALLORY)
    mallory = known_device(http, public_client.client_id, "mallory@example.com", MALLORY)
    use_up_the_per_ip_limit(http, public_client.client_id, monkeypatch)
    assert_refused(sign_in(mallory, public_client.client_id), TOO_MANY_FROM_IP)


@pytest.mark.parametrize("over", ["account limit", "per-IP limit"])
def test_a_known_device_past_a_limit_has_its_own_hard_limit(http, public_client, alice, monkeypatch, over):
    """A stolen device cookie buys LOGIN_MAX_FAILURES_PER_DEVICE guesses per window, then not even
    the right password gets through."""
    from chalicelib.config import settings

    owner = known_device(http, public_client.client_id)
    if over == "account limit":
        lock_out(http, public_client.client_id)
    else:
        use_up_the_per_ip_limit(http, public_client.client_id, monkeypatch)
    monkeypatch.setenv("LOGIN_MAX_FAILURES_PER_DEVICE", "2")
    settings.cache_clear()
    assert [sign_in(owner, public_client.client_id, password=f"guess {i}").status_code for i in range(2)] == [401] * 2
    assert_refused(sign_in(owner, public_client.client_id), TOO_MANY_FROM_IP)


def test_sign_in_sets_a_long_lived_device_cookie_stored_only_as_its_hash(http, public_client, alice):
    from chalicelib.aws import client
    from chalicelib.storage.models import KnownDeviceModel

    browser = Browser(http)
    response = sign_in(browser, public_client.client_id)
    assert response.status_code == 302
    header = next(c for c in response.headers["Set-Cookie"] if c.startswith("idp_device="))
    raw = browser.cookies["idp_device"]
    assert header == f"idp_device={raw}; Path=/; HttpOnly; SameSite=Strict; Max-Age=7776000"
    assert len(raw) >= 43, "256 bits"
    items = client("dynamodb").scan(TableName=KnownDeviceModel.Meta.table_name, ConsistentRead=True)["Items"]
    device = next(i for i in items if i["session_hash"]["S"].startswith("device#"))
    assert device["session_hash"]["S"] == "device#" + sha256_hex(raw) and device["sub"]["S"] == alice.pk
    assert raw not in repr(items)


def test_the_device_cookie_is_host_prefixed_and_secure_on_https():
    from chalicelib.config import load_settings
    from chalicelib.oauth.login import device_cookie_header

    s = load_settings({"STAGE": "prod", "ISSUER": "https://login.example.com"})
    assert device_cookie_header(s, "v") == "__Host-idp_device=v; Path=/; HttpOnly; SameSite=Strict; Max-Age=7776000; Secure"


# What a failure costs -----------------------------------------------------------------------------

@pytest.fixture
def dynamodb_calls(aws):
    """Every DynamoDB call, as (operation, table), through a botocore hook (as bench/dynamodb_calls.py):
    one entry per key a BatchGetItem reads and per item a TransactWriteItems writes."""
    from chalicelib.storage.models import ALL_MODELS, _transaction_connection

    calls: list[tuple[str, str | None]] = []

    def record(params, model, **_kwargs):
        if model.name == "BatchGetItem":
            calls.extend((model.name, table) for table, read in params["RequestItems"].items() for _ in read["Keys"])
        elif model.name == "TransactWriteItems":
            calls.extend((model.name, next(iter(item.values()))["TableName"]) for item in params["TransactItems"])
        else:
            calls.append((model.name, params.get("TableName")))

    clients = {id(c): c for c in [m._get_connection().connection.client for m in ALL_MODELS]
               + [_transaction_connection().client]}
    for c in clients.values():
        c.meta.events.register("before-parameter-build.dynamodb", record, unique_id="test-login-cost")
    yield calls
    for c in clients.values():
        c.meta.events.unregister("before-parameter-build.dynamodb", unique_id="test-login-cost")


def cost(calls, evaluations, send):
    calls.clear()
    evaluations.clear()
    response = send()
    return response, list(calls), len(evaluations)


@pytest.mark.parametrize("email, password", [
    pytest.param("nobody@example.com", "wrong password", id="unknown email"),
    pytest.param("bob@example.com", "bob's right password", id="disabled user, right password"),
    pytest.param("", "wrong password", id="empty email"),
    pytest.param("not an email", "wrong password", id="not an email"),
    pytest.param("a" * 300 + "@example.com", "wrong password", id="overlong email"),
])
def test_every_failed_sign_in_costs_what_a_wrong_password_costs(browser, public_client, alice, dynamodb_calls,
                                                                 argon2_evaluations, email, password):
    from chalicelib.storage.users import create_user, set_user_disabled

    set_user_disabled(create_user("bob@example.com", "bob's right password").pk, True)
    form = login_form(browser, public_client.client_id, "alice@example.com")
    browser.post("/login", {**form, "password": "warm the caches"})
    wrong, baseline, baseline_argon2 = cost(dynamodb_calls, argon2_evaluations,
                                            lambda: browser.post("/login", {**form, "password": "wrong password"}))
    other, calls, argon2 = cost(dynamodb_calls, argon2_evaluations, lambda: browser.post(
        "/login", {**form, "username": email, "password": password}))
    assert wrong.status_code == other.status_code == 401
    assert b"Incorrect email or password." in other.body
    assert calls == baseline and ("GetItem", "idp-test-users") in calls
    assert argon2 == baseline_argon2 == 1


def test_a_refusal_costs_the_same_whether_or_not_the_account_exists(http, public_client, alice, dynamodb_calls):
    """Over the limit, a device cookie of another account leads to a lookup of the typed account:
    it costs the same for an account that does not exist."""
    from chalicelib.storage.users import create_user

    create_user("mallory@example.com", MALLORY)
    mallory = known_device(http, public_client.client_id, "mallory@example.com", MALLORY)
    lock_out(http, public_client.client_id, "alice@example.com")
    lock_out(http, public_client.client_id, "nobody@example.com")
    costs = {}
    for email in ("alice@example.com", "nobody@example.com", "alice@example.com"):  # the first one warms
        form = login_form(mallory, public_client.client_id, email)
        response, costs[email], _ = cost(dynamodb_calls, [], lambda: mallory.post("/login", {**form,
                                                                                           "password": PASSWORD}))
        assert_refused(response)
    assert costs["alice@example.com"] == costs["nobody@example.com"]
    assert costs["alice@example.com"].count(("BatchGetItem", "idp-test-users")) == 2, "the email claim and the user"


def test_a_device_cookie_costs_nothing_while_the_account_is_under_its_limit(http, public_client, alice,
                                                                             dynamodb_calls):
    """The device record is read only when the account is over its limit."""
    owner, stranger = known_device(http, public_client.client_id), Browser(http)
    costs = []
    for browser in (owner, stranger, owner):  # the first one warms
        form = login_form(browser, public_client.client_id, "alice@example.com")
        response, calls, _ = cost(dynamodb_calls, [], lambda: browser.post("/login", {**form, "password": "wrong"}))
        assert response.status_code == 401
        costs.append(calls)
    assert costs[1] == costs[2]


@pytest.mark.parametrize("setting, addresses", [
    # One subscriber holds a whole /64: a new address per guess must not reset the IP limit.
    ("LOGIN_MAX_FAILURES_PER_IP", "2001:db8:aa:bb::{:x}"),
    # A subscriber is often handed a /48: 65,536 /64s, each with its own per-IP budget.
    ("LOGIN_MAX_FAILURES_PER_NETWORK", "2001:db8:aa:{:x}::1"),
], ids=["per-64", "per-48"])
def test_an_ipv6_attacker_rotating_addresses_within_their_prefix_is_counted_as_one(
        browser, public_client, alice, monkeypatch, setting, addresses):
    from chalicelib.blueprints import authorize
    from chalicelib.config import settings

    monkeypatch.setenv(setting, "3")
    settings.cache_clear()
    rotating = iter(addresses.format(i) for i in range(1, 100))
    monkeypatch.setattr(authorize, "client_ip", lambda request: next(rotating))
    form = login_form(browser, public_client.client_id, "alice@example.com")
    for i in range(3):
        form["username"] = f"user{i}@example.com"
        assert browser.post("/login", {**form, "password": "wrong password"}).status_code == 401
    assert_refused(browser.post("/login", {**form, "username": "alice@example.com", "password": PASSWORD}),
                   TOO_MANY_FROM_IP)


@pytest.mark.parametrize("ip, counters", [("203.0.113.9", 2), ("::ffff:203.0.113.9", 2), ("2001:db8:aa:bb::1", 3)])
def test_only_ipv6_clients_pay_for_the_per_network_counter(browser, public_client, alice, dynamodb_calls,
                                                           monkeypatch, ip, counters):
    from chalicelib.blueprints import authorize
    from chalicelib.storage.models import ThrottleModel

    monkeypatch.setattr(authorize, "client_ip", lambda request: ip)
    form = login_form(browser, public_client.client_id, "alice@example.com")
    response, calls, _ = cost(dynamodb_calls, [], lambda: browser.post("/login", {**form, "password": "wrong"}))
    assert response.status_code == 401
    assert calls.count(("TransactWriteItems", ThrottleModel.Meta.table_name)) == counters


@pytest.mark.parametrize("ip, counted_as", [
    ("203.0.113.9", "203.0.113.9"),
    ("2001:db8:aa:bb:1:2:3:4", "2001:db8:aa:bb::/64"),
    ("2001:DB8:AA:BB::1", "2001:db8:aa:bb::/64"),
    ("::ffff:203.0.113.9", "203.0.113.9"),
    ("unknown", "unknown"),
])
def test_ip_limits_count_ipv4_addresses_and_ipv6_64s(ip, counted_as):
    from chalicelib.oauth.throttle import address_key

    assert address_key(ip) == counted_as


@pytest.mark.parametrize("ip, counted_as", [
    ("2001:db8:aa:bb:1:2:3:4", "2001:db8:aa::/48"),
    ("203.0.113.9", "203.0.113.9"),
    ("::ffff:203.0.113.9", "203.0.113.9"),
])
def test_the_network_tier_counts_an_ipv6_48_and_leaves_ipv4_alone(ip, counted_as):
    from chalicelib.oauth.throttle import address_key

    assert address_key(ip, 48) == counted_as


# What is counted ----------------------------------------------------------------------------------

def counters(email: str = "alice@example.com", ip: str = "127.0.0.1") -> tuple[int, int]:
    """(account counter, address counter) of this window. Chalice's test client sends from 127.0.0.1."""
    from chalicelib.oauth import throttle

    return (throttle.count(throttle.window_key("account", sha256_hex(email), WINDOW, FROZEN)),
            throttle.count(throttle.window_key("ip", ip, WINDOW, FROZEN)))


def test_an_attempt_over_a_limit_is_refused_without_a_password_check_and_counts_nowhere(
        http, public_client, alice, argon2_evaluations):
    """The right password from a new browser, with the account over its limit: refused before any
    argon2id evaluation, and the refusal leaves the account at its limit and the address where it
    was (a refusal checks no password: it is no guess)."""
    from chalicelib.config import settings

    lock_out(http, public_client.client_id)
    limit = settings().login_max_failures_per_account
    before = counters()
    assert before[0] == limit
    argon2_evaluations.clear()
    assert_refused(sign_in(Browser(http), public_client.client_id))
    assert argon2_evaluations == []
    assert counters() == before


def test_a_sign_in_takes_back_what_its_attempt_counted(http, public_client, alice):
    browser = Browser(http)
    assert sign_in(browser, public_client.client_id, password="a wrong guess").status_code == 401
    assert counters() == (1, 1)
    assert sign_in(browser, public_client.client_id).status_code == 302
    assert counters() == (1, 1), "the failure stays counted, the success does not"


def test_a_known_device_past_a_limit_is_counted_at_the_account_and_the_address_and_taken_back_on_success(
        http, public_client, alice):
    owner = known_device(http, public_client.client_id)
    lock_out(http, public_client.client_id)
    account, address = counters()
    assert sign_in(owner, public_client.client_id, password="not the password").status_code == 401
    assert counters() == (account + 1, address + 1)
    assert sign_in(owner, public_client.client_id).status_code == 302
    assert counters() == (account + 1, address + 1)


def test_an_attempt_for_a_request_that_is_gone_changes_no_counter(http, public_client, alice, argon2_evaluations):
    browser = Browser(http)
    form = login_form(browser, public_client.client_id, "alice@example.com")
    for request_id in (new_secret(), "", "x" * 500):
        response = browser.post("/login", {**form, "request_id": request_id, "password": "a wrong guess"})
        assert response.status_code == 400 and b"invalid_request" in response.body
    assert counters() == (0, 0) and argon2_evaluations == []


def conflicting(table_part: str, log: list):
    """A botocore hook answering every TransactWriteItems that writes to a table whose name contains
    `table_part` as DynamoDB does when another transaction holds its items: cancelled, each item
    a TransactionConflict."""
    import json
    from types import SimpleNamespace

    def hook(params, **_):
        items = json.loads(params["body"])["TransactItems"]
        if not any(table_part in next(iter(item.values()))["TableName"] for item in items):
            return None  # send the request for real
        log.append(items)
        parsed = {"Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
                  "CancellationReasons": [{"Code": "TransactionConflict"} for _ in items],
                  "ResponseMetadata": {"HTTPStatusCode": 400}}
        return SimpleNamespace(status_code=400, headers={}), parsed

    return hook


def test_counters_that_stay_contended_refuse_the_attempt_rather_than_check_the_password(
        http, public_client, alice, argon2_evaluations):
    """DynamoDB cancels a transaction that meets another one on the same item (parallel guesses at
    one account or from one address). Tried again, and still contended: refused like an attempt
    over the limit, never a password check that was not counted."""
    from chalicelib import aws
    from chalicelib.storage import throttles

    browser = Browser(http)
    form = login_form(browser, public_client.client_id, "alice@example.com")
    conflicts: list = []
    hook = conflicting("-throttles", conflicts)
    events = aws.client("dynamodb").meta.events
    events.register("before-call.dynamodb.TransactWriteItems", hook)
    argon2_evaluations.clear()
    try:
        response = browser.post("/login", {**form, "password": PASSWORD})
    finally:
        events.unregister("before-call.dynamodb.TransactWriteItems", hook)
    assert len(conflicts) == throttles.CONFLICT_RETRIES, "tried again before giving up"
    assert_refused(response, TOO_MANY_FROM_IP)
    assert argon2_evaluations == [] and counters() == (0, 0)


def test_a_sign_in_whose_take_backs_stay_contended_is_still_a_sign_in(http, public_client, alice):
    """The right password, and the counters' items held by other attempts each time the sign-in is
    written: the sign-in is written without taking its attempt back (it counts as one failure of
    the window) rather than failing."""
    import json
    from types import SimpleNamespace

    from chalicelib import aws

    conflicts = []

    def counters_contended(params, **_):
        items = json.loads(params["body"])["TransactItems"]
        tables = [next(iter(item.values()))["TableName"] for item in items]
        if not any(t.endswith("-sessions") for t in tables) or not any(t.endswith("-throttles") for t in tables):
            return None  # not the sign-in's write, or written without the counters: send it
        conflicts.append(1)
        parsed = {"Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
                  "CancellationReasons": [{"Code": "TransactionConflict" if t.endswith("-throttles") else "None"}
                                          for t in tables],
                  "ResponseMetadata": {"HTTPStatusCode": 400}}
        return SimpleNamespace(status_code=400, headers={}), parsed

    browser = Browser(http)
    events = aws.client("dynamodb").meta.events
    events.register("before-call.dynamodb.TransactWriteItems", counters_contended)
    try:
        response = sign_in(browser, public_client.client_id)
    finally:
        events.unregister("before-call.dynamodb.TransactWriteItems", counters_contended)
    assert conflicts and response.status_code == 302, response.body
    assert "idp_device" in browser.cookies
    assert counters() == (1, 1)
    location = browser.get("/authorize?" + authorize_query(public_client.client_id)).headers["Location"]
    assert location.startswith("/consent"), "signed in"
