"""KMS gaps of moto 5.2.5: kms:GenerateDataKeyPair (the kms-envelope key backend), keys created by
CloudFormation, whose KeyPolicy moto keeps as a dict, and keys with imported key material, which
`make run` uses to keep its symmetric keys across restarts.

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

Imported key material (local stack only): moto gives every key a random id and random material,
and the ciphertext blob names the key by id, so a key made again after a restart opens nothing
sealed under the old one. The KMS API reference's way to a key whose material the caller holds is
CreateKey with Origin=EXTERNAL, GetParametersForImport (an RSA public key and an import token) and
ImportKeyMaterial (the 256-bit material wrapped under that public key with RSAES-OAEP); the
stand-in implements the last two with RSAES_OAEP_SHA_1/SHA_256 and RSA_2048..4096 wrapping keys,
and refuses material other than what was imported before (IncorrectKeyMaterialException), as
KMS does. The id is the other half: CreateKey honours moto's `_custom_id_` tag convention (moto's
other services read it; its KMS does not), so tools/devstack.py can make the key again with the
id and the material it keeps in the state dir. Real KMS never lets a caller choose a key id.

Installed by tests/conftest.py and tools/moto_server.py (`make run`). Remove each part once moto
implements the call / stores the policy as text.
"""
from __future__ import annotations

import base64
import json
import os
import re
from datetime import datetime, timedelta, timezone

SPECS = ("ECC_NIST_P256", "RSA_2048")
#: moto's tag for choosing a resource's id (moto.utilities.id_generator.TAG_KEY_CUSTOM_ID).
CUSTOM_ID_TAG = "_custom_id_"
_KEY_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
#: WrappingAlgorithm -> the OAEP hash; KMS also offers RSAES_PKCS1_V1_5 (deprecated) and RSA_AES_KEY_WRAP_*.
_OAEP_HASHES = {"RSAES_OAEP_SHA_1": "SHA1", "RSAES_OAEP_SHA_256": "SHA256"}
_WRAPPING_KEY_BITS = {"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}
#: KMS: "The public key and import token ... are valid for 24 hours".
_IMPORT_PARAMETERS_TTL = timedelta(hours=24)


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


def _with_custom_id(create_key):
    """KmsBackend.create_key that gives the key the id in its `_custom_id_` tag (a lower-case UUID,
    single-Region keys only); AlreadyExistsException when a key has that id."""
    def create_key_with_custom_id(self, policy, key_usage, key_spec, description, tags, multi_region=False,
                                  origin="AWS_KMS"):
        from moto.kms.exceptions import AlreadyExistsException, ValidationException

        custom_id = next((tag.get("TagValue") for tag in tags or () if tag.get("TagKey") == CUSTOM_ID_TAG), None)
        if custom_id is None:
            return create_key(self, policy, key_usage, key_spec, description, tags, multi_region, origin)
        if multi_region or not _KEY_ID.match(custom_id):
            raise ValidationException(f"{CUSTOM_ID_TAG} must be a lower-case UUID of a single-Region key")
        if custom_id in self.keys:
            raise AlreadyExistsException(f"A key with the id {custom_id} already exists")
        key = create_key(self, policy, key_usage, key_spec, description, None, multi_region, origin)
        del self.keys[key.id]
        key.arn = key.arn.replace(key.id, custom_id)
        key.id = custom_id
        self.keys[key.id] = key
        self.tagger.tag_resource(key.id, tags)
        return key

    create_key_with_custom_id.custom_id = True
    return create_key_with_custom_id


def _blob(value) -> bytes:
    return base64.b64decode(value) if isinstance(value, str) else value


def get_parameters_for_import(self) -> str:
    """kms:GetParametersForImport: a new RSA wrapping key pair and import token for an EXTERNAL key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from moto.core.exceptions import JsonRESTError
    from moto.kms.exceptions import ValidationException

    key_id = self._get_param("KeyId")
    algorithm = self._get_param("WrappingAlgorithm")
    spec = self._get_param("WrappingKeySpec")
    self._validate_cmk_id(key_id)
    if algorithm not in _OAEP_HASHES or spec not in _WRAPPING_KEY_BITS:
        raise ValidationException(f"the stand-in offers WrappingAlgorithm {sorted(_OAEP_HASHES)} and "
                                  f"WrappingKeySpec {sorted(_WRAPPING_KEY_BITS)}")
    key = self.kms_backend.keys[self.kms_backend.get_key_id(key_id)]
    if key.origin != "EXTERNAL":
        raise JsonRESTError("UnsupportedOperationException", f"{key.arn} origin is {key.origin} which is not "
                            "valid for this operation.")
    wrapping_key = rsa.generate_private_key(public_exponent=65537, key_size=_WRAPPING_KEY_BITS[spec])
    token = os.urandom(32)
    valid_to = datetime.now(timezone.utc) + _IMPORT_PARAMETERS_TTL
    key.import_parameters = {"token": token, "wrapping_key": wrapping_key, "algorithm": algorithm,
                             "valid_to": valid_to}
    public_der = wrapping_key.public_key().public_bytes(serialization.Encoding.DER,
                                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return json.dumps({"KeyId": key.arn, "ImportToken": base64.b64encode(token).decode("ascii"),
                       "PublicKey": base64.b64encode(public_der).decode("ascii"),
                       "ParametersValidTo": valid_to.timestamp()})


def import_key_material(self) -> str:
    """kms:ImportKeyMaterial: unwrap the material with the import token's wrapping key and make it the key's."""
    import hmac

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    from moto.core.exceptions import JsonRESTError
    from moto.kms.exceptions import InvalidCiphertextException

    key_id = self._get_param("KeyId")
    self._validate_cmk_id(key_id)
    key = self.kms_backend.keys[self.kms_backend.get_key_id(key_id)]
    parameters = getattr(key, "import_parameters", None)
    token = _blob(self._get_param("ImportToken") or b"")
    if parameters is None or not hmac.compare_digest(token, parameters["token"]):
        raise JsonRESTError("InvalidImportTokenException", "The import token is invalid for this key.")
    if datetime.now(timezone.utc) > parameters["valid_to"]:
        raise JsonRESTError("ExpiredImportTokenException", "The import token has expired.")
    digest = getattr(hashes, _OAEP_HASHES[parameters["algorithm"]])()
    try:
        material = parameters["wrapping_key"].decrypt(
            _blob(self._get_param("EncryptedKeyMaterial")),
            padding.OAEP(mgf=padding.MGF1(algorithm=digest), algorithm=digest, label=None))
    except ValueError:
        raise InvalidCiphertextException() from None
    if len(material) != 32:
        raise JsonRESTError("IncorrectKeyMaterialException", "A symmetric key takes 256 bits of key material.")
    previous = getattr(key, "imported_material", None)
    if previous is not None and not hmac.compare_digest(previous, material):
        raise JsonRESTError("IncorrectKeyMaterialException", "The key material is not the key material "
                            "previously imported into this key.")
    key.key_material = key.imported_material = material
    return json.dumps({"KeyId": key.arn})


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
    """Add the actions to moto's KMS handler unless moto has its own, let CreateKey take a
    `_custom_id_`, and make CloudFormation's keys keep their policy as text (idempotent)."""
    from moto.kms.models import Key, KmsBackend
    from moto.kms.responses import KmsResponse

    for action in (generate_data_key_pair, get_parameters_for_import, import_key_material):
        if not hasattr(KmsResponse, action.__name__):
            setattr(KmsResponse, action.__name__, action)
    if not getattr(KmsBackend.create_key, "custom_id", False):
        KmsBackend.create_key = _with_custom_id(KmsBackend.create_key)
    if not getattr(Key.create_from_cloudformation_json, "policy_as_text", False):
        Key.create_from_cloudformation_json = _with_policy_text(Key.create_from_cloudformation_json)
