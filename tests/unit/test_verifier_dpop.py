"""The resource-server verifier with DPoP (RFC 9449 §7): bound tokens need their proof, the proof must
fit the request and the token, is good once, and every refusal answers the right challenge."""
from __future__ import annotations

import json
import threading
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from chalicelib.capabilities import DPOP_ALGS
from chalicelib.errors import (InsufficientScope, InvalidDpopProofChallenge, InvalidToken, MissingToken,
                               UseDpopNonceChallenge)
from chalicelib.keys.backends import LocalSigner
from chalicelib.keys.jwk import public_jwk
from chalicelib.tokens import jwt as jwt_encode
from chalicelib.verifier import DpopNonces, MemoryReplayCache, Verifier, protected_resource_metadata
from tests.dpop_proofs import DROP, ProofKey

ISSUER = "https://login.example.com"
API = "https://api.example.com"
NOTES = "https://api.example.com/notes"
ALGS = " ".join(DPOP_ALGS)


class Issuer:
    def __init__(self):
        private = ec.generate_private_key(ec.SECP256R1())
        self.jwk = public_jwk(private.public_key(), "ES256")
        self.signer = LocalSigner(kid=self.jwk["kid"], alg="ES256", private_key=private)

    def get(self, url):
        if url.endswith("/.well-known/oauth-authorization-server"):
            return {"issuer": ISSUER, "jwks_uri": f"{ISSUER}/jwks"}
        return {"keys": [self.jwk]}

    def token(self, **overrides) -> str:
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": "u1", "aud": API, "client_id": "c1", "scope": "notes:read", "jti": "t1",
                  "iat": now, "exp": now + 300, **overrides}
        return jwt_encode.encode(claims, self.signer, typ="at+jwt")


@pytest.fixture
def issuer():
    return Issuer()


@pytest.fixture
def key():
    return ProofKey()


@pytest.fixture
def verifier(issuer):
    return Verifier(ISSUER, API, http_get=issuer.get)


def call(verifier, token, proof, *, scheme="DPoP", method="GET", url=NOTES, scopes=("notes:read",)):
    return verifier.authenticate(f"{scheme} {token}", scopes, dpop_proof=proof, method=method, url=url)


def refusal(verifier, token, proof, error_class, **kwargs):
    with pytest.raises(error_class) as caught:
        call(verifier, token, proof, **kwargs)
    return caught.value


def test_a_bound_token_with_its_proof_is_accepted(verifier, issuer, key):
    token = issuer.token(cnf=key.cnf())
    claims = call(verifier, token, key.proof("GET", NOTES, access_token=token))
    assert claims["cnf"] == {"jkt": key.jkt}
    # The scheme is case-insensitive (RFC 9110 §11.1), the htu compared normalised (§4.3 item 9).
    assert call(verifier, token, key.proof("GET", "HTTPS://API.example.com:443/notes?page=2", access_token=token),
                scheme="dpop")["sub"] == "u1"


def test_a_bound_token_sent_as_bearer_is_refused_even_with_a_good_proof(verifier, issuer, key):
    """RFC 9449 §7.2: else a stolen bound token would be as good as a bearer token again."""
    token = issuer.token(cnf=key.cnf())
    refused = refusal(verifier, token, key.proof("GET", NOTES, access_token=token), InvalidToken, scheme="Bearer")
    assert refused.to_response()[2]["WWW-Authenticate"] == (
        'Bearer realm="api", error="invalid_token", error_description="a DPoP-bound access token must be sent '
        'with the DPoP scheme and a proof", scope="notes:read"')
    # Without method and URL the verifier takes Bearer only, and still refuses the bound token.
    with pytest.raises(InvalidToken, match="DPoP scheme"):
        verifier.authenticate(f"Bearer {token}")


def test_an_unbound_token_works_as_bearer_but_not_with_the_dpop_scheme(verifier, issuer, key):
    token = issuer.token()
    assert call(verifier, token, None, scheme="Bearer")["sub"] == "u1"
    refused = refusal(verifier, token, key.proof("GET", NOTES, access_token=token), InvalidToken)
    assert refused.to_response()[2]["WWW-Authenticate"].startswith('DPoP realm="api", error="invalid_token"')


def test_the_exact_dpop_challenge_of_a_bad_proof(verifier, issuer, key):
    token = issuer.token(cnf=key.cnf())
    refused = refusal(verifier, token, key.proof("POST", NOTES, access_token=token), InvalidDpopProofChallenge)
    status, body, headers = refused.to_response()
    assert status == 401 and json.loads(body)["error"] == "invalid_dpop_proof"
    assert headers["WWW-Authenticate"] == (
        f'DPoP realm="api", error="invalid_dpop_proof", error_description="the DPoP proof\'s htm must be GET", '
        f'scope="notes:read", algs="{ALGS}"')


@pytest.mark.parametrize("attack", [
    "ath-of-another-token", "no-ath", "wrong-htm", "wrong-htu", "no-proof", "stale-iat", "future-iat",
    "two-proofs", "hmac-alg", "private-key-in-jwk", "typ-jwt",
])
def test_every_bad_proof_is_invalid_dpop_proof(verifier, issuer, key, attack):
    token = issuer.token(cnf=key.cnf())
    now = int(time.time())
    good = key.proof("GET", NOTES, access_token=token)
    proof = {
        "ath-of-another-token": lambda: key.proof("GET", NOTES, access_token=issuer.token(cnf=key.cnf(), jti="t2")),
        "no-ath": lambda: key.proof("GET", NOTES, access_token=token, ath=DROP),
        "wrong-htm": lambda: key.proof("POST", NOTES, access_token=token),
        "wrong-htu": lambda: key.proof("GET", f"{API}/billing", access_token=token),
        "no-proof": lambda: None,
        "stale-iat": lambda: key.proof("GET", NOTES, access_token=token, iat=now - 120),
        "future-iat": lambda: key.proof("GET", NOTES, access_token=token, iat=now + 120),
        "two-proofs": lambda: f"{good}, {key.proof('GET', NOTES, access_token=token)}",
        "hmac-alg": lambda: _hmac_proof(token),
        "private-key-in-jwk": lambda: key.proof("GET", NOTES, access_token=token,
                                                header={"jwk": {**key.jwk, "d": "AAAA"}}),
        "typ-jwt": lambda: key.proof("GET", NOTES, access_token=token, header={"typ": "JWT"}),
    }[attack]()
    refused = refusal(verifier, token, proof, InvalidDpopProofChallenge)
    assert refused.to_response()[2]["WWW-Authenticate"].startswith('DPoP realm="api", error="invalid_dpop_proof"')
    # The control: the same token with a good proof passes.
    assert call(verifier, token, good)["sub"] == "u1"


def _hmac_proof(token):
    import jwt

    from chalicelib.oauth.dpop import access_token_hash

    return jwt.encode({"jti": "h", "htm": "GET", "htu": NOTES, "iat": int(time.time()),
                       "ath": access_token_hash(token)}, "secret-secret-secret-secret-32by", algorithm="HS256",
                      headers={"typ": "dpop+jwt", "jwk": {"kty": "oct", "k": "c2VjcmV0"}})


def test_a_proof_by_another_key_is_invalid_token(verifier, issuer, key):
    """§7.1: the proof's key must be the one the token is bound to (the RFC's example answers
    invalid_token for a key that does not match the binding)."""
    token = issuer.token(cnf=key.cnf())
    thief = ProofKey()
    refused = refusal(verifier, token, thief.proof("GET", NOTES, access_token=token), InvalidToken)
    assert refused.error == "invalid_token"
    assert refused.to_response()[2]["WWW-Authenticate"].startswith('DPoP realm="api", error="invalid_token"')
    assert refused.to_response()[2]["WWW-Authenticate"].endswith(f'algs="{ALGS}"')


def test_a_replayed_proof_is_refused(verifier, issuer, key):
    token = issuer.token(cnf=key.cnf())
    proof = key.proof("GET", NOTES, access_token=token)
    assert call(verifier, token, proof)["sub"] == "u1"
    refused = refusal(verifier, token, proof, InvalidDpopProofChallenge)
    assert "used before" in refused.description


def test_a_refused_request_spends_nothing(verifier, issuer, key):
    """The jti is spent only once everything else passed: the same proof still works after a 403."""
    token = issuer.token(cnf=key.cnf())
    proof = key.proof("GET", NOTES, access_token=token)
    refused = refusal(verifier, token, proof, InsufficientScope, scopes=("notes:write",))
    status, _, headers = refused.to_response()
    assert status == 403 and headers["WWW-Authenticate"] == (
        f'DPoP realm="api", error="insufficient_scope", error_description="the access token lacks a required scope", '
        f'scope="notes:write", algs="{ALGS}"')
    assert call(verifier, token, proof)["sub"] == "u1"


def test_without_credentials_the_challenges_name_the_schemes_the_resource_announces(issuer):
    plain = Verifier(ISSUER, API, http_get=issuer.get)
    announcing = Verifier(ISSUER, API, http_get=issuer.get, announce_dpop=True, dpop_algs=("ES256", "EdDSA"))
    requiring = Verifier(ISSUER, API, http_get=issuer.get, require_dpop=True, dpop_algs=("ES256",))
    challenges = {}
    for name, verifier in (("plain", plain), ("announcing", announcing), ("requiring", requiring)):
        with pytest.raises(MissingToken) as caught:
            verifier.authenticate(None, ["notes:read"], method="GET", url=NOTES)
        challenges[name] = caught.value.to_response()[2]["WWW-Authenticate"]
    assert challenges == {
        "plain": 'Bearer realm="api", scope="notes:read"',
        "announcing": 'Bearer realm="api", scope="notes:read", DPoP realm="api", scope="notes:read", '
                      'algs="ES256 EdDSA"',
        "requiring": 'DPoP realm="api", scope="notes:read", algs="ES256"',
    }


def test_a_resource_requiring_dpop_refuses_bearer_tokens(issuer, key):
    verifier = Verifier(ISSUER, API, http_get=issuer.get, require_dpop=True)
    token = issuer.token()
    with pytest.raises(InvalidToken) as caught:
        call(verifier, token, None, scheme="Bearer")
    assert caught.value.to_response()[2]["WWW-Authenticate"].startswith('DPoP realm="api", error="invalid_token"')
    bound = issuer.token(cnf=key.cnf())
    assert call(verifier, bound, key.proof("GET", NOTES, access_token=bound))["sub"] == "u1"


def test_without_method_and_url_the_dpop_scheme_is_not_taken(verifier, issuer, key):
    """An API that does not pass the request cannot check proofs: it keeps answering as before."""
    token = issuer.token(cnf=key.cnf())
    with pytest.raises(MissingToken) as caught:
        verifier.authenticate(f"DPoP {token}", dpop_proof=key.proof("GET", NOTES, access_token=token))
    assert caught.value.to_response()[2]["WWW-Authenticate"] == 'Bearer realm="api"'


def test_a_resource_demanding_nonces_hands_one_out_and_takes_it(issuer, key):
    """RFC 9449 §9: 401 use_dpop_nonce with DPoP-Nonce; the retry with that nonce passes."""
    nonces = DpopNonces(b"k" * 32)
    verifier = Verifier(ISSUER, API, http_get=issuer.get, dpop_nonces=nonces)
    token = issuer.token(cnf=key.cnf())
    refused = refusal(verifier, token, key.proof("GET", NOTES, access_token=token), UseDpopNonceChallenge)
    status, body, headers = refused.to_response()
    assert status == 401 and json.loads(body)["error"] == "use_dpop_nonce"
    assert headers["WWW-Authenticate"].startswith('DPoP realm="api", error="use_dpop_nonce"')
    nonce = headers["DPoP-Nonce"]
    assert nonce == nonces.current()
    foreign = DpopNonces(b"x" * 32).current()
    refusal(verifier, token, key.proof("GET", NOTES, access_token=token, nonce=foreign), UseDpopNonceChallenge)
    assert call(verifier, token, key.proof("GET", NOTES, access_token=token, nonce=nonce))["sub"] == "u1"


def test_the_memory_replay_cache_lets_one_of_32_racing_uses_win():
    cache = MemoryReplayCache()
    expires = int(time.time()) + 60
    barrier = threading.Barrier(32)
    wins = []

    def use():
        barrier.wait()
        wins.append(cache.use("jkt", "same-jti", expires))

    threads = [threading.Thread(target=use) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wins.count(True) == 1
    assert cache.use("another-key", "same-jti", expires), "a jti is unique per key only (§11.1)"


def test_the_memory_replay_cache_forgets_expired_proofs_and_refuses_when_full():
    now = [1000.0]
    cache = MemoryReplayCache(max_entries=2, clock=lambda: now[0])
    assert cache.use("k", "a", 1060) and cache.use("k", "b", 1070)
    assert not cache.use("k", "c", 1070), "full of live proofs: refuse rather than forget one"
    now[0] = 1065.0
    assert cache.use("k", "c", 1120), "a's entry expired and made room"
    assert not cache.use("k", "b", 1070), "b is still remembered"
    now[0] = 1200.0
    assert cache.use("k", "a", 1260)


def test_protected_resource_metadata_names_dpop_when_asked():
    document = protected_resource_metadata(API, [ISSUER], dpop_signing_alg_values_supported=["ES256"],
                                           dpop_bound_access_tokens_required=True)
    assert document["dpop_signing_alg_values_supported"] == ["ES256"]
    assert document["dpop_bound_access_tokens_required"] is True
    assert "dpop_signing_alg_values_supported" not in protected_resource_metadata(API, [ISSUER])
