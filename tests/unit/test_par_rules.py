"""Pushed authorization requests (RFC 9126) without HTTP: the client metadata, the error, and what
/authorize refuses before it reads anything."""
from __future__ import annotations

import dataclasses

import pytest

from chalicelib.capabilities import PAR_REQUEST_URI_PREFIX
from chalicelib.config import load_settings
from chalicelib.errors import InvalidClientMetadata, InvalidRequestUri, UntrustedRequest
from chalicelib.oauth import client_documents, pushed_authorization
from chalicelib.oauth.client_metadata import validate_client_metadata, validate_registration

APP = "https://app.example.com/cb"
DOCUMENT_URL = "https://agent.example.com/client.json"
SETTINGS = dataclasses.replace(load_settings({"STAGE": "prod", "ISSUER": "https://login.example.com"}),
                               unverified_client_scopes=("openid",))
SECRET = "s" * 43


def registered(**metadata) -> bool:
    return validate_registration({"redirect_uris": [APP], "token_endpoint_auth_method": "none", **metadata},
                                 ("openid",))["require_pushed_authorization_requests"]


def test_require_pushed_authorization_requests_is_client_metadata_false_by_default():
    """RFC 9126 §6: a boolean; omitted means false. Registration, documents and the admin agree."""
    assert registered() is False
    assert registered(require_pushed_authorization_requests=True) is True
    document = client_documents.to_client(DOCUMENT_URL, {"client_id": DOCUMENT_URL, "client_name": "Agent",
                                                         "redirect_uris": [APP],
                                                         "require_pushed_authorization_requests": True}, SETTINGS)
    assert document.require_pushed_authorization_requests is True
    admin = validate_client_metadata(client_name="Bank", redirect_uris=[APP], require_pushed_authorization_requests=True)
    assert admin["require_pushed_authorization_requests"] is True
    assert validate_client_metadata(client_name="Bank", redirect_uris=[APP])["require_pushed_authorization_requests"] \
        is False


@pytest.mark.parametrize("value", ["true", 1, None, []])
def test_require_pushed_authorization_requests_must_be_a_boolean(value):
    with pytest.raises(InvalidClientMetadata) as raised:
        registered(require_pushed_authorization_requests=value)
    assert raised.value.description == "require_pushed_authorization_requests must be a boolean"


def test_invalid_request_uri_is_an_untrusted_request_with_its_own_code():
    """RFC 9101 / OIDC Core §3.1.2.6 `invalid_request_uri`, rendered on the error page like every error
    found before the redirect URI is trusted (never redirected)."""
    exc = InvalidRequestUri("gone", detail="client_id='x'")
    assert isinstance(exc, UntrustedRequest) and exc.kind in UntrustedRequest.KINDS
    assert exc.error == "invalid_request_uri" and exc.status == 400
    assert exc.body() == {"error": "invalid_request_uri", "error_description": "gone"}


@pytest.fixture
def spent(monkeypatch):
    """Every consume the redemption attempts: none may happen for a refusal decided from the link."""
    from chalicelib.storage import pushed_requests

    calls = []
    monkeypatch.setattr(pushed_requests, "consume", lambda *args: calls.append(args))
    return calls


@pytest.mark.parametrize("params, kind, error", [
    ({"client_id": "c", "request_uri": PAR_REQUEST_URI_PREFIX + SECRET, "state": "x"},
     "request_uri_with_parameters", "invalid_request"),
    ({"client_id": "c", "request_uri": PAR_REQUEST_URI_PREFIX + SECRET, "response_type": "code"},
     "request_uri_with_parameters", "invalid_request"),
    ({"request_uri": PAR_REQUEST_URI_PREFIX + SECRET}, "missing_client_id", "invalid_request"),
    ({"client_id": "", "request_uri": PAR_REQUEST_URI_PREFIX + SECRET}, "missing_client_id", "invalid_request"),
    ({"client_id": "c", "request_uri": PAR_REQUEST_URI_PREFIX + SECRET + "x"}, "invalid_request_uri",
     "invalid_request_uri"),
    ({"client_id": "c", "request_uri": PAR_REQUEST_URI_PREFIX + "s" * 42 + "/"}, "invalid_request_uri",
     "invalid_request_uri"),
    ({"client_id": "c", "request_uri": "urn:example:" + SECRET}, "invalid_request_uri", "invalid_request_uri"),
    ({"client_id": "c", "request_uri": ""}, "invalid_request_uri", "invalid_request_uri"),
], ids=["state", "response_type", "no-client_id", "empty-client_id", "long", "bad-char", "other-urn", "empty"])
def test_refusals_decided_from_the_link_spend_nothing(spent, params, kind, error):
    with pytest.raises(UntrustedRequest) as raised:
        pushed_authorization.redeem(params)
    assert (raised.value.kind, raised.value.error) == (kind, error)
    assert spent == []


def test_an_unusable_request_uri_is_invalid_request_uri(monkeypatch):
    from chalicelib.hashing import sha256_hex
    from chalicelib.storage import pushed_requests

    calls = []
    monkeypatch.setattr(pushed_requests, "consume", lambda *args: calls.append(args))  # None: condition failed
    with pytest.raises(InvalidRequestUri):
        pushed_authorization.redeem({"client_id": "c", "request_uri": PAR_REQUEST_URI_PREFIX + SECRET})
    (secret_hash, client_id, _at), = calls
    assert (secret_hash, client_id) == (sha256_hex(SECRET), "c"), "looked up by hash, for the named client"
