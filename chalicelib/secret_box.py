"""Sealing a short secret that the server must read back, with AWS KMS.

A TOTP secret (RFC 6238) is the verifier's copy of the shared key: checking a code means computing
HMAC(secret, time step), so unlike a password or a recovery code it cannot be kept as a hash. It
must never be in the table in the clear either (NIST SP 800-63B §5.1.4.2 / §5.2.7: verifier
secrets "SHALL be protected"; a table export or backup must not let anyone mint codes). So it is
kept as a KMS ciphertext (kms:Encrypt / kms:Decrypt of at most 4 KiB: no data key needed):

    sealed = "kms1." + base64url(Encrypt(FACTOR_KMS_KEY_ID, value, context))
    context = {"idp:stage": STAGE, "idp:purpose": purpose, "idp:sub": subject}

The encryption context is authenticated, not secret (AAD of KMS's AES-GCM): a ciphertext copied
onto another user's item, or opened for another purpose or stage, does not decrypt; every Decrypt
in CloudTrail names whose secret was opened and why; and the key's own policy lets the API role
Encrypt and Decrypt only with a context of this stage, one of PURPOSES and some subject
(infra/policy.factors_key_policy). The key is used for nothing else.

Faults of KMS (throttling, KMSInternalException, timeouts) leave as errors.TemporarilyUnavailable
(chalicelib/faults.py: a 503 "try again"); a seal that does not open (another subject, purpose,
stage or key, or altered) raises SealBroken, a bug or tampering, never a user error.
"""
from __future__ import annotations

import base64
import binascii
import contextlib

from .config import settings
from .errors import SealBroken, TemporarilyUnavailable

__all__ = ["PURPOSES", "SealBroken", "context", "seal", "unseal"]

#: What secrets are sealed for: the IAM policy allows no other value of idp:purpose.
PURPOSES = ("totp", "upstream_tokens")
_PREFIX = "kms1."


def context(*, purpose: str, subject: str) -> dict[str, str]:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown seal purpose {purpose!r}")
    if not subject:
        raise ValueError("a seal needs its subject")
    return {"idp:stage": settings().stage, "idp:purpose": purpose, "idp:sub": subject}


def seal(value: str, *, purpose: str, subject: str) -> str:
    """`value` encrypted under FACTOR_KMS_KEY_ID for `purpose` and `subject` (one kms:Encrypt)."""
    from .aws import client

    encryption_context = context(purpose=purpose, subject=subject)
    with _faults_unavailable():
        blob = client("kms").encrypt(KeyId=settings().factor_kms_key_id, Plaintext=value.encode("utf-8"),
                                     EncryptionContext=encryption_context)["CiphertextBlob"]
    return _PREFIX + base64.urlsafe_b64encode(blob).rstrip(b"=").decode("ascii")


def unseal(sealed: str, *, purpose: str, subject: str) -> str:
    """The value `seal` sealed with the same purpose and subject (one kms:Decrypt); SealBroken
    when it does not open."""
    from botocore.exceptions import ClientError

    from .aws import client

    encryption_context = context(purpose=purpose, subject=subject)
    if not sealed or not sealed.startswith(_PREFIX):
        raise SealBroken("not a sealed value")
    body = sealed[len(_PREFIX):]
    try:
        blob = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        raise SealBroken("not a sealed value") from None
    try:
        with _faults_unavailable():
            # KeyId too: KMS then refuses a ciphertext made under any other key (AWS's advice for Decrypt).
            plaintext = client("kms").decrypt(KeyId=settings().factor_kms_key_id, CiphertextBlob=blob,
                                              EncryptionContext=encryption_context)["Plaintext"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("InvalidCiphertextException", "IncorrectKeyException"):
            raise SealBroken(f"the seal does not open for {purpose} of {subject}") from None
        raise
    return plaintext.decode("utf-8")


@contextlib.contextmanager
def _faults_unavailable():
    """A KMS fault leaves as the 503 it is; anything else (access denied: a deployment bug) as it is."""
    from . import faults

    try:
        yield
    except Exception as exc:
        unavailable: TemporarilyUnavailable | None = faults.unavailable(exc)
        if unavailable is None:
            raise
        raise unavailable from exc
