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
    assert load_settings({"STAGE": "local", "ISSUER": "http://localhost:8000/"}).issuer == "http://localhost:8000"
    with pytest.raises(ConfigError):
        load_settings({"STAGE": "dev", "ISSUER": "http://localhost:8000"})


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


# Each default stated once: the field's metadata; README's Configuration table must agree with it --------

import dataclasses  # noqa: E402
import pathlib  # noqa: E402
import re  # noqa: E402

from chalicelib.config import FIELDS, Settings  # noqa: E402

#: README rows that are not settings: the AWS SDK reads them itself.
NOT_SETTINGS = {"AWS_ENDPOINT_URL"}


def readme_configuration() -> dict[str, str]:
    """Variable -> Default cell of README's Configuration table."""
    text = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    return {match["name"]: match["default"].strip()
            for match in re.finditer(r"^\| `(?P<name>[A-Z0-9_]+)` \|(?P<default>[^|]*)\|", section, re.M)}


def documented_default(field: dataclasses.Field) -> str:
    if field.metadata["derived"]:
        return field.metadata["derived"]
    return "unset" if field.default in ("", None) else f"`{field.default}`"


def test_every_setting_has_a_readme_row_with_its_default():
    rows = readme_configuration()
    assert {f.metadata["env"]: rows.get(f.metadata["env"]) for f in FIELDS.values()} == {
        f.metadata["env"]: documented_default(f) for f in FIELDS.values()}


def test_every_readme_row_names_a_real_setting():
    assert set(readme_configuration()) - NOT_SETTINGS == {f.metadata["env"] for f in FIELDS.values()}


def test_load_settings_reads_every_field_from_its_variable():
    """Each setting comes from its own variable: a value set there is the value loaded."""
    special = {"issuer": ("https://other.example.com/", "https://other.example.com"), "key_backend": ("kms", "kms"),
               "signing_alg": ("RS256", "RS256"), "registration_mode": ("off", "off"),
               "client_id_documents": ("A.test", "a.test"), "unverified_client_scopes": ("openid x", ("openid", "x")),
               "registration_token_sha256": ("AB", "ab"), "signup_mode": ("off", "off"),
               "signup_email_domains": ("Example.com, b.test", ("example.com", "b.test")),
               "require_verified_email": ("false", False), "mfa_policy": ("required", "required"),
               "profile": ("fapi2", "fapi2"), "dpop_required": ("true", True), "dpop_nonce": ("false", False),
               "par_required": ("true", True)}
    for name, field in FIELDS.items():
        raw, expected = special.get(name) or (
            (str(field.default * 2 + 1), field.default * 2 + 1) if field.type == "int" else ("some-value", "some-value"))
        assert getattr(load_settings({**BASE, field.metadata["env"]: raw}), name) == expected, name


def test_defaults_hold_when_nothing_is_set_and_settings_can_be_built_directly():
    loaded = load_settings(BASE)
    built = Settings(stage="prod", issuer="https://login.example.com")
    assert loaded == built
    assert (built.code_ttl, built.table_prefix, built.secret_prefix, built.default_audience,
            built.client_id_documents) == (60, "idp-prod", "idp/prod/", "https://login.example.com", "any")


def test_the_region_falls_back_to_aws_default_region():
    assert load_settings({**BASE, "AWS_DEFAULT_REGION": "eu-west-1"}).region == "eu-west-1"
    assert load_settings({**BASE, "AWS_DEFAULT_REGION": "eu-west-1", "AWS_REGION": "eu-north-1"}).region == "eu-north-1"


@pytest.mark.parametrize("env, message", [
    ({"KEY_RETIRE_AFTER": "60"}, r"KEY_RETIRE_AFTER \(60\) must be at least KEY_CACHE_SECONDS"),
    ({"KEY_ROTATION_INTERVAL": "10"}, r"KEY_ROTATION_INTERVAL \(10\) must be at least JWKS_MAX_AGE \(300\)"),
    ({"REGISTRATION_MODE": "token"}, "REGISTRATION_MODE=token needs REGISTRATION_TOKEN_SHA256"),
    ({"REGISTRATION_MODE": "closed"}, "REGISTRATION_MODE must be one of"),
    ({"CODE_TTL": "1.5"}, "CODE_TTL must be an integer, got '1.5'"),
])
def test_cross_field_and_value_checks_fail_at_start_up(env, message):
    with pytest.raises(ConfigError, match=message):
        load_settings({**BASE, **env})


def test_totp_secrets_are_sealed_under_a_key_named_after_the_tables_unless_set():
    assert load_settings(BASE).factor_kms_key_id == "alias/idp-prod-factors"
    assert load_settings({**BASE, "TABLE_PREFIX": "acme"}).factor_kms_key_id == "alias/acme-factors"
    assert load_settings({**BASE, "FACTOR_KMS_KEY_ID": "alias/mine"}).factor_kms_key_id == "alias/mine"
