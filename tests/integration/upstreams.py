"""Upstream identity providers for federation tests that this project does not implement.

`node_upstream` (session-scoped) runs panva's oidc-provider (tests/upstream_op/server.mjs, MIT, an
OpenID Certified OP) as a second process on a free loopback port, with three registered clients, one
per client authentication method we use toward OpenID Providers. `NodeUpstream.sign_in` completes its
development login and consent pages over plain HTTP, as a browser would without JavaScript, and returns
the URL the OP redirects to: ours, with code, state and iss. Any login name signs in; the account's
claims derive from it (server.mjs): "alice@acme.test" has that email, verified; a login containing
"+unverified" has email_verified false.

`make test` installs the OP's packages (`npm ci` in tests/upstream_op, from the committed lock file).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests

from tests.conftest import free_port
from tests.fakes.upstream import client_key_pem

OP_DIR = Path(__file__).resolve().parents[1] / "upstream_op"
#: Our callback as the route tests' issuer (http://localhost:8000) has it.
REDIRECT_URI = "http://localhost:8000/federation/callback"
CLIENT_SECRET = "node-upstream-client-secret"
READY_TIMEOUT = 20
#: client id -> its token_endpoint_auth_method at the node OP.
CLIENT_METHODS = {"rp-basic": "client_secret_basic", "rp-post": "client_secret_post", "rp-jwt": "private_key_jwt"}

_FORM = re.compile(r'<form[^>]*\baction="([^"]+)"')
_PROMPT = re.compile(r'name="prompt" value="([a-z]+)"')


@dataclass
class NodeUpstream:
    issuer: str
    process: subprocess.Popen
    #: PEM of the private key registered (its public JWK) for the private_key_jwt client "rp-jwt".
    private_key_pem: str
    redirect_uris: list = field(default_factory=list)

    def connection_fields(self, client_id: str = "rp-basic", **overrides) -> dict:
        """A connection to this OP (chalicelib/federation/connections.Connection's fields)."""
        fields = dict(connection_id="node-op", preset="oidc", protocol="oidc", display_name="Node OP",
                      client_id=client_id, auth_method=CLIENT_METHODS[client_id], issuer=self.issuer,
                      discovery_url=None, allowed_tenants=(), authorization_endpoint=None, token_endpoint=None,
                      api_base=None, scopes=("openid", "email", "profile"), response_mode="query", claim_mapping={},
                      acr_mapping={}, trusted_email_domains=(), domains=(), store_tokens=False, apple_team_id=None,
                      apple_key_id=None, icon_url=None, enabled=True, created_at=0, updated_at=0)
        return {**fields, **overrides}

    def secret(self, client_id: str = "rp-basic") -> dict:
        """The connection's secret (what chalicelib/federation/connections.secret returns)."""
        return {"private_key": self.private_key_pem} if client_id == "rp-jwt" else {"client_secret": CLIENT_SECRET}

    def sign_in(self, authorization_url: str, login: str, *, cancel: bool = False) -> str:
        """Follow the OP's redirects and fill its login and consent forms as `login` (or press its
        "cancel" link when `cancel`); the URL it finally redirects to, off the OP."""
        session = requests.Session()
        response = session.get(authorization_url, allow_redirects=False, timeout=10)
        for _ in range(12):
            if response.is_redirect:
                location = urljoin(response.url, response.headers["Location"])
                if not location.startswith(self.issuer + "/"):
                    return location
                response = session.get(location, allow_redirects=False, timeout=10)
                continue
            form, prompt = _FORM.search(response.text), _PROMPT.search(response.text)
            if response.status_code != 200 or not form or not prompt:
                raise AssertionError(f"the node OP answered {response.status_code}: {response.text[:2000]}")
            action = urljoin(response.url, form.group(1))
            if cancel:
                response = session.get(action + "/abort", allow_redirects=False, timeout=10)
                continue
            data = {"prompt": prompt.group(1)}
            if data["prompt"] == "login":
                data.update(login=login, password="any password")
            response = session.post(action, data=data, allow_redirects=False, timeout=10)
        raise AssertionError("the node OP kept redirecting")


def start_node_upstream(redirect_uris: list[str], log_path: Path) -> NodeUpstream:
    """oidc-provider on a free loopback port, its clients registered for `redirect_uris`; returns once
    its discovery document answers."""
    if not (OP_DIR / "node_modules" / "oidc-provider").is_dir():
        pytest.fail("tests/upstream_op has no node_modules: run `make test`, or `npm ci` in tests/upstream_op")
    node = shutil.which("node") or "/usr/bin/node"
    pem, public_jwk = client_key_pem()
    base = {"redirect_uris": redirect_uris, "response_types": ["code"], "grant_types": ["authorization_code"]}
    clients = [{**base, "client_id": "rp-basic", "client_secret": CLIENT_SECRET,
                "token_endpoint_auth_method": "client_secret_basic"},
               {**base, "client_id": "rp-post", "client_secret": CLIENT_SECRET,
                "token_endpoint_auth_method": "client_secret_post"},
               {**base, "client_id": "rp-jwt", "token_endpoint_auth_method": "private_key_jwt",
                "token_endpoint_auth_signing_alg": "ES256", "jwks": {"keys": [public_jwk]}}]
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PORT": str(port), "ISSUER": issuer, "CLIENTS": json.dumps(clients)}
    with open(log_path, "wb") as log:
        process = subprocess.Popen([node, "server.mjs"], cwd=OP_DIR, env=env, stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the node OP exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            if requests.get(f"{issuer}/.well-known/openid-configuration", timeout=1).status_code == 200:
                return NodeUpstream(issuer, process, pem, redirect_uris)
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    process.kill()
    pytest.fail(f"the node OP did not answer within {READY_TIMEOUT}s:\n{log_path.read_text()}")


@pytest.fixture(scope="session")
def node_upstream(tmp_path_factory):
    upstream = start_node_upstream([REDIRECT_URI], tmp_path_factory.mktemp("node-op") / "server.log")
    yield upstream
    upstream.process.terminate()
    try:
        upstream.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        upstream.process.kill()
