"""A DPoP client key for tests: makes RFC 9449 §4.2 proofs, correct by default, and wrong on request
(every claim and header can be overridden or dropped), to attack the checks of a resource server."""
from __future__ import annotations

import time
import uuid

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from chalicelib.oauth.dpop import access_token_hash, jwk_thumbprint

_DROP = object()


class ProofKey:
    """An ES256 key pair, as a DPoP client holds one."""

    def __init__(self):
        self.private = ec.generate_private_key(ec.SECP256R1())
        public = jwt.algorithms.ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        self.jwk = {k: public[k] for k in ("kty", "crv", "x", "y")}
        self.jkt = jwk_thumbprint(self.jwk)

    def cnf(self) -> dict:
        """The confirmation claim of a token bound to this key (RFC 9449 §6.1)."""
        return {"jkt": self.jkt}

    def proof(self, method: str, url: str, *, access_token: str | None = None, header: dict | None = None,
              **claims) -> str:
        """A proof for `method` `url`, with `ath` for `access_token`; keyword claims override (a value
        of DROP removes the claim), `header` overrides header members the same way."""
        body = {"jti": uuid.uuid4().hex, "htm": method, "htu": url, "iat": int(time.time())}
        if access_token is not None:
            body["ath"] = access_token_hash(access_token)
        body.update(claims)
        headers = {"typ": "dpop+jwt", "jwk": self.jwk, **(header or {})}
        return jwt.encode({k: v for k, v in body.items() if v is not _DROP}, self.private, algorithm="ES256",
                          headers={k: v for k, v in headers.items() if v is not _DROP})


DROP = _DROP
