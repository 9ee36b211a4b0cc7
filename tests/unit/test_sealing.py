"""chalicelib/sealing.py: a sealed value opens only with the secret, purpose and record it was
sealed for, and any alteration is detected (AES-GCM, RFC 5869 HKDF)."""
from __future__ import annotations

import base64

import pytest

from chalicelib import sealing
from chalicelib.hashing import new_secret

PURPOSE = b"test seal"


@pytest.fixture
def secret():
    return new_secret()


def sealed_for(secret, value="grant.successor-value", bound_to="record-hash"):
    return sealing.seal(secret, value, purpose=PURPOSE, bound_to=bound_to)


def test_a_seal_opens_with_its_secret_purpose_and_record(secret):
    assert sealing.unseal(secret, sealed_for(secret), purpose=PURPOSE, bound_to="record-hash") == \
        "grant.successor-value"


def test_a_seal_does_not_show_its_value_and_never_repeats(secret):
    first, second = sealed_for(secret), sealed_for(secret)
    assert first != second, "a fresh nonce per seal"
    assert "successor-value" not in first


def test_another_secret_does_not_open_a_seal(secret):
    assert sealing.unseal(new_secret(), sealed_for(secret), purpose=PURPOSE, bound_to="record-hash") is None


def test_the_sha256_of_the_secret_does_not_open_a_seal(secret):
    from chalicelib.hashing import sha256_hex

    assert sealing.unseal(sha256_hex(secret), sealed_for(secret), purpose=PURPOSE, bound_to="record-hash") is None


def test_another_purpose_does_not_open_a_seal(secret):
    assert sealing.unseal(secret, sealed_for(secret), purpose=b"other use", bound_to="record-hash") is None


def test_a_seal_moved_to_another_record_does_not_open(secret):
    assert sealing.unseal(secret, sealed_for(secret), purpose=PURPOSE, bound_to="other-record") is None


def test_every_altered_byte_is_detected(secret):
    raw = bytearray(base64.urlsafe_b64decode(sealed_for(secret) + "=="))
    for index in range(len(raw)):  # nonce, ciphertext and tag alike
        altered = bytearray(raw)
        altered[index] ^= 0x01
        sealed = base64.urlsafe_b64encode(bytes(altered)).rstrip(b"=").decode()
        assert sealing.unseal(secret, sealed, purpose=PURPOSE, bound_to="record-hash") is None, index


@pytest.mark.parametrize("sealed", ["", "A", "!!!!", "é", "AAAA" * 7, "A" * 38])
def test_malformed_seals_do_not_open(secret, sealed):
    assert sealing.unseal(secret, sealed, purpose=PURPOSE, bound_to="record-hash") is None
