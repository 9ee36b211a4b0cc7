"""PROFILE=fapi2 at the client-authenticated endpoints, at /register and in discovery: FAPI 2.0 Security
Profile §5.3.2.1 items 3, 6 and 8 and §5.4.1, each refusal attacked.

Successful authentications are shown at /revoke and /introspect, which take no DPoP proof: under the
profile /token also demands one (DPOP_REQUIRED is forced on), which is the DPoP work's to test."""
from __future__ import annotations

import json
import secrets
import time
from urllib.parse import urlencode

import jwt
import pytest

from tests.conftest import basic_auth
from tests.routes.flow import FORM
from tests.routes.test_private_key_jwt import ASSERTION_TYPE, ISSUER, error_of, private_key, public_jwk

NOTES = "https://notes.example.com/api"
MUST_USE_KEY = "client authentication must use private_key_jwt"
AUD_RULE = "the client assertion's aud must be this issuer, as a string"


@pytest.fixture
def fapi2(monkeypatch):
    from chalicelib.config import settings

    monkeypatch.setenv("PROFILE", "fapi2")
    settings.cache_clear()
    yield
    settings.cache_clear()


@pytest.fixture
def secret_client(aws, api_resources):
    """A confidential client with a secret, made before the deployment switched to PROFILE=fapi2."""
    from chalicelib.oauth.clients import create_client

    return create_client(client_name="Old job", grant_types=["client_credentials"], scopes=["notes:read"],
                         introspects=[NOTES])


@pytest.fixture
def public_client(aws):
    from chalicelib.oauth.clients import create_client

    client, _ = create_client(client_name="Old app", client_type="public", redirect_uris=["https://app.example.com/cb"])
    return client


def key_client(key, alg_member: str | None = None):
    from chalicelib.oauth.clients import create_client

    jwk = public_jwk(key, **({"alg": alg_member} if alg_member else {}))
    client, secret = create_client(client_name="Key job", grant_types=["client_credentials"], scopes=["notes:read"],
                                   token_endpoint_auth_method="private_key_jwt", jwks={"keys": [jwk]},
                                   introspects=[NOTES])
    assert secret is None
    return client


def assertion(client_id: str, key, alg: str = "ES256", **claims) -> str:
    at = int(time.time())
    body = {"iss": client_id, "sub": client_id, "aud": ISSUER, "iat": at, "exp": at + 60,
            "jti": secrets.token_urlsafe(16), **claims}
    return jwt.encode(body, key, algorithm=alg, headers={"kid": "k1"})


def post(http, path: str, headers: dict | None = None, **params):
    return http.post(path, body=urlencode(params).encode(), headers={**FORM, **(headers or {})})


def revoke(http, client_assertion: str):
    return post(http, "/revoke", token="not-a-token", client_assertion_type=ASSERTION_TYPE,
                client_assertion=client_assertion)


# §5.3.2.1 item 6: private_key_jwt only (MTLS is not offered) -------------------------------------------

@pytest.mark.parametrize("path", ["/token", "/revoke", "/introspect", "/device_authorization"])
def test_a_client_secret_is_refused_at_every_endpoint_even_the_right_one(http, secret_client, fapi2, path):
    client, secret = secret_client
    basic = post(http, path, headers={"Authorization": basic_auth(client.client_id, secret)},
                 grant_type="client_credentials", token="not-a-token")
    assert error_of(basic) == (401, "invalid_client", MUST_USE_KEY)
    assert basic.headers["WWW-Authenticate"].startswith("Basic ")
    in_body = post(http, path, client_id=client.client_id, client_secret=secret, grant_type="client_credentials",
                   token="not-a-token")
    assert error_of(in_body) == (401, "invalid_client", MUST_USE_KEY)


def test_the_refusal_says_nothing_about_the_client_or_its_secret(http, secret_client, fapi2):
    client, secret = secret_client
    answers = {json.loads(post(http, "/revoke", client_id=client_id, client_secret=guess, token="t").body)[
        "error_description"] for client_id, guess in [(client.client_id, secret), (client.client_id, "wrong"),
                                                      ("no-such-client", "wrong")]}
    assert answers == {MUST_USE_KEY}


def test_the_same_secret_client_authenticates_without_the_profile(http, secret_client):
    client, secret = secret_client
    assert post(http, "/revoke", headers={"Authorization": basic_auth(client.client_id, secret)},
                token="not-a-token").status_code == 200


# §5.3.2.1 item 3: confidential clients only -----------------------------------------------------------

@pytest.mark.parametrize("path, params", [
    ("/token", {"grant_type": "authorization_code", "code": "x", "code_verifier": "y" * 43,
                "redirect_uri": "https://app.example.com/cb"}),
    ("/revoke", {"token": "not-a-token"}),
    ("/device_authorization", {}),
])
def test_a_public_client_is_refused(http, keys, public_client, fapi2, path, params):
    assert error_of(post(http, path, client_id=public_client.client_id, **params)) == (401, "invalid_client",
                                                                                     MUST_USE_KEY)


# private_key_jwt under the profile ----------------------------------------------------------------------

def test_a_private_key_jwt_client_authenticates(http, keys, api_resources, fapi2):
    key = private_key("ES256")
    client = key_client(key)
    assert revoke(http, assertion(client.client_id, key)).status_code == 200
    introspected = post(http, "/introspect", token="not-a-token", client_assertion_type=ASSERTION_TYPE,
                        client_assertion=assertion(client.client_id, key))
    assert (introspected.status_code, json.loads(introspected.body)) == (200, {"active": False})


def test_rs256_is_refused_and_ps256_takes_its_place(http, keys, api_resources, fapi2):
    """§5.4.1 item 1.2: PS256, ES256 or EdDSA. The same RSA key signs both."""
    key = private_key("RS256")
    client = key_client(key)
    assert error_of(revoke(http, assertion(client.client_id, key, "RS256"))) == (
        401, "invalid_client", "the client assertion's alg must be one of ES256, PS256, EdDSA")
    assert revoke(http, assertion(client.client_id, key, "PS256")).status_code == 200


def test_without_the_profile_rs256_is_accepted_and_ps256_is_not(http, keys, api_resources):
    key = private_key("RS256")
    client = key_client(key)
    assert revoke(http, assertion(client.client_id, key, "RS256")).status_code == 200
    assert error_of(revoke(http, assertion(client.client_id, key, "PS256")))[:2] == (401, "invalid_client")


@pytest.mark.parametrize("aud", [f"{ISSUER}/token", [ISSUER], [ISSUER, "https://other.example"], [f"{ISSUER}/token"]])
def test_aud_must_be_the_issuer_as_a_string(http, keys, api_resources, fapi2, aud):
    """§5.3.2.1 item 8. The core takes the token endpoint and lists too (tests/routes/test_private_key_jwt.py)."""
    key = private_key("ES256")
    client = key_client(key)
    assert error_of(revoke(http, assertion(client.client_id, key, aud=aud))) == (401, "invalid_client", AUD_RULE)


def test_an_assertion_refused_for_its_aud_spends_no_jti(http, keys, api_resources, fapi2):
    key = private_key("ES256")
    client = key_client(key)
    assert error_of(revoke(http, assertion(client.client_id, key, jti="once", aud=[ISSUER])))[2] == AUD_RULE
    assert revoke(http, assertion(client.client_id, key, jti="once")).status_code == 200
    assert error_of(revoke(http, assertion(client.client_id, key, jti="once")))[2] == \
        "the client assertion was already used"


# Making clients under the profile: /register (RFC 7591) -------------------------------------------------

def register(http, metadata: dict):
    return http.post("/register", body=json.dumps(metadata).encode(), headers={"Content-Type": "application/json"})


@pytest.mark.parametrize("method", ["none", "client_secret_basic", "client_secret_post", None])
def test_registration_refuses_clients_that_could_not_authenticate(http, keys, fapi2, method):
    metadata = {"client_name": "Agent", "redirect_uris": ["https://agent.example.com/cb"]}
    if method:
        metadata["token_endpoint_auth_method"] = method
    response = register(http, metadata)
    assert response.status_code == 400
    body = json.loads(response.body)
    assert body["error"] == "invalid_client_metadata"
    assert "PROFILE=fapi2 allows only confidential clients using private_key_jwt" in body["error_description"]
    from chalicelib.storage.models import ClientModel

    assert list(ClientModel.scan()) == [], "a refused registration stores nothing"


def test_registration_of_a_private_key_jwt_client_works(http, keys, fapi2):
    jwk = public_jwk(private_key("ES256"))
    response = register(http, {"client_name": "Agent", "redirect_uris": ["https://agent.example.com/cb"],
                               "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [jwk]}})
    assert response.status_code == 201, response.body
    assert "client_secret" not in json.loads(response.body)


def test_a_key_registered_for_rs256_only_is_refused(http, keys, fapi2):
    jwk = public_jwk(private_key("RS256"), alg="RS256")
    response = register(http, {"client_name": "Agent", "redirect_uris": ["https://agent.example.com/cb"],
                               "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [jwk]}})
    assert error_of(response)[:2] == (400, "invalid_client_metadata")
    assert "jwks: every key must be a public key for ES256, PS256, EdDSA" in error_of(response)[2]


def test_a_client_id_document_is_not_a_client_under_fapi2(http, keys, fapi2):
    """Client ID metadata documents describe public clients: CLIENT_ID_DOCUMENTS is off."""
    response = post(http, "/revoke", client_id="https://agent.example.com/client.json", token="t")
    assert error_of(response) == (401, "invalid_client", MUST_USE_KEY)
    from chalicelib.config import settings
    from chalicelib.oauth.clients import find_client

    assert find_client("https://agent.example.com/client.json", settings()) is None, "no document is fetched"


# Discovery --------------------------------------------------------------------------------------------

def test_discovery_reflects_the_profile(http, keys, fapi2):
    for path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
        document = json.loads(http.get(path).body)
        assert document["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
        assert document["introspection_endpoint_auth_methods_supported"] == ["private_key_jwt"]
        assert document["token_endpoint_auth_signing_alg_values_supported"] == ["ES256", "PS256", "EdDSA"]
        assert document["dpop_signing_alg_values_supported"] == ["ES256", "PS256", "EdDSA"]
        assert document["id_token_signing_alg_values_supported"] == ["ES256"]
        assert "client_id_metadata_document_supported" not in document
