"""Reading the Cookie header the way browsers write it (RFC 6265 §4.2.1, §5.2, §5.4), not the way
http.cookies reads Set-Cookie-ish strings."""
from __future__ import annotations

import pytest
from chalice.app import Request

from chalicelib.web import cookie, cookie_values, parse_cookie_header


@pytest.mark.parametrize("header, pairs", [
    ("idp_session=S", [("idp_session", "S")]),
    ("a=1; b=2", [("a", "1"), ("b", "2")]),
    # Whitespace is not a separator: a sibling subdomain's cookie `a` cannot smuggle in a second name.
    ("idp_session=V; a=x idp_session=A", [("idp_session", "V"), ("a", "x idp_session=A")]),
    # A pair without "=" (a "nameless" cookie) is skipped, not fatal to the rest of the header.
    ("junk; idp_session=V", [("idp_session", "V")]),
    ("=nameless; idp_session=V", [("idp_session", "V")]),
    # The first "=" splits; whitespace around name and value is trimmed; ";" alone separates.
    ("  k =v=w ;;x=", [("k", "v=w"), ("x", "")]),
    ('a="x; idp_session=A"', [("a", '"x'), ("idp_session", 'A"')]),
    ("", []),
    (None, []),
])
def test_cookie_header_pairs(header, pairs):
    assert parse_cookie_header(header) == pairs


def _request(headers: dict, multi: dict | None = None) -> Request:
    event = {"multiValueQueryStringParameters": None, "headers": headers, "pathParameters": None,
             "requestContext": {"httpMethod": "GET", "resourcePath": "/"}, "body": None, "stageVariables": None}
    if multi is not None:
        event["multiValueHeaders"] = multi
    return Request(event)


def test_a_cookie_sent_twice_has_no_single_value():
    request = _request({"cookie": "idp_session=V; idp_session=A"})
    assert cookie_values(request, "idp_session") == ["V", "A"]
    assert cookie(request, "idp_session") is None, "never guess which of two is ours"
    assert cookie(_request({"cookie": "idp_session=V; other=1"}), "idp_session") == "V"


def test_every_cookie_header_field_is_read():
    """API Gateway keeps only the last of repeated headers in `headers`; the others are in
    `multiValueHeaders` and must not be dropped, or an earlier session cookie would go unseen."""
    request = _request({"Cookie": "idp_session=A"}, {"Cookie": ["idp_session=V", "idp_session=A"]})
    assert cookie_values(request, "idp_session") == ["V", "A"]
    assert cookie(request, "idp_session") is None
