"""High-entropy secrets are stored as SHA-256; passwords as argon2id; comparisons are constant time."""
from __future__ import annotations

from chalicelib import hashing, passwords


def test_new_secret_has_at_least_256_bits():
    secret = hashing.new_secret()
    assert len(secret) >= 43  # 32 bytes in base64url
    assert secret != hashing.new_secret()


def test_matches_hash_accepts_only_the_original():
    secret = hashing.new_secret()
    stored = hashing.sha256_hex(secret)
    assert secret not in stored
    assert hashing.matches_hash(secret, stored)
    assert not hashing.matches_hash(secret + "x", stored)
    assert not hashing.matches_hash(secret, None)


def test_password_hash_is_argon2id_phc_and_verifies():
    stored = passwords.hash_password("correct horse")
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert passwords.verify_password("correct horse", stored)
    assert not passwords.verify_password("wrong horse", stored)


def test_unknown_account_still_costs_a_verification_and_fails(argon2_evaluations):
    assert passwords.verify_password("anything", None) is False
    assert len(argon2_evaluations) == 1, "a missing account must cost one argon2id evaluation, like a real one"
