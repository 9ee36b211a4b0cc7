"""JWS compact serialisation with pyjwt, signing through our `Signer` (in-process or KMS).

pyjwt builds the header and payload; a tiny Algorithm adapter hands the signing input to the
Signer, so the KMS backend never needs the private key and both backends share one code path.
"""
from __future__ import annotations

import functools
import json

from jwt import PyJWS
from jwt.algorithms import Algorithm

from .. import caches
from ..keys.backends import Signer


class _SignerAlgorithm(Algorithm):
    """Delegates `sign` to the Signer passed as the key. Never used to verify."""

    def prepare_key(self, key):
        return key

    def sign(self, msg: bytes, key: Signer) -> bytes:
        return key.sign(msg)

    def verify(self, msg, key, sig) -> bool:  # pragma: no cover - signing-only adapter
        raise NotImplementedError("verification uses pyjwt's own algorithms with the public JWK")

    @staticmethod
    def to_jwk(key_obj, as_dict=False):  # pragma: no cover - abstract in pyjwt, unused here
        raise NotImplementedError

    @staticmethod
    def from_jwk(jwk):  # pragma: no cover - abstract in pyjwt, unused here
        raise NotImplementedError


@functools.lru_cache(maxsize=None)
def _jws_for(alg: str) -> PyJWS:
    jws = PyJWS(algorithms=[])
    jws.register_algorithm(alg, _SignerAlgorithm())
    return jws


caches.register("jws", _jws_for.cache_clear, kind="memo")


def encode(claims: dict, signer: Signer, *, typ: str = "JWT") -> str:
    """Sign `claims` as a compact JWS with header {alg, kid, typ}."""
    payload = json.dumps(claims, separators=(",", ":")).encode("utf-8")
    return _jws_for(signer.alg).encode(
        payload, signer, algorithm=signer.alg, headers={"kid": signer.kid, "typ": typ}
    )
