"""Public keys as JWKs (RFC 7517/7518) and their RFC 7638 thumbprints, used as `kid`."""
from __future__ import annotations

import base64
import hashlib
import json

#: RFC 7638 §3.2: the required members, per key type, that the thumbprint covers (OKP: RFC 8037 §2).
_THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}


def thumbprint(jwk: dict) -> str:
    """RFC 7638 §3: SHA-256 over the required members, sorted, without whitespace; base64url."""
    members = {name: jwk[name] for name in _THUMBPRINT_MEMBERS[jwk["kty"]]}
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode("ascii")


def public_jwk(public_key, alg: str) -> dict:
    """The JWK published in /jwks for `public_key`, with kid = its RFC 7638 thumbprint."""
    from jwt.algorithms import ECAlgorithm, RSAAlgorithm

    algorithm = ECAlgorithm if alg.startswith("ES") else RSAAlgorithm
    jwk = algorithm.to_jwk(public_key, as_dict=True)
    base = {name: jwk[name] for name in _THUMBPRINT_MEMBERS[jwk["kty"]]}
    return {**base, "kid": thumbprint(base), "use": "sig", "alg": alg}
