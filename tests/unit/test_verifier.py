"""The resource-server verifier, without HTTP: discovery and JWKS come from a fake fetcher."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from chalicelib.errors import InsufficientScope, InsufficientUserAuthentication, InvalidToken, MissingToken
from chalicelib.keys.backends import LocalSigner
from chalicelib.keys.jwk import public_jwk
from chalicelib.tokens import jwt as jwt_encode
from chalicelib.verifier import Verifier

ISSUER = "https://login.example.com"
API = "https://api.example.com"


class FakeIssuer:
    """Serves discovery and a JWK Set, and counts fetches."""

    def __init__(self):
        self.keys = []
        self.fetches = []

    def new_key(self):
        private = ec.generate_private_key(ec.SECP256R1())
        jwk = public_jwk(private.public_key(), "ES256")
        self.keys.append(jwk)
        return LocalSigner(kid=jwk["kid"], alg="ES256", private_key=private)

    def get(self, url):
        self.fetches.append(url)
        if url.endswith("/.well-known/oauth-authorization-server"):
            return {"issuer": ISSUER, "jwks_uri": f"{ISSUER}/jwks"}
        return {"keys": list(self.keys)}


def claims(**overrides):
    now = int(time.time())
    return {"iss": ISSUER, "sub": "u1", "aud": API, "client_id": "c1", "scope": "notes:read", "jti": "j1",
            "iat": now, "exp": now + 300, **overrides}


@pytest.fixture
def issuer():
    return FakeIssuer()


@pytest.fixture
def signer(issuer):
    return issuer.new_key()


@pytest.fixture
def verifier(issuer):
    return Verifier(ISSUER, API, http_get=issuer.get, refetch_interval=30)


def test_valid_token_verifies_and_keys_are_fetched_once(verifier, signer, issuer):
    token = jwt_encode.encode(claims(), signer, typ="at+jwt")
    assert verifier.verify(token, ["notes:read"])["sub"] == "u1"
    verifier.verify(token)
    assert len(issuer.fetches) == 2  # discovery + JWKS, once


def test_key_rotated_in_is_picked_up_without_restart(verifier, signer, issuer):
    verifier.verify(jwt_encode.encode(claims(), signer, typ="at+jwt"))
    rotated = issuer.new_key()
    assert verifier.verify(jwt_encode.encode(claims(), rotated, typ="at+jwt"))["sub"] == "u1"


def test_unknown_kid_refetch_is_rate_limited(verifier, signer, issuer):
    verifier.verify(jwt_encode.encode(claims(), signer, typ="at+jwt"))
    stranger = FakeIssuer().new_key()
    for _ in range(5):
        with pytest.raises(InvalidToken, match="unknown key"):
            verifier.verify(jwt_encode.encode(claims(), stranger, typ="at+jwt"))
    assert len(issuer.fetches) == 4, "one refetch (discovery + JWKS) for five unknown kids"


def test_metadata_naming_another_issuer_is_refused(issuer, signer):
    verifier = Verifier(ISSUER, API, http_get=lambda url: {**issuer.get(url), "issuer": "https://evil.example"}
                        if "well-known" in url else issuer.get(url))
    with pytest.raises(InvalidToken):
        verifier.verify(jwt_encode.encode(claims(), signer, typ="at+jwt"))


@pytest.mark.parametrize("change, message", [
    ({"aud": "https://other.example.com"}, "not meant for this resource"),
    ({"iss": "https://evil.example"}, "invalid"),
    # Times relative to when the test runs, not to collection: a long suite runs this minutes later.
    (lambda: {"exp": int(time.time()) - 60, "iat": 1}, "expired"),
    (lambda: {"nbf": int(time.time()) + 600}, "invalid"),
])
def test_claims_are_enforced(verifier, signer, change, message):
    change = change() if callable(change) else change
    with pytest.raises(InvalidToken, match=message):
        verifier.verify(jwt_encode.encode(claims(**change), signer, typ="at+jwt"))


def test_small_clock_skew_is_tolerated(verifier, signer):
    token = jwt_encode.encode(claims(exp=int(time.time()) - 10), signer, typ="at+jwt")
    assert verifier.verify(token)["sub"] == "u1"


def test_id_tokens_and_untyped_jwts_are_not_access_tokens(verifier, signer):
    for typ in ("JWT", ""):
        with pytest.raises(InvalidToken, match="not an access token"):
            verifier.verify(jwt_encode.encode(claims(), signer, typ=typ))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_alg_none_is_refused(verifier, signer):
    header = {"alg": "none", "typ": "at+jwt", "kid": signer.kid}
    token = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims()).encode())}."
    with pytest.raises(InvalidToken, match="accepted algorithm"):
        verifier.verify(token)


def test_hmac_with_the_public_key_as_secret_is_refused(verifier, signer, issuer):
    header = {"alg": "HS256", "typ": "at+jwt", "kid": signer.kid}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims()).encode())}"
    secret = json.dumps(issuer.keys[0]).encode()
    token = signing_input + "." + _b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())
    with pytest.raises(InvalidToken, match="accepted algorithm"):
        verifier.verify(token)


def test_missing_scope_is_403_with_the_needed_scope(verifier, signer):
    with pytest.raises(InsufficientScope) as caught:
        verifier.verify(jwt_encode.encode(claims(), signer, typ="at+jwt"), ["notes:write"])
    status, _, headers = caught.value.to_response()
    assert status == 403 and 'scope="notes:write"' in headers["WWW-Authenticate"]


def test_authorization_header_parsing(verifier, signer):
    token = jwt_encode.encode(claims(), signer, typ="at+jwt")
    assert verifier.authenticate(f"Bearer {token}")["sub"] == "u1"
    assert verifier.authenticate(f"bearer {token}")["sub"] == "u1"
    for header in (None, "", "Basic abc", "Bearer "):
        with pytest.raises(MissingToken):
            verifier.authenticate(header)
    status, _, headers = MissingToken("x").to_response()
    assert status == 401 and headers["WWW-Authenticate"] == 'Bearer realm="idp"'


def test_protected_resource_metadata_and_its_path_aware_url():
    from chalicelib.verifier import metadata_path, metadata_url, protected_resource_metadata

    assert metadata_path("https://api.example.com/mcp") == "/.well-known/oauth-protected-resource/mcp"
    assert metadata_path("https://api.example.com") == "/.well-known/oauth-protected-resource"
    assert metadata_url("https://api.example.com/v1/mcp/") == \
        "https://api.example.com/.well-known/oauth-protected-resource/v1/mcp"
    document = protected_resource_metadata("https://api.example.com/mcp", [ISSUER], scopes_supported=["notes:read"])
    assert document == {"resource": "https://api.example.com/mcp", "authorization_servers": [ISSUER],
                        "bearer_methods_supported": ["header"], "scopes_supported": ["notes:read"]}


def test_challenges_point_at_the_resource_metadata_and_name_the_needed_scope(issuer, signer):
    verifier = Verifier(ISSUER, "https://api.example.com/mcp", http_get=issuer.get, resource_metadata=True)
    with pytest.raises(MissingToken) as missing:
        verifier.authenticate(None, ["notes:read"])
    assert missing.value.to_response()[2]["WWW-Authenticate"] == (
        'Bearer realm="api", scope="notes:read", '
        'resource_metadata="https://api.example.com/.well-known/oauth-protected-resource/mcp"')

    token = jwt_encode.encode(claims(aud="https://api.example.com/mcp"), signer, typ="at+jwt")
    with pytest.raises(InsufficientScope) as step_up:
        verifier.authenticate(f"Bearer {token}", ["notes:read", "notes:write"])
    status, _, headers = step_up.value.to_response()
    assert status == 403
    assert 'error="insufficient_scope"' in headers["WWW-Authenticate"]
    assert 'scope="notes:read notes:write"' in headers["WWW-Authenticate"]
    assert "resource_metadata=" in headers["WWW-Authenticate"]


def test_an_always_asking_provider_is_told_to_refetch_at_most_once_per_interval(signer):
    asked = []

    def provider(refresh):
        asked.append(refresh)
        return {"keys": []}

    verifier = Verifier(ISSUER, API, jwks_provider=provider, cache_seconds=0, refetch_interval=30)
    for _ in range(5):
        with pytest.raises(InvalidToken):
            verifier.verify(jwt_encode.encode(claims(), signer, typ="at+jwt"))
    assert asked.count(True) == 1, asked


# RFC 9470: step-up authentication challenges ------------------------------------------------------

MFA = "urn:serverless-idp:acr:mfa"


def challenge(verifier, token, **requirements) -> tuple[int, str]:
    with pytest.raises(InsufficientUserAuthentication) as caught:
        verifier.authenticate(f"Bearer {token}", ["notes:read"], **requirements)
    status, body, headers = caught.value.to_response()
    assert json.loads(body)["error"] == "insufficient_user_authentication"
    assert headers["WWW-Authenticate"] == caught.value.www_authenticate()
    return status, headers["WWW-Authenticate"]


def test_a_token_below_the_required_acr_gets_the_rfc9470_challenge(issuer, signer):
    verifier = Verifier(ISSUER, API, http_get=issuer.get, resource_metadata=True)
    token = jwt_encode.encode(claims(acr="urn:serverless-idp:acr:password", auth_time=int(time.time())), signer,
                              typ="at+jwt")

    status, header = challenge(verifier, token, required_acr=[MFA])

    assert status == 401
    assert header.startswith('Bearer realm="api", error="insufficient_user_authentication", error_description="')
    assert header.endswith(f'acr_values="{MFA}"')
    assert "resource_metadata=" in header


@pytest.mark.parametrize("acr", [MFA, "phr"])
def test_a_token_at_or_above_the_required_acr_passes(verifier, signer, acr):
    token = jwt_encode.encode(claims(acr=acr), signer, typ="at+jwt")
    assert verifier.verify(token, ["notes:read"], required_acr=[MFA])["acr"] == acr


@pytest.mark.parametrize("acr", [None, "urn:other:gold", ""])
def test_a_token_without_a_known_acr_does_not_meet_a_requirement(verifier, signer, acr):
    token = jwt_encode.encode(claims(**({"acr": acr} if acr is not None else {})), signer, typ="at+jwt")
    assert challenge(verifier, token, required_acr=[MFA])[0] == 401


def test_a_token_whose_sign_in_is_older_than_max_age_gets_a_challenge_naming_it(verifier, signer):
    token = jwt_encode.encode(claims(auth_time=int(time.time()) - 700), signer, typ="at+jwt")

    status, header = challenge(verifier, token, max_age=600)

    assert status == 401 and header.endswith(", max_age=600") and "acr_values" not in header
    fresh = jwt_encode.encode(claims(auth_time=int(time.time()) - 10), signer, typ="at+jwt")
    assert verifier.verify(fresh, max_age=600)["sub"] == "u1"


@pytest.mark.parametrize("auth_time", [None, "1700000000", True])
def test_a_token_without_a_numeric_auth_time_does_not_meet_max_age(verifier, signer, auth_time):
    token = jwt_encode.encode(claims(**({"auth_time": auth_time} if auth_time is not None else {})), signer,
                              typ="at+jwt")
    assert challenge(verifier, token, max_age=600)[0] == 401


def test_both_requirements_are_named_in_one_challenge(verifier, signer):
    token = jwt_encode.encode(claims(acr="phr", auth_time=int(time.time()) - 700), signer, typ="at+jwt")
    _, header = challenge(verifier, token, required_acr=[MFA, "phr"], max_age=300)
    assert header.endswith(f'acr_values="{MFA} phr", max_age=300')
