"""/userinfo under PROFILE=fapi2: DPoP proofs are ES256, PS256 or EdDSA (FAPI 2.0 Security Profile §5.4.1),
so an RS256 proof is refused and the challenge names only the profile's algorithms."""
from __future__ import annotations

import json
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from chalicelib.oauth.dpop import access_token_hash, jwk_thumbprint
from tests.dpop_proofs import ProofKey
from tests.routes.flow import query_of, redeem, sign_in_and_consent
from tests.routes.test_userinfo_dpop import USERINFO, dpop_get, mint


class RsaProofKey:
    """An RSA DPoP key: RS256 or PS256 proofs with the same key."""

    def __init__(self):
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        self.jwk = {k: public[k] for k in ("kty", "n", "e")}

    def cnf(self) -> dict:
        return {"jkt": jwk_thumbprint(self.jwk)}

    def proof(self, alg: str, access_token: str) -> str:
        claims = {"jti": uuid.uuid4().hex, "htm": "GET", "htu": USERINFO, "iat": int(time.time()),
                  "ath": access_token_hash(access_token)}
        return jwt.encode(claims, self.private, algorithm=alg, headers={"typ": "dpop+jwt", "jwk": self.jwk})


@pytest.fixture
def access_token(browser, http, public_client, alice):
    """Obtained before the switch: under the profile a public client gets no tokens at all."""
    code = query_of(sign_in_and_consent(browser, public_client.client_id, scope="openid email"))["code"]
    return json.loads(redeem(http, public_client.client_id, code).body)["access_token"]


def fapi2(monkeypatch):
    from chalicelib.config import settings

    monkeypatch.setenv("PROFILE", "fapi2")
    settings.cache_clear()


def test_an_rs256_proof_is_refused_and_ps256_with_the_same_key_is_taken(http, access_token, monkeypatch):
    key = RsaProofKey()
    bound = mint(access_token, cnf=key.cnf())
    fapi2(monkeypatch)
    response = dpop_get(http, bound, key.proof("RS256", bound))
    assert response.status_code == 401
    assert json.loads(response.body)["error"] == "invalid_dpop_proof"
    assert response.headers["WWW-Authenticate"].endswith('algs="ES256 PS256 EdDSA"')
    assert dpop_get(http, bound, key.proof("PS256", bound)).status_code == 200


def test_without_the_profile_an_rs256_proof_is_taken(http, access_token):
    key = RsaProofKey()
    bound = mint(access_token, cnf=key.cnf())
    assert dpop_get(http, bound, key.proof("RS256", bound)).status_code == 200


def test_es256_proofs_still_work_under_the_profile(http, access_token, monkeypatch):
    key = ProofKey()
    bound = mint(access_token, cnf=key.cnf())
    fapi2(monkeypatch)
    assert dpop_get(http, bound, key.proof("GET", USERINFO, access_token=bound)).status_code == 200
