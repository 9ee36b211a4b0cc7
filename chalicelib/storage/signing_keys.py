"""Signing key records, and the key-ring item that lets a request read them all with one GetItem.

The signing_keys table holds one item per key (SigningKeyModel, the record the rotation works on)
and one summary item (KeyRingModel, key KEY_RING) mapping every kid to a copy of its record. Each
change to a key is one transaction that writes the key's item under the condition the rotation
expects (its state) AND the key's entry in the summary, so the summary always equals the items and
two concurrent rotations still cannot both promote. Requests (the current key, /jwks) read only the
summary; the rotation and the admin CLI read the items.

A deployment whose keys predate the summary has none until the rotation role's next run (every
deploy runs it, and so does the daily schedule): `ensure_key_ring` builds it from one Scan. Until
then a request falls back to that Scan, without writing (the API role cannot change the key ring).
"""
from __future__ import annotations

import json

from ..log import get_logger
from .models import KeyRingModel, SigningKeyModel, conditionally, transact_write, transaction_refused

log = get_logger("idp.keys")

#: The summary's key: never a kid, which is an RFC 7638 thumbprint (base64url, no "#").
KEY_RING = "#key-ring"


def scan_keys() -> list[SigningKeyModel]:
    """Every key item (the control plane: rotation, admin CLI); a handful, read consistently."""
    return list(SigningKeyModel.scan(SigningKeyModel.kid != KEY_RING, consistent_read=True))


def _record(key: SigningKeyModel) -> str:
    return json.dumps(key.to_simple_dict(), sort_keys=True)


def _from_records(records: dict) -> list[SigningKeyModel]:
    keys = []
    for text in records.values():
        key = SigningKeyModel()
        key.from_simple_dict(json.loads(text))
        keys.append(key)
    return keys


def read_key_ring() -> list[SigningKeyModel] | None:
    """Every key as the summary has it: one strongly consistent GetItem (a rotation is seen at once).
    None when the summary does not exist yet."""
    summary = _get_summary()
    return None if summary is None else _from_records(summary.records.as_dict())


def _get_summary() -> KeyRingModel | None:
    from pynamodb.exceptions import DoesNotExist

    try:
        return KeyRingModel.get(KEY_RING, consistent_read=True)
    except DoesNotExist:
        return None


def request_keys() -> list[SigningKeyModel]:
    """The keys a request works with: the summary, or (before the rotation role first built it) a Scan."""
    keys = read_key_ring()
    if keys is None:
        log.warning("the key ring summary is missing; reading the key items (run `keys ensure` or the rotation)")
        return scan_keys()
    return keys


def ensure_key_ring() -> None:
    """Build the summary from the items if it does not exist (once per deployment; a conditional put,
    so two builders cannot overwrite each other). Every writer calls this first: changes to keys are
    conditioned on the summary existing, so none can slip in between this Scan and the put."""
    if _get_summary() is not None:
        return
    keys = scan_keys()
    summary = KeyRingModel(KEY_RING, records={k.kid: _record(k) for k in keys})
    if conditionally(lambda: summary.save(condition=KeyRingModel.kid.does_not_exist())):
        log.info("key ring summary built", extra={"kids": sorted(k.kid for k in keys)})


class KeyRingChange:
    """The key writes of one transaction plus their summary entries, written together by `commit`
    (DynamoDB allows one action per item in a transaction, so the summary gets one update)."""

    def __init__(self, tx):
        self._tx = tx
        self._summary_actions: list = []

    def create(self, key: SigningKeyModel) -> None:
        self._tx.save(key, condition=SigningKeyModel.kid.does_not_exist())
        self._summary_actions.append(KeyRingModel.records[key.kid].set(_record(key)))

    def change(self, key: SigningKeyModel, *, expected_state: str, **values) -> None:
        """Set attributes of `key` if it is still in `expected_state`; `key` is updated in memory."""
        self._tx.update(key, actions=[getattr(SigningKeyModel, name).set(value) for name, value in values.items()],
                        condition=SigningKeyModel.state == expected_state)
        for name, value in values.items():
            setattr(key, name, value)
        self._summary_actions.append(KeyRingModel.records[key.kid].set(_record(key)))

    def delete(self, key: SigningKeyModel, *, expected_state: str) -> None:
        self._tx.delete(key, condition=SigningKeyModel.state == expected_state)
        self._summary_actions.append(KeyRingModel.records[key.kid].remove())

    def commit(self) -> None:
        if self._summary_actions:
            self._tx.update(KeyRingModel(KEY_RING), actions=self._summary_actions,
                            condition=KeyRingModel.kid.exists())


def change_keys(describe, *, transaction=transact_write) -> None:
    """Run `describe(change)` and commit it as one transaction (the summary is built first if missing).
    Raises pynamodb's TransactWriteError when a condition does not hold: nothing was written."""
    ensure_key_ring()
    with transaction() as tx:
        change = KeyRingChange(tx)
        describe(change)
        change.commit()


def change_keys_if(describe) -> bool:
    """Like change_keys, but False (nothing written) when a key was not in the expected state."""
    try:
        change_keys(describe)
    except Exception as exc:
        if transaction_refused(exc):
            return False
        raise
    return True
