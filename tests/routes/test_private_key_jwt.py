"""private_key_jwt client authentication (RFC 7523 §2.2 and §3, OIDC Core §9) at /token, /revoke and
/introspect: what passes, and every way an assertion is refused (each refusal attacked here)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from urllib.parse import urlencode

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tests.conftest import basic_auth
from tests.routes.flow import FORM

ISSUER = "http://localhost:8000"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
NOTES = "https://notes.example.com/api"


def private_key(alg: str):
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ed25519.Ed25519PrivateKey.generate()


def public_jwk(key, kid: str = "k1", **members) -> dict:
    return {**_jwk_of(key.public_key()), "kid": kid, **members}


def _jwk_of(public) -> dict:
    from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

    algorithm = (ECAlgorithm if isinstance(public, ec.EllipticCurvePublicKey) else
                 RSAAlgorithm if isinstance(public, rsa.RSAPublicKey) else OKPAlgorithm)
    return algorithm.to_jwk(public, as_dict=True)


def assertion(client_id: str, key, alg: str = "ES256", *, kid: str | None = "k1", headers: dict | None = None,
              **claims) -> str:
    at = int(time.time())
    body = {"iss": client_id, "sub": client_id, "aud": ISSUER, "iat": at, "exp": at + 60,
            "jti": secrets.token_urlsafe(16), **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm=alg,
                      headers={**({"kid": kid} if kid else {}), **(headers or {})})


def unsigned(header: dict, claims: dict, sign=None) -> str:
    """A JWT put together by hand (pyjwt will not make these attacks): `sign(signing_input)`."""
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64(sign(signing_input.encode())) if sign else ''}"


def post(http, path: str, headers: dict | None = None, **params):
    return http.post(path, body=urlencode(params).encode(), headers={**FORM, **(headers or {})})


def token(http, client_assertion: str, **params):
    return post(http, "/token", grant_type="client_credentials", client_assertion_type=ASSERTION_TYPE,
                client_assertion=client_assertion, **params)


def error_of(response) -> tuple[int, str, str]:
    body = json.loads(response.body)
    return response.status_code, body["error"], body.get("error_description", "")


@pytest.fixture
def signer():
    return private_key("ES256")


@pytest.fixture
def key_client(aws, api_resources, signer):
    """A backend job that authenticates with private_key_jwt (its public key registered by value)."""
    from chalicelib.oauth.clients import create_client

    client, secret = create_client(client_name="Key job", grant_types=["client_credentials"], scopes=["notes:read"],
                                   token_endpoint_auth_method="private_key_jwt",
                                   jwks={"keys": [public_jwk(signer)]}, introspects=[NOTES])
    assert secret is None, "a private_key_jwt client gets no secret"
    return client


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
def test_a_client_assertion_signed_with_the_registered_key_authenticates(http, keys, api_resources, alg):
    from chalicelib.oauth.clients import create_client

    key = private_key(alg)
    client, _ = create_client(client_name=f"{alg} job", grant_types=["client_credentials"], scopes=["notes:read"],
                              token_endpoint_auth_method="private_key_jwt", jwks={"keys": [public_jwk(key)]})
    response = token(http, assertion(client.client_id, key, alg), scope="notes:read")
    assert response.status_code == 200, response.body
    claims = jwt.decode(json.loads(response.body)["access_token"], options={"verify_signature": False})
    assert claims["client_id"] == client.client_id and claims["scope"] == "notes:read"


@pytest.mark.parametrize("aud", [ISSUER, f"{ISSUER}/token", [f"{ISSUER}/token", "https://other.example"],
                                 [ISSUER]])
def test_aud_may_be_the_issuer_or_the_token_endpoint_alone_or_in_a_list(http, keys, key_client, signer, aud):
    assert token(http, assertion(key_client.client_id, signer, aud=aud)).status_code == 200


def test_client_id_in_the_body_is_optional_and_must_match(http, keys, key_client, signer):
    assert token(http, assertion(key_client.client_id, signer), client_id=key_client.client_id).status_code == 200
    assert error_of(token(http, assertion(key_client.client_id, signer), client_id="someone-else")) == (
        400, "invalid_request", "client_id in the body does not match the client assertion")


def test_a_single_key_without_kid_is_used_for_an_assertion_without_kid(http, keys, key_client, signer):
    assert token(http, assertion(key_client.client_id, signer, kid=None)).status_code == 200


# Refusals: each is RFC 7523 §3.2's invalid_client (401) ---------------------------------------------

class FromNow(int):
    """A time claim this many seconds from when the test runs (not from when pytest collected it:
    a long run would otherwise let an "in the future" iat become the present)."""


@pytest.mark.parametrize("claims, description", [
    ({"aud": "https://other-idp.example"}, "the client assertion's aud must be this issuer, its token endpoint or its PAR endpoint"),
    ({"aud": f"{ISSUER}/userinfo"}, "the client assertion's aud must be this issuer, its token endpoint or its PAR endpoint"),
    ({"exp": FromNow(-3600)}, "the client assertion has expired"),
    ({"exp": None}, "the client assertion needs exp"),
    ({"jti": None}, "the client assertion needs jti"),
    ({"aud": None}, "the client assertion needs aud"),
    ({"exp": FromNow(3600)}, "the client assertion must expire within 300 seconds"),
    ({"iat": FromNow(600)}, "the client assertion's iat or nbf is in the future"),
    ({"nbf": FromNow(600)}, "the client assertion's iat or nbf is in the future"),
    ({"jti": ""}, "the client assertion's jti must be a string of 1 to 256 characters"),
    ({"jti": 42}, "the client assertion's jti must be a string of 1 to 256 characters"),
])
def test_an_assertion_whose_claims_are_wrong_is_refused(http, keys, key_client, signer, claims, description):
    claims = {k: int(time.time()) + v if isinstance(v, FromNow) else v for k, v in claims.items()}
    response = token(http, assertion(key_client.client_id, signer, **claims))
    assert error_of(response) == (401, "invalid_client", description)


def test_iss_must_be_the_client_id(http, keys, key_client, signer):
    response = token(http, assertion(key_client.client_id, signer, iss="https://attacker.example"))
    assert error_of(response) == (401, "invalid_client", "the client assertion's iss must be the client_id")


def test_a_replayed_assertion_is_refused(http, keys, key_client, signer):
    used = assertion(key_client.client_id, signer)
    assert token(http, used).status_code == 200
    assert error_of(token(http, used)) == (401, "invalid_client", "the client assertion was already used")
    # The same jti in a freshly signed assertion is the same assertion as far as RFC 7523 §3 item 7 goes.
    jti = jwt.decode(used, options={"verify_signature": False})["jti"]
    assert error_of(token(http, assertion(key_client.client_id, signer, jti=jti)))[2] == \
        "the client assertion was already used"


def test_a_refused_assertion_spends_no_jti(http, keys, key_client, signer):
    jti = "kept-for-later"
    forged = assertion(key_client.client_id, private_key("ES256"), jti=jti)
    assert error_of(token(http, forged)) == (401, "invalid_client", "client authentication failed")
    wrong_aud = assertion(key_client.client_id, signer, jti=jti, aud="https://elsewhere.example")
    assert error_of(token(http, wrong_aud))[1] == "invalid_client"
    assert token(http, assertion(key_client.client_id, signer, jti=jti)).status_code == 200


def test_a_signature_by_another_key_is_refused_without_saying_why(http, keys, key_client):
    response = token(http, assertion(key_client.client_id, private_key("ES256")))
    assert error_of(response) == (401, "invalid_client", "client authentication failed")


def test_an_unknown_kid_is_refused(http, keys, key_client, signer):
    assert error_of(token(http, assertion(key_client.client_id, signer, kid="k9")))[:2] == (401, "invalid_client")


def test_a_key_of_another_type_than_alg_is_refused(http, keys, api_resources):
    """The registered key is RSA; an ES256 header naming it must not verify with it."""
    from chalicelib.oauth.clients import create_client

    rsa_key = private_key("RS256")
    client, _ = create_client(client_name="RSA job", grant_types=["client_credentials"], scopes=["notes:read"],
                              token_endpoint_auth_method="private_key_jwt", jwks={"keys": [public_jwk(rsa_key)]})
    response = token(http, assertion(client.client_id, private_key("ES256")))
    assert error_of(response) == (401, "invalid_client", "client authentication failed")


def test_an_hmac_assertion_keyed_with_the_public_key_is_refused(http, keys, key_client, signer):
    """The classic confusion: HS256 with the registered public key as the HMAC secret."""
    pem = signer.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    at = int(time.time())
    claims = {"iss": key_client.client_id, "sub": key_client.client_id, "aud": ISSUER, "exp": at + 60,
              "jti": secrets.token_urlsafe(8)}
    for secret in (pem, json.dumps(public_jwk(signer)).encode()):
        forged = unsigned({"alg": "HS256", "typ": "JWT", "kid": "k1"}, claims,
                          lambda data, secret=secret: hmac.new(secret, data, hashlib.sha256).digest())
        assert error_of(token(http, forged)) == (
            401, "invalid_client", "the client assertion's alg must be one of ES256, RS256, EdDSA")


@pytest.mark.parametrize("alg", ["none", "None", "ES384", "PS256"])
def test_alg_none_and_unlisted_algorithms_are_refused(http, keys, key_client, alg):
    at = int(time.time())
    claims = {"iss": key_client.client_id, "sub": key_client.client_id, "aud": ISSUER, "exp": at + 60,
              "jti": secrets.token_urlsafe(8)}
    response = token(http, unsigned({"alg": alg, "kid": "k1"}, claims))
    assert error_of(response) == (401, "invalid_client", "the client assertion's alg must be one of ES256, RS256, EdDSA")


def test_another_kind_of_jwt_signed_by_the_client_is_not_a_client_assertion(http, keys, key_client, signer):
    response = token(http, assertion(key_client.client_id, signer, headers={"typ": "oauth-id-jag+jwt"}))
    assert error_of(response) == (401, "invalid_client", "the client assertion's typ must be JWT or "
                                                         "client-authentication+jwt")
    assert token(http, assertion(key_client.client_id, signer,
                                 headers={"typ": "client-authentication+jwt"})).status_code == 200


@pytest.mark.parametrize("value", ["not-a-jwt", "a.b.c", "x" * 9000])
def test_a_malformed_assertion_is_refused(http, keys, key_client, value):
    assert error_of(token(http, value))[:2] == (401, "invalid_client")


def test_the_assertion_type_must_be_the_jwt_bearer_one(http, keys, key_client, signer):
    response = post(http, "/token", grant_type="client_credentials", client_assertion=assertion(
        key_client.client_id, signer), client_assertion_type="urn:ietf:params:oauth:client-assertion-type:saml2-bearer")
    assert error_of(response)[:2] == (401, "invalid_client")
    response = post(http, "/token", grant_type="client_credentials", client_assertion_type=ASSERTION_TYPE)
    assert error_of(response) == (400, "invalid_request", "client_assertion is required with client_assertion_type")


def test_two_methods_in_one_request_are_refused(http, keys, key_client, signer, service_client):
    client, secret = service_client
    with_basic = post(http, "/token", headers={"Authorization": basic_auth(client.client_id, secret)},
                      grant_type="client_credentials", client_assertion_type=ASSERTION_TYPE,
                      client_assertion=assertion(key_client.client_id, signer))
    assert error_of(with_basic) == (400, "invalid_request", "use exactly one client authentication method")
    with_secret = token(http, assertion(key_client.client_id, signer), client_secret="guess")
    assert error_of(with_secret) == (400, "invalid_request", "use exactly one client authentication method")


def test_the_method_must_be_the_registered_one(http, keys, key_client, signer, service_client):
    """A secret client cannot switch to assertions, nor a key client to secrets or to no authentication."""
    from chalicelib.oauth.clients import create_client

    client, _ = service_client
    # A secret client that also registered nothing: its "assertion" is signed by whatever key.
    assert error_of(token(http, assertion(client.client_id, signer)))[:2] == (401, "invalid_client")
    assert error_of(post(http, "/token", grant_type="client_credentials", client_id=key_client.client_id,
                         client_secret=""))[:2] == (401, "invalid_client")
    assert error_of(post(http, "/token", grant_type="client_credentials",
                         client_id=key_client.client_id))[:2] == (401, "invalid_client")
    disabled, _ = create_client(client_name="Gone", grant_types=["client_credentials"], scopes=["notes:read"],
                                token_endpoint_auth_method="private_key_jwt", jwks={"keys": [public_jwk(signer)]})
    from chalicelib.storage.clients import set_client_disabled

    set_client_disabled(disabled.client_id, True)
    assert error_of(token(http, assertion(disabled.client_id, signer)))[:2] == (401, "invalid_client")


# /revoke and /introspect ------------------------------------------------------------------------

def test_revoke_and_introspect_accept_a_client_assertion(http, keys, key_client, signer):
    access_token = json.loads(token(http, assertion(key_client.client_id, signer), resource=NOTES).body)["access_token"]
    introspected = post(http, "/introspect", token=access_token, client_assertion_type=ASSERTION_TYPE,
                        client_assertion=assertion(key_client.client_id, signer, aud=f"{ISSUER}/token"))
    assert introspected.status_code == 200, introspected.body
    assert json.loads(introspected.body)["active"] is True
    revoked = post(http, "/revoke", token=access_token, client_assertion_type=ASSERTION_TYPE,
                   client_assertion=assertion(key_client.client_id, signer))
    assert revoked.status_code == 200, revoked.body
    again = post(http, "/introspect", token=access_token, client_assertion_type=ASSERTION_TYPE,
                 client_assertion=assertion(key_client.client_id, signer))
    assert json.loads(again.body) == {"active": False}
    replay = post(http, "/revoke", token=access_token, client_assertion_type=ASSERTION_TYPE,
                  client_assertion=assertion(key_client.client_id, signer, jti=jwt.decode(
                      access_token, options={"verify_signature": False})["jti"]))
    assert replay.status_code == 200, "access-token jtis and assertion jtis are different namespaces"


def test_introspect_refuses_a_replayed_assertion(http, keys, key_client, signer):
    used = assertion(key_client.client_id, signer)
    assert post(http, "/introspect", token="x", client_assertion_type=ASSERTION_TYPE,
                client_assertion=used).status_code == 200
    assert error_of(post(http, "/introspect", token="x", client_assertion_type=ASSERTION_TYPE,
                         client_assertion=used)) == (401, "invalid_client", "the client assertion was already used")


# jwks_uri ---------------------------------------------------------------------------------------

class JwksHost:
    """What outbound.send answers for the client's jwks_uri, counting the fetches."""

    def __init__(self, monkeypatch, jwks: dict):
        from chalicelib import outbound

        self.jwks, self.fetches = jwks, 0

        def send(method, url, settings, **_):
            assert url == "https://keys.example.com/jwks.json"
            self.fetches += 1
            return outbound.Answer(200, json.dumps(self.jwks).encode(), {"cache-control": "max-age=3600"}, 65536)

        monkeypatch.setattr(outbound, "send", send)
        monkeypatch.setattr(outbound, "check_url", lambda url, settings, what="": ("https", "keys.example.com", 443))


def test_keys_at_a_jwks_uri_are_fetched_cached_and_refetched_once_for_a_new_kid(http, keys, api_resources,
                                                                               monkeypatch):
    from chalicelib.oauth.clients import create_client

    first, second = private_key("ES256"), private_key("EdDSA")
    host = JwksHost(monkeypatch, {"keys": [public_jwk(first, "k1")]})
    client, secret = create_client(client_name="Rotating job", grant_types=["client_credentials"],
                                   scopes=["notes:read"], token_endpoint_auth_method="private_key_jwt",
                                   jwks_uri="https://keys.example.com/jwks.json")
    assert secret is None and client.jwks is None
    assert token(http, assertion(client.client_id, first)).status_code == 200
    assert token(http, assertion(client.client_id, first)).status_code == 200
    assert host.fetches == 1, "cached for its max-age"
    # The client rotates in a new key: the unknown kid refetches once.
    host.jwks = {"keys": [public_jwk(first, "k1"), public_jwk(second, "k2")]}
    assert token(http, assertion(client.client_id, second, "EdDSA", kid="k2")).status_code == 200
    assert host.fetches == 2
    # Made-up kids do not make us fetch again within the minute.
    for kid in ("k3", "k4"):
        assert error_of(token(http, assertion(client.client_id, second, "EdDSA", kid=kid)))[:2] == \
            (401, "invalid_client")
    assert host.fetches == 2


def test_a_private_key_published_at_the_jwks_uri_is_not_used(http, keys, api_resources, monkeypatch):
    from chalicelib.oauth.clients import create_client

    leaked = private_key("ES256")
    private = {**jwt.algorithms.ECAlgorithm.to_jwk(leaked, as_dict=True), "kid": "k1"}
    JwksHost(monkeypatch, {"keys": [private]})
    client, _ = create_client(client_name="Leaky job", grant_types=["client_credentials"], scopes=["notes:read"],
                              token_endpoint_auth_method="private_key_jwt",
                              jwks_uri="https://keys.example.com/jwks.json")
    assert error_of(token(http, assertion(client.client_id, leaked))) == (
        401, "invalid_client", "client authentication failed")


def test_an_unreachable_jwks_uri_is_a_503_and_spends_nothing(http, keys, api_resources, monkeypatch):
    from chalicelib import outbound
    from chalicelib.oauth.clients import create_client

    signer = private_key("ES256")
    host = JwksHost(monkeypatch, {"keys": [public_jwk(signer)]})
    client, _ = create_client(client_name="Far job", grant_types=["client_credentials"], scopes=["notes:read"],
                              token_endpoint_auth_method="private_key_jwt",
                              jwks_uri="https://keys.example.com/jwks.json")
    working_send = outbound.send

    def down(*args, **kwargs):
        raise outbound.OutboundError("connection refused")

    monkeypatch.setattr(outbound, "send", down)
    presented = assertion(client.client_id, signer)
    response = token(http, presented)
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert json.loads(response.body)["error"] == "temporarily_unavailable"
    monkeypatch.setattr(outbound, "send", working_send)
    assert token(http, presented).status_code == 200 and host.fetches == 1


# Registration -----------------------------------------------------------------------------------

@pytest.mark.parametrize("jwks, message", [
    (lambda key: {"keys": [{**jwt.algorithms.ECAlgorithm.to_jwk(key, as_dict=True), "kid": "k1"}]},
     "jwks must hold public keys only: never register a private or secret key"),
    (lambda key: {"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]},
     "jwks must hold public keys only: never register a private or secret key"),
    (lambda key: {"keys": [public_jwk(rsa.generate_private_key(public_exponent=65537, key_size=1024))]},
     "jwks: every key must be a public key for ES256, RS256, EdDSA (P-256, RSA of at least 2048 bits, Ed25519)"),
    (lambda key: {"keys": [public_jwk(ec.generate_private_key(ec.SECP384R1()))]},
     "jwks: every key must be a public key for ES256, RS256, EdDSA (P-256, RSA of at least 2048 bits, Ed25519)"),
    (lambda key: {"keys": [public_jwk(key, alg="HS256")]},
     "jwks: every key must be a public key for ES256, RS256, EdDSA (P-256, RSA of at least 2048 bits, Ed25519)"),
    (lambda key: {"keys": [public_jwk(key, use="enc")]}, "jwks: a key's use must be sig"),
    (lambda key: {"keys": [public_jwk(key, "a"), public_jwk(private_key("ES256"), "a")]},
     "jwks: with several keys, each needs its own kid"),
    (lambda key: {"keys": []}, "jwks must be a JWK Set with 1 to 10 keys"),
    (lambda key: [public_jwk(key)], "jwks must be a JWK Set with 1 to 10 keys"),
])
def test_registration_refuses_keys_that_could_not_or_must_not_be_used(aws, jwks, message):
    from chalicelib.errors import InvalidClientMetadata
    from chalicelib.oauth.clients import create_client
    from chalicelib.oauth.client_metadata import validate_registration

    key = private_key("ES256")
    value = jwks(key)
    with pytest.raises(InvalidClientMetadata) as admin:
        create_client(client_name="Bad keys", token_endpoint_auth_method="private_key_jwt", jwks=value,
                      redirect_uris=["https://app.example.com/cb"])
    with pytest.raises(InvalidClientMetadata) as registered:
        validate_registration({"redirect_uris": ["https://app.example.com/cb"], "jwks": value,
                               "token_endpoint_auth_method": "private_key_jwt"}, ("openid",))
    assert admin.value.description == registered.value.description == message


@pytest.mark.parametrize("metadata, message", [
    ({}, "private_key_jwt needs exactly one of jwks and jwks_uri"),
    ({"jwks_uri": "https://keys.example.com/jwks.json", "jwks": {"keys": []}},
     "private_key_jwt needs exactly one of jwks and jwks_uri"),
    ({"jwks_uri": "http://keys.example.com/jwks.json"}, "jwks_uri must use https"),
    ({"jwks_uri": "https://user:pw@keys.example.com/jwks.json"}, "jwks_uri needs a host and no credentials or fragment"),
    ({"jwks_uri": f"{ISSUER}/jwks"}, "jwks_uri must not point at this server"),
])
def test_a_private_key_jwt_client_needs_one_usable_source_of_keys(aws, metadata, message):
    from chalicelib.errors import InvalidClientMetadata
    from chalicelib.oauth.client_metadata import validate_registration

    with pytest.raises(InvalidClientMetadata) as refused:
        validate_registration({"redirect_uris": ["https://app.example.com/cb"],
                               "token_endpoint_auth_method": "private_key_jwt", **metadata}, ("openid",))
    assert refused.value.description == message


def test_an_operator_cannot_give_keys_to_a_secret_client(aws):
    from chalicelib.errors import InvalidClientMetadata
    from chalicelib.oauth.clients import create_client

    with pytest.raises(InvalidClientMetadata, match="jwks and jwks_uri are for token_endpoint_auth_method"):
        create_client(client_name="Confused", token_endpoint_auth_method="client_secret_basic",
                      jwks={"keys": [public_jwk(private_key("ES256"))]}, redirect_uris=["https://app.example.com/cb"])
    with pytest.raises(InvalidClientMetadata, match="public clients have no secret"):
        create_client(client_name="Public", client_type="public", token_endpoint_auth_method="private_key_jwt",
                      jwks={"keys": [public_jwk(private_key("ES256"))]}, redirect_uris=["https://app.example.com/cb"])


def test_rfc_7591_registration_of_a_private_key_jwt_client(http, browser, alice, signer):
    """A self-registered key client gets no secret, its keys are in the client information, and it
    redeems its code with an assertion."""
    from tests.routes.flow import REDIRECT_URI, query_of, redeem, sign_in_and_consent

    jwks = {"keys": [public_jwk(signer)]}
    response = http.post("/register", headers={"Content-Type": "application/json"}, body=json.dumps({
        "redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "private_key_jwt", "jwks": jwks,
        "client_name": "Agent"}).encode())
    assert response.status_code == 201, response.body
    info = json.loads(response.body)
    assert info["token_endpoint_auth_method"] == "private_key_jwt" and info["jwks"] == jwks
    assert "client_secret" not in info
    client_id = info["client_id"]
    code = query_of(sign_in_and_consent(browser, client_id, scope="openid"))["code"]
    redeemed = redeem(http, client_id, code, extra={"client_assertion_type": ASSERTION_TYPE,
                                                    "client_assertion": assertion(client_id, signer)})
    assert redeemed.status_code == 200, redeemed.body


def test_discovery_advertises_private_key_jwt_and_its_algorithms(http):
    document = json.loads(http.get("/.well-known/openid-configuration").body)
    for endpoint in ("token", "revocation", "introspection"):
        assert "private_key_jwt" in document[f"{endpoint}_endpoint_auth_methods_supported"]
        assert document[f"{endpoint}_endpoint_auth_signing_alg_values_supported"] == ["ES256", "RS256", "EdDSA"]


# verify_actor_assertion (token exchange's actor_token of type jwt) ---------------------------------

def test_an_actor_assertion_names_its_registered_client_and_is_single_use(aws, key_client, signer):
    from chalicelib.config import settings
    from chalicelib.errors import InvalidRequest
    from chalicelib.oauth.client_assertions import verify_actor_assertion

    presented = assertion(key_client.client_id, signer)
    assert verify_actor_assertion(presented, settings()).client_id == key_client.client_id
    with pytest.raises(InvalidRequest) as replayed:
        verify_actor_assertion(presented, settings())
    assert replayed.value.description == "actor_token: the client assertion was already used"
    with pytest.raises(InvalidRequest) as forged:
        verify_actor_assertion(assertion(key_client.client_id, private_key("ES256")), settings())
    assert forged.value.description == "actor_token: client authentication failed"
    with pytest.raises(InvalidRequest):
        verify_actor_assertion(assertion(key_client.client_id, signer, iss="someone-else"), settings())
    with pytest.raises(InvalidRequest):
        verify_actor_assertion(assertion("no-such-client", signer), settings())


def test_an_actor_assertion_of_a_secret_client_is_refused(aws, service_client, signer):
    from chalicelib.config import settings
    from chalicelib.errors import InvalidRequest
    from chalicelib.oauth.client_assertions import verify_actor_assertion

    client, _ = service_client
    with pytest.raises(InvalidRequest, match="client authentication failed"):
        verify_actor_assertion(assertion(client.client_id, signer), settings())


def test_an_assertion_used_to_authenticate_cannot_then_name_an_actor(http, keys, key_client, signer):
    from chalicelib.config import settings
    from chalicelib.errors import InvalidRequest
    from chalicelib.oauth.client_assertions import verify_actor_assertion

    presented = assertion(key_client.client_id, signer)
    assert token(http, presented).status_code == 200
    with pytest.raises(InvalidRequest, match="already used"):
        verify_actor_assertion(presented, settings())


def test_a_warm_container_spends_one_dynamodb_call_on_an_assertion(http, keys, key_client, signer,
                                                                  api_role_allows_every_dynamodb_call):
    """The client, its keys and the signing key come from the container's caches: authenticating
    costs only the jti's conditional PutItem (client_credentials itself reads nothing more)."""
    calls = api_role_allows_every_dynamodb_call
    assert token(http, assertion(key_client.client_id, signer), resource=NOTES).status_code == 200
    calls.clear()
    assert token(http, assertion(key_client.client_id, signer), resource=NOTES).status_code == 200
    assert [call["operation"] for call in calls] == ["PutItem"]
    assert calls[0]["params"]["ConditionExpression"], "a conditional write"


def test_a_used_jti_is_remembered_as_long_as_the_assertion_is_accepted(http, keys, key_client, signer, monkeypatch):
    """Review attack: an assertion is accepted until exp + LEEWAY (clock skew), so its used-jti
    record must outlive exp by as much; a record kept only until exp may be removed by TTL while the
    same assertion still passes every other check, and it could be replayed in that window."""
    from chalicelib.oauth.client_assertions import LEEWAY
    from chalicelib.storage import used_jtis

    kept = []
    original = used_jtis.use
    monkeypatch.setattr(used_jtis, "use", lambda kind, issuer, jti, expires_at: (kept.append(expires_at),
                                                                                 original(kind, issuer, jti, expires_at))[1])
    used = assertion(key_client.client_id, signer)
    assert token(http, used).status_code == 200
    assert kept == [jwt.decode(used, options={"verify_signature": False})["exp"] + LEEWAY]
