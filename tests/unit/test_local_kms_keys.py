"""`make run`'s symmetric KMS keys come back the same after a restart (tools/devstack.ensure_symmetric_key
with <state dir>/kms-keys.json), through the import of key material that tools/moto_kms.py adds to moto.

Each `with mock_aws()` is one life of the local moto server: it starts empty, as after a restart
(KMS calls are not replayed).
"""
from __future__ import annotations

import os

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from tools.devstack import ensure_symmetric_key

ALIAS = "alias/idp-test-factors"
CONTEXT = {"idp:stage": "local", "idp:purpose": "totp", "idp:sub": "alice"}


def _error(call) -> str:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"]


def test_a_key_made_again_from_the_state_dir_opens_what_the_old_one_sealed(tmp_path):
    keys_file = tmp_path / "kms-keys.json"
    with mock_aws():
        assert ensure_symmetric_key(ALIAS, "factors", keys_file) is True
        assert ensure_symmetric_key(ALIAS, "factors", keys_file) is False, "made once per start"
        kms = boto3.client("kms")
        sealed = kms.encrypt(KeyId=ALIAS, Plaintext=b"JBSWY3DPEHPK3PXP", EncryptionContext=CONTEXT)["CiphertextBlob"]
        key_id = kms.describe_key(KeyId=ALIAS)["KeyMetadata"]["KeyId"]

    with mock_aws():  # restarted
        ensure_symmetric_key(ALIAS, "factors", keys_file)
        kms = boto3.client("kms")
        assert kms.describe_key(KeyId=ALIAS)["KeyMetadata"]["KeyId"] == key_id
        opened = kms.decrypt(KeyId=ALIAS, CiphertextBlob=sealed, EncryptionContext=CONTEXT)["Plaintext"]
        assert opened == b"JBSWY3DPEHPK3PXP"
        assert _error(lambda: kms.decrypt(KeyId=ALIAS, CiphertextBlob=sealed,
                                          EncryptionContext={**CONTEXT, "idp:sub": "mallory"})) \
            == "InvalidCiphertextException"
        pair = kms.generate_data_key_pair(KeyId=ALIAS, KeyPairSpec="ECC_NIST_P256", EncryptionContext=CONTEXT)
        assert kms.decrypt(CiphertextBlob=pair["PrivateKeyCiphertextBlob"],
                           EncryptionContext=CONTEXT)["Plaintext"] == pair["PrivateKeyPlaintext"]

    assert os.stat(keys_file).st_mode & 0o777 == 0o600, "the file holds key material"


def test_another_alias_gets_its_own_key_and_a_reset_state_dir_a_new_one(tmp_path):
    with mock_aws():
        ensure_symmetric_key(ALIAS, "factors", tmp_path / "kms-keys.json")
        ensure_symmetric_key("alias/idp-local-signing-keys", "envelope", tmp_path / "kms-keys.json")
        kms = boto3.client("kms")
        sealed = kms.encrypt(KeyId=ALIAS, Plaintext=b"secret", EncryptionContext=CONTEXT)["CiphertextBlob"]
        ids = {kms.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"]
               for alias in (ALIAS, "alias/idp-local-signing-keys")}
        assert len(ids) == 2

    with mock_aws():  # `make reset-local`: the state dir is gone
        (tmp_path / "reset").mkdir()
        ensure_symmetric_key(ALIAS, "factors", tmp_path / "reset" / "kms-keys.json")
        kms = boto3.client("kms")
        assert kms.describe_key(KeyId=ALIAS)["KeyMetadata"]["KeyId"] not in ids
        assert _error(lambda: kms.decrypt(KeyId=ALIAS, CiphertextBlob=sealed, EncryptionContext=CONTEXT)) \
            == "AccessDeniedException"


def test_imported_key_material_is_refused_with_another_token_for_another_key_or_when_it_differs():
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    with mock_aws():
        kms = boto3.client("kms")
        external = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
        ordinary = kms.create_key()["KeyMetadata"]["KeyId"]

        def parameters(key_id):
            return kms.get_parameters_for_import(KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_256",
                                                 WrappingKeySpec="RSA_2048")

        def wrap(params, material):
            return serialization.load_der_public_key(params["PublicKey"]).encrypt(material, oaep)

        def load(token, wrapped):
            return kms.import_key_material(KeyId=external, ImportToken=token, EncryptedKeyMaterial=wrapped,
                                           ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")

        assert _error(lambda: parameters(ordinary)) == "UnsupportedOperationException"
        params = parameters(external)
        assert _error(lambda: load(os.urandom(32), wrap(params, os.urandom(32)))) == "InvalidImportTokenException"
        assert _error(lambda: load(params["ImportToken"], os.urandom(256))) == "InvalidCiphertextException"
        material = os.urandom(32)
        load(params["ImportToken"], wrap(params, material))
        params = parameters(external)
        assert _error(lambda: load(params["ImportToken"], wrap(params, os.urandom(32)))) \
            == "IncorrectKeyMaterialException"
        load(params["ImportToken"], wrap(params, material))  # the same material again is fine, as in KMS

        taken = [{"TagKey": "_custom_id_", "TagValue": external}]
        assert _error(lambda: kms.create_key(Tags=taken)) == "AlreadyExistsException"
