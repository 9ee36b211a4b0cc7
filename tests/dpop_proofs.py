"""A DPoP client's key and the proofs it signs (RFC 9449 §4.2), for tests: correct by default, and
wrong on request (every claim and header member can be overridden or dropped), to attack the checks
of the token endpoint and of resource servers.

Two call styles, one key type: `DpopKey.proof(htm, htu, nonce=, iat=, ...)` drops members given as
None (the token endpoint's tests); `ProofKey.proof(method, url, ...)` drops members given as DROP
(the resource servers' tests, where None is a value worth sending)."""
from __future__ import annotations

import time
import uuid

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from chalicelib.keys.jwk import public_jwk
from chalicelib.oauth.dpop import access_token_hash, jwk_thumbprint

TOKEN_URL = "http://localhost:8000/token"
DROP = object()


class DpopKey:
    """An ES256 key pair; `jkt` is its RFC 7638 thumbprint (what `cnf.jkt` and `dpop_jkt` carry)."""

    def __init__(self):
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        jwk = public_jwk(self.private_key.public_key(), "ES256")
        self.jwk = {k: jwk[k] for k in ("kty", "crv", "x", "y")}
        self.jkt = jwk_thumbprint(self.jwk)

    @property
    def private(self):
        return self.private_key

    def cnf(self) -> dict:
        """The confirmation claim of a token bound to this key (RFC 9449 §6.1)."""
        return {"jkt": self.jkt}

    def _sign(self, body: dict, header: dict, dropped) -> str:
        return jwt.encode({k: v for k, v in body.items() if v is not dropped}, self.private_key, algorithm="ES256",
                          headers={k: v for k, v in header.items() if v is not dropped})

    def proof(self, htm: str = "POST", htu: str = TOKEN_URL, *, nonce: str | None = None,
              access_token: str | None = None, iat: int | None = None, headers: dict | None = None,
              **claims) -> str:
        body = {"jti": uuid.uuid4().hex, "htm": htm, "htu": htu, "iat": int(time.time()) if iat is None else iat}
        if nonce is not None:
            body["nonce"] = nonce
        if access_token is not None:
            body["ath"] = access_token_hash(access_token)
        body.update(claims)
        return self._sign(body, {"typ": "dpop+jwt", "jwk": self.jwk, **(headers or {})}, None)


class ProofKey(DpopKey):
    """The same key; overrides of value DROP remove the member."""

    def proof(self, method: str, url: str, *, access_token: str | None = None, header: dict | None = None,
              **claims) -> str:
        body = {"jti": uuid.uuid4().hex, "htm": method, "htu": url, "iat": int(time.time())}
        if access_token is not None:
            body["ath"] = access_token_hash(access_token)
        body.update(claims)
        return self._sign(body, {"typ": "dpop+jwt", "jwk": self.jwk, **(header or {})}, DROP)
