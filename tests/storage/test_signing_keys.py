"""The signing-key store's outcomes: records in, records out, and a cancelled key-ring transaction
reported as False (nothing written) rather than as a pynamodb error."""
from __future__ import annotations

import contextlib
import json

import pytest

from chalicelib.storage import signing_keys
from chalicelib.storage.signing_keys import SigningKey


def key(kid: str, state: str, **values) -> SigningKey:
    return SigningKey(kid=kid, alg="ES256", backend="secretsmanager", key_ref=f"ref-{kid}", public_jwk="{}",
                      state=state, created_at=100, **values)


def test_keys_written_through_a_change_read_back_as_records_from_the_items_and_the_summary(aws):
    assert signing_keys.change_keys(lambda change: change.create(key("k1", "current", activated_at=100)))

    [stored] = signing_keys.scan_keys()
    assert stored == key("k1", "current", activated_at=100)
    assert signing_keys.read_key_ring() == [stored]


def test_the_summary_record_is_the_json_summaries_were_written_with_before_records(aws):
    """Summaries already in DynamoDB hold pynamodb's to_simple_dict of each item: unset attributes left out."""
    from chalicelib.storage.models import KeyRingModel

    assert signing_keys.change_keys(lambda change: change.create(key("k1", "next")))
    record = json.loads(KeyRingModel.get(signing_keys.KEY_RING).records.as_dict()["k1"])
    assert record == {"kid": "k1", "alg": "ES256", "backend": "secretsmanager", "key_ref": "ref-k1",
                      "public_jwk": "{}", "state": "next", "created_at": 100}


def test_a_change_returns_the_key_as_it_will_be_and_the_summary_follows(aws):
    assert signing_keys.change_keys(lambda change: change.create(key("k1", "next")))
    changed = []
    assert signing_keys.change_keys(lambda change: changed.append(
        change.change(key("k1", "next"), expected_state="next", state="current", activated_at=200)))

    assert changed == [key("k1", "current", activated_at=200)]
    assert signing_keys.scan_keys() == changed == signing_keys.read_key_ring()


def test_a_key_not_in_the_expected_state_cancels_the_whole_change_and_writes_nothing(aws):
    assert signing_keys.change_keys(lambda change: change.create(key("k1", "current")))

    def promote_a_key_that_is_not_next(change):
        change.create(key("k2", "next"))
        change.change(key("k1", "current"), expected_state="next", state="retired")

    assert signing_keys.change_keys(promote_a_key_that_is_not_next) is False
    assert signing_keys.scan_keys() == [key("k1", "current")] == signing_keys.read_key_ring()


def _cancelled(*reasons):
    """A transaction whose TransactWriteItems DynamoDB cancelled for `reasons`."""
    from pynamodb.connection.base import VerboseClientError
    from pynamodb.exceptions import CancellationReason, TransactWriteError

    cause = VerboseClientError({"Error": {"Code": "TransactionCanceledException", "Message": "cancelled"}},
                               "TransactWriteItems",
                               cancellation_reasons=[CancellationReason(code=r) if r else None for r in reasons])

    @contextlib.contextmanager
    def transaction():
        yield _NoWrites()
        raise TransactWriteError("transaction cancelled", cause=cause)

    return transaction


class _NoWrites:
    def save(self, *args, **kwargs):
        pass

    update = delete = save


def test_a_transaction_conflict_with_a_concurrent_change_is_a_cancellation_too(aws, monkeypatch):
    """Every key-ring transaction writes the summary, so two at once collide: the loser is told so."""
    monkeypatch.setattr(signing_keys, "transact_write", _cancelled(None, "TransactionConflict"))

    assert signing_keys.change_keys(lambda change: change.create(key("k1", "next"))) is False


def test_a_cancellation_for_another_reason_is_raised_not_reported_as_a_lost_race(aws, monkeypatch):
    from pynamodb.exceptions import TransactWriteError

    monkeypatch.setattr(signing_keys, "transact_write", _cancelled("ValidationError", None))

    with pytest.raises(TransactWriteError):
        signing_keys.change_keys(lambda change: change.create(key("k1", "next")))


def test_the_record_has_every_attribute_of_the_item_and_no_other():
    import dataclasses

    from chalicelib.storage.models import SigningKeyModel

    assert {f.name for f in dataclasses.fields(SigningKey)} == set(SigningKeyModel.get_attributes())
