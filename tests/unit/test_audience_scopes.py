"""Scopes per audience, without HTTP: what a narrowed token carries (RFC 8707 §2.2) and which
(audience, scope) pairs a request asks the user to allow."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from chalicelib.errors import InvalidScope
from chalicelib.oauth import consent
from chalicelib.oauth.resources import check_scopes, resource_less_audience, token_scopes

DEFAULT = "https://login.example.com"
NOTES = SimpleNamespace(resource="https://notes.example.com/api", name="Notes API", scopes=["notes:read", "notes:write"])
BILLING = SimpleNamespace(resource="https://billing.example.com/api", name="Billing API", scopes=["billing:read"])
DOCS = SimpleNamespace(resource="https://docs.example.com/api", name="Docs API", scopes=["read", "write"])
PHOTOS = SimpleNamespace(resource="https://photos.example.com/api", name="Photos API", scopes=["read"])


def test_a_token_narrowed_to_one_api_keeps_identity_scopes_and_that_apis_scopes_only():
    granted = ["openid", "offline_access", "notes:write", "billing:read"]
    assert token_scopes(granted, [NOTES]) == ["openid", "offline_access", "notes:write"]
    assert token_scopes(granted, [BILLING]) == ["openid", "offline_access", "billing:read"]
    assert token_scopes(granted, [NOTES, BILLING]) == granted


def test_a_scope_name_two_apis_share_stays_with_the_api_that_defines_it():
    assert token_scopes(["read", "write"], [PHOTOS]) == ["read"]


def test_a_token_without_resources_keeps_every_scope_for_the_default_audience():
    assert token_scopes(["openid", "notes:write"], []) == ["openid", "notes:write"]


def test_an_unverified_clients_resource_less_token_carries_identity_scopes_only():
    assert token_scopes(["openid", "offline_access", "mcp:read"], [], unverified=True) == ["openid", "offline_access"]
    with pytest.raises(InvalidScope, match="no granted scope is for the token's audience"):
        token_scopes(["mcp:read"], [], unverified=True)


def test_an_unverified_client_must_name_the_api_of_an_api_scope():
    with pytest.raises(InvalidScope, match="scope needs the resource parameter naming its API: mcp:read"):
        check_scopes(["openid", "mcp:read"], [], unverified=True)
    check_scopes(["openid", "email"], [], unverified=True)


def test_only_vetted_clients_get_the_default_audience_without_a_resource():
    settings = SimpleNamespace(issuer=DEFAULT, default_audience="https://private.example.com/api")
    vetted, unverified = SimpleNamespace(registered_dynamically=False), SimpleNamespace(registered_dynamically=True)
    assert resource_less_audience(vetted, settings) == "https://private.example.com/api"
    assert resource_less_audience(unverified, settings) == DEFAULT


def test_a_token_for_an_api_left_with_none_of_its_scopes_is_refused():
    with pytest.raises(InvalidScope, match="no requested scope is for the resource: https://notes.example.com/api"):
        token_scopes(["billing:read"], [NOTES])
    with pytest.raises(InvalidScope, match="https://notes.example.com/api"):
        token_scopes(["billing:read"], [NOTES, BILLING])


def test_identity_scopes_alone_are_enough_for_any_api():
    assert token_scopes(["openid"], [NOTES, BILLING]) == ["openid"]


def test_a_request_naming_an_api_none_of_its_scopes_is_for_is_refused():
    """Otherwise that API would be in the token's audience without anything the user allowed for it."""
    with pytest.raises(InvalidScope, match="no requested scope is for the resource: https://notes.example.com/api"):
        check_scopes(["billing:read"], [NOTES, BILLING])
    with pytest.raises(InvalidScope, match="scope not defined by the requested resource: billing:read"):
        check_scopes(["billing:read"], [NOTES])
    check_scopes(["notes:read", "billing:read"], [NOTES, BILLING])


def test_consent_pairs_each_api_scope_with_the_apis_that_define_it():
    wanted = consent.per_audience(["openid", "read", "write"], [DOCS, PHOTOS], DEFAULT)
    assert wanted == {DOCS.resource: ["openid", "read", "write"], PHOTOS.resource: ["openid", "read"]}
    assert consent.pairs(wanted) == {f"openid {DOCS.resource}", f"read {DOCS.resource}", f"write {DOCS.resource}",
                                     f"openid {PHOTOS.resource}", f"read {PHOTOS.resource}"}


def test_consent_without_resources_is_for_the_default_audience_only():
    wanted = consent.per_audience(["openid", "read", "write"], [], DEFAULT)
    assert consent.pairs(wanted) == {f"openid {DEFAULT}", f"read {DEFAULT}", f"write {DEFAULT}"}
    assert not consent.pairs(consent.per_audience(["read"], [DOCS], DEFAULT)) <= consent.pairs(wanted)


def test_consents_for_two_apis_do_not_add_up_to_more_at_either():
    remembered = (consent.pairs(consent.per_audience(["read", "write"], [DOCS], DEFAULT))
                  | consent.pairs(consent.per_audience(["read"], [PHOTOS], DEFAULT)))
    assert consent.pairs(consent.per_audience(["read"], [PHOTOS], DEFAULT)) <= remembered
    photos_write = SimpleNamespace(resource=PHOTOS.resource, name="Photos API", scopes=["read", "write"])
    assert not consent.pairs(consent.per_audience(["read", "write"], [photos_write], DEFAULT)) <= remembered


def test_identity_scopes_allowed_for_one_api_do_not_cover_another():
    remembered = consent.pairs(consent.per_audience(["openid", "notes:read"], [NOTES], DEFAULT))
    assert consent.pairs(consent.per_audience(["openid"], [NOTES], DEFAULT)) <= remembered
    assert not consent.pairs(consent.per_audience(["openid"], [BILLING], DEFAULT)) <= remembered


def test_the_pair_encoding_is_unambiguous_whatever_the_audience_holds():
    """A scope token has no space (RFC 6749 §3.3), so the first space ends it, even before an
    audience (a DEFAULT_AUDIENCE, say) that has spaces of its own."""
    wanted = {"https://a.example/x y": ["s"], "https://a.example/x": ["s", "y"]}
    decoded = {tuple(pair.split(consent.SEPARATOR, 1)) for pair in consent.pairs(wanted)}
    assert decoded == {("s", "https://a.example/x y"), ("s", "https://a.example/x"), ("y", "https://a.example/x")}


def test_the_consent_page_shows_which_scopes_go_to_which_api():
    about_you, apis = consent.page_sections(["openid", "email", "notes:write", "billing:read"], [NOTES, BILLING])
    assert about_you == ["openid", "email"]
    assert apis == [("Notes API", ["notes:write"]), ("Billing API", ["billing:read"])]
    assert consent.page_sections(["openid", "notes:write"], []) == (["openid", "notes:write"], [])
