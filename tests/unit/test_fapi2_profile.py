"""PROFILE=fapi2 (chalicelib/profiles.py): the FAPI 2.0 Security Profile's settings are forced or refused at
start-up, and the predicates the rest of the code asks give the profile's narrower answers."""
from __future__ import annotations

import pytest

from chalicelib import profiles
from chalicelib.config import ConfigError, load_settings
from chalicelib.discovery import metadata
from chalicelib.errors import InvalidClientMetadata

BASE = {"STAGE": "prod", "ISSUER": "https://login.example.com"}
FAPI2 = {**BASE, "PROFILE": "fapi2"}


def test_fapi2_forces_par_and_dpop_even_when_set_off():
    """§5.3.2.2 item 3 (PAR) and §5.3.2.1 items 4-5 (sender-constrained tokens) are not optional."""
    s = load_settings({**FAPI2, "PAR_REQUIRED": "false", "DPOP_REQUIRED": "false"})
    assert (s.par_required, s.dpop_required) == (True, True)


def test_the_core_profile_forces_nothing():
    s = load_settings({**BASE, "CODE_TTL": "120", "SIGNING_ALG": "RS256", "PAR_TTL": "900"})
    assert (s.profile, s.par_required, s.dpop_required, s.refresh_grace_seconds) == ("oauth2.1", False, False, 0)
    assert s.client_id_documents == "any"


@pytest.mark.parametrize("env, message", [
    ({"CODE_TTL": "61"}, r"CODE_TTL \(61\) must be at most 60 \(FAPI 2.0 §5.3.2.1 item 11\)"),
    ({"CODE_TTL": "120"}, r"CODE_TTL \(120\) must be at most 60"),
    ({"PAR_TTL": "600"}, r"PAR_TTL \(600\) must be less than 600 \(FAPI 2.0 §5.3.2.2 item 12\)"),
    ({"SIGNING_ALG": "RS256"}, r"SIGNING_ALG RS256 is not allowed; use ES256 \(FAPI 2.0 §5.4.1"),
    ({"CLIENT_ID_DOCUMENTS": "any"}, "CLIENT_ID_DOCUMENTS must be off"),
    ({"CLIENT_ID_DOCUMENTS": "agents.example.com"}, "CLIENT_ID_DOCUMENTS must be off"),
])
def test_settings_fapi2_forbids_fail_at_start_up(env, message):
    with pytest.raises(ConfigError, match="PROFILE=fapi2: " + message):
        load_settings({**FAPI2, **env})


def test_every_violation_is_named_at_once():
    with pytest.raises(ConfigError) as raised:
        load_settings({**FAPI2, "CODE_TTL": "120", "SIGNING_ALG": "RS256"})
    assert "CODE_TTL" in str(raised.value) and "SIGNING_ALG" in str(raised.value)


def test_the_limits_themselves_are_allowed():
    s = load_settings({**FAPI2, "CODE_TTL": "60", "PAR_TTL": "599", "CLIENT_ID_DOCUMENTS": "off"})
    assert (s.code_ttl, s.par_ttl) == (60, 599)


def test_client_id_documents_are_off_under_fapi2_whatever_registration_allows():
    """A client ID metadata document is a public client; §5.3.2.1 item 3 allows confidential ones only."""
    assert load_settings({**FAPI2, "REGISTRATION_MODE": "open"}).client_id_documents == "off"
    assert "client_id_metadata_document_supported" not in metadata(load_settings(FAPI2))


def test_refresh_tokens_are_not_rotated_under_fapi2():
    """§5.3.2.1 item 9: "shall not use refresh token rotation except in extraordinary circumstances"."""
    assert not profiles.rotates_refresh_tokens(load_settings(FAPI2))
    assert profiles.rotates_refresh_tokens(load_settings(BASE))
    assert load_settings(FAPI2).refresh_grace_seconds == 0, "nothing rotates, so there is nothing to retry"


def test_client_authentication_is_private_key_jwt_only():
    core, fapi2 = load_settings(BASE), load_settings(FAPI2)
    assert profiles.client_auth_methods(fapi2) == profiles.introspection_auth_methods(fapi2) == ("private_key_jwt",)
    assert set(profiles.client_auth_methods(core)) == {"client_secret_basic", "client_secret_post",
                                                       "private_key_jwt", "none"}


@pytest.mark.parametrize("question", [profiles.assertion_algs, profiles.dpop_algs, profiles.signing_algs])
def test_fapi2_drops_rs256_from_every_jws_algorithm_list(question):
    """§5.4.1 item 1.2: PS256, ES256 or EdDSA only."""
    fapi2 = question(load_settings(FAPI2))
    assert fapi2 and set(fapi2) <= {"PS256", "ES256", "EdDSA"}
    assert "RS256" in question(load_settings(BASE))


def test_client_assertions_may_use_ps256_and_dpop_proofs_keep_their_algorithms():
    fapi2 = load_settings(FAPI2)
    assert profiles.assertion_algs(fapi2) == ("ES256", "PS256", "EdDSA")
    assert profiles.dpop_algs(fapi2) == ("ES256", "PS256", "EdDSA")
    assert profiles.signing_algs(fapi2) == ("ES256",)


def test_assertion_audience_is_the_issuer_alone_as_a_string_under_fapi2():
    """§5.3.2.1 item 8."""
    core, fapi2 = load_settings(BASE), load_settings(FAPI2)
    assert profiles.assertion_audiences(fapi2) == ("https://login.example.com",)
    assert profiles.assertion_audience_is_string(fapi2)
    assert profiles.assertion_audiences(core) == ("https://login.example.com", "https://login.example.com/token",
                                                 "https://login.example.com/par")
    assert not profiles.assertion_audience_is_string(core)


@pytest.mark.parametrize("client_type, method", [
    ("public", "none"), ("confidential", "client_secret_basic"), ("confidential", "client_secret_post")])
def test_only_confidential_private_key_jwt_clients_may_be_made_under_fapi2(client_type, method):
    profiles.check_client_authentication(client_type, method, load_settings(BASE))
    with pytest.raises(InvalidClientMetadata, match="PROFILE=fapi2 allows only confidential clients using "
                                                    r"private_key_jwt \(FAPI 2.0 §5.3.2.1 items 3 and 6\)"):
        profiles.check_client_authentication(client_type, method, load_settings(FAPI2))
    profiles.check_client_authentication("confidential", "private_key_jwt", load_settings(FAPI2))


def test_discovery_reflects_the_profile():
    document = metadata(load_settings(FAPI2))
    for endpoint in ("token", "revocation", "introspection"):
        assert document[f"{endpoint}_endpoint_auth_methods_supported"] == ["private_key_jwt"]
        assert document[f"{endpoint}_endpoint_auth_signing_alg_values_supported"] == ["ES256", "PS256", "EdDSA"]
    assert document["id_token_signing_alg_values_supported"] == ["ES256"]
    assert document["dpop_signing_alg_values_supported"] == ["ES256", "PS256", "EdDSA"]
    assert document["code_challenge_methods_supported"] == ["S256"]  # §5.3.2.2 item 5
    assert document["response_types_supported"] == ["code"]  # §5.3.2.2 item 1
    assert document["authorization_response_iss_parameter_supported"] is True  # §5.3.2.2 item 7
    assert "password" not in document["grant_types_supported"]  # §5.3.2.1 item 2


def test_core_discovery_still_offers_everything():
    document = metadata(load_settings(BASE))
    assert "none" in document["token_endpoint_auth_methods_supported"]
    assert "RS256" in document["dpop_signing_alg_values_supported"]


def test_redirects_are_303_under_fapi2_and_302_otherwise():
    """FAPI 2.0 §5.3.2.2 item 11: "should use HTTP 303"; the hosted pages' one redirect helper asks."""
    assert profiles.redirect_status(load_settings(FAPI2)) == 303
    assert profiles.redirect_status(load_settings(BASE)) == 302
