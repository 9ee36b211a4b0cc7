"""kms:GenerateDataKeyPair for moto, which (5.2.5) does not implement it.

The stand-in does what the KMS API reference says the call does, with moto's own pieces: it makes
a key pair of the requested KeyPairSpec (here with `cryptography`, in KMS inside its HSMs), encrypts
the PKCS#8 DER private key under the named symmetric key with moto's own Encrypt (so the
ciphertext decrypts with moto's Decrypt, and only with the same encryption context), and returns
PublicKey (DER SubjectPublicKeyInfo), PrivateKeyPlaintext, PrivateKeyCiphertextBlob, KeyId (the
key's ARN) and KeyPairSpec. Only the specs the key ring uses are offered; any other is the
ValidationException KMS gives. Installed by tests/conftest.py and tools/moto_server.py (`make run`).
Remove it once moto implements the call.
"""
from __future__ import annotations

import base64
import json

SPECS = ("ECC_NIST_P256", "RSA_2048")


def _key_pair(spec: str):
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if spec == "ECC_NIST_P256":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def generate_data_key_pair(self) -> str:
    from cryptography.hazmat.primitives import serialization
    from moto.kms.exceptions import ValidationException

    key_id = self._get_param("KeyId")
    spec = self._get_param("KeyPairSpec")
    context = self._get_param("EncryptionContext", {})
    self._validate_key_id(key_id)
    if spec not in SPECS:
        raise ValidationException(f"1 validation error detected: Value '{spec}' at 'keyPairSpec' failed to satisfy "
                                  f"constraint: Member must satisfy enum value set: {list(SPECS)}")
    private_key = _key_pair(spec)
    private_der = private_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption())
    public_der = private_key.public_key().public_bytes(serialization.Encoding.DER,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo)
    ciphertext, arn = self.kms_backend.encrypt(key_id=key_id, plaintext=private_der, encryption_context=context)
    b64 = lambda data: base64.b64encode(data).decode("ascii")  # noqa: E731
    return json.dumps({"KeyId": arn, "KeyPairSpec": spec, "PublicKey": b64(public_der),
                       "PrivateKeyPlaintext": b64(private_der), "PrivateKeyCiphertextBlob": b64(ciphertext)})


def install() -> None:
    """Add the action to moto's KMS handler unless moto has its own (idempotent)."""
    from moto.kms.responses import KmsResponse

    if not hasattr(KmsResponse, "generate_data_key_pair"):
        KmsResponse.generate_data_key_pair = generate_data_key_pair
