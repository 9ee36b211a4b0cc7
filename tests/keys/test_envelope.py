"""KEY_BACKEND=kms-envelope: KMS makes the key pair, the key ring stores it encrypted, a container
decrypts it once and signs locally. The lifecycle (kid, JWKS, rotation) is tests/keys/test_keyring.py's,
run over every backend; here is what is particular to the envelope."""
from __future__ import annotations

import base64
import json

import pytest

from chalicelib.keys import keyring
from chalicelib.tokens import jwt as jwt_encode
from tests.keys.test_keyring import verify_with_jwks


@pytest.fixture
def envelope(aws, monkeypatch):
    from tests.conftest import select_key_backend

    select_key_backend(monkeypatch, "kms-envelope")
    return keyring.ensure_keys()


def kms_calls(monkeypatch) -> list[str]:
    from chalicelib.aws import client

    calls: list[str] = []
    kms = client("kms")
    kms.meta.events.register("before-call", lambda model, **_: calls.append(model.name), unique_id="count-kms")
    return calls


def test_only_the_public_key_and_the_encrypted_private_key_are_stored(envelope):
    from cryptography.hazmat.primitives import serialization

    for key in keyring.all_keys():
        assert key.backend == "kms-envelope"
        assert set(json.loads(key.public_jwk)) <= {"kty", "crv", "x", "y", "kid", "use", "alg"}
        wrapping_key, ciphertext = key.key_ref.split("#", 1)
        assert wrapping_key.startswith("arn:aws:kms:")
        with pytest.raises(ValueError):  # not a key in the clear, in any encoding
            serialization.load_der_private_key(base64.b64decode(ciphertext), None)
        assert "PRIVATE KEY" not in key.key_ref


def test_a_container_decrypts_once_and_then_signs_without_calling_kms(envelope, monkeypatch):
    calls = kms_calls(monkeypatch)
    for n in range(3):
        token = jwt_encode.encode({"sub": f"u{n}", "aud": "rs"}, keyring.current_signer())
        assert verify_with_jwks(token, keyring.jwks())["sub"] == f"u{n}"
    assert calls == ["Decrypt"]


def test_a_ciphertext_copied_into_another_keys_record_does_not_decrypt(envelope):
    """The encryption context names the kid: KMS refuses the next key's ciphertext for the current kid."""
    from botocore.exceptions import ClientError

    from chalicelib.keys.backends import backend_for
    from chalicelib.config import settings

    current = next(k for k in keyring.all_keys() if k.state == "current")
    nxt = next(k for k in keyring.all_keys() if k.state == "next")
    store = backend_for("kms-envelope", settings())
    with pytest.raises(ClientError) as raised:
        store.signer(current.kid, current.alg, nxt.key_ref)
    assert raised.value.response["Error"]["Code"] == "InvalidCiphertextException"
    assert store.signer(nxt.kid, nxt.alg, nxt.key_ref).kid == nxt.kid


def test_keys_whose_wrapping_key_is_gone_are_replaced_at_bootstrap(envelope, monkeypatch):
    from chalicelib.aws import client
    from tests.conftest import reset_process_state

    old = {k.kid for k in keyring.all_keys()}
    client("kms").disable_key(KeyId=keyring.all_keys()[0].key_ref.split("#", 1)[0].rsplit("/", 1)[1])
    new_key = client("kms").create_key(Description="new envelope key")["KeyMetadata"]["Arn"]
    monkeypatch.setenv("ENVELOPE_KMS_KEY_ID", new_key)
    reset_process_state(endpoint_changed=False)

    created = keyring.ensure_keys()

    assert sorted(k.state for k in created) == ["current", "next"]
    assert {k.kid for k in keyring.all_keys() if k.state != "retired"}.isdisjoint(old)
    token = jwt_encode.encode({"sub": "b", "aud": "rs"}, keyring.current_signer())
    assert verify_with_jwks(token, keyring.jwks())["sub"] == "b"


def test_the_envelope_backend_needs_its_kms_key():
    from chalicelib.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="ENVELOPE_KMS_KEY_ID"):
        load_settings({"ISSUER": "https://login.example.com", "STAGE": "prod", "KEY_BACKEND": "kms-envelope"})


def test_a_private_key_sealed_under_another_kid_is_refused(envelope):
    """Whoever may kms:Encrypt could seal key B's private key under key A's kid: it decrypts, but A's
    signer refuses it, since its tokens would carry A's kid and verify against nothing in /jwks."""
    import base64 as b64

    from chalicelib.aws import client
    from chalicelib.config import settings
    from chalicelib.errors import KeyRingError
    from chalicelib.keys.backends import backend_for

    current = next(k for k in keyring.all_keys() if k.state == "current")
    nxt = next(k for k in keyring.all_keys() if k.state == "next")
    store = backend_for("kms-envelope", settings())
    key_id, ciphertext = nxt.key_ref.split("#", 1)
    kms = client("kms")
    plaintext = kms.decrypt(KeyId=key_id, CiphertextBlob=b64.b64decode(ciphertext),
                            EncryptionContext=store.context(nxt.kid))["Plaintext"]
    forged = kms.encrypt(KeyId=key_id, Plaintext=plaintext, EncryptionContext=store.context(current.kid))
    with pytest.raises(KeyRingError, match="does not match"):
        store.signer(current.kid, current.alg, f"{key_id}#{b64.b64encode(forged['CiphertextBlob']).decode()}")
