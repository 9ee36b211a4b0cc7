"""One capability table (chalicelib/capabilities.py): discovery advertises exactly it, the code
implements exactly it, and no module keeps a copy of it."""
from __future__ import annotations

import pathlib
import re

import pytest

from chalicelib import capabilities as can
from chalicelib.config import load_settings
from chalicelib.discovery import metadata

ROOT = pathlib.Path(__file__).resolve().parents[2]
SETTINGS = load_settings({"STAGE": "prod", "ISSUER": "https://login.example.com"})


@pytest.mark.parametrize("field, table", [
    ("grant_types_supported", can.GRANT_TYPES),
    ("response_types_supported", can.RESPONSE_TYPES),
    ("response_modes_supported", can.RESPONSE_MODES),
    ("token_endpoint_auth_methods_supported", can.TOKEN_ENDPOINT_AUTH_METHODS),
    ("revocation_endpoint_auth_methods_supported", can.TOKEN_ENDPOINT_AUTH_METHODS),
    ("introspection_endpoint_auth_methods_supported", can.INTROSPECTION_AUTH_METHODS),
    ("token_endpoint_auth_signing_alg_values_supported", can.CLIENT_ASSERTION_ALGS),
    ("revocation_endpoint_auth_signing_alg_values_supported", can.CLIENT_ASSERTION_ALGS),
    ("introspection_endpoint_auth_signing_alg_values_supported", can.CLIENT_ASSERTION_ALGS),
    ("code_challenge_methods_supported", can.PKCE_METHODS),
    ("prompt_values_supported", can.PROMPT_VALUES),
    ("id_token_signing_alg_values_supported", can.SIGNING_ALGS),
    ("scopes_supported", can.IDENTITY_SCOPES),
    ("ui_locales_supported", can.UI_LOCALES),
])
def test_discovery_advertises_exactly_the_capability_table(field, table):
    assert metadata(SETTINGS)[field] == list(table)


def test_the_token_endpoint_dispatches_exactly_the_advertised_grants():
    from chalicelib.grants import HANDLERS

    assert set(HANDLERS) == set(can.GRANT_TYPES)
    assert set(can.SELF_REGISTERED_GRANT_TYPES) < set(can.GRANT_TYPES)


def test_every_advertised_signing_algorithm_is_implemented_by_every_key_backend_and_claim_builder():
    from chalicelib.keys.backends import KMS_ALGS
    from chalicelib.tokens.claims import _ALG_HASH

    assert set(KMS_ALGS) == set(_ALG_HASH) == set(can.SIGNING_ALGS)


def test_a_scope_token_is_exactly_rfc_6749_section_3_3():
    allowed = {chr(c) for c in range(0x21, 0x7F)} - {'"', "\\"}
    assert {chr(c) for c in range(0x110) if can.SCOPE_TOKEN.fullmatch(chr(c))} == allowed


#: Literal spellings of the table, which must appear nowhere else in the code.
COPIES = {
    "scope-token regex": re.compile(r"\\x21\\x23"),
    "loopback host list": re.compile(r"""["']127\.0\.0\.1["'],\s*["'](\[?::1\]?|localhost)["']"""),
    "PKCE method list": re.compile(r"""\(\s*["']S256["'],?\s*\)|\[\s*["']S256["']\s*\]"""),
    "signing algorithm list": re.compile(r"""["']ES256["'],\s*["']RS256["']\s*[,)\]]"""),
    "prompt list": re.compile(r"""["']none["'],\s*["']login["'],\s*["']consent["']"""),
    "auth method list": re.compile(r"""["']client_secret_basic["'],\s*["']client_secret_post["']"""),
    "grant type list": re.compile(r"""["']authorization_code["'],\s*["']refresh_token["']"""),
}


def test_no_module_keeps_its_own_copy_of_the_capability_table():
    sources = [p for folder in ("chalicelib", "tools") for p in (ROOT / folder).rglob("*.py")]
    copies = [f"{path.relative_to(ROOT)}: {what}" for path in sources if path.name != "capabilities.py"
              for what, pattern in COPIES.items() if pattern.search(path.read_text())]
    assert copies == []
