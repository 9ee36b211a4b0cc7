"""Pure OAuth logic, tested without HTTP: PKCE, scopes, redirect URI matching, claims."""
from __future__ import annotations

import pytest

from chalicelib.errors import InvalidRequest, InvalidScope
from chalicelib.oauth import pkce, redirect_uris, scopes
from chalicelib.tokens import claims

# RFC 7636 Appendix B example.
RFC_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
RFC_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_s256_matches_rfc7636_appendix_b():
    assert pkce.s256(RFC_VERIFIER) == RFC_CHALLENGE
    assert pkce.verify(RFC_VERIFIER, RFC_CHALLENGE)


@pytest.mark.parametrize("verifier", [RFC_VERIFIER[:-1] + "l", "short", "x" * 129, RFC_VERIFIER + "!", None, ""])
def test_wrong_or_malformed_verifier_is_refused(verifier):
    assert not pkce.verify(verifier, RFC_CHALLENGE)


@pytest.mark.parametrize("challenge, method, message", [
    (None, "S256", "code_challenge is required"),
    (RFC_CHALLENGE, "plain", "must be S256"),
    (RFC_CHALLENGE, None, "must be S256"),
    ("too-short", "S256", "not a valid S256 challenge"),
])
def test_pkce_challenge_must_be_s256(challenge, method, message):
    with pytest.raises(InvalidRequest, match=message):
        pkce.validate_challenge(challenge, method)


def test_scope_parsing_dedupes_and_keeps_order():
    assert scopes.parse("openid  email openid profile") == ["openid", "email", "profile"]
    assert scopes.parse(None) == []


@pytest.mark.parametrize("bad", ['open"id', "email\\x", "caf\u00e9"])
def test_scope_syntax_is_rfc6749(bad):
    with pytest.raises(InvalidScope):
        scopes.parse(bad)


def test_scopes_outside_the_clients_allowance_are_refused():
    with pytest.raises(InvalidScope, match="admin"):
        scopes.require_subset(["openid", "admin"], ["openid", "email"])


@pytest.mark.parametrize("requested, registered, ok", [
    ("https://app.example.com/cb", ["https://app.example.com/cb"], True),
    ("https://app.example.com/cb/", ["https://app.example.com/cb"], False),
    ("https://app.example.com/CB", ["https://app.example.com/cb"], False),
    ("https://app.example.com/cb?x=1", ["https://app.example.com/cb"], False),
    ("https://app.example.com:8443/cb", ["https://app.example.com/cb"], False),
    ("http://127.0.0.1:51234/cb", ["http://127.0.0.1/cb"], True),
    ("http://127.0.0.1:51234/cb", ["http://127.0.0.1:3000/cb"], True),
    ("http://[::1]:4000/cb", ["http://[::1]/cb"], True),
    ("http://127.0.0.1:51234/other", ["http://127.0.0.1/cb"], False),
    ("http://localhost:51234/cb", ["http://localhost:3000/cb"], False),
    ("http://127.0.0.1.evil.com:80/cb", ["http://127.0.0.1/cb"], False),
    ("http://evil@127.0.0.1:5/cb", ["http://127.0.0.1/cb"], False),
])
def test_redirect_uri_exact_match_with_loopback_port_exception(requested, registered, ok):
    assert redirect_uris.matches(requested, registered) is ok


def test_access_token_claims_follow_rfc9068():
    c = claims.access_token_claims(issuer="https://i", sub="u1", client_id="c1", audience=["https://api"],
                                   scopes=["openid", "email"], jti="j", iat=100, ttl=600, grant_id="g")
    assert c == {"iss": "https://i", "sub": "u1", "aud": "https://api", "client_id": "c1", "scope": "openid email",
                 "jti": "j", "iat": 100, "exp": 700, "grant_id": "g"}


def test_at_hash_matches_oidc_core_example():
    # OIDC Core Appendix A.3's access token and at_hash (RS256, SHA-256).
    assert claims.at_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y", "RS256") == "77QmUPtjPfzWtF2AnpK9RQ"


def test_id_token_releases_only_claims_of_granted_scopes():
    user = {"name": "Alice", "email": "a@example.com", "email_verified": True}
    c = claims.id_token_claims(issuer="https://i", sub="u1", client_id="c1", iat=100, ttl=300, auth_time=90,
                               nonce="n", access_token="tok", alg="ES256", user=user, scopes=["openid", "email"])
    assert c["aud"] == c["azp"] == "c1"
    assert (c["nonce"], c["auth_time"], c["exp"]) == ("n", 90, 400)
    assert c["email"] == "a@example.com" and c["email_verified"] is True
    assert "name" not in c
    assert "nonce" not in claims.id_token_claims(issuer="i", sub="u", client_id="c", iat=1, ttl=1, auth_time=1,
                                                 nonce=None, access_token=None, alg="ES256", user=user,
                                                 scopes=["openid"])


def test_access_tokens_carry_how_the_user_authenticated():
    """RFC 9068 §2.2.1: auth_time, acr and amr, so a resource server can demand more (RFC 9470)."""
    c = claims.access_token_claims(issuer="https://i", sub="u1", client_id="c1", audience=["https://api"],
                                   scopes=["notes:read"], jti="j", iat=100, ttl=600, auth_time=90,
                                   acr="urn:serverless-idp:acr:mfa", amr=("pwd", "otp", "mfa"))
    assert (c["auth_time"], c["acr"], c["amr"]) == (90, "urn:serverless-idp:acr:mfa", ["pwd", "otp", "mfa"])


def test_id_tokens_carry_acr_and_amr_and_leave_them_out_when_unknown():
    c = claims.id_token_claims(issuer="https://i", sub="u1", client_id="c1", iat=100, ttl=300, auth_time=90,
                               nonce=None, access_token=None, alg="ES256", user={}, scopes=["openid"],
                               acr="phr", amr=("hwk", "user", "mfa"))
    assert (c["auth_time"], c["acr"], c["amr"]) == (90, "phr", ["hwk", "user", "mfa"])
    # Codes and grants from before acr/amr were kept have neither: no empty claim is invented.
    c = claims.id_token_claims(issuer="https://i", sub="u1", client_id="c1", iat=100, ttl=300, auth_time=90,
                               nonce=None, access_token=None, alg="ES256", user={}, scopes=["openid"])
    assert "acr" not in c and "amr" not in c
