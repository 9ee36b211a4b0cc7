"""Two KMS gaps of moto 5.2.5 that the kms-envelope key backend meets: kms:GenerateDataKeyPair, which
moto does not implement, and keys created by CloudFormation, whose KeyPolicy moto keeps as a dict.

GenerateDataKeyPair:
The stand-in does what the KMS API reference says the call does, with moto's own pieces: it makes
a key pair of the requested KeyPairSpec (here with `cryptography`, in KMS inside its HSMs), encrypts
the PKCS#8 DER private key under the named symmetric key with moto's own Encrypt (so the
ciphertext decrypts with moto's Decrypt, and only with the same encryption context), and returns
PublicKey (DER SubjectPublicKeyInfo), PrivateKeyPlaintext, PrivateKeyCiphertextBlob, KeyId (the
key's ARN) and KeyPairSpec. Only the specs the key ring uses are offered; any other is the
ValidationException KMS gives.

CloudFormation keys: AWS::KMS::Key's KeyPolicy is a JSON object in the template and a JSON string in
KMS (CreateKey's Policy, GetKeyPolicy). moto passes the template's dict through, and then every call
that checks the key policy (DescribeKey, which the envelope rotation uses to see that its wrapping
key still exists) fails with a TypeError. The stand-in serialises it, as CloudFormation does.

Installed by tests/conftest.py and tools/moto_server.py (`make run`). Remove each part once moto
implements the call / stores the policy as text.
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


def _with_policy_text(create):
    """Key.create_from_cloudformation_json, given the KeyPolicy as the JSON text KMS keeps."""
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, *args, **kwargs):
        properties = cloudformation_json.get("Properties", {})
        if isinstance(properties.get("KeyPolicy"), dict):
            properties = {**properties, "KeyPolicy": json.dumps(properties["KeyPolicy"])}
            cloudformation_json = {**cloudformation_json, "Properties": properties}
        return create.__func__(cls, resource_name, cloudformation_json, *args, **kwargs)

    create_from_cloudformation_json.policy_as_text = True
    return classmethod(create_from_cloudformation_json)


def install() -> None:
    """Add the action to moto's KMS handler unless moto has its own, and make CloudFormation's keys
    keep their policy as text (idempotent)."""
    from moto.kms.models import Key
    from moto.kms.responses import KmsResponse

    if not hasattr(KmsResponse, "generate_data_key_pair"):
        KmsResponse.generate_data_key_pair = generate_data_key_pair
    if not getattr(Key.create_from_cloudformation_json, "policy_as_text", False):
        Key.create_from_cloudformation_json = _with_policy_text(Key.create_from_cloudformation_json)
