"""Sealing TOTP secrets with KMS (chalicelib/secret_box.py), against moto's KMS: a seal opens only
for the purpose and subject it was made for, and KMS faults are 503s."""
from __future__ import annotations

import pytest

from chalicelib import secret_box


def test_a_sealed_secret_opens_for_its_purpose_and_subject(aws):
    sealed = secret_box.seal("JBSWY3DPEHPK3PXP", purpose="totp", subject="u_alice")
    assert "JBSWY3DPEHPK3PXP" not in sealed and sealed.startswith("kms1.")
    assert secret_box.unseal(sealed, purpose="totp", subject="u_alice") == "JBSWY3DPEHPK3PXP"


def test_a_seal_copied_to_another_user_does_not_open(aws):
    sealed = secret_box.seal("JBSWY3DPEHPK3PXP", purpose="totp", subject="u_alice")
    with pytest.raises(secret_box.SealBroken):
        secret_box.unseal(sealed, purpose="totp", subject="u_mallory")


def test_a_seal_opened_in_another_stage_does_not_open(aws, monkeypatch):
    from tests.conftest import reset_process_state

    sealed = secret_box.seal("JBSWY3DPEHPK3PXP", purpose="totp", subject="u_alice")
    monkeypatch.setenv("FACTOR_KMS_KEY_ID", "alias/idp-test-factors")
    monkeypatch.setenv("STAGE", "dev")
    monkeypatch.setenv("ISSUER", "https://login.example.com")
    reset_process_state(endpoint_changed=False)
    with pytest.raises(secret_box.SealBroken):
        secret_box.unseal(sealed, purpose="totp", subject="u_alice")


def test_a_seal_for_an_unknown_purpose_is_never_made(aws):
    with pytest.raises(ValueError):
        secret_box.seal("x", purpose="signing", subject="u_alice")


@pytest.mark.parametrize("sealed", ["", "JBSWY3DPEHPK3PXP", "kms1.", "kms1.!!!", "kms1.AAAA"])
def test_what_is_not_a_seal_does_not_open(aws, sealed):
    with pytest.raises(secret_box.SealBroken):
        secret_box.unseal(sealed, purpose="totp", subject="u_alice")


def test_an_altered_seal_does_not_open(aws):
    sealed = secret_box.seal("JBSWY3DPEHPK3PXP", purpose="totp", subject="u_alice")
    flipped = sealed[:-3] + ("A" if sealed[-3] != "A" else "B") + sealed[-2:]
    with pytest.raises(secret_box.SealBroken):
        secret_box.unseal(flipped, purpose="totp", subject="u_alice")


@pytest.mark.parametrize("code", ["ThrottlingException", "KMSInternalException"])
def test_kms_faults_are_temporarily_unavailable(aws, monkeypatch, code):
    from botocore.exceptions import ClientError

    from chalicelib.aws import client
    from chalicelib.errors import TemporarilyUnavailable

    sealed = secret_box.seal("JBSWY3DPEHPK3PXP", purpose="totp", subject="u_alice")

    def failing(**_):
        raise ClientError({"Error": {"Code": code, "Message": "no"}, "ResponseMetadata": {"HTTPStatusCode": 500}},
                          "Decrypt")

    monkeypatch.setattr(client("kms"), "decrypt", failing)
    monkeypatch.setattr(client("kms"), "encrypt", failing)
    with pytest.raises(TemporarilyUnavailable):
        secret_box.unseal(sealed, purpose="totp", subject="u_alice")
    with pytest.raises(TemporarilyUnavailable):
        secret_box.seal("x", purpose="totp", subject="u_alice")
