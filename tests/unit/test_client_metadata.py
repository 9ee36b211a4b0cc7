"""Client metadata rules: one verdict whichever way a client comes to exist.

Every case runs through the admin path (validate_client_metadata, what `idp-admin clients create`
calls), RFC 7591 registration (validate_registration, POST /register) and a client ID metadata
document (client_documents.to_client), and all three must agree.
"""
from __future__ import annotations

import dataclasses

import pytest

from chalicelib.config import load_settings
from chalicelib.errors import DocumentError, InvalidClientMetadata, InvalidRedirectUri
from chalicelib.oauth import client_documents
from chalicelib.oauth.client_metadata import validate_client_metadata, validate_registration

APP = "https://app.example.com/cb"
CEILING = ("openid", "profile", "email", "offline_access")
DOCUMENT_URL = "https://agent.example.com/client.json"
SETTINGS = dataclasses.replace(load_settings({"STAGE": "prod", "ISSUER": "https://login.example.com"}),
                               unverified_client_scopes=CEILING)
OK = "accepted"


def uri_error(uri: str, rule: str):
    return InvalidRedirectUri, f"redirect URI {rule}: '{uri}'"


SCHEME_RULE = "must use https, http on a loopback host, or a reverse-domain private-use scheme"

#: (metadata in RFC 7591 form, the verdict every entry point must reach). A public client (auth
#: method "none") so that client ID metadata documents, which are public only, take every case too.
CASES = [
    # Redirect URIs (chalicelib/oauth/redirect_uris.py)
    ({"redirect_uris": [APP]}, OK),
    ({"redirect_uris": ["https://app.example.com/cb?x=1"]}, OK),
    ({"redirect_uris": ["http://127.0.0.1:51004/cb"]}, OK),  # RFC 8252 §7.3: any port on loopback
    ({"redirect_uris": ["http://[::1]:8080/cb"]}, OK),
    ({"redirect_uris": ["http://localhost/cb"]}, OK),
    ({"redirect_uris": ["com.example.app:/oauth2redirect"]}, OK),  # RFC 8252 §7.1 private-use scheme
    ({"redirect_uris": ["https://user:pw@app.example.com/cb"]},
     uri_error("https://user:pw@app.example.com/cb", "must not contain credentials")),
    ({"redirect_uris": ["https://app.example.com@evil.example/cb"]},
     uri_error("https://app.example.com@evil.example/cb", "must not contain credentials")),
    ({"redirect_uris": ["http://user@127.0.0.1/cb"]}, uri_error("http://user@127.0.0.1/cb", "must not contain credentials")),
    ({"redirect_uris": ["com.example.app://user@host/cb"]},
     uri_error("com.example.app://user@host/cb", "must not contain credentials")),
    ({"redirect_uris": ["https://app.example.com/cb#done"]},
     uri_error("https://app.example.com/cb#done", "must not contain a fragment")),
    ({"redirect_uris": ["https://app.example.com/cb#"]}, uri_error("https://app.example.com/cb#", "must not contain a fragment")),
    ({"redirect_uris": ["https://*.example.com/cb"]}, uri_error("https://*.example.com/cb", "must not contain wildcards")),
    ({"redirect_uris": ["https://app.example.com/c b"]},
     uri_error("https://app.example.com/c b", "must not contain whitespace or control characters")),
    ({"redirect_uris": ["https://app.example.com/cb\n"]},
     uri_error("https://app.example.com/cb?", "must not contain whitespace or control characters")),
    ({"redirect_uris": ["https://app.example.com/\x00cb"]},
     uri_error("https://app.example.com/?cb", "must not contain whitespace or control characters")),
    ({"redirect_uris": ["https://\u0430pp.example.com/cb"]},  # Cyrillic "а": a homograph of app.example.com
     uri_error("https://?pp.example.com/cb",
               "must be ASCII (hosts in punycode, paths percent-encoded) and at most 2048 characters")),
    ({"redirect_uris": ["https://app.example.com/" + "a" * 2048]},
     (InvalidRedirectUri, "redirect URI must be ASCII (hosts in punycode, paths percent-encoded) and at most 2048 "
                          "characters: 'https://app.example.com/aaaaaaaaaaaaaaaa...'")),
    ({"redirect_uris": ["/callback"]}, uri_error("/callback", "must be an absolute URI")),
    ({"redirect_uris": ["//app.example.com/cb"]}, uri_error("//app.example.com/cb", "must be an absolute URI")),
    ({"redirect_uris": ["https:/cb"]}, uri_error("https:/cb", "must be an absolute URI")),
    ({"redirect_uris": ["http://[::1/cb"]}, uri_error("http://[::1/cb", "is malformed")),
    ({"redirect_uris": ["https://app.example.com:99999/cb"]}, uri_error("https://app.example.com:99999/cb", "is malformed")),
    ({"redirect_uris": ["http://app.example.com/cb"]},
     (InvalidRedirectUri, "http redirect URIs are allowed only for loopback hosts: 'http://app.example.com/cb'")),
    ({"redirect_uris": ["http://127.0.0.1.evil.example/cb"]},
     (InvalidRedirectUri, "http redirect URIs are allowed only for loopback hosts: 'http://127.0.0.1.evil.example/cb'")),
    ({"redirect_uris": ["javascript:alert(1)"]}, uri_error("javascript:alert(1)", SCHEME_RULE)),
    ({"redirect_uris": ["data:text/html,hi"]}, uri_error("data:text/html,hi", SCHEME_RULE)),
    ({"redirect_uris": ["myapp:/cb"]}, uri_error("myapp:/cb", SCHEME_RULE)),
    ({"redirect_uris": ["file:///etc/passwd"]}, uri_error("file:///etc/passwd", SCHEME_RULE)),
    ({"redirect_uris": []}, (InvalidRedirectUri, "at least one redirect URI is required for the authorization_code grant")),
    ({"redirect_uris": [f"https://app.example.com/{i}" for i in range(11)]},
     (InvalidRedirectUri, "at most 10 redirect URIs are allowed")),
    ({"redirect_uris": [APP] * 11}, OK),  # duplicates count once
    # Client name
    ({"client_name": ""}, (InvalidClientMetadata, "client_name must be 1 to 200 characters")),
    ({"client_name": "   "}, (InvalidClientMetadata, "client_name must be 1 to 200 characters")),
    ({"client_name": "x" * 201}, (InvalidClientMetadata, "client_name must be 1 to 200 characters")),
    ({"client_name": "Bell\x07"}, (InvalidClientMetadata, "client_name must not contain control characters")),
    # U+202E RIGHT-TO-LEFT OVERRIDE would show "Acme Bank" for "knaB emcA\u202e..." on the consent page.
    ({"client_name": "App\u202eknaB emcA"}, (InvalidClientMetadata, "client_name must not contain control characters")),
    # Grant and response types
    ({"grant_types": ["authorization_code", "refresh_token"]}, OK),
    ({"grant_types": []}, (InvalidClientMetadata, "at least one grant type is required")),
    ({"grant_types": ["password"]},
     (InvalidClientMetadata, "unsupported grant type 'password'; supported: authorization_code, refresh_token"
                             "{more}")),
    ({"grant_types": ["refresh_token"]},
     (InvalidClientMetadata, "the refresh_token grant requires the authorization_code grant")),
    # Scope syntax (RFC 6749 §3.3)
    ({"scope": "openid email"}, OK),
    ({"scope": 'openid say"hi'}, (InvalidClientMetadata, "invalid scope 'say?hi': not an RFC 6749 §3.3 scope-token")),
    ({"scope": "back\\slash"}, (InvalidClientMetadata, "invalid scope 'back?slash': not an RFC 6749 §3.3 scope-token")),
    ({"scope": "profil\u00e9"}, (InvalidClientMetadata, "invalid scope 'profil?': not an RFC 6749 §3.3 scope-token")),
]


def verdict(call, metadata):
    try:
        fields = call(metadata)
    except InvalidClientMetadata as exc:
        return type(exc), exc.description
    except DocumentError as exc:
        return str(exc)
    return OK, {name: fields[name] for name in ("client_name", "redirect_uris", "grant_types", "response_types",
                                               "token_endpoint_auth_method")}


def by_admin(metadata):
    scope = metadata.get("scope")
    return validate_client_metadata(client_name=metadata["client_name"], client_type="public",
                                    token_endpoint_auth_method=metadata["token_endpoint_auth_method"],
                                    redirect_uris=metadata["redirect_uris"], grant_types=metadata.get("grant_types"),
                                    scopes=scope.split(" ") if scope is not None else None)


def by_registration(metadata):
    return validate_registration(metadata, CEILING)


def by_document(metadata):
    client = client_documents.to_client(DOCUMENT_URL, {"client_id": DOCUMENT_URL, **metadata}, SETTINGS)
    return {"client_name": client.client_name, "redirect_uris": list(client.redirect_uris),
            "grant_types": list(client.grant_types), "response_types": list(client.response_types),
            "token_endpoint_auth_method": client.token_endpoint_auth_method}


@pytest.mark.parametrize("change, expected", CASES, ids=[repr(change)[:70] for change, _ in CASES])
def test_every_entry_point_reaches_the_same_verdict(change, expected):
    metadata = {"client_name": "App", "redirect_uris": [APP], "token_endpoint_auth_method": "none", **change}
    admin, registration, document = (verdict(call, metadata) for call in (by_admin, by_registration, by_document))

    if expected == OK:
        assert admin[0] == registration[0] == document[0] == OK, (admin, registration, document)
        assert admin == registration == document
        return
    error, message = expected
    # The admin path also offers client_credentials and jwt-bearer, so its list of supported grants is longer.
    assert admin == (error, message.format(more=", client_credentials, urn:ietf:params:oauth:grant-type:jwt-bearer"))
    assert registration == (error, message.format(more=""))
    # A document's errors are logged with the same rule, behind the document prefix.
    assert document == f"the client_id document is invalid: {message.format(more='')}"


# Where the paths differ, by policy: a stranger's client gets less than an administrator's ----------

def test_only_an_administrator_may_create_a_client_credentials_client():
    admin = validate_client_metadata(client_name="Batch", grant_types=["client_credentials"])
    assert admin["grant_types"] == ["client_credentials"] and admin["redirect_uris"] == []

    with pytest.raises(InvalidClientMetadata) as raised:
        validate_registration({"redirect_uris": [APP], "grant_types": ["client_credentials"]}, CEILING)
    assert raised.value.description == ("unsupported grant type 'client_credentials'; supported: "
                                        "authorization_code, refresh_token")


def test_a_self_registered_client_may_name_only_ceiling_scopes_and_is_given_the_ceiling():
    assert validate_client_metadata(client_name="App", redirect_uris=[APP], scopes=["notes:read"])["scopes"] == [
        "notes:read"]
    assert validate_registration({"redirect_uris": [APP], "scope": "openid"}, CEILING)["scopes"] == list(CEILING)
    with pytest.raises(InvalidClientMetadata) as raised:
        validate_registration({"redirect_uris": [APP], "scope": "openid notes:read"}, CEILING)
    assert raised.value.description == "scope not available to self-registered clients: 'notes:read'"


def test_a_registration_without_a_name_is_named_after_its_redirect_host():
    assert validate_registration({"redirect_uris": [APP]}, CEILING)["client_name"] == "App at app.example.com"
    assert validate_registration({"redirect_uris": ["com.example.app:/cb"]}, CEILING)["client_name"] == (
        "App at com.example.app")


@pytest.mark.parametrize("change, message", [
    ({"redirect_uris": APP}, "redirect_uris must be an array of strings"),
    ({"grant_types": "authorization_code"}, "grant_types must be an array of strings"),
    ({"token_endpoint_auth_method": ["none"]}, "token_endpoint_auth_method must be a string"),
    ({"client_name": 7}, "client_name must be a string"),
    ({"scope": ["openid"]}, "scope must be a space-separated string"),
    ({"response_types": ["code", "token"]}, 'response_types must be ["code"] with the authorization_code grant'),
    ({"client_uri": "https://user:pw@app.example.com/"}, "client_uri must be an https URL without credentials"),
    ({"client_uri": "http://app.example.com/"}, "client_uri must be an https URL without credentials"),
])
def test_registration_json_of_the_wrong_shape_is_invalid_client_metadata(change, message):
    with pytest.raises(InvalidClientMetadata) as raised:
        validate_registration({"redirect_uris": [APP], **change}, CEILING)
    assert raised.value.description == message
