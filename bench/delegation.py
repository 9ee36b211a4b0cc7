"""The delegation request paths of issue 14 (private_key_jwt, token exchange with `act` chains, the
ID-JAG issued and redeemed, the device authorization grant) for `make bench`'s fifth table: what
each request needs and how it is made.

Issue 14's closing note gives the DynamoDB calls and handler CPU of each new grant. As for issues
12, 13 and 15 (bench/self_service.py, bench/second_factor.py, bench/federation.py),
bench/request_cpu.py (CPU, calls; moto server) and bench/dynamodb_calls.py (calls only, in-process
moto; smoke-tested by tests/integration/test_delegation_bench.py) measure `paths(...)` on
`seed(...)`'s data, counting besides DynamoDB the other AWS calls and the outbound HTTP requests.

Steady state: a container caches clients with their exchange policies, resources and the enabled
connections (CLIENT_CACHE_SECONDS, set high here so no run falls on a re-read), the signing keys,
and a trusted issuer's discovery document and JWK Set (their Cache-Control, clamped to [300 s,
1 day]). The measuring loop's first, unmeasured run of each path fills those caches; the table
counts the requests after it.

The trusted issuer of the jwt-bearer row is another trust domain's IdP: real HTTP on loopback, as
bench/federation.py serves its upstream. `serve()` runs tests/fakes/upstream.FakeUpstream in a
process of its own (its answers' CPU is not the handler's), publishing the public half of a key this
process generated (handed on stdin), so that the bench signs the ID-JAGs (outside the measurement)
with the key whose discovery document and JWK Set (a day's Cache-Control) the child serves. Neither is pre-filled in
the federation fetch cache: the first, unmeasured redemption fetches both from the child (the only
place the key is published), the measured ones fetch nothing (HTTP 0). The connection is made
as an operator makes it (federation/connections.validate with trust id-jag, storage/connections.
add_connection); the user's identity there is linked as a sign-in through it links it.

Inputs, made outside the measurement: client assertions (fresh `jti` each), ID-JAGs (fresh `jti`
each), device authorizations (one per run: a poll, a look-up or an approval uses its own code); the
subject tokens of the exchange rows are the user's, from the code flow, reused (a subject token is not
single-use; one per 100 runs, well inside its lifetime); the /device rows use a browser signed in to
the account page (one per 100 runs, as bench/scenario.py's sessions). The subject tokens' exchanges
are those of tests/routes/test_token_exchange.py (Notes -> Billing), the ID-JAG's those of
tests/routes/test_id_jag_exchange.py and test_jwt_bearer_id_jag.py.

Every row answers 200 except the pending poll, whose RFC 8628 §3.5 answer is a 400
authorization_pending: checked here, and handed to the measuring loop (which takes 2xx/3xx as done)
as done.
"""
from __future__ import annotations

import base64
import sys
from pathlib import Path

NOTES, BILLING = "https://notes.example.com/api", "https://billing.example.com/api"
#: The downstream authorization server an ID-JAG is addressed to, its resource, and our client's id there.
CHAT_AS, CHAT_API, CHAT_CLIENT_ID = "https://chat.example/", "https://api.chat.example/", "f53f191f9311af35"
#: The trusted IdP's connection, and the user's subject there.
CONNECTION = "bench-idjag"
UPSTREAM_SUB = "U019488227"

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"
ACCESS = "urn:ietf:params:oauth:token-type:access_token"
ID = "urn:ietf:params:oauth:token-type:id_token"
JWT = "urn:ietf:params:oauth:token-type:jwt"
ID_JAG = "urn:ietf:params:oauth:token-type:id-jag"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: Our issuer in the benches (bench/cold_start.ENV, bench/dynamodb_calls.py): client assertions' and ID-JAGs' aud.
ISSUER = "http://localhost:8000"

#: Clients, policies, resources and connections cached for the whole table (module docstring); the
#: user-code throttle (10 per session and address per window) out of the way of 50 look-ups from one
#: session and address, and the account sign-in's limits as issue 12's table sets them.
ENV = {"CLIENT_CACHE_SECONDS": "86400", "DEVICE_USER_CODE_ATTEMPTS": "1000000",
       "ACCOUNT_ACTIONS_PER_IP": "1000000", "ACCOUNT_ACTIONS_PER_ADDRESS": "1000000"}


def start_issuer(public_pem: bytes) -> str:
    """`serve()` in a child process publishing `public_pem` (this process signs with its private
    key); its URL (the trusted issuer). The child ends when this process does (its stdin closes)."""
    import atexit
    import subprocess

    child = subprocess.Popen([sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    atexit.register(child.terminate)
    child.stdin.write(base64.b64encode(public_pem) + b"\n")
    child.stdin.flush()
    url = child.stdout.readline().decode().strip()
    if not url.startswith("http://127.0.0.1:"):
        raise SystemExit(f"the bench's trusted issuer did not start: {url!r}")
    return url


def serve() -> None:
    """The child: FakeUpstream's discovery document and JWK Set for the parent's public key (the
    first line of stdin: a base64 PEM), a day's Cache-Control on both; prints its URL, serves until
    stdin closes."""
    import json

    import jwt
    from cryptography.hazmat.primitives import serialization

    from tests.fakes.upstream import FakeUpstream, _answer

    public = serialization.load_pem_public_key(base64.b64decode(sys.stdin.readline()))

    class Issuer(FakeUpstream):
        def _serve(self, request, method):
            if request.path.endswith("/.well-known/openid-configuration"):
                return _answer(request, 200, self.metadata(), {"Cache-Control": "max-age=86400"})
            if request.path == "/jwks":
                jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(public))
                return _answer(request, 200, {"keys": [{**jwk, "kid": self.jwks_kid, "use": "sig", "alg": "ES256"}]},
                               {"Cache-Control": "max-age=86400"})
            return _answer(request, 404, {"error": "not_found"})

    issuer = Issuer()
    print(issuer.issuer, flush=True)
    sys.stdin.read()  # until the parent goes
    issuer.close()


def _client(name: str, *, policies=(), **metadata):
    """An administrator's client (create_client's checks) with its exchange policies stored as
    `idp-admin exchange-policies add` stores them; (client, secret)."""
    import secrets

    from chalicelib.oauth import exchange_policy
    from chalicelib.oauth.client_metadata import validate_client_metadata
    from chalicelib.oauth.clients import add_client

    fields = validate_client_metadata(client_name=name, **metadata)
    return add_client(secrets.token_hex(16), fields, exchange_policies=exchange_policy.dump(list(policies)))


def seed(scenario) -> None:
    """The Notes and Billing APIs, the clients of every row, the trusted issuer (a child process)
    and its connection, the user's identity there. Call after bench/scenario.seed(), with ENV in the
    environment. Sets scenario.delegation (a namespace of what paths() needs)."""
    from types import SimpleNamespace

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from bench.scenario import EMAIL
    from chalicelib.config import settings
    from chalicelib.federation.connections import Connection, validate
    from chalicelib.oauth.exchange_policy import ExchangePolicy
    from chalicelib.storage.connections import add_connection
    from chalicelib.storage.federated_identities import link_items
    from chalicelib.storage.resources import register_resource
    from chalicelib.storage.transactions import write
    from chalicelib.storage.users import find_user_by_email
    from tests.routes.flow import REDIRECT_URI

    settings.cache_clear()  # ENV is read from here on
    register_resource(NOTES, "Notes API", ["notes:read"])
    register_resource(BILLING, "Billing API", ["billing:read"])
    keys = {name: ec.generate_private_key(ec.SECP256R1()) for name in ("job", "agent", "idp")}

    def keyed(name, grant_types, **metadata):
        return _client(name, grant_types=grant_types, token_endpoint_auth_method="private_key_jwt",
                       jwks={"keys": [_public_jwk(keys[metadata.pop("key")])]}, **metadata)[0]

    notes_app, _ = _client("Notes app", client_type="public", redirect_uris=[REDIRECT_URI],
                           grant_types=["authorization_code"], scopes=["openid", "notes:read", "billing:read"])
    gateway = _client("Notes gateway", grant_types=[TOKEN_EXCHANGE], scopes=[], policies=[ExchangePolicy(
        policy_id="p0", kind="access_token", subject_audiences=(NOTES,), resources=(BILLING,),
        scopes=("billing:read",))])
    portal = _portal(_client("Portal", grant_types=["authorization_code", TOKEN_EXCHANGE],
                             redirect_uris=[REDIRECT_URI], scopes=["openid", "email", "notes:read"]))
    wiki = _client("Wiki", grant_types=["authorization_code", TOKEN_EXCHANGE], redirect_uris=[REDIRECT_URI],
                   scopes=["openid", "email"], policies=[ExchangePolicy(
                       policy_id="chat", kind="id_jag", audience=CHAT_AS, downstream_client_id=CHAT_CLIENT_ID,
                       resources=(CHAT_API,), scopes=("chat.read",))])
    bearer = _client("Wiki at Notes", grant_types=[JWT_BEARER], scopes=["notes:read"])
    device, _ = _client("Shell Agent", client_type="public", grant_types=[DEVICE_CODE, "refresh_token"],
                        scopes=["openid", "email", "offline_access"])

    s = settings()
    issuer = start_issuer(keys["idp"].public_key().public_bytes(serialization.Encoding.PEM,
                                                                serialization.PublicFormat.SubjectPublicKeyInfo))
    fields = validate(settings=s, preset="oidc", connection_id=CONNECTION, display_name="Acme IdP",
                      client_id="bench-rp", issuer=issuer, trust=("id-jag",), subject_mapping="identity")
    assert add_connection(Connection(**fields)), "the bench connection exists already"
    write(link_items(find_user_by_email(EMAIL).pk, CONNECTION, UPSTREAM_SUB, email=None))

    scenario.delegation = SimpleNamespace(
        keys=keys, issuer=issuer, notes_app=notes_app, gateway=gateway, portal=portal, wiki=wiki, bearer=bearer,
        device=device, job=keyed("Key job", ["client_credentials"], key="job", scopes=["notes:read"]),
        agent=keyed("Billing agent", ["client_credentials"], key="agent", scopes=[]))


def _public_jwk(key) -> dict:
    import jwt

    return {**jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": "k1"}


def assertion(client_id: str, key) -> str:
    """A client assertion (RFC 7523 §3, OIDC Core §9 private_key_jwt) as a client signs one: iss = sub
    = client_id, aud our issuer, a minute to live, a fresh jti (tests/routes/test_private_key_jwt.py's;
    not imported: a test module brings tests/conftest.py's environment with it)."""
    import secrets
    import time

    import jwt

    at = int(time.time())
    return jwt.encode({"iss": client_id, "sub": client_id, "aud": ISSUER, "iat": at, "exp": at + 60,
                       "jti": secrets.token_urlsafe(16)}, key, algorithm="ES256", headers={"kid": "k1"})


def _portal(registered):
    """The portal's policy names its own client_id (the audience of the ID tokens it is issued),
    known only once it is registered: stored as `idp-admin exchange-policies add` stores it."""
    from chalicelib.oauth.exchange_policy import ExchangePolicy, dump
    from chalicelib.storage.clients import forget_cached_clients, get_client, set_client_exchange_policies

    client, secret = registered
    policy = ExchangePolicy(policy_id="p0", kind="access_token", subject_audiences=(client.client_id,),
                            resources=(NOTES,), scopes=("notes:read",))
    assert set_client_exchange_policies(client.client_id, dump([policy]), expected=None)
    forget_cached_clients()
    return get_client(client.client_id), secret


def paths(http, scenario) -> dict:
    """label -> (make_input or None, request(input) -> response): the fifth table's rows."""
    import json
    import secrets
    import time
    from types import SimpleNamespace
    from urllib.parse import urlencode

    import jwt

    from bench.scenario import basic
    from tests.routes.account_flow import account_sign_in
    from tests.routes.flow import FORM, Browser, hidden, query_of, redeem, sign_in_and_consent

    d = scenario.delegation
    gateway_auth, portal_auth, wiki_auth, bearer_auth = (
        basic(client.client_id, secret) for client, secret in (d.gateway, d.portal, d.wiki, d.bearer))

    def expect(response, status: int, error: str | None = None):
        """The request did what the row says (measure() only checks the status class)."""
        assert response.status_code == status, (response.status_code, response.body[:300])
        if error is not None:
            assert json.loads(response.body)["error"] == error, response.body
        return response

    def post(path: str, form: dict, headers: dict = FORM):
        return http.post(path, body=urlencode(form).encode(), headers=headers)

    def every_100(make):
        """make() once per 100 runs: a token that is not single-use, a signed-in browser."""
        held = [None, 0]

        def get():
            if held[1] % 100 == 0:
                held[0] = make()
            held[1] += 1
            return held[0]
        return get

    def tokens_of(client_id: str, auth: str | None = None, **authorize) -> dict:
        """The user's tokens at a client, through sign-in, consent and the code's redemption."""
        location = sign_in_and_consent(Browser(http), client_id, **authorize)
        return json.loads(expect(redeem(http, client_id, query_of(location)["code"], auth=auth), 200).body)

    user_access_token = every_100(lambda: tokens_of(
        d.notes_app.client_id, scope="openid notes:read billing:read", resource=[NOTES, BILLING])["access_token"])
    portal_id_token = every_100(lambda: tokens_of(
        d.portal[0].client_id, portal_auth["Authorization"], scope="openid email")["id_token"])
    wiki_id_token = every_100(lambda: tokens_of(
        d.wiki[0].client_id, wiki_auth["Authorization"], scope="openid email")["id_token"])

    def exchange(headers, **form):
        return post("/token", {"grant_type": TOKEN_EXCHANGE, **form}, headers)

    def with_actor(actor_token):
        return exchange(gateway_auth, subject_token=user_access_token(), subject_token_type=ACCESS,
                        resource=BILLING, actor_token=actor_token, actor_token_type=JWT)

    def id_jag():
        """An ID-JAG of the trusted issuer for the Wiki's client here (the draft's claims, as
        tests/routes/test_jwt_bearer_id_jag.Idp makes them)."""
        at = int(time.time())
        claims = {"iss": d.issuer, "sub": UPSTREAM_SUB, "aud": ISSUER,
                  "client_id": d.bearer[0].client_id, "jti": secrets.token_urlsafe(16), "iat": at, "exp": at + 300,
                  "resource": NOTES, "scope": "notes:read"}
        return jwt.encode(claims, d.keys["idp"], algorithm="ES256", headers={"kid": "k1", "typ": "oauth-id-jag+jwt"})

    # The device flow: a device authorization per run; the user's browser, signed in to the account page.
    def start_device(_=None):
        return expect(post("/device_authorization", {"client_id": d.device.client_id,
                                                      "scope": "openid email offline_access"}), 200)

    def device_authorization():
        return json.loads(start_device().body)

    def signed_in():
        browser = Browser(http)
        assert account_sign_in(browser).status_code == 302
        return browser

    device_browser = every_100(signed_in)

    def look_up_form():
        browser, user_code = device_browser(), device_authorization()["user_code"]
        page = expect(browser.get("/device"), 200)
        return browser, {"csrf_token": hidden(page.body, "csrf_token"), "user_code": user_code}

    def consent_form():
        browser, form = look_up_form()
        consent = expect(browser.post("/device", form), 200)
        return browser, {"csrf_token": hidden(consent.body, "csrf_token"),
                         "user_code": hidden(consent.body, "user_code"), "decision": "allow"}

    def approved_device_code():
        started = device_authorization()
        browser = device_browser()
        page = expect(browser.get("/device"), 200)
        consent = expect(browser.post("/device", {"csrf_token": hidden(page.body, "csrf_token"),
                                                  "user_code": started["user_code"]}), 200)
        expect(browser.post("/device/consent", {"csrf_token": hidden(consent.body, "csrf_token"),
                                                "user_code": hidden(consent.body, "user_code"),
                                                "decision": "allow"}), 200)
        return started["device_code"]

    def poll(device_code):
        return post("/token", {"grant_type": DEVICE_CODE, "device_code": device_code,
                               "client_id": d.device.client_id})

    def pending(device_code):
        """RFC 8628 §3.5's answer while the user has not decided: what this row measures."""
        response = expect(poll(device_code), 400, "authorization_pending")
        return SimpleNamespace(status_code=200, body=response.body)

    def done(response):
        assert b"You can return to your device" in response.body, response.body[:300]
        return response

    return {
        "POST /token client_credentials (private_key_jwt)": (
            lambda: assertion(d.job.client_id, d.keys["job"]),
            lambda signed: expect(post("/token", {"grant_type": "client_credentials", "resource": NOTES,
                                                  "client_assertion_type": ASSERTION_TYPE,
                                                  "client_assertion": signed}), 200)),
        "POST /token token exchange (access-token subject)": (
            user_access_token, lambda token: expect(exchange(gateway_auth, subject_token=token,
                                                             subject_token_type=ACCESS, resource=BILLING), 200)),
        "POST /token token exchange (ID-token subject)": (
            portal_id_token, lambda token: expect(exchange(portal_auth, subject_token=token, subject_token_type=ID,
                                                           resource=NOTES), 200)),
        "POST /token token exchange (+ jwt actor_token)": (
            lambda: assertion(d.agent.client_id, d.keys["agent"]), lambda actor: expect(with_actor(actor), 200)),
        "POST /token token exchange (for an ID-JAG)": (
            wiki_id_token, lambda token: expect(exchange(wiki_auth, subject_token=token, subject_token_type=ID,
                                                         requested_token_type=ID_JAG, audience=CHAT_AS), 200)),
        "POST /token jwt-bearer (ID-JAG of a trusted issuer)": (
            id_jag, lambda signed: expect(post("/token", {"grant_type": JWT_BEARER, "assertion": signed},
                                               bearer_auth), 200)),
        "POST /device_authorization": (None, start_device),
        "POST /token device_code (pending)": (lambda: device_authorization()["device_code"], pending),
        "POST /token device_code (approved: tokens)": (approved_device_code, lambda code: expect(poll(code), 200)),
        "POST /device (code look-up)": (look_up_form, lambda value: expect(value[0].post("/device", value[1]), 200)),
        "POST /device/consent (allow)": (
            consent_form, lambda value: done(expect(value[0].post("/device/consent", value[1]), 200))),
    }


if __name__ == "__main__" and sys.argv[1:] == ["--serve"]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    serve()
