"""An upstream identity provider in the test process: discovery, JWKS, token, userinfo and GitHub's
REST API on a loopback HTTP server, signing ID tokens with a test key, with knobs to misbehave.

Tests drive it without a browser: `start()`'s URL goes to `authorize(url, ...)`, which records the
request as an upstream would and returns the callback parameters (code, state, iss); `finish()` then
redeems the code here. Every knob is a plain attribute, set per test:

- `claims_overrides` / `drop_claims`: ID token claims changed or removed (iss, aud, azp, nonce, exp, tid...);
- `alg`: "ES256" (default), "none", or "HS256-public-key" (HMAC keyed with the public key's PEM);
- `kid`: the header's kid (None drops it); `send_iss`: RFC 9207 `iss` in the response; `iss_param`: its value;
- `metadata_overrides`: discovery fields (issuer, authorization_response_iss_parameter_supported...);
- `token_answer`: (status, body bytes) answered instead of tokens; `userinfo_overrides`; `email_in_id_token`;
- `github_user` / `github_emails`: what /api/user and /api/user/emails say.
`hits` counts requests per path; `token_requests` keeps each token request's form and headers.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote_plus, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

CLIENT_ID = "our-client"
CLIENT_SECRET = "upstream-client-secret"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def client_key_pem() -> tuple[str, dict]:
    """A private key for private_key_jwt (PEM) and its public JWK, to register at an upstream."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return pem, json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))


class FakeUpstream:
    def __init__(self):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.public_pem = self.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                             serialization.PublicFormat.SubjectPublicKeyInfo)
        self.client_public_key = None  # set to verify private_key_jwt assertions
        self.codes: dict[str, dict] = {}
        self.access_tokens: dict[str, dict] = {}
        self.hits: dict[str, int] = {}
        self.token_requests: list[dict] = []
        self.reset_knobs()
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                upstream._serve(self, "GET")

            def do_POST(self):
                upstream._serve(self, "POST")

            def log_message(self, *_args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reset_knobs(self) -> None:
        self.claims_overrides: dict = {}
        self.drop_claims: set = set()
        self.alg = "ES256"
        self.kid: str | None = "k1"
        self.jwks_kid = "k1"
        self.send_iss = True
        self.iss_param: str | None = None
        self.metadata_overrides: dict = {}
        self.token_answer: tuple[int, bytes] | None = None
        self.userinfo_overrides: dict = {}
        self.email_in_id_token = True
        self.github_user = {"id": 4242, "login": "octo", "name": "Octo Cat"}
        self.github_emails = [{"email": "other@example.com", "primary": False, "verified": True},
                              {"email": "octo@example.com", "primary": True, "verified": True}]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # What a connection to this upstream looks like (chalicelib/federation/connections.Connection's fields).

    def connection_fields(self, **overrides) -> dict:
        fields = dict(connection_id="fake", preset="oidc", protocol="oidc", display_name="Fake IdP",
                      client_id=CLIENT_ID, auth_method="client_secret_basic", issuer=self.issuer, discovery_url=None,
                      allowed_tenants=(), authorization_endpoint=None, token_endpoint=None, api_base=None,
                      scopes=("openid", "email", "profile"), response_mode="query", claim_mapping={}, acr_mapping={},
                      trusted_email_domains=(), domains=(), store_tokens=False, apple_team_id=None,
                      apple_key_id=None, icon_url=None, enabled=True, created_at=0, updated_at=0)
        return {**fields, **overrides}

    def github_fields(self, **overrides) -> dict:
        return self.connection_fields(
            connection_id="github", preset="github", protocol="github", issuer=None, auth_method="client_secret_post",
            authorization_endpoint=f"{self.issuer}/login/oauth/authorize",
            token_endpoint=f"{self.issuer}/login/oauth/access_token", api_base=f"{self.issuer}/api",
            scopes=("read:user", "user:email"), **overrides)

    # The browser's visit to the authorization endpoint --------------------------------------------

    def authorize(self, url: str, *, sub: str = "upstream-user-1", **claims) -> dict:
        """What the upstream sends back to the redirect URI after the user signed in as `sub`."""
        query = dict(parse_qsl(urlsplit(url).query))
        assert query["response_type"] == "code" and query["code_challenge_method"] == "S256"
        code = secrets.token_urlsafe(16)
        self.codes[code] = {"query": query, "sub": sub,
                            "claims": {"email": "alice@example.com", "email_verified": True,
                                       "name": "Alice Upstream", **claims}}
        params = {"code": code, "state": query["state"]}
        if self.send_iss:
            params["iss"] = self.iss_param or self.issuer
        return params

    # The HTTP server ----------------------------------------------------------------------------

    def metadata(self) -> dict:
        return {"issuer": self.issuer, "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token", "userinfo_endpoint": f"{self.issuer}/userinfo",
                "jwks_uri": f"{self.issuer}/jwks", "response_types_supported": ["code"],
                "id_token_signing_alg_values_supported": ["ES256", "RS256"],
                "authorization_response_iss_parameter_supported": True, **self.metadata_overrides}

    def _serve(self, request: BaseHTTPRequestHandler, method: str) -> None:
        path = urlsplit(request.path).path
        self.hits[path] = self.hits.get(path, 0) + 1
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0)) if method == "POST" else b""
        if path.endswith("/.well-known/openid-configuration"):
            return _answer(request, 200, self.metadata(), {"Cache-Control": "max-age=3600"})
        if path == "/jwks":
            jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.key.public_key()))
            return _answer(request, 200, {"keys": [{**jwk, "kid": self.jwks_kid, "use": "sig", "alg": "ES256"}]})
        if path in ("/token", "/login/oauth/access_token") and method == "POST":
            return self._token(request, body, github=path != "/token")
        if path in ("/userinfo", "/api/user", "/api/user/emails"):
            grant = self.access_tokens.get(request.headers.get("Authorization", "").removeprefix("Bearer "))
            if grant is None:
                return _answer(request, 401, {"error": "invalid_token"})
            if path == "/api/user":
                return _answer(request, 200, self.github_user)
            if path == "/api/user/emails":
                return _answer(request, 200, self.github_emails)
            return _answer(request, 200, {"sub": grant["sub"], **grant["claims"], **self.userinfo_overrides})
        _answer(request, 404, {"error": "not_found"})

    def _token(self, request, body: bytes, *, github: bool) -> None:
        form = dict(parse_qsl(body.decode()))
        self.token_requests.append({"form": form, "headers": dict(request.headers)})
        if self.token_answer is not None:
            status, raw = self.token_answer
            request.send_response(status)
            request.send_header("Content-Type", "application/json")
            request.end_headers()
            request.wfile.write(raw)
            return
        grant = self.codes.pop(form.get("code", ""), None)
        if grant is None or not self._client_authenticated(request, form):
            return _answer(request, 400, {"error": "invalid_grant" if grant is None else "invalid_client"})
        query = grant["query"]
        challenge = b64url(hashlib.sha256(form.get("code_verifier", "").encode()).digest())
        if challenge != query["code_challenge"] or form.get("redirect_uri") != query["redirect_uri"]:
            return _answer(request, 400, {"error": "invalid_grant"})
        access_token = secrets.token_urlsafe(16)
        self.access_tokens[access_token] = grant
        tokens = {"access_token": access_token, "token_type": "bearer" if github else "Bearer", "expires_in": 300}
        if not github:
            tokens["id_token"] = self.id_token(grant)
        _answer(request, 200, tokens, {"Cache-Control": "no-store"})

    def _client_authenticated(self, request, form: dict) -> bool:
        authorization = request.headers.get("Authorization", "")
        if authorization.startswith("Basic "):
            client_id, _, secret = base64.b64decode(authorization[6:]).decode().partition(":")
            return (unquote_plus(client_id), unquote_plus(secret)) == (CLIENT_ID, CLIENT_SECRET)
        if "client_assertion" in form:
            try:
                claims = jwt.decode(form["client_assertion"], self.client_public_key, algorithms=["ES256"],
                                    audience=f"{self.issuer}/token", options={"require": ["exp", "jti"]})
            except jwt.PyJWTError:
                return False
            return claims["iss"] == claims["sub"] == CLIENT_ID \
                and form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        return (form.get("client_id"), form.get("client_secret")) == (CLIENT_ID, CLIENT_SECRET)

    def id_token(self, grant: dict) -> str:
        at = int(time.time())
        claims = {"iss": self.issuer, "sub": grant["sub"], "aud": CLIENT_ID, "iat": at, "exp": at + 300,
                  "auth_time": at, "nonce": grant["query"].get("nonce"), "acr": "urn:example:pwd", "amr": ["pwd"]}
        if self.email_in_id_token:
            claims.update(grant["claims"])
        claims.update(self.claims_overrides)
        for name in self.drop_claims:
            claims.pop(name, None)
        return self.sign(claims)

    def sign(self, claims: dict) -> str:
        header = {"alg": self.alg, "typ": "JWT"}
        if self.kid is not None:
            header["kid"] = self.kid
        if self.alg == "ES256":
            return jwt.encode(claims, self.key, algorithm="ES256", headers=header)
        # Forgeries PyJWT will not make: hand-built.
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        if self.alg == "none":
            return signing_input + "."
        assert self.alg == "HS256-public-key"
        header["alg"] = "HS256"
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        signature = hmac.new(self.public_pem, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{b64url(signature)}"


def _answer(request, status: int, document, headers: dict | None = None) -> None:
    raw = json.dumps(document).encode()
    request.send_response(status)
    request.send_header("Content-Type", "application/json")
    request.send_header("Content-Length", str(len(raw)))
    for name, value in (headers or {}).items():
        request.send_header(name, value)
    request.end_headers()
    request.wfile.write(raw)

