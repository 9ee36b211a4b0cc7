"""Settings load from the environment and fail loudly on bad values."""
from __future__ import annotations

import pytest

from chalicelib.config import ConfigError, load_settings

BASE = {"STAGE": "prod", "ISSUER": "https://login.example.com"}


def test_defaults_are_documented_values():
    s = load_settings(BASE)
    assert (s.key_backend, s.signing_alg, s.jwks_max_age, s.table_prefix) == ("secretsmanager", "ES256", 300, "idp-prod")
    assert s.table_name("clients") == "idp-prod-clients"


def test_missing_issuer_fails_loudly():
    with pytest.raises(ConfigError, match="ISSUER is required"):
        load_settings({"STAGE": "prod"})


@pytest.mark.parametrize("issuer", ["http://login.example.com", "https://login.example.com/?x=1",
                                    "https://login.example.com/#f", "login.example.com"])
def test_issuer_must_be_https_without_query_or_fragment(issuer):
    with pytest.raises(ConfigError):
        load_settings({**BASE, "ISSUER": issuer})


def test_plain_http_loopback_issuer_only_in_local_stage():
    assert load_settings({"STAGE": "local", "ISSUER": "http://127.0.0.1:8000/"}).issuer == "http://127.0.0.1:8000"
    with pytest.raises(ConfigError):
        load_settings({"STAGE": "dev", "ISSUER": "http://127.0.0.1:8000"})


@pytest.mark.parametrize("name, value", [("KEY_BACKEND", "vault"), ("SIGNING_ALG", "HS256"),
                                          ("SIGNING_ALG", "none"), ("JWKS_MAX_AGE", "soon"),
                                          ("JWKS_MAX_AGE", "-1")])
def test_bad_values_are_rejected(name, value):
    with pytest.raises(ConfigError, match=name):
        load_settings({**BASE, name: value})


@pytest.mark.parametrize("mode, documents", [("open", "any"), ("off", "off"), ("token", "off")])
def test_client_id_documents_follow_registration_mode_by_default(mode, documents):
    env = {**BASE, "REGISTRATION_MODE": mode, "REGISTRATION_TOKEN_SHA256": "0" * 64}
    assert load_settings(env).client_id_documents == documents


def test_client_id_documents_allow_list_is_normalised():
    s = load_settings({**BASE, "REGISTRATION_MODE": "off", "CLIENT_ID_DOCUMENTS": " Agents.Example.com ,a.test"})
    assert s.client_id_documents == "agents.example.com,a.test"
    assert s.client_id_document_hosts == {"agents.example.com", "a.test"}
    assert load_settings({**BASE, "CLIENT_ID_DOCUMENTS": "any"}).client_id_document_hosts == frozenset()


@pytest.mark.parametrize("value", ["*.example.com", "https://agents.example.com", "agents.example.com:443",
                                   "agents.example.com,", "agents.example.com/path", "any,agents.example.com",
                                   "-bad.example.com", "agents example.com"])
def test_client_id_documents_garbage_fails_at_start_up(value):
    with pytest.raises(ConfigError, match="CLIENT_ID_DOCUMENTS"):
        load_settings({**BASE, "CLIENT_ID_DOCUMENTS": value})


def test_unverified_client_scopes_default_to_unset_and_parse_space_separated():
    assert load_settings(BASE).unverified_client_scopes is None
    s = load_settings({**BASE, "UNVERIFIED_CLIENT_SCOPES": " openid  mcp:read openid "})
    assert s.unverified_client_scopes == ("openid", "mcp:read")


def test_unverified_client_scopes_garbage_fails_at_start_up():
    with pytest.raises(ConfigError, match="UNVERIFIED_CLIENT_SCOPES"):
        load_settings({**BASE, "UNVERIFIED_CLIENT_SCOPES": 'openid "quoted"'})
