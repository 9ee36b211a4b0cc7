"""Public keys as JWKs (RFC 7517/7518), their RFC 7638 thumbprints (used as `kid`, and as DPoP's
`jkt`), and whether a key fits a JWS algorithm (client assertions, DPoP proofs)."""
from __future__ import annotations

import base64
import hashlib
import json

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

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


def fits(key, alg: str) -> bool:
    """Is `key` a public key `alg` verifies with: P-256 for ES256 (RFC 7518 §3.4), RSA of at least
    2048 bits for RS256 and PS256 (§3.3, §3.5), Ed25519 for EdDSA (RFC 8037 §3.1)? A private key never fits: a JWK
    Set that publishes one lets anybody sign as the client, a proof carrying one proves nothing."""
    if alg == "ES256":
        return isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    if alg in ("RS256", "PS256"):  # PS256: RFC 7518 §3.5, the RSA algorithm FAPI 2.0 §5.4.1 allows
        return isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048
    if alg == "EdDSA":
        return isinstance(key, ed25519.Ed25519PublicKey)
    return False
