"""Where private keys live and how they sign. Chosen by KEY_BACKEND; each produces a `Signer`.

- secretsmanager: a PKCS#8 private key in a Secrets Manager secret, fetched once per container per
  key and used for in-process signing (one network call per cold start, none per token).
- kms: an asymmetric KMS key; every signature is a kms:Sign call and the private key never leaves
  KMS. KMS returns ECDSA signatures DER-encoded; JWS needs the fixed-size r||s form (RFC 7518 §3.4).
- kms-envelope: a key pair made by kms:GenerateDataKeyPair; only its public key (the JWK) and its
  private key encrypted under a symmetric KMS key (ENVELOPE_KMS_KEY_ID) are stored, in the key's
  record. A container decrypts it once (kms:Decrypt, in CloudTrail) and signs in-process: KMS custody
  at rest, no kms:Sign per token (no asymmetric request quota, symmetric prices).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Protocol

from ..aws import client
from ..errors import KeyRingError

#: JOSE alg -> (KMS KeySpec, KMS SigningAlgorithm)
KMS_ALGS = {
    "ES256": ("ECC_NIST_P256", "ECDSA_SHA_256"),
    "RS256": ("RSA_2048", "RSASSA_PKCS1_V1_5_SHA_256"),
}
#: What the account (its administrators) may do with a KMS signing key created with a key policy:
#: everything but using it. In a key policy, "Resource": "*" means this key.
KMS_ADMIN_ACTIONS = ["kms:DescribeKey", "kms:GetKeyPolicy", "kms:PutKeyPolicy", "kms:ListResourceTags",
                     "kms:TagResource", "kms:UntagResource", "kms:EnableKey", "kms:DisableKey",
                     "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion", "kms:ListGrants", "kms:RevokeGrant",
                     "kms:UpdateKeyDescription", "kms:GetPublicKey"]
#: kms:Sign accepts at most 4096 bytes with MessageType=RAW; longer inputs are signed as a digest.
KMS_RAW_LIMIT = 4096


class Signer(Protocol):
    kid: str
    alg: str

    def sign(self, signing_input: bytes) -> bytes:
        """Return the JWS signature (RFC 7515 §5.1 step 5) over `signing_input`."""


@dataclass(frozen=True)
class NewKey:
    key_ref: str
    public_key: object


@dataclass
class LocalSigner:
    """Signs in-process with a private key object (the Secrets Manager backend)."""

    kid: str
    alg: str
    private_key: object

    def sign(self, signing_input: bytes) -> bytes:
        from jwt.algorithms import get_default_algorithms

        return get_default_algorithms()[self.alg].sign(signing_input, self.private_key)


@dataclass
class KmsSigner:
    kid: str
    alg: str
    key_id: str

    def sign(self, signing_input: bytes) -> bytes:
        _, signing_algorithm = KMS_ALGS[self.alg]
        if len(signing_input) <= KMS_RAW_LIMIT:
            message, message_type = signing_input, "RAW"
        else:
            message, message_type = hashlib.sha256(signing_input).digest(), "DIGEST"
        response = client("kms").sign(
            KeyId=self.key_id, Message=message, MessageType=message_type, SigningAlgorithm=signing_algorithm
        )
        signature = response["Signature"]
        if self.alg.startswith("ES"):
            return der_to_jose(signature, size=32)
        return signature


def der_to_jose(der_signature: bytes, size: int) -> bytes:
    """ECDSA: ASN.1 DER (r, s) -> big-endian r||s, each `size` bytes (RFC 7518 §3.4)."""
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    r, s = decode_dss_signature(der_signature)
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def _generate_private_key(alg: str):
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError(f"unsupported signing alg {alg!r}")


class SecretsManagerBackend:
    name = "secretsmanager"

    def __init__(self, secret_prefix: str, stage: str, kms_key_id: str = ""):
        self.secret_prefix = secret_prefix
        self.stage = stage
        #: The stage's customer managed key (SECRETS_KMS_KEY_ID); empty: the AWS managed key.
        self.kms_key_id = kms_key_id

    def create(self, alg: str, kid_for) -> NewKey:
        from cryptography.hazmat.primitives import serialization

        private_key = _generate_private_key(alg)
        kid = kid_for(private_key.public_key())
        pem = private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode("ascii")
        name = f"{self.secret_prefix}signing-keys/{kid}"
        encryption = {"KmsKeyId": self.kms_key_id} if self.kms_key_id else {}
        client("secretsmanager").create_secret(
            Name=name,
            SecretString=json.dumps({"alg": alg, "kid": kid, "private_key_pem": pem}),
            Description="IdP token signing key (managed by the IdP's key ring; do not edit)",
            Tags=[{"Key": "idp:stage", "Value": self.stage}],
            **encryption,
        )
        # The name, not the ARN: names are unique, while the ARN's random suffix changes whenever
        # the secret is re-created, as moto does when it replays the local stack's recording.
        return NewKey(key_ref=name, public_key=private_key.public_key())

    def signer(self, kid: str, alg: str, key_ref: str) -> Signer:
        from cryptography.hazmat.primitives import serialization

        secret = json.loads(client("secretsmanager").get_secret_value(SecretId=key_ref)["SecretString"])
        private_key = serialization.load_pem_private_key(secret["private_key_pem"].encode("ascii"), None)
        return LocalSigner(kid=kid, alg=alg, private_key=private_key)

    def exists(self, key_ref: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            client("secretsmanager").describe_secret(SecretId=key_ref)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ResourceNotFoundException":
                return False
            raise
        return True

    def destroy(self, key_ref: str) -> None:
        # Secrets Manager keeps it recoverable for 7 days: a mistaken prune can be undone.
        client("secretsmanager").delete_secret(SecretId=key_ref, RecoveryWindowInDays=7)


class KmsBackend:
    name = "kms"

    def __init__(self, stage: str, signer_role_name: str = ""):
        self.stage = stage
        #: KMS_SIGNER_ROLE_NAME: the role named in each new key's policy as its only user.
        self.signer_role_name = signer_role_name

    def create(self, alg: str, kid_for) -> NewKey:
        from cryptography.hazmat.primitives import serialization

        key_spec, _ = KMS_ALGS[alg]
        kms = client("kms")
        policy = {"Policy": json.dumps(self.key_policy())} if self.signer_role_name else {}
        key_id = kms.create_key(
            KeySpec=key_spec, KeyUsage="SIGN_VERIFY", Description="IdP token signing key",
            Tags=[{"TagKey": "idp:stage", "TagValue": self.stage}], **policy,
        )["KeyMetadata"]["Arn"]
        der = kms.get_public_key(KeyId=key_id)["PublicKey"]
        return NewKey(key_ref=key_id, public_key=serialization.load_der_public_key(der))

    def key_policy(self) -> dict:
        """Only the signer role may use the key; the account administers it (never signs with it).

        kms:CreateKey cannot be limited to a resource, so keys are made by the operator (admin CLI), and
        naming the role here keeps the Lambda's IAM policy free of any KMS wildcard.
        """
        caller = client("sts").get_caller_identity()["Arn"]  # arn:<partition>:sts::<account>:...
        partition, account = caller.split(":")[1], caller.split(":")[4]
        return {"Version": "2012-10-17", "Statement": [
            {"Sid": "AccountAdministers", "Effect": "Allow",
             "Principal": {"AWS": f"arn:{partition}:iam::{account}:root"}, "Action": KMS_ADMIN_ACTIONS, "Resource": "*"},
            {"Sid": "SignerRoleSigns", "Effect": "Allow",
             "Principal": {"AWS": f"arn:{partition}:iam::{account}:role/{self.signer_role_name}"},
             "Action": ["kms:Sign", "kms:GetPublicKey", "kms:DescribeKey"], "Resource": "*"},
        ]}

    def signer(self, kid: str, alg: str, key_ref: str) -> Signer:
        return KmsSigner(kid=kid, alg=alg, key_id=key_ref)

    def exists(self, key_ref: str) -> bool:
        return _kms_key_enabled(key_ref)

    def destroy(self, key_ref: str) -> None:
        client("kms").schedule_key_deletion(KeyId=key_ref, PendingWindowInDays=7)


class KmsEnvelopeBackend:
    """Key pairs generated by KMS, stored encrypted in the key ring, decrypted once per container.

    key_ref is "<wrapping key ARN>#<base64 ciphertext of the PKCS#8 DER private key>": the key's
    record (and the key-ring summary a request already reads) carries it, so loading a signer costs
    one kms:Decrypt and no storage call. The ciphertext is bound to its key by the encryption context
    {"idp:stage": <stage>, "idp:kid": <kid>} (AAD of the AES-GCM envelope): copied into another key's
    record it does not decrypt, and every Decrypt in CloudTrail names the kid it opened.
    GenerateDataKeyPair needs its context before the kid (a thumbprint of the public key, RFC 7638)
    exists, so its own ciphertext is dropped and the private key is encrypted again with kms:Encrypt
    under the kid's context; both calls happen once per key, in the rotation.
    """

    name = "kms-envelope"

    def __init__(self, stage: str, wrapping_key_id: str):
        self.stage = stage
        #: ENVELOPE_KMS_KEY_ID: the symmetric key that encrypts every private key of this stage.
        self.wrapping_key_id = wrapping_key_id

    def context(self, kid: str | None = None) -> dict:
        return {"idp:stage": self.stage, **({"idp:kid": kid} if kid else {})}

    def create(self, alg: str, kid_for) -> NewKey:
        import base64

        from cryptography.hazmat.primitives import serialization

        key_spec, _ = KMS_ALGS[alg]
        kms = client("kms")
        pair = kms.generate_data_key_pair(KeyId=self.wrapping_key_id, KeyPairSpec=key_spec,
                                          EncryptionContext=self.context())
        public_key = serialization.load_der_public_key(pair["PublicKey"])
        kid = kid_for(public_key)
        sealed = kms.encrypt(KeyId=self.wrapping_key_id, Plaintext=pair["PrivateKeyPlaintext"],
                             EncryptionContext=self.context(kid))
        key_ref = f"{sealed['KeyId']}#{base64.b64encode(sealed['CiphertextBlob']).decode('ascii')}"
        return NewKey(key_ref=key_ref, public_key=public_key)

    def signer(self, kid: str, alg: str, key_ref: str) -> Signer:
        import base64

        from cryptography.hazmat.primitives import serialization

        from .jwk import public_jwk

        key_id, ciphertext = key_ref.split("#", 1)
        plaintext = client("kms").decrypt(KeyId=key_id, CiphertextBlob=base64.b64decode(ciphertext),
                                          EncryptionContext=self.context(kid))["Plaintext"]
        private_key = serialization.load_der_private_key(plaintext, None)
        # The context binds a ciphertext to its kid; this also refuses a private key sealed under the
        # wrong kid by a holder of kms:Encrypt (the rotation role): it would sign tokens /jwks cannot verify.
        if public_jwk(private_key.public_key(), alg)["kid"] != kid:
            raise KeyRingError(f"the private key sealed for {kid} does not match its published key")
        return LocalSigner(kid=kid, alg=alg, private_key=private_key)

    def exists(self, key_ref: str) -> bool:
        """The ciphertext is in the record itself: the material exists while its wrapping key does
        (moto's replay gives KMS keys new ids, which makes the old ciphertexts undecryptable)."""
        return _kms_key_enabled(key_ref.split("#", 1)[0])

    def destroy(self, key_ref: str) -> None:
        """Nothing to delete: the only copy of the encrypted key goes with its record."""


def _kms_key_enabled(key_id: str) -> bool:
    """The KMS key exists and is enabled (one disabled or pending deletion signs and decrypts nothing)."""
    from botocore.exceptions import ClientError

    try:
        state = client("kms").describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "NotFoundException":
            return False
        raise
    return state == "Enabled"


def backend_for(name: str, settings) -> SecretsManagerBackend | KmsBackend | KmsEnvelopeBackend:
    if name == "secretsmanager":
        return SecretsManagerBackend(settings.secret_prefix, settings.stage, settings.secrets_kms_key_id)
    if name == "kms":
        return KmsBackend(settings.stage, settings.kms_signer_role_name)
    if name == "kms-envelope":
        return KmsEnvelopeBackend(settings.stage, settings.envelope_kms_key_id)
    raise ValueError(f"unknown key backend {name!r}")
