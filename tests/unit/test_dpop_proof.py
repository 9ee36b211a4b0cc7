"""chalicelib/oauth/dpop.check_proof: every refusal of RFC 9449 §4.3, and what a good proof yields.
Also dpop_nonces (§8) and the token endpoint's mapping (dpop_binding)."""
from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from chalicelib.errors import DpopProofRefused
from chalicelib.oauth import dpop, dpop_nonces
from tests.dpop_proofs import TOKEN_URL, DpopKey


def check(proof, *, method="POST", url=TOKEN_URL, now=None, **kwargs):
    return dpop.check_proof(proof, method=method, url=url, now=int(time.time()) if now is None else now,
                            max_age=60, **kwargs)


def refused(proof, **kwargs) -> DpopProofRefused:
    with pytest.raises(DpopProofRefused) as caught:
        check(proof, **kwargs)
    return caught.value


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_a_good_proof_yields_its_key_thumbprint_jti_and_lifetime():
    key = DpopKey()
    proof = key.proof(jti="j-1")
    checked = check(proof)
    assert (checked.jkt, checked.jti, checked.nonce) == (key.jkt, "j-1", None)
    assert checked.expires_at == checked.iat + 60 + dpop.FUTURE_LEEWAY


def test_the_thumbprint_is_rfc_7638s():
    # RFC 7638 §3.1's example key and thumbprint.
    jwk = {"kty": "RSA", "e": "AQAB", "n": (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMs"
        "tn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5"
        "hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")}
    assert dpop.jwk_thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_a_proof_for_another_url_is_refused():
    assert "htu" in refused(DpopKey().proof(htu="http://localhost:8000/userinfo")).description


def test_a_proof_for_another_method_is_refused():
    assert "htm" in refused(DpopKey().proof(htm="GET")).description


def test_query_and_fragment_of_htu_are_ignored_and_scheme_and_host_case_and_default_port_normalised():
    key = DpopKey()
    assert check(key.proof(htu="HTTP://LocalHost:8000/token?x=1#f"))
    assert check(key.proof(htu="https://idp.example.com:443/token"), url="https://idp.example.com/token")
    assert "htu" in refused(key.proof(htu="http://localhost:8000/token/")).description


def test_a_stale_proof_is_refused():
    assert "too old" in refused(DpopKey().proof(iat=int(time.time()) - 61)).description


def test_a_proof_from_the_future_is_refused_beyond_the_leeway():
    key = DpopKey()
    assert check(key.proof(iat=int(time.time()) + dpop.FUTURE_LEEWAY - 1))
    assert "future" in refused(key.proof(iat=int(time.time()) + dpop.FUTURE_LEEWAY + 5)).description


def test_a_private_key_in_the_jwk_is_refused():
    key = DpopKey()
    d = key.private_key.private_numbers().private_value.to_bytes(32, "big")
    leaked = {**key.jwk, "d": base64.urlsafe_b64encode(d).rstrip(b"=").decode()}
    assert "public key" in refused(key.proof(headers={"jwk": leaked})).description


def test_an_hmac_proof_is_refused():
    secret = b"k" * 32
    jwk = {"kty": "oct", "k": base64.urlsafe_b64encode(secret).rstrip(b"=").decode()}
    proof = jwt.encode({"jti": "j", "htm": "POST", "htu": TOKEN_URL, "iat": int(time.time())}, secret,
                       algorithm="HS256", headers={"typ": "dpop+jwt", "jwk": jwk})
    assert "alg" in refused(proof).description


def test_an_unsigned_proof_is_refused():
    key = DpopKey()
    header = {"typ": "dpop+jwt", "alg": "none", "jwk": key.jwk}
    proof = f"{b64(header)}.{b64({'jti': 'j', 'htm': 'POST', 'htu': TOKEN_URL, 'iat': int(time.time())})}."
    assert "alg" in refused(proof).description


def test_a_key_that_does_not_fit_the_alg_is_refused():
    # An RSA public key named by an ES256 proof (signed with an EC key): no key confusion.
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    numbers = rsa_key.public_key().public_numbers()

    def b64int(n):
        return base64.urlsafe_b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()

    wrong = {"kty": "RSA", "n": b64int(numbers.n), "e": b64int(numbers.e)}
    assert "jwk" in refused(DpopKey().proof(headers={"jwk": wrong})).description


def test_a_proof_signed_by_another_key_than_its_jwk_is_refused():
    other = DpopKey()
    assert "signature" in refused(DpopKey().proof(headers={"jwk": other.jwk})).description


def test_a_wrong_typ_is_refused():
    assert "typ" in refused(DpopKey().proof(headers={"typ": "JWT"})).description


def test_two_proofs_are_refused():
    key = DpopKey()
    assert "exactly one" in refused(f"{key.proof()},{key.proof()}").description


def test_a_proof_without_jti_is_refused():
    assert "jti" in refused(DpopKey().proof(jti=None)).description


def test_no_proof_is_refused():
    assert "required" in refused(None).description


def test_ath_must_hash_the_access_token_presented():
    key = DpopKey()
    assert check(key.proof(htm="GET", access_token="at-1"), method="GET", access_token="at-1")
    assert "ath" in refused(key.proof(htm="GET", access_token="at-2"), method="GET", access_token="at-1").description
    assert "ath" in refused(key.proof(htm="GET"), method="GET", access_token="at-1").description


def test_a_demanded_nonce_must_be_current():
    key, secret, now = DpopKey(), b"n" * 32, int(time.time())

    def ok(nonce):
        return dpop_nonces.valid(secret, nonce, now, 300)

    current = dpop_nonces.current(secret, now, 300)
    assert check(key.proof(nonce=current), nonce_ok=ok).nonce == current
    assert refused(key.proof(), nonce_ok=ok).nonce_needed
    assert refused(key.proof(nonce="made-up"), nonce_ok=ok).nonce_needed
    stale = dpop_nonces.current(secret, now - 600, 300)
    assert refused(key.proof(nonce=stale), nonce_ok=ok).nonce_needed


def test_nonces_of_the_previous_window_still_work_and_other_keys_do_not():
    secret, now = b"n" * 32, 10_000
    previous = dpop_nonces.current(secret, now - 300, 300)
    assert dpop_nonces.valid(secret, previous, now, 300)
    assert not dpop_nonces.valid(b"m" * 32, dpop_nonces.current(b"m" * 32, now, 300) + "x", now, 300)
    assert not dpop_nonces.valid(secret, dpop_nonces.current(b"m" * 32, now, 300), now, 300)


def test_an_alg_outside_the_advertised_list_is_refused():
    p384 = ec.generate_private_key(ec.SECP384R1())
    proof = jwt.encode({"jti": "j", "htm": "POST", "htu": TOKEN_URL, "iat": int(time.time())}, p384,
                       algorithm="ES384", headers={"typ": "dpop+jwt", "jwk": DpopKey().jwk})
    assert "alg" in refused(proof).description
