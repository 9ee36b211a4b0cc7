"""DPoP proofs (RFC 9449 §4) for trying DPoP from a shell with curl (README "DPoP"):

    python -m examples.agents.dpop_proof keygen dpop-key.pem          # prints the key's jkt
    python -m examples.agents.dpop_proof proof dpop-key.pem POST http://localhost:8000/token [NONCE]
    python -m examples.agents.dpop_proof proof dpop-key.pem GET http://localhost:8000/userinfo NONCE ACCESS_TOKEN

`keygen` writes a new P-256 private key (PEM, mode 0600) and prints its RFC 7638 thumbprint: the
value of `dpop_jkt` at /authorize (§10) and of `cnf.jkt` in the tokens bound to it. `proof` prints a
fresh proof for one request: `typ` dpop+jwt, the public key in `jwk`, `htm` and `htu` naming the
request, `iat` now, a random `jti` (the server accepts each once), the server's `nonce` when given
("-" for none) and, with an access token, its hash `ath` (§4.2, for resource servers). Real clients
use their OAuth library for this (requests-oauth2client's DPoPKey, for instance); this is the same
JWT, with pyjwt and cryptography only.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import sys
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def _public_jwk(key) -> dict:
    public = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {name: public[name] for name in ("kty", "crv", "x", "y")}


def thumbprint(jwk: dict) -> str:
    """RFC 7638 §3: SHA-256 of the required members, sorted, without whitespace; base64url."""
    canonical = json.dumps({name: jwk[name] for name in ("crv", "kty", "x", "y")}, separators=(",", ":"),
                           sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def keygen(path: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
        f.write(pem)
    return thumbprint(_public_jwk(key))


def proof(path: str, method: str, url: str, nonce: str | None = None, access_token: str | None = None) -> str:
    with open(path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    claims = {"jti": secrets.token_urlsafe(16), "htm": method, "htu": url, "iat": int(time.time())}
    if nonce and nonce != "-":
        claims["nonce"] = nonce
    if access_token:
        digest = hashlib.sha256(access_token.encode("ascii")).digest()
        claims["ath"] = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return jwt.encode(claims, key, algorithm="ES256", headers={"typ": "dpop+jwt", "jwk": _public_jwk(key)})


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "keygen":
        print(keygen(argv[1]))
        return 0
    if 4 <= len(argv) <= 6 and argv[0] == "proof":
        print(proof(*argv[1:]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
