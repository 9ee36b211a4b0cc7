"""Signing in through an upstream identity provider (chalicelib/federation/upstream.py), against the
in-process fake upstream (tests/fakes/upstream.py): the happy paths, and an attack on every check of
RFC 9207 and OpenID Connect Core §3.1.3.7."""
from __future__ import annotations

import base64
import json
import socket
import time
from types import SimpleNamespace
from urllib.parse import parse_qsl, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from chalicelib import errors
from chalicelib.config import load_settings
from chalicelib.federation import apple, fetching, upstream
from chalicelib.pages import messages
from tests.fakes.upstream import CLIENT_ID, CLIENT_SECRET, FakeUpstream, client_key_pem

LOCAL = load_settings({"STAGE": "local", "ISSUER": "http://localhost:8000"})
PROD = load_settings({"STAGE": "prod", "ISSUER": "https://login.example.com"})
REDIRECT = "http://localhost:8000/federation/callback"
SECRET = {"client_secret": CLIENT_SECRET}
TENANT_A = "72f988bf-86f1-41af-91ab-2d7cd011db47"
TENANT_B = "9188040d-6c67-4c5b-b112-36a304b66dad"


@pytest.fixture(scope="module")
def fake():
    server = FakeUpstream()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def fresh(fake):
    fake.reset_knobs()
    fake.hits.clear()
    fake.token_requests.clear()
    fetching.documents.clear()
    upstream._refetched.clear()


def connection(fake, **overrides):
    return SimpleNamespace(**fake.connection_fields(**overrides))


def sign_in(fake, conn=None, *, secret=SECRET, edit=None, **claims) -> upstream.UpstreamResult:
    conn = conn or connection(fake)
    begun = upstream.start(conn, LOCAL, redirect_uri=REDIRECT)
    params = fake.authorize(begun.url, **claims)
    if edit:
        params = edit(params)
    return upstream.finish(conn, LOCAL, params=params, state=begun.state, nonce=begun.nonce,
                           code_verifier=begun.code_verifier, redirect_uri=REDIRECT, secret=secret)


def refused(reason, fake, conn=None, **kwargs) -> errors.UpstreamFailed:
    with pytest.raises(errors.UpstreamFailed) as caught:
        sign_in(fake, conn, **kwargs)
    assert caught.value.reason == reason
    assert caught.value.message == messages.MESSAGES[messages.UPSTREAM_FAILED].body
    return caught.value


# The happy path -------------------------------------------------------------------------------

def test_start_sends_the_browser_with_pkce_s256_state_and_nonce(fake):
    begun = upstream.start(connection(fake), LOCAL, redirect_uri=REDIRECT, login_hint="a@example.com",
                           prompt="login", max_age=0)
    parts = urlsplit(begun.url)
    query = dict(parse_qsl(parts.query))
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{fake.issuer}/authorize"
    assert query == {"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": REDIRECT,
                     "scope": "openid email profile", "state": begun.state, "nonce": begun.nonce,
                     "code_challenge": upstream.s256(begun.code_verifier), "code_challenge_method": "S256",
                     "login_hint": "a@example.com", "prompt": "login", "max_age": "0"}
    assert len(base64.urlsafe_b64decode(begun.state + "=")) == 32 and len(begun.code_verifier) == 43


def test_start_keeps_the_authorization_endpoints_own_query_and_asks_for_form_post(fake):
    fake.metadata_overrides["authorization_endpoint"] = f"{fake.issuer}/authorize?tenant=x"
    begun = upstream.start(connection(fake, response_mode="form_post"), LOCAL, redirect_uri=REDIRECT)
    query = dict(parse_qsl(urlsplit(begun.url).query))
    assert query["tenant"] == "x" and query["response_mode"] == "form_post"


def test_finish_returns_the_verified_profile_and_the_tokens(fake):
    result = sign_in(fake, sub="u-123", email="Alice@Example.com", given_name="Alice", locale="en")
    profile = result.profile
    assert (profile.subject, profile.email, profile.email_verified) == ("u-123", "Alice@Example.com", True)
    assert (profile.name, profile.given_name, profile.family_name, profile.locale) == (
        "Alice Upstream", "Alice", None, "en")
    assert (profile.acr, profile.amr, profile.issuer) == ("urn:example:pwd", ("pwd",), fake.issuer)
    assert profile.claims["aud"] == CLIENT_ID
    assert set(result.tokens) >= {"access_token", "id_token"}
    assert fake.hits.get("/userinfo") is None  # the ID token had every claim the mapping wants


def test_discovery_and_jwks_are_fetched_once_per_container(fake):
    sign_in(fake)
    sign_in(fake)
    assert fake.hits["/.well-known/openid-configuration"] == 1 and fake.hits["/jwks"] == 1


@pytest.mark.parametrize("asserted, verified", [(True, True), ("true", True), (False, False), ("false", False),
                                                (1, False), ("yes", False), (None, False)])
def test_email_verified_is_only_what_the_upstream_asserted(fake, asserted, verified):
    claims = {} if asserted is None else {"email_verified": asserted}
    if asserted is None:
        fake.drop_claims.add("email_verified")
        fake.metadata_overrides["userinfo_endpoint"] = None  # nor in userinfo
    assert sign_in(fake, **claims).profile.email_verified is verified


def test_claim_mapping_reads_the_upstreams_names(fake):
    conn = connection(fake, claim_mapping={"email": "mail", "email_verified": "mail_ok", "name": "displayName"})
    profile = sign_in(fake, conn, mail="m@example.com", mail_ok=True, displayName="M").profile
    assert (profile.email, profile.email_verified, profile.name) == ("m@example.com", True, "M")


# State and the response's issuer (RFC 9207) ------------------------------------------------------

def test_a_state_other_than_ours_is_refused(fake):
    refused("state", fake, edit=lambda p: {**p, "state": "x" + p["state"]})
    assert fake.token_requests == []


def test_an_iss_parameter_other_than_the_issuer_is_refused_before_the_code_is_redeemed(fake):
    fake.iss_param = "https://evil.example"
    refused("iss", fake)
    assert fake.token_requests == []


def test_a_missing_iss_parameter_is_refused_when_the_upstream_says_it_sends_one(fake):
    fake.send_iss = False
    refused("iss", fake)
    assert fake.token_requests == []


def test_a_missing_iss_parameter_is_fine_when_the_upstream_does_not_send_it(fake):
    fake.send_iss = False
    fake.metadata_overrides["authorization_response_iss_parameter_supported"] = False
    assert sign_in(fake).profile.subject == "upstream-user-1"


def test_discovery_naming_another_issuer_is_refused(fake):
    fake.metadata_overrides["issuer"] = "https://accounts.example.com"
    with pytest.raises(errors.UpstreamFailed) as caught:
        upstream.start(connection(fake), LOCAL, redirect_uri=REDIRECT)
    assert caught.value.reason == "metadata_issuer"


# The upstream's error response -------------------------------------------------------------------

def test_an_upstream_error_is_kept_short_and_printable_for_the_log_and_never_redeems(fake):
    begun = upstream.start(connection(fake), LOCAL, redirect_uri=REDIRECT)
    params = {"error": "access_denied", "error_description": "<script>\n" + "x" * 500, "state": begun.state,
              "iss": fake.issuer}
    with pytest.raises(errors.UpstreamRefused) as caught:
        upstream.finish(connection(fake), LOCAL, params=params, state=begun.state, nonce=begun.nonce,
                        code_verifier=begun.code_verifier, redirect_uri=REDIRECT, secret=SECRET)
    error = caught.value
    assert (error.reason, error.upstream_error) == ("upstream_error", "access_denied")
    assert error.message == messages.MESSAGES[messages.UPSTREAM_REFUSED].body
    assert len(error.upstream_description) == 200 and error.upstream_description.startswith("<script>?x")
    assert fake.token_requests == []


# The ID token (OIDC Core §3.1.3.7) ---------------------------------------------------------------

@pytest.mark.parametrize("overrides, reason", [
    ({"iss": "https://evil.example"}, "iss"),
    ({"aud": "someone-else"}, "aud"),
    ({"aud": [CLIENT_ID, "someone-else"]}, "azp"),  # several audiences: azp required
    ({"azp": "someone-else"}, "azp"),
    ({"aud": [CLIENT_ID, "someone-else"], "azp": "someone-else"}, "azp"),
    ({"nonce": "not-ours"}, "nonce"),
    # Times as functions, taken when the test runs: a whole-suite run reaches this test minutes
    # after collection, when a time fixed then would mean something else.
    (lambda: {"exp": int(time.time()) - 120}, "expired"),
    (lambda: {"iat": int(time.time()) + 600, "exp": int(time.time()) + 900}, "iat"),
    ({"sub": ""}, "sub"),
])
def test_tampered_id_token_claims_are_refused(fake, overrides, reason):
    fake.claims_overrides.update(overrides() if callable(overrides) else overrides)
    refused(reason, fake)


def test_several_audiences_with_azp_us_are_accepted(fake):
    fake.claims_overrides.update({"aud": [CLIENT_ID, "someone-else"], "azp": CLIENT_ID})
    assert sign_in(fake).profile.subject == "upstream-user-1"


@pytest.mark.parametrize("dropped, reason", [("nonce", "nonce"), ("exp", "claims"), ("iat", "claims"),
                                             ("sub", "claims"), ("aud", "claims")])
def test_an_id_token_missing_a_required_claim_is_refused(fake, dropped, reason):
    fake.drop_claims.add(dropped)
    refused(reason, fake)


def test_an_unsigned_id_token_is_refused(fake):
    fake.alg = "none"
    fake.metadata_overrides["id_token_signing_alg_values_supported"] = ["none", "ES256"]
    refused("alg", fake)


def test_an_hs256_token_keyed_with_the_upstreams_public_key_is_refused(fake):
    """The classic algorithm confusion: the public key (known to all) used as an HMAC secret."""
    fake.alg = "HS256-public-key"
    fake.metadata_overrides["id_token_signing_alg_values_supported"] = ["HS256", "ES256"]
    refused("alg", fake)


def test_an_algorithm_the_upstream_does_not_announce_is_refused(fake):
    fake.metadata_overrides["id_token_signing_alg_values_supported"] = ["RS256"]
    refused("alg", fake)


def test_a_signature_by_another_key_with_the_same_kid_is_refused(fake):
    sign_in(fake)  # the upstream's real key is now cached
    real, fake.key = fake.key, ec.generate_private_key(ec.SECP256R1())
    try:
        refused("signature", fake)
    finally:
        fake.key = real


def test_an_unknown_kid_refetches_the_jwks_at_most_once_a_minute(fake, monkeypatch):
    sign_in(fake)
    assert fake.hits["/jwks"] == 1
    fake.kid = "made-up"
    refused("unknown_key", fake)
    assert fake.hits["/jwks"] == 2  # one refetch: maybe the upstream rotated its keys
    refused("unknown_key", fake)
    assert fake.hits["/jwks"] == 2  # not again within the minute
    later = fetching.now() + upstream.JWKS_REFETCH_INTERVAL
    monkeypatch.setattr(upstream, "now", lambda: later)
    refused("unknown_key", fake)
    assert fake.hits["/jwks"] == 3


def test_a_rotated_key_is_found_by_refetching_the_jwks(fake):
    sign_in(fake)
    fake.kid = fake.jwks_kid = "k2"
    assert sign_in(fake).profile.subject == "upstream-user-1"
    assert fake.hits["/jwks"] == 2


def test_a_token_without_kid_uses_the_only_signing_key(fake):
    fake.kid = None
    assert sign_in(fake).profile.subject == "upstream-user-1"


# userinfo (OIDC Core §5.3) ------------------------------------------------------------------------

def test_userinfo_completes_claims_the_id_token_lacks(fake):
    fake.email_in_id_token = False
    profile = sign_in(fake, email="bob@example.com").profile
    assert (profile.email, profile.email_verified) == ("bob@example.com", True)
    assert fake.hits["/userinfo"] == 1


def test_a_presets_own_mapping_costs_no_userinfo_round_trip_for_a_missing_locale(fake):
    """Presets name every profile claim as itself: that is no reason to call userinfo on each sign-in
    (Google and Entra ID tokens often lack locale or family_name); only the email does, or a
    mapping the operator changed."""
    from chalicelib.federation.connections import PRESETS

    conn = connection(fake, claim_mapping=dict(PRESETS["google"]["claim_mapping"]))
    profile = sign_in(fake, conn, email="carol@example.com").profile
    assert profile.locale is None and fake.hits.get("/userinfo") is None
    custom = connection(fake, claim_mapping={**PRESETS["google"]["claim_mapping"], "locale": "ui_lang"})
    sign_in(fake, custom, email="carol@example.com")
    assert fake.hits["/userinfo"] == 1


def test_userinfo_about_another_subject_is_refused(fake):
    fake.email_in_id_token = False
    fake.userinfo_overrides["sub"] = "someone-else"
    refused("userinfo_sub", fake)


# The token endpoint -------------------------------------------------------------------------------

def test_client_secret_basic_sends_the_form_urlencoded_pair(fake):
    sign_in(fake)
    request = fake.token_requests[-1]
    assert request["headers"]["Authorization"] == "Basic " + base64.b64encode(
        f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    assert "client_secret" not in request["form"] and request["form"]["grant_type"] == "authorization_code"


def test_client_secret_post_sends_the_secret_in_the_body(fake):
    sign_in(fake, connection(fake, auth_method="client_secret_post"))
    request = fake.token_requests[-1]
    assert request["form"]["client_secret"] == CLIENT_SECRET and "Authorization" not in request["headers"]


def test_private_key_jwt_signs_an_rfc7523_assertion_for_the_token_endpoint(fake):
    pem, public_jwk = client_key_pem()
    fake.client_public_key = jwt.PyJWK(public_jwk, "ES256").key
    conn = connection(fake, auth_method="private_key_jwt")
    sign_in(fake, conn, secret={"private_key": pem, "key_id": "our-key"})
    sign_in(fake, conn, secret={"private_key": pem, "key_id": "our-key"})
    first, second = (request["form"]["client_assertion"] for request in fake.token_requests)
    claims = jwt.decode(first, fake.client_public_key, algorithms=["ES256"], audience=f"{fake.issuer}/token")
    assert claims["iss"] == claims["sub"] == CLIENT_ID and claims["exp"] - claims["iat"] == 60
    assert jwt.get_unverified_header(first)["kid"] == "our-key"
    assert jwt.decode(second, options={"verify_signature": False})["jti"] != claims["jti"]


def test_without_a_secret_given_finish_reads_the_connections_secret(fake, monkeypatch):
    """The caller may leave the secret to chalicelib/federation/connections.secret (Secrets Manager)."""
    import sys
    import types

    read = []
    module = types.ModuleType("chalicelib.federation.connections")
    module.secret = lambda conn: read.append(conn.connection_id) or SECRET
    monkeypatch.setitem(sys.modules, "chalicelib.federation.connections", module)
    assert sign_in(fake, secret=None).profile.subject == "upstream-user-1"
    assert read == ["fake"]


def test_a_secret_that_does_not_fit_the_auth_method_is_refused(fake):
    refused("secret", fake, connection(fake, auth_method="private_key_jwt"))


@pytest.mark.parametrize("status, body", [(400, b'{"error":"invalid_grant"}'), (401, b'{"error":"invalid_client"}'),
                                          (200, b"not json"), (200, b'{"token_type":"Bearer"}'),
                                          (200, b'{"access_token":"a","token_type":"DPoP"}')])
def test_a_token_endpoint_refusal_or_a_broken_answer_is_refused(fake, status, body):
    fake.token_answer = (status, body)
    refused("token_endpoint", fake)


@pytest.mark.parametrize("status", [500, 503, 429])
def test_a_failing_token_endpoint_is_a_temporary_fault(fake, status):
    fake.token_answer = (status, b"{}")
    with pytest.raises(errors.UpstreamUnavailable) as caught:
        sign_in(fake)
    assert caught.value.status == 503 and caught.value.retry_after > 0
    assert caught.value.message == messages.MESSAGES[messages.UPSTREAM_UNAVAILABLE].body


def test_an_oversized_token_response_is_refused(fake):
    fake.token_answer = (200, json.dumps({"access_token": "a", "padding": "x" * fetching.MAX_BYTES}).encode())
    refused("too_big", fake)


def test_an_upstream_that_does_not_answer_is_a_temporary_fault(fake):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(errors.UpstreamUnavailable) as caught:
        upstream.start(connection(fake, issuer=f"http://127.0.0.1:{port}"), LOCAL, redirect_uri=REDIRECT)
    assert caught.value.reason == "network"


def test_an_upstream_on_a_private_address_is_refused_before_connecting(fake, monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo",
                        lambda *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", 443))])
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: pytest.fail("connected"))
    with pytest.raises(errors.UpstreamFailed) as caught:
        upstream.start(connection(fake, issuer="https://idp.internal.example"), PROD, redirect_uri=REDIRECT)
    assert caught.value.reason == "outbound"


def test_an_http_upstream_is_refused_outside_the_local_stage(fake):
    with pytest.raises(errors.UpstreamFailed) as caught:
        upstream.start(connection(fake), PROD, redirect_uri=REDIRECT)
    assert caught.value.reason == "outbound" and fake.hits == {}


# Microsoft Entra ID's multi-tenant issuer -----------------------------------------------------------

def entra(fake, tenant=TENANT_A, *, token_tenant=None, **overrides):
    """A connection to the fake as Entra's /common endpoint: the discovery document names the issuer
    template, the ID token (and the response's iss) the tenant's own issuer."""
    template = f"{fake.issuer}/{{tenantid}}/v2.0"
    fake.metadata_overrides["issuer"] = template
    token_tenant = token_tenant or tenant
    fake.claims_overrides.update({"iss": f"{fake.issuer}/{token_tenant}/v2.0", "tid": tenant})
    fake.iss_param = f"{fake.issuer}/{token_tenant}/v2.0"
    return connection(fake, preset="microsoft", issuer=template,
                      discovery_url=f"{fake.issuer}/common/v2.0/.well-known/openid-configuration", **overrides)


def test_entra_multi_tenant_accepts_the_tenants_own_issuer(fake):
    profile = sign_in(fake, entra(fake)).profile
    assert profile.issuer == f"{fake.issuer}/{TENANT_A}/v2.0" and profile.claims["tid"] == TENANT_A


def test_entra_multi_tenant_refuses_an_issuer_of_another_tenant_than_tid(fake):
    refused("iss", fake, entra(fake, TENANT_A, token_tenant=TENANT_B))


def test_entra_multi_tenant_refuses_a_tenant_outside_allowed_tenants(fake):
    refused("tenant", fake, entra(fake, allowed_tenants=(TENANT_B,)))
    assert fake.token_requests == []  # the response's iss already named the tenant
    assert sign_in(fake, entra(fake, allowed_tenants=(TENANT_A.upper(),))).profile.subject


def test_entra_multi_tenant_refuses_a_tid_that_is_not_a_tenant_id(fake):
    conn = entra(fake)
    fake.claims_overrides["tid"] = "x/../evil"
    refused("tenant", fake, conn)


def test_entra_multi_tenant_refuses_a_response_iss_of_another_tenant_than_the_token(fake):
    conn = entra(fake, TENANT_A)
    fake.iss_param = f"{fake.issuer}/{TENANT_B}/v2.0"
    refused("iss", fake, conn)


# GitHub (OAuth 2.0 and its REST API) --------------------------------------------------------------

def test_github_start_has_pkce_and_no_nonce(fake):
    begun = upstream.start(SimpleNamespace(**fake.github_fields()), LOCAL, redirect_uri=REDIRECT, login_hint="octo")
    query = dict(parse_qsl(urlsplit(begun.url).query))
    assert begun.url.startswith(f"{fake.issuer}/login/oauth/authorize?") and begun.nonce is None
    assert query["code_challenge_method"] == "S256" and query["login"] == "octo" and "nonce" not in query
    assert fake.hits == {}  # no discovery for GitHub


def test_github_profile_is_the_user_id_and_the_verified_primary_email(fake):
    fake.send_iss = False
    result = sign_in(fake, SimpleNamespace(**fake.github_fields()))
    profile = result.profile
    assert (profile.subject, profile.email, profile.email_verified, profile.name) == (
        "4242", "octo@example.com", True, "Octo Cat")
    assert profile.issuer == f"{fake.issuer}/api" and profile.claims["login"] == "octo"
    assert fake.token_requests[-1]["form"]["client_secret"] == CLIENT_SECRET


def test_github_without_a_verified_primary_email_has_no_email(fake):
    fake.send_iss = False
    fake.github_emails = [{"email": "octo@example.com", "primary": True, "verified": False},
                          {"email": "x@example.com", "primary": False, "verified": True}]
    profile = sign_in(fake, SimpleNamespace(**fake.github_fields())).profile
    assert (profile.email, profile.email_verified) == (None, False)


def test_github_error_in_a_200_token_response_is_refused(fake):
    fake.send_iss = False
    fake.token_answer = (200, b'{"error":"bad_verification_code"}')
    refused("token_endpoint", fake, SimpleNamespace(**fake.github_fields()))


# Apple -------------------------------------------------------------------------------------------

def test_apple_client_secret_is_an_es256_jwt_apple_can_verify_with_the_public_key():
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    conn = SimpleNamespace(client_id="com.example.web", auth_method="apple_client_secret", apple_team_id="TEAM123456",
                           apple_key_id="KEY123456")
    form, headers = upstream.client_authentication(conn, "https://appleid.apple.com/auth/token",
                                                   {"private_key": pem}, at=int(time.time()))
    assert headers == {} and form["client_id"] == "com.example.web"
    secret = form["client_secret"]
    assert jwt.get_unverified_header(secret) == {"alg": "ES256", "kid": "KEY123456", "typ": "JWT"}
    claims = jwt.decode(secret, key.public_key(), algorithms=["ES256"], audience="https://appleid.apple.com",
                        issuer="TEAM123456")
    assert claims["sub"] == "com.example.web" and 0 < claims["exp"] - claims["iat"] <= 600


def test_apple_first_sign_in_names_fill_the_profile_and_never_override_the_token(fake):
    user = json.dumps({"name": {"firstName": "Ada", "lastName": "Lovelace"}, "email": "evil@example.com"})
    conn = connection(fake, preset="apple")
    profile = sign_in(fake, conn, edit=lambda p: {**p, "user": user}, email_verified="true").profile
    assert (profile.given_name, profile.family_name) == ("Ada", "Lovelace")
    assert (profile.email, profile.email_verified) == ("alice@example.com", True)


@pytest.mark.parametrize("value", [None, "", "not json", "[]", '{"name": "Ada"}', "{" * 3000])
def test_apple_names_ignores_what_is_not_well_formed(value):
    assert apple.names(value) == {}
