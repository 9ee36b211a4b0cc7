"""Attacks on chalicelib/oauth/dpop.check_proof found in the issue-16 security review: proofs that
must be refused with DpopProofRefused (never crash the caller, never pass)."""
from __future__ import annotations

import time

import pytest

from chalicelib.errors import DpopProofRefused
from chalicelib.oauth import dpop
from tests.dpop_proofs import DpopKey

ISSUER_TOKEN_URL = "https://idp.example.com/token"


def check(proof, url):
    return dpop.check_proof(proof, method="POST", url=url, now=int(time.time()), max_age=60)


@pytest.mark.parametrize("iat", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_iat_is_refused_not_a_crash(iat):
    # Python's json (pyjwt's) reads NaN/Infinity; NaN compares false with every bound, so it slipped
    # past both the age and the future check and int(NaN) raised ValueError: a 500 at /token,
    # /userinfo and every resource server using chalicelib/verifier.py.
    proof = DpopKey().proof(htu=ISSUER_TOKEN_URL, iat=iat)
    with pytest.raises(DpopProofRefused):
        check(proof, ISSUER_TOKEN_URL)


@pytest.mark.parametrize("htu", ["https://idp.example.com:99999/token", "https://idp.example.com:x/token",
                                 "https://idp.example.com:-443/token"])
def test_an_htu_with_an_invalid_port_does_not_normalise_to_the_default_port(htu):
    # RFC 9449 §4.3 item 9: htu must name this endpoint. An unparseable port used to be dropped,
    # so a proof for "https://idp.example.com:99999/token" passed for "https://idp.example.com/token".
    with pytest.raises(DpopProofRefused):
        check(DpopKey().proof(htu=htu), ISSUER_TOKEN_URL)
    assert check(DpopKey().proof(htu="https://IDP.example.com:443/token"), ISSUER_TOKEN_URL)


@pytest.mark.parametrize("claims", [{"iat": 10 ** 400}, {"htu": "http://[::1/token"},
                                    {"htu": "https://[idp.example.com]/token"}])
def test_claims_python_cannot_handle_as_times_or_urls_are_refused_not_a_crash(claims):
    # A huge int is no float (math.isfinite raised OverflowError); an unclosed IPv6 bracket makes
    # urlsplit raise ValueError: both were 500s at /token and /userinfo.
    with pytest.raises(DpopProofRefused):
        check(DpopKey().proof(**{"htu": ISSUER_TOKEN_URL, **claims}), ISSUER_TOKEN_URL)
