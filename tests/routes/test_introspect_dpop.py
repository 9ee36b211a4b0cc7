"""/introspect of a DPoP-bound access token (RFC 9449 §6.2): `token_type` DPoP and the `cnf` binding,
so a resource server that introspects can check the proof's key."""
from __future__ import annotations


import jwt

from tests.dpop_proofs import ProofKey
from tests.routes.test_revoke_introspect import app_client, introspect, notes_rs, tokens  # noqa: F401 (fixtures)


def test_a_bound_token_introspects_as_dpop_with_its_cnf(http, tokens, notes_rs):  # noqa: F811
    from chalicelib.keys import keyring
    from chalicelib.tokens import jwt as jwt_encode

    key = ProofKey()
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    bound = jwt_encode.encode({**claims, "cnf": key.cnf()}, keyring.current_signer(), typ="at+jwt")

    body = introspect(http, notes_rs, bound)
    assert body["active"] is True and body["token_type"] == "DPoP"
    assert body["cnf"] == {"jkt": key.jkt}
    # The control: the unbound token stays a Bearer token, without cnf.
    plain = introspect(http, notes_rs, tokens["access_token"])
    assert plain["token_type"] == "Bearer" and "cnf" not in plain
