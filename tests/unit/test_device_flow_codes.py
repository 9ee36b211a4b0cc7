"""The device grant's pure parts (RFC 8628 §6.1 user codes, device codes, verification URIs)."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from chalicelib.oauth import device_flow


def test_user_codes_are_8_letters_of_the_20_consonants():
    codes = {device_flow.new_user_code() for _ in range(200)}
    assert len(codes) == 200
    assert all(len(c) == 8 and set(c) <= set("BCDFGHJKLMNPQRSTVWXZ") for c in codes)
    assert len(device_flow.ALPHABET) == 20 and not set(device_flow.ALPHABET) & set("AEIOUY0123456789")


def test_codes_are_shown_in_two_groups_of_four():
    assert device_flow.display("BCDFGHJK") == "BCDF-GHJK"


@pytest.mark.parametrize("typed", ["BCDF-GHJK", "bcdf-ghjk", "bcdfghjk", " bcdf ghjk ", "B-C-D-F-G-H-J-K", "bcdf\tghjk"])
def test_typed_codes_ignore_case_dashes_and_spaces(typed):
    assert device_flow.normalise(typed) == "BCDFGHJK"


@pytest.mark.parametrize("typed", [None, "", "BCDFGHJ", "BCDFGHJKL", "AEIOUAEI", "BCDF_GHJK", "BCDFGHJ1",
                                   "ß" * 4, "B" * 8 + "-" * 30, "ＢＣＤＦＧＨＪＫ"])
def test_anything_else_is_not_a_code(typed):
    assert device_flow.normalise(typed) is None


def test_a_device_code_carries_its_user_code_and_a_secret():
    device_code, secret = device_flow.new_device_code("BCDFGHJK")
    assert device_flow.parse_device_code(device_code) == ("BCDFGHJK", secret)
    assert len(secret) >= 43


@pytest.mark.parametrize("device_code", [None, "", "BCDFGHJK", "BCDFGHJK.", "bcdfghjk.secret", "AEIOUAEI.secret",
                                         "BCDFGHJK." + "x" * 200])
def test_a_device_code_we_could_not_have_issued_is_refused(device_code):
    assert device_flow.parse_device_code(device_code) is None


def test_verification_uri_complete_carries_the_code_as_shown():
    uri, complete = device_flow.verification_uris("https://id.example.com", "BCDFGHJK")
    assert uri == "https://id.example.com/device"
    assert complete.startswith(uri + "?") and parse_qs(urlsplit(complete).query) == {"user_code": ["BCDF-GHJK"]}
