"""Connections (issue 15): the presets, `validate`'s rules, the secret's rules, and which connection
a client offers or an address routes to (home-realm discovery). Pure: no AWS."""
from __future__ import annotations

import dataclasses

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from chalicelib.config import load_settings
from chalicelib.errors import InvalidConnection
from chalicelib.federation import home_realm
from chalicelib.federation.connections import PRESETS, Connection, check_secret, validate
from chalicelib.storage.clients import Client

LOCAL = load_settings({"ISSUER": "http://localhost:8000", "STAGE": "local"})
PROD = load_settings({"ISSUER": "https://login.example.com", "STAGE": "prod"})


def valid(settings=PROD, **fields):
    return Connection(**validate(settings=settings, **fields))


def oidc(**fields):
    return {"preset": "oidc", "connection_id": "acme", "client_id": "idp", "display_name": "Acme",
            "issuer": "https://login.acme.example", **fields}


# presets

def test_each_preset_fills_in_what_its_provider_fixes():
    google = valid(preset="google", connection_id="google", client_id="1.apps.googleusercontent.com")
    assert (google.protocol, google.issuer, google.display_name, google.auth_method, google.response_mode) == (
        "oidc", "https://accounts.google.com", "Google", "client_secret_basic", "query")
    apple = valid(preset="apple", connection_id="apple", client_id="com.example.web", apple_team_id="ABCDE12345",
                  apple_key_id="KEY1234567")
    assert (apple.issuer, apple.auth_method, apple.response_mode, apple.scopes) == (
        "https://appleid.apple.com", "apple_client_secret", "form_post", ("openid", "email", "name"))
    github = valid(preset="github", connection_id="github", client_id="Iv1.abc")
    assert (github.protocol, github.issuer, github.authorization_endpoint, github.token_endpoint, github.api_base,
            github.scopes, github.auth_method) == (
        "github", None, "https://github.com/login/oauth/authorize", "https://github.com/login/oauth/access_token",
        "https://api.github.com", ("read:user", "user:email"), "client_secret_post")
    assert set(PRESETS) == {"oidc", "google", "microsoft", "apple", "github"}


@pytest.mark.parametrize("tenant, issuer, discovery", [
    ("common", "https://login.microsoftonline.com/{tenantid}/v2.0",
     "https://login.microsoftonline.com/common/v2.0/.well-known/openid-configuration"),
    ("Organizations", "https://login.microsoftonline.com/{tenantid}/v2.0",
     "https://login.microsoftonline.com/organizations/v2.0/.well-known/openid-configuration"),
    ("consumers", "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0",
     "https://login.microsoftonline.com/consumers/v2.0/.well-known/openid-configuration"),
    ("72f988bf-86f1-41af-91ab-2d7cd011db47", "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0",
     None),
])
def test_microsoft_tenants_give_entra_issuers_and_discovery_documents(tenant, issuer, discovery):
    entra = valid(preset="microsoft", connection_id="entra", client_id="c", tenant=tenant)
    assert (entra.issuer, entra.discovery_url, entra.tenant) == (issuer, discovery, tenant.lower())
    # Entra's `email` is unverified unless the domain's owner vouches for it (optional claim xms_edov).
    assert entra.claim_mapping["email_verified"] == "xms_edov"


@pytest.mark.parametrize("fields, error", [
    ({"tenant": "contoso.onmicrosoft.com"}, "the tenant must be one of common, organizations, consumers or a tenant id"),
    ({"tenant": "consumers", "allowed_tenants": ["72f988bf-86f1-41af-91ab-2d7cd011db47"]},
     "allowed_tenants applies only to the common and organizations tenants"),
    ({"tenant": "common", "allowed_tenants": ["contoso"]}, "allowed_tenants must be tenant ids (GUIDs)"),
    ({"tenant": "common", "auth_method": "private_key_jwt"}, "auth_method must be one of client_secret_post"),
    ({"tenant": "common", "issuer": "https://login.microsoftonline.com/common/v2.0"},
     "issuer cannot be set for the microsoft preset"),
])
def test_microsoft_refuses_what_entra_would_not_honour(fields, error):
    with pytest.raises(InvalidConnection, match=error.replace("(", r"\(").replace(")", r"\)")):
        validate(settings=PROD, preset="microsoft", connection_id="entra", client_id="c", **fields)


@pytest.mark.parametrize("preset, field, value", [
    ("google", "issuer", "https://evil.example"),
    ("google", "api_base", "https://evil.example"),
    ("apple", "auth_method", "client_secret_post"),
    ("apple", "response_mode", "query"),
    ("github", "issuer", "https://evil.example"),
    ("github", "tenant", "common"),
    ("oidc", "apple_team_id", "ABCDE12345"),
])
def test_what_a_preset_fixes_cannot_be_overridden(preset, field, value):
    fields = {"preset": preset, "connection_id": "x", "client_id": "c", "display_name": "X",
              "issuer": "https://login.acme.example", "apple_team_id": "ABCDE12345", "apple_key_id": "KEY1234567",
              "tenant": "common"}
    keep = {"preset", "connection_id", "client_id", "display_name"} | {
        "oidc": {"issuer"}, "apple": {"apple_team_id", "apple_key_id"}, "google": set(), "github": set()}[preset]
    fields = {k: v for k, v in fields.items() if k in keep}
    with pytest.raises(InvalidConnection, match=f"{field} cannot be set for the {preset} preset"):
        validate(settings=PROD, **fields, **{field: value})


def test_github_enterprise_server_may_name_its_own_endpoints_under_the_same_url_rules():
    ghes = valid(preset="github", connection_id="ghes", client_id="c", display_name="GitHub Enterprise",
                 authorization_endpoint="https://git.example.com/login/oauth/authorize",
                 token_endpoint="https://git.example.com/login/oauth/access_token",
                 api_base="https://git.example.com/api/v3")
    assert ghes.api_base == "https://git.example.com/api/v3"
    with pytest.raises(InvalidConnection, match="api_base must use https"):
        validate(settings=PROD, preset="github", connection_id="ghes", client_id="c", api_base="http://git.example.com")


# validate: the rules

@pytest.mark.parametrize("connection_id", ["", "-acme", "Acme", "acme.corp", "acme/x", "a" * 33, "password", None, 7])
def test_connection_ids_are_short_lower_case_tokens_and_password_is_reserved(connection_id):
    with pytest.raises(InvalidConnection):
        validate(settings=PROD, **oidc(connection_id=connection_id))


@pytest.mark.parametrize("issuer, error", [
    ("http://login.acme.example", "issuer must use https"),
    ("https://login.acme.example:8443", "issuer must use the default https port"),
    ("https://user:pw@login.acme.example", "issuer needs a host and no credentials or fragment"),
    ("https://login.acme.example#x", "issuer needs a host and no credentials or fragment"),
    ("https://login.acme.example/?tenant=1", "issuer must have no query"),
    ("https://login.acme.example/{tenantid}/v2.0", "issuer must have no query"),
    ("https://login.example.com", "issuer must not point at this server"),
    ("https://l\u00f6gin.acme.example", "issuer must be ASCII"),
])
def test_issuers_follow_the_outbound_rules(issuer, error):
    with pytest.raises(InvalidConnection, match=error.replace("?", r"\?")):
        validate(settings=PROD, **oidc(issuer=issuer))


def test_loopback_http_issuers_only_in_the_local_stage_and_issuers_are_kept_exactly():
    assert valid(LOCAL, **oidc(issuer="http://127.0.0.1:9000")).issuer == "http://127.0.0.1:9000"
    assert valid(PROD, **oidc(issuer="https://tenant.auth0.example/")).issuer == "https://tenant.auth0.example/"
    with pytest.raises(InvalidConnection, match="issuer must use https"):
        validate(settings=PROD, **oidc(issuer="http://127.0.0.1:9000"))


def test_icon_and_discovery_urls_follow_the_outbound_rules():
    assert valid(**oidc(icon_url="https://cdn.acme.example/logo.svg")).icon_url == "https://cdn.acme.example/logo.svg"
    for field in ("icon_url", "discovery_url"):
        with pytest.raises(InvalidConnection, match=f"{field} must use https"):
            validate(settings=PROD, **oidc(**{field: "javascript:alert(1)"}))


@pytest.mark.parametrize("fields, error", [
    ({"display_name": ""}, "the oidc preset needs a display name"),
    ({"display_name": "Acme\u202eevil"}, "the display name must be at most 64 printable characters"),
    ({"display_name": "A" * 65}, "the display name must be at most 64 printable characters"),
    ({"client_id": "has space"}, "the client id"),
    ({"client_id": ""}, "the client id"),
    ({"scopes": ["email", "profile"]}, "must include openid"),
    ({"scopes": ["openid", "bad\"scope"]}, "invalid scope"),
    ({"response_mode": "fragment"}, "response_mode must be one of query, form_post"),
    ({"auth_method": "apple_client_secret"}, "auth_method must be one of"),
    ({"auth_method": "none"}, "auth_method must be one of"),
    ({"claim_mapping": {"sub": "email"}}, "claims that can be mapped are"),
    ({"claim_mapping": {"email": "has space"}}, "the upstream claim for email must be a claim name"),
    ({"acr_mapping": {"urn:acme:mfa": "urn:acme:strong"}}, "an upstream acr maps to one of"),
    ({"acr_mapping": {"": "phr"}}, "an upstream acr value must be printable ASCII"),
    ({"domains": ["acme"]}, "'acme' is not a domain name"),
    ({"domains": ["*.acme.example"]}, "is not a domain name"),
    ({"domains": "acme.example"}, "domains must be a list of strings"),
    ({"trusted_email_domains": ["acme.example/x"]}, "trusted_email_domains: 'acme.example/x' is not a domain name"),
    ({"store_tokens": "yes"}, "store_tokens must be true or false"),
    ({"secret": "x"}, "unknown connection field 'secret'"),
    ({"preset": "okta"}, "preset must be one of"),
])
def test_validate_names_the_rule_that_is_broken(fields, error):
    with pytest.raises(InvalidConnection, match=error):
        validate(settings=PROD, **oidc(**fields))


def test_domains_are_lower_cased_deduplicated_and_mappings_kept_in_a_stable_order():
    connection = valid(**oidc(domains=["Acme.Example", "acme.example.", "xn--bcher-kva.example"],
                              trusted_email_domains=["ACME.example"],
                              claim_mapping={"name": "display_name", "email": "mail"},
                              acr_mapping={"urn:b": "phr", "urn:a": "urn:serverless-idp:acr:mfa"}))
    assert connection.domains == ("acme.example", "xn--bcher-kva.example")
    assert connection.trusted_email_domains == ("acme.example",)
    assert list(connection.claim_mapping) == ["email", "name"]
    assert list(connection.acr_mapping) == ["urn:a", "urn:b"]


# the secret

def pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL
                             if not isinstance(key, ed25519.Ed25519PrivateKey) else serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def test_client_secret_methods_need_a_client_secret_and_nothing_else():
    assert check_secret("client_secret_post", client_secret="s3cr3t") == {"client_secret": "s3cr3t"}
    for bad in (None, "", "with space", "tab\tin", "x" * 1025, "caf\u00e9"):
        with pytest.raises(InvalidConnection, match="needs the client secret"):
            check_secret("client_secret_basic", client_secret=bad)
    with pytest.raises(InvalidConnection, match="uses a client secret, not a private key"):
        check_secret("client_secret_basic", client_secret="s", private_key=b"-----BEGIN")


def test_private_keys_must_be_p256_or_rsa_2048_and_are_stored_as_pkcs8():
    p256 = ec.generate_private_key(ec.SECP256R1())
    stored = check_secret("private_key_jwt", private_key=pem(p256))["private_key"]
    assert stored.startswith("-----BEGIN PRIVATE KEY-----")
    assert serialization.load_pem_private_key(stored.encode(), None).private_numbers() == p256.private_numbers()
    assert "private_key" in check_secret("private_key_jwt", private_key=pem(rsa.generate_private_key(65537, 2048)))
    for weak in (rsa.generate_private_key(65537, 1024), ec.generate_private_key(ec.SECP256K1()),
                 ed25519.Ed25519PrivateKey.generate()):
        with pytest.raises(InvalidConnection, match="must be EC P-256 or RSA of at least 2048 bits"):
            check_secret("private_key_jwt", private_key=pem(weak))
    encrypted = p256.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.BestAvailableEncryption(b"pw"))
    with pytest.raises(InvalidConnection, match="unencrypted PEM"):
        check_secret("private_key_jwt", private_key=encrypted)
    with pytest.raises(InvalidConnection, match="uses a private key, not a client secret"):
        check_secret("private_key_jwt", client_secret="s", private_key=pem(p256))


def test_apple_client_secrets_are_signed_with_an_ec_p256_key_only():
    with pytest.raises(InvalidConnection, match="must be EC P-256$"):
        check_secret("apple_client_secret", private_key=pem(rsa.generate_private_key(65537, 2048)))
    with pytest.raises(InvalidConnection, match="give its PEM file"):
        check_secret("apple_client_secret")


# which connections a client offers, home-realm discovery

ACME = valid(**oidc(domains=["acme.example"]))
GOOGLE = valid(preset="google", connection_id="google", client_id="c")
OFF = dataclasses.replace(valid(**oidc(connection_id="old", domains=["old.example"])), enabled=False)
ALL = [ACME, GOOGLE, OFF]


def client(*connections):
    return Client(client_id="c1", client_name="App", client_type="public", token_endpoint_auth_method="none",
                  connections=tuple(connections))


def test_a_client_without_a_restriction_offers_every_enabled_connection_and_the_password():
    assert home_realm.connections_for(client(), ALL) == [ACME, GOOGLE]
    assert home_realm.connections_for(None, ALL) == [ACME, GOOGLE]
    assert home_realm.password_allowed(client()) and home_realm.password_allowed(None)


def test_a_restricted_client_offers_only_what_it_names():
    assert home_realm.connections_for(client("google"), ALL) == [GOOGLE]
    assert not home_realm.password_allowed(client("google"))
    assert home_realm.connections_for(client("password"), ALL) == []
    assert home_realm.password_allowed(client("password", "acme"))
    # Naming a disabled connection does not bring it back.
    assert home_realm.connections_for(client("old", "acme"), ALL) == [ACME]


@pytest.mark.parametrize("email, found", [
    ("alice@acme.example", ACME), ("Alice@ACME.Example", ACME), ("alice@acme.example.", ACME),
    ("alice@eu.acme.example", None), ("alice@notacme.example", None), ("alice@acme.example.evil", None),
    ("bob@old.example", None), ("acme.example", None), ("", None), (None, None), ("a@b@acme.example", ACME),
])
def test_home_realm_discovery_matches_the_domain_exactly_among_enabled_connections(email, found):
    assert home_realm.by_email(email, ALL) == found


def test_a_domain_claimed_by_a_connection_the_client_does_not_offer_routes_nowhere():
    assert home_realm.by_email("alice@acme.example", home_realm.connections_for(client("google"), ALL)) is None


def test_idp_hint_names_an_enabled_connection_by_id():
    assert home_realm.by_hint("google", ALL) == GOOGLE
    assert home_realm.by_hint("old", ALL) is None
    assert home_realm.by_hint("Google", ALL) is None
    assert home_realm.by_hint("", ALL) is None and home_realm.by_hint(None, ALL) is None
    assert home_realm.by_hint("acme", home_realm.connections_for(client("google"), ALL)) is None
