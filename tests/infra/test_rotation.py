"""Production key rotation: the daily schedule's step (chalicelib/keys/rotation.py), which the admin
CLI shares, its settings, and how the deployed backends create keys."""
from __future__ import annotations

import json
import threading

import pytest

from chalicelib.config import ConfigError, load_settings
from chalicelib.keys import keyring
from chalicelib.keys.rotation import rotate_keys
from chalicelib.log import now
from tests.keys.test_keyring import summary_matches_items

DAY = 86400
EVENT = {"version": "0", "id": "1", "detail-type": "Scheduled Event", "source": "aws.events", "account": "1",
         "time": "2026-01-01T00:00:00Z", "region": "us-east-1", "resources": [], "detail": {}}


def states():
    return sorted(k.state for k in keyring.all_keys())


def test_the_schedule_bootstraps_an_empty_key_ring_and_does_not_rotate_a_fresh_key(aws):
    from chalicelib.blueprints.rotation import rotate_signing_keys

    result = rotate_signing_keys(EVENT, None)

    assert result["outcome"] == "not_due"
    assert states() == ["current", "next"]
    assert result["current"] == next(k.kid for k in keyring.all_keys() if k.state == "current")


def test_the_schedule_rotates_once_the_current_key_is_older_than_the_interval(keys):
    current = next(k for k in keyring.all_keys() if k.state == "current")
    nxt = next(k for k in keyring.all_keys() if k.state == "next")
    interval = 30 * DAY

    assert rotate_keys(when_due=True, at=current.activated_at + interval - 1).outcome == "not_due"
    result = rotate_keys(when_due=True, at=current.activated_at + interval)

    assert (result.outcome, result.current.kid) == ("rotated", nxt.kid)
    assert {k.kid: k.state for k in keyring.all_keys()}[current.kid] == "retired"
    assert states() == ["current", "next", "retired"]


def test_the_schedule_waits_while_the_next_key_may_be_unknown_to_verifiers(keys):
    # The current key is old, but the next one was published just now (e.g. after a forced rotation).
    keyring.rotate(force=True, at=now() - 40 * DAY)
    before = {k.kid: k.state for k in keyring.all_keys()}

    result = rotate_keys(when_due=True)

    assert result.outcome == "waiting" and "JWKS_MAX_AGE" in result.detail
    assert {k.kid: k.state for k in keyring.all_keys()} == before


def test_the_schedule_prunes_retired_keys_after_key_retire_after_even_when_not_rotating(keys):
    old = next(k for k in keyring.all_keys() if k.state == "current")
    rotated_at = now() + 31 * DAY
    rotate_keys(when_due=True, at=rotated_at)

    assert rotate_keys(when_due=True, at=rotated_at + DAY - 1).pruned == ()  # KEY_RETIRE_AFTER is 86400
    result = rotate_keys(when_due=True, at=rotated_at + DAY)

    assert (result.outcome, result.pruned) == ("not_due", (old.kid,))
    assert states() == ["current", "next"]


def test_the_schedule_is_idempotent(keys):
    at = now() + 31 * DAY
    first = rotate_keys(when_due=True, at=at)
    again = rotate_keys(when_due=True, at=at)

    assert (first.outcome, again.outcome) == ("rotated", "not_due")
    assert again.current.kid == first.current.kid
    assert states() == ["current", "next", "retired"]


def test_the_schedule_leaves_kms_keys_to_the_operator(aws, monkeypatch):
    from chalicelib.blueprints.rotation import rotate_signing_keys
    from tests.conftest import reset_process_state

    monkeypatch.setenv("KEY_BACKEND", "kms")
    reset_process_state(endpoint_changed=False)

    assert rotate_signing_keys(EVENT, None) == {"outcome": "skipped", "reason": "KEY_BACKEND=kms"}
    assert keyring.all_keys() == []


def test_the_schedule_creates_and_rotates_envelope_keys(aws, monkeypatch):
    """kms-envelope keys need no kms:CreateKey: the rotation function makes them itself."""
    from chalicelib.blueprints.rotation import rotate_signing_keys
    from tests.conftest import select_key_backend

    select_key_backend(monkeypatch, "kms-envelope")
    assert rotate_signing_keys(EVENT, None)["outcome"] == "not_due"
    assert {k.backend for k in keyring.all_keys()} == {"kms-envelope"} and states() == ["current", "next"]
    assert rotate_keys(when_due=True, at=now() + 31 * DAY).outcome == "rotated"
    assert states() == ["current", "next", "retired"]


def test_the_admin_cli_rotates_now_through_the_same_step(keys, monkeypatch):
    from chalicelib.keys import rotation
    from tools.admin import main

    calls = []
    original = rotation.rotate_keys
    monkeypatch.setattr(rotation, "rotate_keys", lambda **kw: calls.append(kw) or original(**kw))
    nxt = next(k for k in keyring.all_keys() if k.state == "next")

    assert main(["keys", "rotate", "--force"], environ={}) == 0
    assert calls == [{"force": True}]
    assert next(k for k in keyring.all_keys() if k.state == "current").kid == nxt.kid


@pytest.mark.integration
def test_two_rotations_racing_against_the_moto_server_promote_exactly_once(aws_server, monkeypatch):
    from chalicelib.aws import client
    from chalicelib.storage.models import SigningKeyModel

    keyring.ensure_keys()
    nxt = next(k for k in keyring.all_keys() if k.state == "next")
    SigningKeyModel(nxt.kid).update(actions=[SigningKeyModel.created_at.set(now() - 3600)])  # published an hour ago, as usual
    # Both runs read the key ring and create their spare next key before either commits its promotion.
    barrier = threading.Barrier(2, timeout=30)
    real_create_key = keyring.create_key

    def create_spare_together(state, **kwargs):
        created = real_create_key(state, **kwargs)
        barrier.wait()
        return created

    monkeypatch.setattr(keyring, "create_key", create_spare_together)
    at = now() + 31 * DAY
    results = [None, None]

    def run(i):
        results[i] = rotate_keys(when_due=True, at=at)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert sorted(r.outcome for r in results) == ["lost_race", "rotated"]
    keys = keyring.all_keys()
    assert sorted(k.state for k in keys) == ["current", "next", "retired"], "the loser's spare key is gone"
    assert next(k for k in keys if k.state == "current").kid == nxt.kid
    secrets = client("secretsmanager").list_secrets(IncludePlannedDeletion=False)["SecretList"]
    # The bootstrap also made the DPoP nonce key's secret (chalicelib/oauth/dpop_binding.py), once.
    assert sorted(s["Name"] for s in secrets if "/signing-keys/" in s["Name"]) == sorted(k.key_ref for k in keys)
    assert [s["Name"] for s in secrets if "/signing-keys/" not in s["Name"]] == ["idp/test/dpop-nonce"]
    assert summary_matches_items(), "the summary follows the winner and the loser's cleanup"


def test_rotation_promotes_the_next_key_published_longest(keys):
    from chalicelib.storage.models import SigningKeyModel

    older = next(k for k in keyring.all_keys() if k.state == "next")
    SigningKeyModel(older.kid).update(actions=[SigningKeyModel.created_at.set(now() - DAY)])
    newer = keyring.create_key("next")  # e.g. another run's spare, published a moment ago

    promoted = keyring.rotate(force=True)

    assert promoted.kid == older.kid
    assert {k.kid: k.state for k in keyring.all_keys()}[newer.kid] == "next"


def test_a_losing_rotation_keeps_its_spare_key_when_a_concurrent_forced_run_promoted_it(keys, monkeypatch):
    from chalicelib.aws import client

    current = next(k for k in keyring.all_keys() if k.state == "current")
    real_create_key = keyring.create_key

    def forced_run_promotes_the_spare_first(state, **kwargs):
        """Between this rotation creating its spare and committing its promotion."""
        from chalicelib.storage.signing_keys import change_keys

        spare = real_create_key(state, **kwargs)

        def promote(change):  # the concurrent run's transaction: the key items and the summary
            change.change(spare, expected_state="next", state="current")
            change.change(current, expected_state="current", state="retired", publish_until=now() + DAY)

        assert change_keys(promote)
        forced_run_promotes_the_spare_first.spare = spare
        return spare

    monkeypatch.setattr(keyring, "create_key", forced_run_promotes_the_spare_first)
    with pytest.raises(Exception, match="[Tt]ransaction"):
        keyring.rotate(force=True)

    spare = forced_run_promotes_the_spare_first.spare
    assert {k.kid: k.state for k in keyring.all_keys()}[spare.kid] == "current"
    assert summary_matches_items()
    assert "DeletedDate" not in client("secretsmanager").describe_secret(SecretId=spare.key_ref)


# settings

BASE = {"STAGE": "prod", "ISSUER": "https://login.example.com"}


def test_key_retire_after_must_cover_the_longest_token_signed_before_containers_see_a_rotation():
    assert load_settings({**BASE, "KEY_RETIRE_AFTER": "660"}).key_retire_after == 660  # 60 s cache + 600 s tokens
    with pytest.raises(ConfigError, match="KEY_RETIRE_AFTER"):
        load_settings({**BASE, "KEY_RETIRE_AFTER": "659"})
    with pytest.raises(ConfigError, match="KEY_RETIRE_AFTER"):
        load_settings({**BASE, "ID_TOKEN_TTL": "86400"})


def test_the_rotation_interval_defaults_to_30_days_and_cannot_undercut_the_jwks_cache():
    assert load_settings(BASE).key_rotation_interval == 30 * DAY
    with pytest.raises(ConfigError, match="KEY_ROTATION_INTERVAL"):
        load_settings({**BASE, "KEY_ROTATION_INTERVAL": "299"})


# how the deployed stage's backends create keys

def test_signing_key_secrets_are_encrypted_with_the_stage_kms_key(aws, monkeypatch):
    from chalicelib.aws import client
    from tests.conftest import reset_process_state

    monkeypatch.setenv("SECRETS_KMS_KEY_ID", "alias/serverless-idp-test-secrets")
    reset_process_state(endpoint_changed=False)

    key = keyring.create_key("next")

    assert client("secretsmanager").describe_secret(SecretId=key.key_ref)["KmsKeyId"] == \
        "alias/serverless-idp-test-secrets"


def test_kms_signing_keys_can_be_used_only_by_the_signer_role(aws, monkeypatch):
    from chalicelib.aws import client
    from tests.conftest import reset_process_state

    monkeypatch.setenv("KEY_BACKEND", "kms")
    monkeypatch.setenv("KMS_SIGNER_ROLE_NAME", "serverless-idp-prod-api")
    reset_process_state(endpoint_changed=False)

    key = keyring.create_key("current")

    policy = json.loads(client("kms").get_key_policy(KeyId=key.key_ref, PolicyName="default")["Policy"])
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    assert by_sid["SignerRoleSigns"]["Principal"] == {"AWS": "arn:aws:iam::123456789012:role/serverless-idp-prod-api"}
    assert by_sid["SignerRoleSigns"]["Action"] == ["kms:Sign", "kms:GetPublicKey", "kms:DescribeKey"]
    assert by_sid["AccountAdministers"]["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}
    assert "kms:Sign" not in by_sid["AccountAdministers"]["Action"]
    assert not any("*" in a for s in policy["Statement"] for a in s["Action"])
