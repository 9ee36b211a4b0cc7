"""Two running stacks of this IdP for the federation end-to-end tests (issue 15): an UPSTREAM (issuer
http://127.0.0.1:<port>, so its cookies never mix with the downstream's on `localhost`: cookies ignore
ports) and a DOWNSTREAM (http://localhost:<port>) that signs its users in through the upstream.

Everything is set up as an operator following README would, with `./idp-admin` run against each
stack's own environment (its moto server, tables and issuer): on the upstream a confidential client
whose redirect URI is the downstream's /federation/callback, and users; on the downstream the
connection (`connections create --preset oidc ... --client-secret-stdin --domains example-corp.test`),
a second one to panva's oidc-provider (tests/integration/upstreams.py) started with the downstream's
callback, and the test relying party's client.

`Browser` is one cookie-keeping user agent over plain HTTP (requests), posting forms as a browser
without JavaScript would: the hidden fields of the page's form and the page's own Origin.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urljoin, urlsplit

import jwt
import requests

from tests.conftest import TEST_ENV
from tests.integration.conftest import SECRET_PREFIX, Stack
from tests.integration.hosted_flow import hidden_inputs, query_of
from tests.integration.upstreams import CLIENT_SECRET as NODE_CLIENT_SECRET
from tests.integration.upstreams import NodeUpstream, start_node_upstream
from tools.stage_env import ROOT

TIMEOUT = 10
PASSWORD = "correct horse battery staple"
#: The test relying party's redirect URI at the downstream: nothing listens; the flow stops at it.
RP_REDIRECT_URI = "http://127.0.0.1:5000/cb"
CONNECTION = "corp"
CONNECTION_NAME = "Example Corp"
CORP_DOMAIN = "example-corp.test"
NODE_CONNECTION = "node-op"


def admin(stack: Stack, *argv: str, stdin: str = "") -> dict:
    """`./idp-admin ARGV` in the stack's environment, as README has an operator run it next to
    `make run` (the ports, tables and issuer the stack was started with); its JSON result."""
    env = {k: v for k, v in os.environ.items() if k not in TEST_ENV and k != "AWS_ENDPOINT_URL"}
    env.update(PORT=str(stack.port), MOTO_PORT=str(stack.moto_port), ISSUER=stack.base_url,
               LOCAL_STATE_DIR=str(stack.state_dir), TABLE_PREFIX=TEST_ENV["TABLE_PREFIX"],
               SECRET_PREFIX=SECRET_PREFIX, KEY_BACKEND=stack.backend)
    done = subprocess.run([str(ROOT / "idp-admin"), *argv], input=stdin, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, f"idp-admin {' '.join(argv)}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout)


def new_user(stack: Stack, email: str, password: str = PASSWORD) -> str:
    """A user with a verified address (the stacks run with REQUIRE_VERIFIED_EMAIL on); its sub."""
    return admin(stack, "users", "create", "--email", email, "--name", "Test User", "--verified",
                 "--password-stdin", stdin=password + "\n")["sub"]


def unique(local: str, domain: str) -> str:
    return f"{local}-{secrets.token_hex(4)}@{domain}"


@dataclass
class Federated:
    upstream: Stack
    downstream: Stack
    node: NodeUpstream
    #: The relying party's confidential client at the downstream.
    client_id: str
    client_secret: str
    redirect_uri: str = RP_REDIRECT_URI

    def authorization_request(self, **extra) -> "AuthorizationRequest":
        return AuthorizationRequest.make(self.downstream.base_url, self.client_id, self.redirect_uri, **extra)

    def redeem(self, request: "AuthorizationRequest", location: str) -> dict:
        """The code in `location` (the redirect to the relying party) -> the verified ID token's claims."""
        params = query_of(location)
        assert location.startswith(self.redirect_uri + "?") and "code" in params, location
        assert params["state"] == request.state and params["iss"] == self.downstream.base_url
        tokens = requests.post(f"{self.downstream.base_url}/token", timeout=TIMEOUT,
                               auth=(self.client_id, self.client_secret),
                               data={"grant_type": "authorization_code", "code": params["code"],
                                     "redirect_uri": self.redirect_uri, "code_verifier": request.verifier})
        assert tokens.status_code == 200, tokens.text
        return verify_id_token(self.downstream, tokens.json()["id_token"], self.client_id, request.nonce)


def verify_id_token(stack: Stack, id_token: str, client_id: str, nonce: str) -> dict:
    """OIDC Core §3.1.3.7 with PyJWT against the stack's published JWKS."""
    discovery = stack.get("/.well-known/openid-configuration").json()
    key = jwt.PyJWKClient(discovery["jwks_uri"], cache_keys=False).get_signing_key_from_jwt(id_token)
    claims = jwt.decode(id_token, key.key, algorithms=discovery["id_token_signing_alg_values_supported"],
                        audience=client_id, issuer=stack.base_url)
    assert claims["nonce"] == nonce
    return claims


@dataclass
class AuthorizationRequest:
    url: str
    state: str
    nonce: str
    verifier: str

    @classmethod
    def make(cls, base_url: str, client_id: str, redirect_uri: str, **extra) -> "AuthorizationRequest":
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        query = urlencode({"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
                           "scope": "openid email profile", "state": state, "nonce": nonce,
                           "code_challenge": challenge, "code_challenge_method": "S256", **extra})
        return cls(f"{base_url}/authorize?{query}", state, nonce, verifier)


class Browser:
    """One browser's cookies, over plain HTTP; redirects are followed one at a time so that tests see
    where each one goes."""

    def __init__(self):
        self.http = requests.Session()

    def get(self, url: str) -> requests.Response:
        return self.http.get(url, allow_redirects=False, timeout=TIMEOUT)

    def submit(self, page: requests.Response, action: str, fields: dict | None = None) -> requests.Response:
        """Post the page's first form to `action` (its hidden fields, then `fields`) with the page's
        own Origin, as a browser's same-origin form post."""
        parts = urlsplit(page.url)
        origin = f"{parts.scheme}://{parts.netloc}"
        body = {**hidden_inputs(page.text, action), **(fields or {})}
        return self.http.post(urljoin(page.url, action), data=body, headers={"Origin": origin},
                              allow_redirects=False, timeout=TIMEOUT)

    def follow(self, response: requests.Response, *, until: str | None = None) -> requests.Response | str:
        """Follow redirects while they stay on the stacks; the page they end on, or the Location
        that leaves them (the relying party's redirect URI, another upstream) as a string. `until`:
        stop at (return) the first Location starting with it."""
        for _ in range(10):
            if not response.is_redirect:
                return response
            location = urljoin(response.url, response.headers["Location"])
            if until and location.startswith(until):
                return location
            if not location.startswith(tuple(self.stay_on)):
                return location
            response = self.get(location)
        raise AssertionError(f"redirect loop at {response.url}")

    stay_on: tuple[str, ...] = ()

    def signed_in_at(self, stack: Stack) -> bool:
        """Whether `stack` takes this browser for a signed-in user (its account page opens)."""
        page = self.follow(self.get(f"{stack.base_url}/account"))
        assert page_path(page) in ("/account", "/account/login"), page.url
        return page_path(page) == "/account"


def page_path(response) -> str:
    assert not isinstance(response, str), f"left the stacks for {response}"
    return urlsplit(response.url).path


def federated_stacks(directory: Path):
    """The two stacks, the node OP, and their registrations (see the module docstring): a generator
    for conftest's session fixture `federated`, shared by the end-to-end and browser modules."""
    upstream = Stack(directory / "upstream", "secretsmanager", directory, host="127.0.0.1")
    # The tests reconfigure the downstream as they go (a connection trusted for ID-JAGs, a client's
    # restriction): with no client/connection cache each change is seen by the next request, as
    # it is within CLIENT_CACHE_SECONDS in a deployment.
    downstream = Stack(directory / "downstream", "secretsmanager", directory, extra_env={"CLIENT_CACHE_SECONDS": "0"})
    stacks = [upstream, downstream]
    node = None
    try:
        for stack in stacks:
            stack.wait_ready()
        callback = f"{downstream.base_url}/federation/callback"
        node = start_node_upstream([callback], directory / "node-op.log")
        at_upstream = admin(upstream, "clients", "create", "--name", "Downstream IdP", "--redirect-uri", callback,
                            "--scope", "openid", "--scope", "email", "--scope", "profile")
        created = admin(downstream, "connections", "create", "--preset", "oidc", "--id", CONNECTION,
                        "--client-id", at_upstream["client_id"], "--issuer", upstream.base_url,
                        "--display-name", CONNECTION_NAME, "--domains", CORP_DOMAIN, "--client-secret-stdin",
                        stdin=at_upstream["client_secret"] + "\n")
        assert created["redirect_uri"] == callback
        admin(downstream, "connections", "create", "--preset", "oidc", "--id", NODE_CONNECTION,
              "--client-id", "rp-basic", "--issuer", node.issuer, "--display-name", "Node OP",
              "--client-secret-stdin", stdin=NODE_CLIENT_SECRET + "\n")
        rp = admin(downstream, "clients", "create", "--name", "Notes App", "--redirect-uri", RP_REDIRECT_URI,
                   "--scope", "openid", "--scope", "email", "--scope", "profile")
        Browser.stay_on = (upstream.base_url + "/", downstream.base_url + "/")
        yield Federated(upstream, downstream, node, rp["client_id"], rp["client_secret"])
    finally:
        if node is not None:
            node.process.terminate()
            node.process.wait(timeout=10)
        for stack in stacks:
            stack.kill()
            print(stack.output())
