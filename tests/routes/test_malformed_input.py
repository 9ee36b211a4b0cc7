"""Malformed input never becomes a 500: every case here once did (or could on real DynamoDB)."""
from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from tests.routes.flow import FORM, authorize_query, query_of


@pytest.mark.parametrize("client_id", [
    "https://" + "a" * 64 + ".com/x",        # an IDNA label too long for getaddrinfo
    "https://example.com/\u00e9",             # not ASCII
    "https://a/" + "\u20ac" * 700,            # over DynamoDB's key size in bytes
])
def test_unusable_document_client_ids_are_an_error_page(browser, keys, client_id):
    response = browser.get("/authorize?" + authorize_query(client_id, scope="openid"))
    assert response.status_code == 400 and b"could not be verified" in response.body


def test_unusable_document_client_id_at_the_token_endpoint_is_invalid_client(http, keys):
    body = urlencode({"grant_type": "authorization_code", "code": "x", "redirect_uri": "http://127.0.0.1/cb",
                      "client_id": "https://example.com/\u00e9", "code_verifier": "v" * 43}).encode()
    response = http.post("/token", body=body, headers=FORM)
    assert response.status_code == 401 and json.loads(response.body)["error"] == "invalid_client"


def test_unparseable_redirect_uri_is_an_error_page(browser, public_client):
    response = browser.get("/authorize?" + authorize_query(public_client.client_id, redirect_uri="http://[::1/cb"))
    assert response.status_code == 400 and b"not registered" in response.body


@pytest.mark.parametrize("max_age", ["\u00b2", "1" * 40, "-1", "1.5"])
def test_odd_max_age_is_invalid_request(browser, public_client, max_age):
    response = browser.get("/authorize?" + authorize_query(public_client.client_id, max_age=max_age))
    assert query_of(response.headers["Location"])["error"] == "invalid_request"


@pytest.mark.parametrize("token", ["abc.\u00e9", "A" * 3000 + ".x", "a.b.c", "", "a" * 65 + ".b"])
def test_malformed_refresh_tokens_are_invalid_grant_even_when_narrowing(http, public_client, token):
    from chalicelib.storage.models import ClientModel

    ClientModel(public_client.client_id).update(actions=[ClientModel.grant_types.set(["authorization_code", "refresh_token"])])
    for extra in ({}, {"scope": "openid"}):
        body = urlencode({"grant_type": "refresh_token", "refresh_token": token,
                          "client_id": public_client.client_id, **extra}).encode()
        response = http.post("/token", body=body, headers=FORM)
        assert response.status_code == 400, response.body
        assert json.loads(response.body)["error"] in ("invalid_grant", "invalid_request")


def test_registration_with_an_unparseable_client_uri_is_invalid_client_metadata(http, keys):
    body = {"redirect_uris": ["https://app.example/cb"], "client_uri": "https://["}
    response = http.post("/register", body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and json.loads(response.body)["error"] == "invalid_client_metadata"


def test_an_overlong_username_is_just_a_failed_sign_in(browser, public_client, alice):
    from tests.routes.flow import hidden

    location = browser.get("/authorize?" + authorize_query(public_client.client_id)).headers["Location"]
    page = browser.get(location)
    response = browser.post("/login", {"request_id": hidden(page.body, "request_id"),
                                       "csrf_token": hidden(page.body, "csrf_token"),
                                       "username": "a" * 3000 + "@example.com", "password": "whatever1"})
    assert response.status_code == 401


LONG = "Call +1 555 0100 to unlock your account " * 250  # 10,000 characters


@pytest.mark.parametrize("pairs, description", [
    ([("client_id", "CID"), (LONG, "1"), (LONG, "2")],
     "parameter Call +1 555 0100 to unlock your account ... is repeated"),
    ([("client_id", "CID"), ("grant_type", LONG)],
     "grant_type Call +1 555 0100 to unlock your account ... is not supported"),
], ids=["repeated-name", "grant-type"])
def test_json_errors_never_echo_long_input_whole(http, public_client, pairs, description):
    body = urlencode([(k, public_client.client_id if v == "CID" else v) for k, v in pairs]).encode()
    response = http.post("/token", body=body, headers=FORM)
    assert response.status_code == 400 and json.loads(response.body)["error_description"] == description


def test_an_overlong_parameter_is_named_briefly_in_the_redirected_error(browser, public_client):
    """The client's page may show error_description: it gets a short, RFC 6749 §5.2-clean name."""
    query = authorize_query(public_client.client_id) + "&" + urlencode({"<b>" + LONG: "v" * 3000})
    response = browser.get("/authorize?" + query)
    params = query_of(response.headers["Location"])
    assert params["error"] == "invalid_request"
    assert params["error_description"] == "parameter <b>Call +1 555 0100 to unlock your accou... is too long"
