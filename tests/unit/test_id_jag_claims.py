"""Pure ID-JAG rules (chalicelib/oauth/id_jag.py, chalicelib/federation/trusted_issuers.py), no I/O:
the claims of draft-ietf-oauth-identity-assertion-authz-grant §"ID-JAG Claims" and the checks of
§"Access Token Request" that are not the signature's."""
from __future__ import annotations

import pytest

from chalicelib.errors import InvalidGrant
from chalicelib.federation.trusted_issuers import typ_matches
from chalicelib.oauth.id_jag import check_id_jag_claims, id_jag_claims

AS = "https://chat.example/"
NOW = 1_800_000_000


def claims(**overrides):
    made = id_jag_claims(issuer="https://idp.example", sub="U1", audience=AS, client_id="c1", jti="j1", iat=NOW,
                         ttl=300, resources=("https://api.chat.example/",), scopes=("chat.read",))
    made.update(overrides)
    return {k: v for k, v in made.items() if v is not None}


def test_the_draft_s_required_claims_and_the_optional_ones_given():
    made = id_jag_claims(issuer="https://idp.example", sub="U1", audience=AS, client_id="c1", jti="j1", iat=NOW,
                         ttl=300, resources=("https://a/", "https://b/"), scopes=("x", "y"), auth_time=NOW - 5,
                         acr="urn:acr", amr=("pwd",), email="u@example.com", email_verified=True)
    assert made == {"iss": "https://idp.example", "sub": "U1", "aud": AS, "client_id": "c1", "jti": "j1",
                    "iat": NOW, "exp": NOW + 300, "resource": ["https://a/", "https://b/"], "scope": "x y",
                    "auth_time": NOW - 5, "acr": "urn:acr", "amr": ["pwd"], "email": "u@example.com",
                    "email_verified": True}
    bare = id_jag_claims(issuer="i", sub="s", audience=AS, client_id="c", jti="j", iat=NOW, ttl=60)
    assert set(bare) == {"iss", "sub", "aud", "client_id", "jti", "iat", "exp"}


def test_a_valid_id_jag_yields_its_grant():
    grant = check_id_jag_claims(claims(), issuer=AS, client_id="c1", now=NOW + 10)
    assert (grant.subject, grant.jti, grant.expires_at, grant.resources, grant.scopes) == (
        "U1", "j1", NOW + 300, ("https://api.chat.example/",), ("chat.read",))


@pytest.mark.parametrize("overrides", [
    {"aud": "https://other.example/"}, {"aud": [AS, "https://other.example/"]}, {"aud": []}, {"aud": None},
    {"client_id": "c2"}, {"client_id": None}, {"jti": None}, {"jti": ""}, {"sub": None}, {"sub": "x" * 256},
    {"exp": NOW - 120}, {"iat": NOW + 120}, {"exp": NOW + 7200}, {"exp": "soon"}, {"exp": True},
    {"resource": 5}, {"resource": [""]}, {"scope": ["chat.read"]}, {"scope": "bad\"scope"},
])
def test_each_rule_refuses(overrides):
    with pytest.raises(InvalidGrant):
        check_id_jag_claims(claims(**overrides), issuer=AS, client_id="c1", now=NOW)


def test_a_one_element_audience_array_is_the_issuer():
    assert check_id_jag_claims(claims(aud=[AS]), issuer=AS, client_id="c1", now=NOW).subject == "U1"


@pytest.mark.parametrize("typ, ok", [("oauth-id-jag+jwt", True), ("application/oauth-id-jag+jwt", True),
                                     ("OAUTH-ID-JAG+JWT", True), ("JWT", False), (None, False),
                                     ("x/oauth-id-jag+jwt", False), ("oauth-id-jag+jwt ", False)])
def test_typ_comparison(typ, ok):
    assert typ_matches(typ, "oauth-id-jag+jwt") is ok
