"""TOTP codes (chalicelib/accounts/totp.py): RFC 6238's own test vectors, the ±1 step window,
malformed input, and the QR code's SVG."""
from __future__ import annotations

import base64

import pytest

from chalicelib.accounts import totp

#: RFC 6238 Appendix B: the SHA-1 seed is the ASCII string "12345678901234567890".
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode("ascii")
#: (time, 8-digit TOTP) of Appendix B's SHA-1 rows; a 6-digit code is the last 6 digits
#: (RFC 4226 §5.3: Snum mod 10^Digit).
RFC_VECTORS = [(59, "94287082"), (1111111109, "07081804"), (1111111111, "14050471"), (1234567890, "89005924"),
               (2000000000, "69279037"), (20000000000, "65353130")]


@pytest.mark.parametrize("at,code8", RFC_VECTORS)
def test_rfc_6238_appendix_b_sha1_vectors_match_at_their_own_time_step(at, code8):
    assert totp.matching_step(RFC_SECRET, code8[-6:], at) == at // 30


@pytest.mark.parametrize("at,code8", RFC_VECTORS)
def test_a_vector_matches_one_step_early_or_late_and_says_which_step(at, code8):
    assert totp.matching_step(RFC_SECRET, code8[-6:], at + 30) == at // 30
    if at >= 30:
        assert totp.matching_step(RFC_SECRET, code8[-6:], at - 30) == at // 30


@pytest.mark.parametrize("at,code8", RFC_VECTORS)
def test_two_steps_away_is_refused(at, code8):
    assert totp.matching_step(RFC_SECRET, code8[-6:], at + 60) is None
    assert totp.matching_step(RFC_SECRET, code8[-6:], at - 60) is None


@pytest.mark.parametrize("typed", ["", "28708", "2870821", "28708a", "２８７０８２", "287 08x", "-287082", None,
                                   "94287082"])
def test_malformed_codes_are_refused(typed):
    assert totp.matching_step(RFC_SECRET, typed, 59) is None


def test_spaces_that_apps_show_in_the_middle_are_forgiven():
    assert totp.matching_step(RFC_SECRET, "287 082", 59) == 1


def test_new_secrets_are_160_random_bits_in_base32():
    secrets_made = {totp.new_secret() for _ in range(20)}
    assert len(secrets_made) == 20
    for secret in secrets_made:
        assert len(base64.b32decode(secret)) == 20


def test_the_provisioning_uri_names_the_account_and_the_issuer():
    uri = totp.provisioning_uri(RFC_SECRET, "alice@example.com", "login.example.com")
    assert uri.startswith("otpauth://totp/login.example.com:alice%40example.com?")
    assert f"secret={RFC_SECRET}" in uri and "issuer=login.example.com" in uri


def test_the_qr_code_is_inline_svg_without_script_or_xml_declaration():
    svg = totp.qr_svg("otpauth://totp/x:y?secret=" + RFC_SECRET, title="Scan <me>")
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "<?xml" not in svg and "script" not in svg.lower() and "href" not in svg
    assert "<title>Scan &lt;me&gt;</title>" in svg
