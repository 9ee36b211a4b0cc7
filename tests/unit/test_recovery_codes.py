"""Recovery codes (chalicelib/accounts/recovery_codes.py): format, normalisation, hashing."""
from __future__ import annotations

import hashlib
import math
import re

import pytest

from chalicelib.accounts import recovery_codes


def test_ten_distinct_codes_of_at_least_50_bits_shown_as_two_groups_of_five():
    codes = recovery_codes.new_codes()
    assert len(codes) == 10 == len(set(codes))
    for code in codes:
        assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}", code), code
    assert recovery_codes.LENGTH * math.log2(len(recovery_codes.ALPHABET)) >= 50


def test_a_code_is_stored_as_the_sha256_of_its_ten_characters():
    assert recovery_codes.code_hash("ABCDE-FGH12") == hashlib.sha256(b"ABCDEFGH12").hexdigest()


@pytest.mark.parametrize("typed", ["abcde-fgh12", " ABCDE FGH12 ", "ABCDEFGH12", "abcde-fghi2", "abcde-fghl2",
                                   "ABCDE--FGH12"])
def test_case_spaces_dashes_and_crockford_confusables_are_forgiven(typed):
    assert recovery_codes.code_hash(typed) == recovery_codes.code_hash("ABCDE-FGH12")


def test_the_letter_o_is_read_as_zero():
    assert recovery_codes.code_hash("OOOOO-OOOOO") == recovery_codes.code_hash("00000-00000")


@pytest.mark.parametrize("typed", ["", None, "ABCDE-FGH1", "ABCDE-FGH123", "ABCDE-FGHU2", "ABCDE_FGH12",
                                   "ÄBCDE-FGH12", "A" * 100])
def test_malformed_codes_have_no_hash(typed):
    assert recovery_codes.code_hash(typed) is None
