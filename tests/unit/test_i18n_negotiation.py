"""Which language a page speaks (chalicelib/i18n.py): OIDC Core §3.1.2.1 ui_locales first, then RFC 9110
§12.5.4 Accept-Language by q-value, RFC 4647 §3.4 lookup, English otherwise; strangers' input never raises."""
from __future__ import annotations

import pytest

from chalicelib import i18n
from chalicelib.capabilities import UI_LOCALES

SUPPORTED = ("en", "de")


def test_german_is_offered_besides_english():
    assert UI_LOCALES == SUPPORTED and i18n.SOURCE_LOCALE == "en"


@pytest.mark.parametrize("ui_locales, accept_language, expected", [
    ("de", "en", "de"),                      # the app's ui_locales wins over the browser
    ("en", "de", "en"),
    ("fr-CA fr de en", "en", "de"),          # first supported in the app's order
    ("fr", "de", "de"),                      # nothing supported in ui_locales: the browser decides
    (None, "de", "de"),
    ("", "de-CH", "de"),
    (None, None, "en"),
    ("fr", "fr, es;q=0.5", "en"),            # nothing supported anywhere: English
])
def test_ui_locales_come_first_then_accept_language_then_english(ui_locales, accept_language, expected):
    assert i18n.negotiate(ui_locales, accept_language, SUPPORTED) == expected


@pytest.mark.parametrize("header, expected", [
    ("de", "de"),
    ("en-US,en;q=0.9,de;q=0.8", "en"),
    ("fr;q=1, de;q=0.9, en;q=0.8", "de"),     # the first supported by weight, not by position
    ("en;q=0.5, de", "de"),                   # no q means 1
    ("en;q=0.500, de;q=0.501", "de"),
    ("en;Q=0.1, de;q=0.2", "de"),             # parameter names are case-insensitive
    ("de;q=0.8, en;q=0.8", "de"),             # a tie goes to the earlier
    ("de;q=0, en;q=0.1", "en"),               # q=0: not acceptable
    ("de;q=0", None),
    ("de-AT", "de"),                          # region falls back to the language (RFC 4647 lookup)
    ("DE-at", "de"),                          # tags are case-insensitive
    ("de-Latn-AT-1996", "de"),
    ("de-x-private", "de"),
    ("de_DE", "de"),                          # POSIX spelling some clients send
    ("en-GB", "en"),
    ("*", "en"),                              # any language: the source language
    ("fr, *;q=0.1", "en"),
    ("fr, it", None),
    ("deu", None),                            # a three-letter code is another language, not "de" truncated
    ("d", None),
])
def test_accept_language_is_read_by_weight_with_lookup(header, expected):
    assert i18n.from_accept_language(header, SUPPORTED) == expected


@pytest.mark.parametrize("header", [
    "", ";", ",,,", ";q=1", "de;q=", "de;q=abc", "de;q=1.5", "de;q=-1", "de;q=0.0001", "de;q", "de;;;",
    "<script>", "de-", "-de", "de--AT", "a" * 5000, "de;" + "q=1;" * 2000, ", " * 5000, "\x00de", "dé",
    "de\r\nX-Injected: 1", "😀", "de;q=1e0", "de;q=inf", "de;q=nan",
])
def test_malformed_accept_language_never_raises_and_never_picks_a_bad_entry(header):
    assert i18n.negotiate(None, header, SUPPORTED) in SUPPORTED
    # A malformed weight spoils only its own entry.
    assert i18n.from_accept_language(header + ", en;q=0.1", SUPPORTED) in SUPPORTED


@pytest.mark.parametrize("header", ["de;q=abc, en;q=0.1", "de;q=1.5, en;q=0.1", "de;q=, en;q=0.1"])
def test_an_entry_with_a_malformed_weight_is_skipped(header):
    assert i18n.from_accept_language(header, SUPPORTED) == "en"


def test_only_the_first_ranges_are_read():
    header = ", ".join(["fr"] * i18n.MAX_RANGES + ["de"])
    assert i18n.from_accept_language(header, SUPPORTED) is None


@pytest.mark.parametrize("value, expected", [
    ("de", "de"), ("de-AT en", "de"), ("fr en", "en"), ("  de  ", "de"), ("fr", None), ("", None), (None, None),
    ("de,en", None),                          # comma-separated is not the parameter's syntax
    ("<b>de</b>", None), (["de"], None), ("x" * 3000, None),
])
def test_ui_locales_is_a_space_separated_preference_list(value, expected):
    assert i18n.from_ui_locales(value, SUPPORTED) == expected


def test_a_request_speaks_its_accept_language_until_the_authorization_request_says_otherwise():
    token = i18n.begin_request("de")
    try:
        assert i18n.current() == "de"
        i18n.prefer(None)                     # no ui_locales: nothing changes
        assert i18n.current() == "de"
        i18n.prefer("tlh")                    # never an unsupported one
        assert i18n.current() == "de"
        i18n.prefer("en")
        assert i18n.current() == "en"
    finally:
        i18n.end_request(token)
    assert i18n.current() == "en", "the next request starts afresh"
