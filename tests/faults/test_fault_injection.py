"""Systematic fault injection (issue 11 §1): every AWS call of every endpoint, failed one at a time.

For each endpoint of bench/scenario.py (plus GET /authorize without a session, POST /register, the RFC 7592 read that rotates the
registration token, POST /revoke, POST /consent, POST /logout and GET /logout with an id_token_hint), a
clean run lists the AWS calls the request makes, through a botocore `before-call` hook on the
container's clients (chalicelib.aws: DynamoDB, Secrets Manager, KMS, SES, SQS). A sign-out's SQS calls
(the logout queue) are best effort by design: their fault leaves the normal answer (`best_effort`). Then, for each call index and each error class,
a fresh input is made and the same request is sent with exactly that call failing, and:
- the answer is never a 500: a 503 with Retry-After (JSON `temporarily_unavailable` and no-store on
  API endpoints, the HTML error page on hosted pages), or the endpoint's normal answer when the
  fault was absorbed (a lost response whose write botocore re-sent);
- nothing is half-issued, read from the tables: no grant whose family started while its code is
  unused; after a 503 a code is unused and its grant's family unstarted, a refresh family's current
  token is the one the client still holds, and no grant was revoked that the request does not
  revoke by design;
- the client's retry of the same request, with no fault, gets the endpoint's normal answer (a
  sign-in, a code, tokens) and revokes nothing: what the fault interrupted costs nothing.

Error classes (a few per call, since the classification is one function, chalicelib/faults.py):
- every call: a throttle (DynamoDB ProvisionedThroughputExceededException, Secrets Manager / KMS
  ThrottlingException), the service failing (InternalServerError / InternalServiceError /
  KMSInternalException, HTTP 500) and a timeout (botocore ReadTimeoutError or ConnectTimeoutError);
- TransactWriteItems also: TransactionCanceledException whose reasons are throttling;
- DynamoDB writes also: a lost response, the write applied and sent again, as botocore does after
  a read timeout on a write that reached DynamoDB (except TransactWriteItems: DynamoDB answers the
  re-sent transaction from its ClientRequestToken, which moto does not implement).
Raised from `before-call`, a failure is not retried by botocore: it stands for a call whose retries
are spent. The token endpoints run three times: with Secrets Manager keys, with KMS keys (every token
signature a kms:Sign call) and with envelope keys (a kms:Decrypt on the cold container each request
here runs as). The number of (endpoint, call, error) combinations is printed.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from urllib.parse import urlencode

import pytest

from tests.routes.flow import FORM, Browser, authorize_query, hidden, query_of, redeem, sign_in_and_consent

THROTTLE = {"dynamodb": "ProvisionedThroughputExceededException", "kms": "ThrottlingException",
            "secretsmanager": "ThrottlingException", "sesv2": "TooManyRequestsException", "sqs": "RequestThrottled"}
FAILING = {"dynamodb": "InternalServerError", "kms": "KMSInternalException",
           "secretsmanager": "InternalServiceError", "sesv2": "InternalFailure", "sqs": "InternalFailure"}
WRITES = ("UpdateItem", "PutItem", "DeleteItem")
PAGES = ("/authorize", "/login", "/consent", "/logout", "/signup", "/verify-email")

_combinations: list[tuple[str, str, str]] = []


def _error(kind: str, service: str, operation: str) -> Exception:
    from botocore.exceptions import ClientError, ConnectTimeoutError, ReadTimeoutError

    if kind == "timeout":
        url = f"https://{service}.us-east-1.amazonaws.com/"
        return ReadTimeoutError(endpoint_url=url) if service == "dynamodb" else ConnectTimeoutError(endpoint_url=url)
    if kind == "cancelled-throttling":
        return ClientError({"Error": {"Code": "TransactionCanceledException", "Message": "throttled"},
                            "CancellationReasons": [{"Code": "ThrottlingError"}, {"Code": "None"}],
                            "ResponseMetadata": {"HTTPStatusCode": 400}}, operation)
    code, status = (THROTTLE[service], 400) if kind == "throttled" else (FAILING[service], 500)
    return ClientError({"Error": {"Code": code, "Message": kind}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       operation)


def error_kinds(call: str) -> list[str]:
    service, operation = call.split(".")
    kinds = ["throttled", "failing", "timeout"]
    if operation == "TransactWriteItems":
        kinds.append("cancelled-throttling")
    if service == "dynamodb" and operation in WRITES:
        kinds.append("lost-response")
    return kinds


#: The injector of the running test.
_current: list = []


def _hook(client):
    def before_call(model, params, **_):
        return _current[0].before_call(client, model, params) if _current else None

    return before_call


class Injector:
    """Lists the AWS calls of a request and fails one of them (before-call hook on every client)."""

    def __init__(self):
        self.calls: list[str] = []
        self.fail_at: int | None = None
        self.kind = ""
        self.active = False
        self._resending = False

    def install(self):
        from chalicelib import aws

        _current[:] = [self]
        for service in ("dynamodb", "secretsmanager", "kms", "sesv2", "sqs"):
            client = aws.client(service)
            # Once per client (the clients outlive a test): the hook asks which injector is current.
            client.meta.events.register("before-call", _hook(client), unique_id=f"fault-injector-{service}")

    def before_call(self, client, model, params):
        if not self.active or self._resending:
            return None
        service = model.service_model.service_name
        index = len(self.calls)
        self.calls.append(f"{service}.{model.name}")
        if index != self.fail_at:
            return None
        if self.kind == "lost-response":
            # The write reaches DynamoDB, its answer is lost, and botocore sends it again: the
            # request botocore goes on to send now is that second attempt.
            self._resending = True
            try:
                client._endpoint.make_request(model, copy.deepcopy(params))
            finally:
                self._resending = False
            return None
        raise _error(self.kind, service, model.name)

    def run(self, send, *, fail_at=None, kind=""):
        from tests.conftest import reset_process_state

        # Every request runs as on a cold container, so the calls its caches save are failed too.
        reset_process_state(endpoint_changed=False)
        self.install()
        self.calls, self.fail_at, self.kind, self.active = [], fail_at, kind, True
        try:
            return send()
        finally:
            self.active = False


@dataclass
class World:
    http: object
    scenario: object
    signed_in: Browser | None = None
    extra: dict = field(default_factory=dict)


# Tables ----------------------------------------------------------------------------------------------

def grants_table() -> dict:
    from chalicelib.storage.models import GrantModel

    return {(g.sub, g.grant_id): g for g in GrantModel.scan(consistent_read=True)}


def codes_by_grant() -> dict:
    from chalicelib.storage.models import AuthorizationCodeModel

    return {c.grant_id: c for c in AuthorizationCodeModel.scan(consistent_read=True)}


def revoked(grants: dict) -> set:
    return {key for key, g in grants.items() if g.status != "active"}


def assert_nothing_half_issued():
    """No grant's family started (used at redemption) while its code is unused."""
    codes = codes_by_grant()
    for (_, grant_id), grant in grants_table().items():
        code = codes.get(grant_id)
        if grant.last_used_at is not None or grant.token_hash is not None:
            assert code is not None and code.consumed_at is not None, f"grant {grant_id} started, its code unused"


def sha(token: str) -> str:
    from chalicelib.hashing import sha256_hex

    return sha256_hex(token)


# Endpoints ---------------------------------------------------------------------------------------------

@dataclass
class Endpoint:
    make_input: object  # world -> input
    send: object  # (world, input) -> response
    expect: int  # the normal status
    after_fault: object = None  # (world, input, response) -> None: checks after a 503
    after_retry: object = None  # (world, input, response) -> None: checks after the retry
    revokes: object = None  # (world, input) -> set of grant keys the request revokes by design
    #: Calls (by "service." prefix) whose fault the endpoint absorbs by design: it still gives its
    #: normal answer. The logout queue (chalicelib/oauth/backchannel_logout.notify): after a
    #: sign-out, a queue fault is logged and the user is signed out all the same.
    best_effort: tuple = ()


def _signed_in(world: World) -> Browser:
    from bench.scenario import SCOPE, WEB_APP

    if world.signed_in is None:
        world.signed_in = Browser(world.http)
        sign_in_and_consent(world.signed_in, world.scenario.public.client_id, scope=SCOPE, redirect_uri=WEB_APP)
    return world.signed_in


def _authorize_url(world: World, **extra) -> str:
    from bench.scenario import SCOPE, WEB_APP

    return "/authorize?" + authorize_query(world.scenario.public.client_id, scope=SCOPE, redirect_uri=WEB_APP, **extra)


def _new_code(world: World) -> str:
    from bench.scenario import SCOPE, WEB_APP

    return query_of(sign_in_and_consent(_signed_in(world), world.scenario.public.client_id, scope=SCOPE,
                                        redirect_uri=WEB_APP))["code"]


def _redeem(world: World, code: str):
    from bench.scenario import WEB_APP

    return redeem(world.http, world.scenario.public.client_id, code, redirect_uri=WEB_APP)


def _family(world: World) -> dict:
    body = json.loads(_redeem(world, _new_code(world)).body)
    return body


def _key_of(token: str) -> tuple[str, str]:
    from chalicelib.oauth import refresh_tokens

    sub, grant_id, _ = refresh_tokens.parse(token)
    return sub, grant_id


def _code_unused_and_family_unstarted(world, code, response):
    from chalicelib.storage.models import AuthorizationCodeModel

    item = AuthorizationCodeModel.get(sha(code), consistent_read=True)
    grant = grants_table()[(item.sub, item.grant_id)]
    assert item.consumed_at is None and item.redemption is None, "a code stayed consumed after a 503"
    assert grant.status == "active" and grant.token_hash is None and grant.last_used_at is None


def _code_redeemed(world, code, response):
    from chalicelib.storage.models import AuthorizationCodeModel

    body = json.loads(response.body)
    item = AuthorizationCodeModel.get(sha(code), consistent_read=True)
    grant = grants_table()[(item.sub, item.grant_id)]
    assert grant.status == "active" and grant.token_hash == sha(body["refresh_token"])


def _family_unchanged(world, family, response):
    grant = grants_table()[_key_of(family["refresh_token"])]
    assert grant.status == "active" and grant.token_hash == sha(family["refresh_token"]), "the family moved on"


def _family_rotated(world, family, response):
    grant = grants_table()[_key_of(family["refresh_token"])]
    successor = json.loads(response.body)["refresh_token"]
    assert grant.status == "active" and grant.token_hash == sha(successor)
    assert grant.previous_hash == sha(family["refresh_token"])


def _refresh(world, family):
    return world.http.post("/token", headers=FORM, body=urlencode(
        {"grant_type": "refresh_token", "refresh_token": family["refresh_token"],
         "client_id": world.scenario.public.client_id}).encode())


def _dpop_input(world, **authorize) -> dict:
    """A DPoP key and the server's current nonce (computed before the request: the request itself
    reads the nonce key on its cold container, and that read is failed too)."""
    from chalicelib.config import settings
    from chalicelib.oauth import dpop_binding
    from tests.dpop_proofs import DpopKey

    key = DpopKey()
    return {"key": key, "nonce": dpop_binding.fresh_nonce(settings())}


def _dpop_headers(value) -> dict:
    return {**FORM, "DPoP": value["key"].proof(nonce=value["nonce"])}  # a fresh proof for every attempt


def _dpop_code(world) -> dict:
    from bench.scenario import SCOPE, WEB_APP

    value = _dpop_input(world)
    value["code"] = query_of(sign_in_and_consent(_signed_in(world), world.scenario.public.client_id, scope=SCOPE,
                                                 redirect_uri=WEB_APP, dpop_jkt=value["key"].jkt))["code"]
    return value


def _dpop_redeem(world, value):
    from bench.scenario import WEB_APP
    from tests.routes.flow import VERIFIER

    return world.http.post("/token", headers=_dpop_headers(value), body=urlencode(
        {"grant_type": "authorization_code", "code": value["code"], "redirect_uri": WEB_APP,
         "code_verifier": VERIFIER, "client_id": world.scenario.public.client_id}).encode())


def _dpop_family(world) -> dict:
    value = _dpop_code(world)
    response = _dpop_redeem(world, value)
    assert response.status_code == 200, response.body
    return {**value, **json.loads(response.body)}


def _dpop_refresh(world, family):
    return world.http.post("/token", headers=_dpop_headers(family), body=urlencode(
        {"grant_type": "refresh_token", "refresh_token": family["refresh_token"],
         "client_id": world.scenario.public.client_id}).encode())


def _login_form(world):
    from bench.scenario import EMAIL, PASSWORD

    _signed_in(world)  # the user has consented to the app before: a returning user
    visitor = Browser(world.http)
    page = visitor.get(visitor.get(_authorize_url(world)).headers["Location"])
    return visitor, {"request_id": hidden(page.body, "request_id"), "csrf_token": hidden(page.body, "csrf_token"),
                     "username": EMAIL, "password": PASSWORD}


def _consent_form(world):
    browser = _signed_in(world)
    location = browser.get(_authorize_url(world, prompt="consent")).headers["Location"]
    page = browser.get(location)
    return browser, {"request_id": hidden(page.body, "request_id"), "csrf_token": hidden(page.body, "csrf_token"),
                     "decision": "allow"}


def _to_client_with_code(world, _input, response):
    from bench.scenario import WEB_APP

    assert response.headers["Location"].startswith(WEB_APP) and "code" in query_of(response.headers["Location"])


def _to_login_page(world, _input, response):
    assert response.headers["Location"].startswith("/login?request_id=")


def _signed_out_browser(world):
    """A browser signed in on its own session, with a grant issued through it."""
    from bench.scenario import SCOPE, WEB_APP

    browser = Browser(world.http)
    code = query_of(sign_in_and_consent(browser, world.scenario.public.client_id, scope=SCOPE,
                                        redirect_uri=WEB_APP))["code"]
    body = json.loads(_redeem(world, code).body)
    page = browser.get("/logout")
    return browser, hidden(page.body, "csrf_token"), _key_of(body["refresh_token"])


def _hinted_browser(world):
    """A browser signed in on its own session with a grant, and the ID token issued through it: an
    end-session request whose id_token_hint names this very session (no confirmation)."""
    from bench.scenario import SCOPE, WEB_APP

    browser = Browser(world.http)
    code = query_of(sign_in_and_consent(browser, world.scenario.public.client_id, scope=SCOPE,
                                        redirect_uri=WEB_APP))["code"]
    body = json.loads(_redeem(world, code).body)
    return browser, body["id_token"], _key_of(body["refresh_token"])


def _every_grant_of_the_session_revoked(world, value, response):
    assert grants_table()[value[2]].status == "revoked"


def _register(world, _=None):
    return world.http.post("/register", headers={"Content-Type": "application/json"}, body=json.dumps(
        {"client_name": "Agent", "redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none",
         "grant_types": ["authorization_code", "refresh_token"]}).encode())


def _registered(world):
    return json.loads(_register(world).body)


def _read_registration(world, registered):
    return world.http.get(f"/register/{registered['client_id']}",
                          headers={"Authorization": f"Bearer {registered['registration_access_token']}"})


def _registration_token_unchanged(world, registered, response):
    from chalicelib.storage.clients import get_client

    assert get_client(registered["client_id"]).registration_token_hash == sha(registered["registration_access_token"])


def _client_credentials(world, _=None):
    from bench.scenario import API, basic

    s = world.scenario
    return world.http.post("/token", body=urlencode({"grant_type": "client_credentials", "resource": API}).encode(),
                           headers=basic(s.service.client_id, s.service_secret))


def _exchanger(world):
    """A confidential client allowed to trade the API's tokens for API tokens (RFC 8693), made once."""
    if "exchanger" not in world.extra:
        from bench.scenario import API
        from chalicelib.capabilities import TOKEN_EXCHANGE
        from chalicelib.oauth.clients import create_client
        from chalicelib.oauth.exchange_policy import ExchangePolicy, dump
        from chalicelib.storage.clients import set_client_exchange_policies

        client, secret = create_client(client_name="Gateway", grant_types=[TOKEN_EXCHANGE])
        policy = ExchangePolicy("api", "access_token", resources=(API,), subject_audiences=(API,))
        assert set_client_exchange_policies(client.client_id, dump([policy]), expected=None)
        world.extra["exchanger"] = (client.client_id, secret)
    return world.extra["exchanger"]


def _exchange_input(world):
    """A subject token (the job's token for the API), the exchanging client made beforehand."""
    _exchanger(world)
    return json.loads(_client_credentials(world).body)["access_token"]


def _token_exchange(world, subject_token):
    from bench.scenario import API, basic
    from chalicelib.capabilities import TOKEN_EXCHANGE

    client_id, secret = _exchanger(world)
    return world.http.post("/token", headers=basic(client_id, secret), body=urlencode(
        {"grant_type": TOKEN_EXCHANGE, "subject_token": subject_token, "resource": API,
         "subject_token_type": "urn:ietf:params:oauth:token-type:access_token"}).encode())


def _introspect(world, token):
    from bench.scenario import basic

    s = world.scenario
    return world.http.post("/introspect", body=urlencode({"token": token}).encode(),
                           headers=basic(s.api.client_id, s.api_secret))


def _user_access_token(world):
    if "access_token" not in world.extra:
        world.extra["access_token"] = _family(world)["access_token"]
    return world.extra["access_token"]


def _dpop_userinfo_request(world):
    """A DPoP-bound copy of a user's access token (minted here until /token issues them) and a fresh
    proof for GET /userinfo. The retry after a 503 sends the same proof: it passes only if the
    faulted request spent nothing."""
    import jwt

    from chalicelib.config import settings
    from chalicelib.keys import keyring
    from chalicelib.tokens import jwt as jwt_encode
    from tests.dpop_proofs import ProofKey

    if "dpop_token" not in world.extra:
        key = ProofKey()
        claims = jwt.decode(_user_access_token(world), options={"verify_signature": False})
        world.extra["dpop_token"] = key, jwt_encode.encode({**claims, "cnf": key.cnf()}, keyring.current_signer(),
                                                           typ="at+jwt")
    key, token = world.extra["dpop_token"]
    return token, key.proof("GET", f"{settings().issuer}/userinfo", access_token=token)


_signups = iter(range(1_000_000))


def _signup_form(world):
    """A browser on the sign-up page of a pending request, and the form for a new address."""
    visitor = Browser(world.http)
    request_id = query_of(visitor.get(_authorize_url(world)).headers["Location"])["request_id"]
    page = visitor.get(f"/signup?request_id={request_id}")
    return visitor, {"request_id": request_id, "csrf_token": hidden(page.body, "csrf_token"),
                     "email": f"new{next(_signups)}@example.com", "password": "plover xylophone meadow"}


def _signed_up(world, value, response):
    """The retry made the account: one user, unverified, for the address (none left over before)."""
    from chalicelib.storage.users import find_user_by_email

    user = find_user_by_email(value[1]["email"])
    assert user is not None and not user.email_verified


def _no_user_left(world, value, response):
    from chalicelib.storage.users import find_user_by_email

    assert find_user_by_email(value[1]["email"]) is None, "a sign-up that failed left its user behind"


def _verification_form(world):
    """A signed-up browser and the confirmation form of its verification link (from the outbox)."""
    import re

    from chalicelib import mail

    visitor, form = _signup_form(world)
    assert visitor.post("/signup", form).status_code == 200
    import email
    from email import policy

    message = email.message_from_bytes(mail.outbox(world.extra["outbox"])[-1].read_bytes(), policy=policy.default)
    text = message.get_body(("plain",)).get_content()
    token = re.search(r"/verify-email\?token=([0-9A-Z]+)", text).group(1)
    page = visitor.get(f"/verify-email?token={token}")
    return visitor, {"token": token, "csrf_token": hidden(page.body, "csrf_token")}, form["email"]


def _verified(world, value, response):
    from chalicelib.storage.users import find_user_by_email

    assert find_user_by_email(value[2]).email_verified


def _resend_form(world):
    visitor, form = _signup_form(world)
    page = visitor.post("/signup", form)
    return visitor, {"email": form["email"], "request_id": form["request_id"],
                     "csrf_token": hidden(page.body, "csrf_token")}


ENDPOINTS = {
    "POST /token client_credentials": Endpoint(lambda w: None, _client_credentials, 200),
    "POST /token authorization_code": Endpoint(_new_code, _redeem, 200, after_fault=_code_unused_and_family_unstarted,
                                               after_retry=_code_redeemed),
    "POST /token refresh_token": Endpoint(_family, _refresh, 200, after_fault=_family_unchanged,
                                          after_retry=_family_rotated),
    # RFC 9449: the proof's jti (one PutItem) and the nonce key (one GetSecretValue per container).
    "POST /token authorization_code (DPoP, dpop_jkt)": Endpoint(
        _dpop_code, _dpop_redeem, 200, after_fault=lambda w, v, r: _code_unused_and_family_unstarted(w, v["code"], r),
        after_retry=lambda w, v, r: _code_redeemed(w, v["code"], r)),
    "POST /token refresh_token (DPoP-bound family)": Endpoint(_dpop_family, _dpop_refresh, 200,
                                                              after_fault=_family_unchanged,
                                                              after_retry=_family_rotated),
    "GET /authorize (signed in, consented)": Endpoint(lambda w: _signed_in(w), lambda w, b: b.get(_authorize_url(w)),
                                                      302, after_retry=_to_client_with_code),
    "GET /authorize (no session)": Endpoint(lambda w: Browser(w.http), lambda w, b: b.get(_authorize_url(w)), 302,
                                            after_retry=_to_login_page),
    "POST /login (returning user, consent remembered)": Endpoint(_login_form, lambda w, v: v[0].post("/login", v[1]),
                                                                 302, after_retry=_to_client_with_code),
    "GET /userinfo": Endpoint(_user_access_token,
                              lambda w, t: w.http.get("/userinfo", headers={"Authorization": f"Bearer {t}"}), 200),
    "GET /userinfo (DPoP)": Endpoint(_dpop_userinfo_request, lambda w, v: w.http.get(
        "/userinfo", headers={"Authorization": f"DPoP {v[0]}", "DPoP": v[1]}), 200),
    "POST /token token-exchange": Endpoint(_exchange_input, _token_exchange, 200),
    "POST /introspect": Endpoint(lambda w: json.loads(_client_credentials(w).body)["access_token"], _introspect, 200),
    "GET /jwks": Endpoint(lambda w: None, lambda w, _: w.http.get("/jwks"), 200),
    "POST /register": Endpoint(lambda w: None, _register, 201),
    "GET /register/{client_id} (RFC 7592, rotates the token)": Endpoint(
        _registered, _read_registration, 200, after_fault=_registration_token_unchanged),
    "POST /revoke (refresh token)": Endpoint(
        _family, lambda w, f: w.http.post("/revoke", headers=FORM, body=urlencode(
            {"token": f["refresh_token"], "client_id": w.scenario.public.client_id}).encode()), 200,
        revokes=lambda w, f: {_key_of(f["refresh_token"])}),
    "POST /consent": Endpoint(_consent_form, lambda w, v: v[0].post("/consent", v[1]), 302,
                              after_retry=_to_client_with_code),
    "POST /logout": Endpoint(_signed_out_browser, lambda w, v: v[0].post("/logout", {"csrf_token": v[1]}), 200,
                             after_retry=_every_grant_of_the_session_revoked, revokes=lambda w, v: {v[2]},
                             best_effort=("sqs.",)),
    "GET /logout (id_token_hint)": Endpoint(
        _hinted_browser, lambda w, v: v[0].get("/logout?" + urlencode({"id_token_hint": v[1]})), 200,
        after_retry=_every_grant_of_the_session_revoked, revokes=lambda w, v: {v[2]}, best_effort=("sqs.",)),
    "POST /signup (new address)": Endpoint(_signup_form, lambda w, v: v[0].post("/signup", v[1]), 200,
                                           after_fault=_no_user_left, after_retry=_signed_up),
    "POST /verify-email (link, same browser)": Endpoint(
        _verification_form, lambda w, v: v[0].post("/verify-email", v[1]), 302, after_retry=_verified),
    "POST /verify-email/resend": Endpoint(_resend_form, lambda w, v: v[0].post("/verify-email/resend", v[1]), 200),
}
TOKEN_ENDPOINTS = ("POST /token client_credentials", "POST /token authorization_code", "POST /token refresh_token",
                   "POST /token token-exchange")


def summary() -> str:
    """What tests/faults/conftest.py prints at the end of the run."""
    by_error, by_service = {}, {}
    for _, call, kind in _combinations:
        by_error[kind] = by_error.get(kind, 0) + 1
        service = call.split(":", 1)[1].split(".")[0]
        by_service[service] = by_service.get(service, 0) + 1
    return (f"fault injection: {len(_combinations)} (endpoint, call, error) combinations exercised over "
            f"{len({(e, c) for e, c, _ in _combinations})} (endpoint, call) pairs; by error {by_error}; "
            f"by service {by_service}")


@pytest.fixture
def key_backend(request, aws, monkeypatch):
    """The signing-key backend named by the test's parameter (indirect)."""
    from chalicelib.keys import keyring
    from tests.conftest import select_key_backend

    select_key_backend(monkeypatch, request.param)
    keyring.ensure_keys()
    return request.param


@pytest.fixture
def world(key_backend, monkeypatch, tmp_path):
    from chalice.test import Client

    from app import app
    from bench.scenario import seed

    scenario = seed()
    _mail_and_signup(monkeypatch, tmp_path)
    _logout_queue()
    with Client(app, stage_name="local") as client:
        yield World(http=client.http, scenario=scenario, extra={"outbox": tmp_path})


def _mail_and_signup(monkeypatch, outbox):
    """SES with the sender verified, an outbox, sign-up open, and limits no run of this test reaches."""
    from chalicelib.aws import client
    from chalicelib.config import settings

    for name, value in {"SIGNUP_MODE": "open", "OUTBOX_DIR": str(outbox), "ACCOUNT_ACTIONS_PER_IP": "100000",
                        "ACCOUNT_ACTIONS_PER_ADDRESS": "100000", "EMAILS_PER_ADDRESS_PER_HOUR": "100000"}.items():
        monkeypatch.setenv(name, value)
    settings.cache_clear()
    client("sesv2").create_email_identity(EmailIdentity=settings().email_from)


def _logout_queue():
    """The logout queue in moto, so that a sign-out's SendMessage is one of the calls failed."""
    from chalicelib import logout_queue
    from chalicelib.config import settings

    logout_queue.ensure_queue(settings())


def _assert_fault_answer(label: str, response, endpoint: Endpoint, kind: str, call: str):
    where = f"{label}: {call} {kind}"
    assert response.status_code != 500, f"{where}: 500 {response.body[:300]!r}"
    if call.startswith(endpoint.best_effort or ("-",)):
        assert response.status_code == endpoint.expect, f"{where}: {response.status_code} {response.body[:300]!r}"
        return
    if kind == "lost-response":
        # The write did happen, and the re-sent one is recognised as ours: the normal answer.
        assert response.status_code == endpoint.expect, f"{where}: {response.status_code} {response.body[:300]!r}"
        return
    assert response.status_code == 503, f"{where}: {response.status_code} {response.body[:300]!r}"
    assert response.headers.get("Retry-After", "").isdigit(), where
    assert response.headers.get("Cache-Control") == "no-store", where
    if label.split()[1].startswith(PAGES):
        assert response.headers["Content-Type"].startswith("text/html"), where
        # The fixed 503 page: "try again", or for SES its own "could not send the email" page.
        assert b"Please try again" in response.body or (
            call.startswith("sesv2.") and b"We couldn't send the email" in response.body), where
    else:
        assert json.loads(response.body)["error"] == "temporarily_unavailable", where


def _exercise(label: str, world: World) -> int:
    endpoint = ENDPOINTS[label]
    injector = Injector()
    clean_input = endpoint.make_input(world)
    baseline = injector.run(lambda: endpoint.send(world, clean_input))
    assert baseline.status_code == endpoint.expect, (label, baseline.status_code, baseline.body[:300])
    calls = list(injector.calls)
    exercised = 0
    for index, call in enumerate(calls):
        for kind in error_kinds(call):
            value = endpoint.make_input(world)
            revoked_before = revoked(grants_table())
            response = injector.run(lambda: endpoint.send(world, value), fail_at=index, kind=kind)
            assert injector.calls[index] == call, f"{label}: call {index} was {injector.calls[index]}, not {call}"
            _assert_fault_answer(label, response, endpoint, kind, call)
            assert_nothing_half_issued()
            by_design = endpoint.revokes(world, value) if endpoint.revokes else set()
            if response.status_code == 503:
                if endpoint.after_fault:
                    try:
                        endpoint.after_fault(world, value, response)
                    except AssertionError as exc:
                        raise AssertionError(f"{label}: after {call} {kind}: {exc}") from None
                retry = injector.run(lambda: endpoint.send(world, value))
                assert retry.status_code == endpoint.expect, \
                    f"{label}: retry after {call} {kind}: {retry.status_code} {retry.body[:300]!r}"
                response = retry
                assert_nothing_half_issued()
            if endpoint.after_retry:
                try:
                    endpoint.after_retry(world, value, response)
                except AssertionError as exc:
                    raise AssertionError(f"{label}: after {call} {kind}: {exc}") from None
            assert revoked(grants_table()) - revoked_before <= by_design, f"{label}: {call} {kind} revoked a grant"
            _combinations.append((label, f"{index}:{call}", kind))
            exercised += 1
    return exercised


# Every endpoint with Secrets Manager keys; the token endpoints, the only ones that sign, with KMS
# keys (kms:Sign per token) and envelope keys (kms:Decrypt once per container) too.
@pytest.mark.parametrize(("label", "key_backend"),
                         [(label, "secretsmanager") for label in ENDPOINTS]
                         + [(label, backend) for backend in ("kms", "kms-envelope")
                            for label in ENDPOINTS if label in TOKEN_ENDPOINTS],
                         indirect=["key_backend"])
def test_no_fault_of_any_call_loses_a_sign_in_or_answers_500(label, world, key_backend):
    assert _exercise(label, world) > 0 or label == "GET /jwks"
