"""The key ring: every backend signs JWTs that verify against the published JWKS; rotation is safe."""
from __future__ import annotations

import json

import jwt
import pytest

from chalicelib.capabilities import SIGNING_ALGS
from chalicelib.errors import KeyRingChanged, KeyRingError
from chalicelib.keys import keyring
from chalicelib.keys.jwk import thumbprint
from chalicelib.tokens import jwt as jwt_encode


def verify_with_jwks(token: str, jwks: dict) -> dict:
    header = jwt.get_unverified_header(token)
    jwk = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    key = jwt.PyJWK(jwk)
    return jwt.decode(token, key.key, algorithms=[jwk["alg"]], audience="rs")


BACKENDS = ("secretsmanager", "kms", "kms-envelope")


@pytest.fixture(params=[(backend, alg) for backend in BACKENDS for alg in SIGNING_ALGS],
                ids=lambda p: f"{p[0]}-{p[1]}")
def backend(request, aws, monkeypatch):
    from tests.conftest import reset_process_state, select_key_backend

    monkeypatch.setenv("SIGNING_ALG", request.param[1])
    reset_process_state()
    select_key_backend(monkeypatch, request.param[0])
    return request.param


# Not "kms" here: moto 5.2.5's ScheduleKeyDeletion (the prune) rejects a key ARN, which is what that
# backend stores and KMS accepts.
@pytest.fixture(params=("secretsmanager", "kms-envelope"))
def any_keys(request, aws, monkeypatch):
    """A current and a next key, made by each backend in turn: the lifecycle is the backends' common contract."""
    from tests.conftest import select_key_backend

    select_key_backend(monkeypatch, request.param)
    return keyring.ensure_keys()


def test_signed_jwt_verifies_against_jwks_for_each_backend_and_alg(backend):
    keyring.ensure_keys()
    signer = keyring.current_signer()
    token = jwt_encode.encode({"sub": "alice", "aud": "rs"}, signer, typ="at+jwt")

    header = jwt.get_unverified_header(token)
    assert header == {"alg": backend[1], "kid": signer.kid, "typ": "at+jwt"}
    assert verify_with_jwks(token, keyring.jwks())["sub"] == "alice"


def test_kid_is_the_rfc7638_thumbprint_of_the_published_key(any_keys):
    for jwk in keyring.jwks()["keys"]:
        assert jwk["kid"] == thumbprint(jwk)
        assert "d" not in jwk and "p" not in jwk, "private members must never be published"


def test_rfc7638_thumbprint_matches_the_rfc_example():
    # RFC 7638 §3.1 example RSA key and its published thumbprint.
    jwk = {
        "kty": "RSA", "e": "AQAB", "alg": "RS256", "kid": "2011-04-29",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKR"
             "XjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAt"
             "aSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPk"
             "sINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
    }
    assert thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_bootstrap_is_idempotent(any_keys):
    before = sorted(k.kid for k in keyring.all_keys())
    assert keyring.ensure_keys() == []
    assert sorted(k.kid for k in keyring.all_keys()) == before
    assert sorted(k.state for k in keyring.all_keys()) == ["current", "next"]


def test_jwks_publishes_next_before_it_signs(any_keys):
    states = {k.kid: k.state for k in keyring.all_keys()}
    published = {k["kid"] for k in keyring.jwks()["keys"]}
    assert published == set(states), "both the current and the next key are published"
    assert states[keyring.current_signer().kid] == "current"


def test_rotation_refuses_while_next_key_may_be_unknown_to_verifiers(any_keys):
    with pytest.raises(KeyRingError, match="JWKS_MAX_AGE"):
        keyring.rotate()
    assert sorted(k.state for k in keyring.all_keys()) == ["current", "next"]


def test_rotation_promotes_next_retires_current_and_keeps_old_tokens_verifiable(any_keys):
    old = keyring.current_signer()
    old_token = jwt_encode.encode({"sub": "a", "aud": "rs"}, old)
    nxt = next(k for k in keyring.all_keys() if k.state == "next")
    rotated_at = nxt.created_at + 300

    promoted = keyring.rotate(at=rotated_at)

    assert promoted.kid == nxt.kid and promoted.state == "current"
    assert keyring.current_signer().kid == nxt.kid
    states = {k.kid: k.state for k in keyring.all_keys()}
    assert states[old.kid] == "retired"
    assert sorted(states.values()) == ["current", "next", "retired"]
    # The retired key stays published, so tokens it signed still verify ...
    assert verify_with_jwks(old_token, keyring.jwks(at=rotated_at + 1))["sub"] == "a"
    # ... until KEY_RETIRE_AFTER has passed.
    later = rotated_at + 86400 + 1
    assert old.kid not in {k["kid"] for k in keyring.jwks(at=later)["keys"]}


def test_a_losing_concurrent_rotation_changes_nothing(any_keys):
    nxt = next(k for k in keyring.all_keys() if k.state == "next")
    stale_view = keyring.all_keys()
    keyring.rotate(at=nxt.created_at + 300)
    after_first = {k.kid: k.state for k in keyring.all_keys()}

    # A second rotation that read the key table before the first one committed.
    original = keyring.all_keys
    keyring.all_keys = lambda: list(stale_view)
    try:
        with pytest.raises(KeyRingChanged):
            keyring.rotate(at=nxt.created_at + 301)
    finally:
        keyring.all_keys = original
    assert {k.kid: k.state for k in keyring.all_keys()} == after_first


def test_prune_removes_expired_retired_keys_and_their_material(keys, monkeypatch):
    from chalicelib.aws import client

    old = next(k for k in keyring.all_keys() if k.state == "current")
    nxt = next(k for k in keyring.all_keys() if k.state == "next")
    keyring.rotate(at=nxt.created_at + 300)
    assert keyring.prune(at=nxt.created_at + 300 + 86400 + 1) == [old.kid]
    assert old.kid not in {k.kid for k in keyring.all_keys()}
    deleted = client("secretsmanager").describe_secret(SecretId=old.key_ref)
    assert "DeletedDate" in deleted


def test_missing_key_material_is_replaced_at_bootstrap(keys):
    from chalicelib.aws import client

    current = next(k for k in keyring.all_keys() if k.state == "current")
    client("secretsmanager").delete_secret(SecretId=current.key_ref, ForceDeleteWithoutRecovery=True)
    keyring.clear_caches()

    created = keyring.ensure_keys()

    assert [k.state for k in created] == ["current"]
    token = jwt_encode.encode({"sub": "b", "aud": "rs"}, keyring.current_signer())
    assert verify_with_jwks(token, keyring.jwks())["sub"] == "b"


def test_secrets_manager_stores_no_private_key_in_dynamodb(keys):
    for key in keyring.all_keys():
        stored = json.loads(key.public_jwk)
        assert set(stored) <= {"kty", "crv", "x", "y", "n", "e", "kid", "use", "alg"}


def summary_matches_items() -> bool:
    """The key-ring summary (what requests read) says exactly what the key items say."""
    from chalicelib.storage.signing_keys import read_key_ring

    return {k.kid: k for k in read_key_ring()} == {k.kid: k for k in keyring.all_keys()}


def test_the_key_ring_summary_follows_every_state_change(any_keys):
    assert summary_matches_items()  # created: current + next
    nxt = next(k for k in keyring.all_keys() if k.state == "next")
    rotated_at = nxt.created_at + 300
    keyring.rotate(at=rotated_at)
    assert summary_matches_items()  # next -> current, current -> retired, a new next
    assert keyring.prune(at=rotated_at + 86400 + 1)
    assert summary_matches_items()  # retired -> removed
    assert sorted(k.state for k in keyring.all_keys()) == ["current", "next"]


def test_retiring_a_key_whose_material_vanished_updates_the_summary(keys):
    from chalicelib.aws import client

    current = next(k for k in keyring.all_keys() if k.state == "current")
    client("secretsmanager").delete_secret(SecretId=current.key_ref, ForceDeleteWithoutRecovery=True)
    keyring.ensure_keys()
    assert summary_matches_items()
    assert keyring.current_signer().kid != current.kid


def test_the_summary_is_never_listed_as_a_key(any_keys):
    from tools.admin import keys_list

    assert sorted(k["state"] for k in keys_list(None)) == ["current", "next"]
    assert len(keyring.jwks()["keys"]) == 2
