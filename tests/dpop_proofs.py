"""A DPoP client's key and the proofs it signs (RFC 9449 §4.2), for tests: every claim and header
member can be overridden or dropped (None), so a test can make each kind of bad proof."""
from __future__ import annotations

import time
import uuid

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from chalicelib.keys.jwk import public_jwk
from chalicelib.oauth.dpop import access_token_hash, jwk_thumbprint

TOKEN_URL = "http://localhost:8000/token"


class DpopKey:
    """An ES256 key pair; `jkt` is its RFC 7638 thumbprint (what `cnf.jkt` and `dpop_jkt` carry)."""

    def __init__(self):
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        jwk = public_jwk(self.private_key.public_key(), "ES256")
        self.jwk = {k: jwk[k] for k in ("kty", "crv", "x", "y")}
        self.jkt = jwk_thumbprint(self.jwk)

    def proof(self, htm: str = "POST", htu: str = TOKEN_URL, *, nonce: str | None = None,
              access_token: str | None = None, iat: int | None = None, headers: dict | None = None,
              **claims) -> str:
        body = {"jti": uuid.uuid4().hex, "htm": htm, "htu": htu, "iat": int(time.time()) if iat is None else iat}
        if nonce is not None:
            body["nonce"] = nonce
        if access_token is not None:
            body["ath"] = access_token_hash(access_token)
        body.update(claims)
        header = {"typ": "dpop+jwt", "jwk": self.jwk, **(headers or {})}
        return jwt.encode({k: v for k, v in body.items() if v is not None}, self.private_key, algorithm="ES256",
                          headers={k: v for k, v in header.items() if v is not None})
