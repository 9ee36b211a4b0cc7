"""The sender-constrained request paths of issue 16 (DPoP, RFC 9449; pushed authorization requests,
RFC 9126) for `make bench`'s sixth table: what each request needs and how it is made.

Issue 16's closing note gives the DynamoDB calls and handler CPU a DPoP proof adds to a request, so
every DPoP row is measured next to its Bearer twin (TWINS), the same request of the same client
without a proof, in the same run. As for issues 12-15, bench/request_cpu.py (CPU, calls; moto
server) and bench/dynamodb_calls.py (calls only, in-process moto; smoke-tested by
tests/integration/test_sender_constrained_bench.py) measure `paths(...)` on `seed(...)`'s data.

What a proof costs at this server (chalicelib/oauth/dpop_binding.py, blueprints/userinfo.py): its
checks (a JWS verification with the embedded key, the thumbprint, at /token the nonce's HMAC) and
its `jti` spent with one conditional PutItem (storage/used_jtis.py). At /token every answer to a
DPoP request also carries the next `DPoP-Nonce` (an HMAC of the time window). The nonce key is a
Secrets Manager secret read once per container: steady state, it is cached, and the last row
measures a request made right after that cache was emptied (a cold container's first DPoP request:
one GetSecretValue more, once).

Steady state otherwise as in bench/scenario.py: clients (CLIENT_CACHE_SECONDS high here), resources
and the signing key cached; the measuring loop's first, unmeasured run of each path fills them.

Inputs, made outside the measurement: each proof (a fresh `jti`, `iat` now, at /token the current
nonce computed with dpop_binding.fresh_nonce, as the server computes the one it hands out; at
/userinfo no nonce, which that endpoint does not demand, and `ath` of the token), each code (one per
run, from a browser signed in with consent remembered; a DPoP code asked for with `dpop_jkt`), each
pushed request for the request_uri row (one /par per run). The refresh rows follow one family each,
as bench/scenario.py's refresh row (each run presents the successor); the bound family's refreshes
carry proofs of the key it is bound to. Access tokens for /userinfo: one per 100 runs (not single
use). Every row answers 200, 201 or 302; the DPoP rows check that the token is bound (token_type
DPoP, cnf.jkt) or that the proof was taken, so a row cannot silently measure a Bearer request.
"""
from __future__ import annotations

from bench.scenario import API, SCOPE, WEB_APP

#: Clients cached for the whole table (bench/delegation.py does the same).
ENV = {"CLIENT_CACHE_SECONDS": "86400"}

CC, CC_DPOP = "POST /token client_credentials (Bearer)", "POST /token client_credentials (DPoP)"
CODE, CODE_DPOP = "POST /token authorization_code (Bearer)", "POST /token authorization_code (DPoP, dpop_jkt)"
REFRESH, REFRESH_DPOP = ("POST /token refresh, public client (Bearer)",
                         "POST /token refresh, public client (DPoP-bound)")
USERINFO, USERINFO_DPOP = "GET /userinfo (Bearer)", "GET /userinfo (DPoP)"
PAR = "POST /par (client_secret_basic)"
AUTHORIZE, AUTHORIZE_PUSHED = ("GET /authorize (front channel, signed in, consented)",
                               "GET /authorize (request_uri, signed in, consented)")
#: A DPoP request whose container has not read the nonce key yet (its first DPoP request at /token).
COLD = "POST /token client_credentials (DPoP, cold nonce)"

#: Each row that differs from a plain request -> its twin: the difference is what DPoP (or PAR) adds.
TWINS = {CC_DPOP: CC, CODE_DPOP: CODE, REFRESH_DPOP: REFRESH, USERINFO_DPOP: USERINFO, AUTHORIZE_PUSHED: AUTHORIZE,
         COLD: CC_DPOP}


def seed(scenario) -> None:
    """A confidential web client (client_secret_basic) that pushes its requests. Call after
    bench/scenario.seed(), with ENV in the environment. Sets scenario.sender_constrained."""
    from types import SimpleNamespace

    from chalicelib.config import settings
    from chalicelib.oauth.clients import create_client

    settings.cache_clear()  # ENV is read from here on
    web, secret = create_client(client_name="Portal", client_type="confidential", redirect_uris=[WEB_APP],
                                grant_types=["authorization_code", "refresh_token"],
                                scopes=["openid", "email", "offline_access"])
    scenario.sender_constrained = SimpleNamespace(web=web, web_secret=secret)


def paths(http, scenario) -> dict:
    """label -> (make_input or None, request(input) -> response): the sixth table's rows."""
    import json
    from urllib.parse import urlencode

    import jwt

    from bench.scenario import basic
    from chalicelib import caches
    from chalicelib.config import settings
    from chalicelib.oauth import dpop_binding, pkce
    from tests.dpop_proofs import DpopKey
    from tests.routes.flow import FORM, VERIFIER, Browser, authorize_query, query_of, redeem, sign_in_and_consent

    s = settings()
    token_url, userinfo_url = f"{s.issuer}/token", f"{s.issuer}/userinfo"
    public, web = scenario.public, scenario.sender_constrained.web
    service_auth = basic(scenario.service.client_id, scenario.service_secret)
    web_auth = basic(web.client_id, scenario.sender_constrained.web_secret)
    key = DpopKey()  # the public client's (and the job's) DPoP key

    def expect(response, status: int):
        """The request did what the row says (measure() only checks the status class)."""
        assert response.status_code == status, (response.status_code, response.body[:300])
        return response

    def bound(response):
        """A DPoP row's token is bound to the key (RFC 9449 §5, §6.1): not a Bearer token in disguise."""
        tokens = json.loads(expect(response, 200).body)
        assert tokens["token_type"] == "DPoP", tokens
        assert jwt.decode(tokens["access_token"], options={"verify_signature": False})["cnf"] == {"jkt": key.jkt}
        assert response.headers["DPoP-Nonce"], "every /token answer to a DPoP request carries the next nonce"
        return response

    def token_proof():
        """A proof for POST /token: fresh jti, iat now, the nonce the server hands out now."""
        return key.proof("POST", token_url, nonce=dpop_binding.fresh_nonce(s))

    def post_token(form: dict, headers: dict = FORM, proof: str | None = None):
        return http.post("/token", body=urlencode(form).encode(), headers={**headers, **({"DPoP": proof} if proof
                                                                                          else {})})

    def every_100(make):
        """make() once per 100 runs: a signed-in browser, an access token (neither single use)."""
        held = [None, 0]

        def get():
            if held[1] % 100 == 0:
                held[0] = make()
            held[1] += 1
            return held[0]
        return get

    def signed_in(client_id: str):
        """A browser signed in, with consent to client_id remembered (bench/scenario.py's sessions)."""
        def make():
            browser = Browser(http)
            sign_in_and_consent(browser, client_id, scope=SCOPE, redirect_uri=WEB_APP)
            return browser
        return every_100(make)

    public_browser, web_browser = signed_in(public.client_id), signed_in(web.client_id)

    def new_code(**authorize):
        return query_of(sign_in_and_consent(public_browser(), public.client_id, scope=SCOPE, redirect_uri=WEB_APP,
                                            **authorize))["code"]

    def redeem_code(code):
        return expect(redeem(http, public.client_id, code, redirect_uri=WEB_APP), 200)

    def redeem_bound(value):
        code, proof = value
        return bound(post_token({"grant_type": "authorization_code", "code": code, "redirect_uri": WEB_APP,
                                 "code_verifier": VERIFIER, "client_id": public.client_id}, proof=proof))

    def bound_code():
        return new_code(dpop_jkt=key.jkt), token_proof()

    # The refresh families: each run presents the successor the previous one got.
    chains: dict[str, str] = {}

    def refresh_input(name: str, first):
        def make():
            token = chains.get(name) or json.loads(first().body)["refresh_token"]
            return (token, token_proof()) if name == "dpop" else token
        return make

    def refresh(token):
        response = expect(post_token({"grant_type": "refresh_token", "refresh_token": token,
                                      "client_id": public.client_id}), 200)
        chains["bearer"] = json.loads(response.body)["refresh_token"]
        return response

    def refresh_bound(value):
        token, proof = value
        response = bound(post_token({"grant_type": "refresh_token", "refresh_token": token,
                                     "client_id": public.client_id}, proof=proof))
        chains["dpop"] = json.loads(response.body)["refresh_token"]
        return response

    def first_bound_tokens():
        return redeem_bound(bound_code())

    bearer_token = every_100(lambda: json.loads(redeem_code(new_code()).body)["access_token"])
    dpop_token = every_100(lambda: json.loads(first_bound_tokens().body)["access_token"])

    def userinfo_proof():
        token = dpop_token()
        return token, key.proof("GET", userinfo_url, access_token=token)  # no nonce: /userinfo does not ask

    def userinfo_bound(value):
        token, proof = value
        return expect(http.get("/userinfo", headers={"Authorization": f"DPoP {token}", "DPoP": proof}), 200)

    cc = {"grant_type": "client_credentials", "resource": API}

    def cold_proof():
        """A current proof, then the nonce key forgotten as a new container has not read it yet."""
        proof = token_proof()
        caches.registered()["dpop_binding.nonce_key"][1]()
        return proof

    # PAR: the web client's request, pushed; then /authorize with client_id and request_uri only.
    pushed_params = {"client_id": web.client_id, "redirect_uri": WEB_APP, "response_type": "code", "scope": SCOPE,
                     "state": "xyz-state", "nonce": "n-0S6", "code_challenge_method": "S256"}

    def push(_=None):
        body = urlencode({**pushed_params, "code_challenge": pkce.s256(VERIFIER)}).encode()
        return expect(http.post("/par", body=body, headers=web_auth), 201)

    def pushed_authorization():
        browser, request_uri = web_browser(), json.loads(push().body)["request_uri"]
        return browser, "/authorize?" + urlencode({"client_id": web.client_id, "request_uri": request_uri})

    def authorized(response):
        """Straight back to the client with a code: the session and the remembered consent sufficed."""
        expect(response, 302)
        assert response.headers["Location"].startswith(WEB_APP + "?code="), response.headers["Location"]
        return response

    front_channel = "/authorize?" + authorize_query(web.client_id, scope=SCOPE, redirect_uri=WEB_APP)

    return {
        CC: (None, lambda _: expect(post_token(cc, service_auth), 200)),
        CC_DPOP: (token_proof, lambda proof: bound(post_token(cc, service_auth, proof))),
        CODE: (new_code, redeem_code),
        CODE_DPOP: (bound_code, redeem_bound),
        REFRESH: (refresh_input("bearer", lambda: redeem_code(new_code())), refresh),
        REFRESH_DPOP: (refresh_input("dpop", first_bound_tokens), refresh_bound),
        USERINFO: (bearer_token, lambda token: expect(http.get("/userinfo", headers={"Authorization": f"Bearer {token}"}),
                                                      200)),
        USERINFO_DPOP: (userinfo_proof, userinfo_bound),
        PAR: (None, push),
        AUTHORIZE: (web_browser, lambda browser: authorized(browser.get(front_channel))),
        AUTHORIZE_PUSHED: (pushed_authorization, lambda value: authorized(value[0].get(value[1]))),
        COLD: (cold_proof, lambda proof: bound(post_token(cc, service_auth, proof))),
    }
