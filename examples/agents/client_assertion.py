"""A private_key_jwt client's two chores, for trying it from a shell (README "Agents and delegation"):

    python -m examples.agents.client_assertion keygen agent-key.pem > agent-jwks.json
    python -m examples.agents.client_assertion sign agent-key.pem CLIENT_ID http://localhost:8000

`keygen` writes a new P-256 private key (PEM, mode 0600) and prints its public JWK Set, which is what
you register (`./idp-admin clients create ... --auth-method private_key_jwt --jwks-file agent-jwks.json`).
`sign` prints a fresh client assertion (RFC 7523 §2.2 / §3): `iss` = `sub` = the client id, `aud` =
the issuer, a random `jti` (the server accepts each once), `exp` a minute ahead (the server refuses
more than CLIENT_ASSERTION_MAX_LIFETIME). Real clients use their OAuth library for this (Authlib's
PrivateKeyJWT, for instance); this is the same JWT, with pyjwt and cryptography only.
"""
from __future__ import annotations

import json
import os
import secrets
import sys
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

#: The key id registered with the public key and named in each assertion's header.
KID = "agent-key-1"
LIFETIME = 60


def keygen(path: str) -> dict:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
        f.write(pem)
    public = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {"keys": [{**public, "kid": KID, "alg": "ES256", "use": "sig"}]}


def sign(path: str, client_id: str, audience: str) -> str:
    with open(path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    at = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": audience, "iat": at, "exp": at + LIFETIME,
              "jti": secrets.token_urlsafe(16)}
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": KID})


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "keygen":
        print(json.dumps(keygen(argv[1]), indent=2))
        return 0
    if len(argv) == 4 and argv[0] == "sign":
        print(sign(argv[1], argv[2], argv[3]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
