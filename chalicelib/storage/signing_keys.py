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
from dataclasses import dataclass, fields, replace

from ..log import get_logger
from .models import KeyRingModel, SigningKeyModel, cancellation_codes, conditionally, transact_write

log = get_logger("idp.keys")

#: The summary's key: never a kid, which is an RFC 7638 thumbprint (base64url, no "#").
KEY_RING = "#key-ring"


@dataclass(frozen=True)
class SigningKey:
    """Metadata of a signing key (see SigningKeyModel); the private part lives in its backend (`key_ref`).

    state: "next" (published, not yet signing) -> "current" (signing) -> "retired" (published
    until `publish_until`)."""

    kid: str
    alg: str
    backend: str
    key_ref: str
    public_jwk: str  # JSON text of the public JWK, served verbatim in /jwks
    state: str
    created_at: int
    activated_at: int | None = None
    retired_at: int | None = None
    publish_until: int | None = None


_FIELDS = tuple(f.name for f in fields(SigningKey))


def _from_item(item: SigningKeyModel) -> SigningKey:
    return SigningKey(**{name: getattr(item, name) for name in _FIELDS})


def _values(key: SigningKey) -> dict:
    """The key's attributes without the unset ones: the item's attributes, and the summary's record
    (the JSON pynamodb's to_simple_dict wrote before records had a type of their own)."""
    return {name: getattr(key, name) for name in _FIELDS if getattr(key, name) is not None}


def scan_keys() -> list[SigningKey]:
    """Every key item (the control plane: rotation, admin CLI); a handful, read consistently."""
    return [_from_item(item) for item in SigningKeyModel.scan(SigningKeyModel.kid != KEY_RING, consistent_read=True)]


def _record(key: SigningKey) -> str:
    return json.dumps(_values(key), sort_keys=True)


def _from_records(records: dict) -> list[SigningKey]:
    keys = []
    for text in records.values():
        values = json.loads(text)
        keys.append(SigningKey(**{name: values.get(name) for name in _FIELDS}))
    return keys


def read_key_ring() -> list[SigningKey] | None:
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


def request_keys() -> list[SigningKey]:
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

    def create(self, key: SigningKey) -> None:
        self._tx.save(SigningKeyModel(**_values(key)), condition=SigningKeyModel.kid.does_not_exist())
        self._summary_actions.append(KeyRingModel.records[key.kid].set(_record(key)))

    def change(self, key: SigningKey, *, expected_state: str, **values) -> SigningKey:
        """Set attributes of `key` if it is still in `expected_state`; returns the key as it will be
        once the transaction commits."""
        self._tx.update(SigningKeyModel(key.kid),
                        actions=[getattr(SigningKeyModel, name).set(value) for name, value in values.items()],
                        condition=SigningKeyModel.state == expected_state)
        changed = replace(key, **values)
        self._summary_actions.append(KeyRingModel.records[key.kid].set(_record(changed)))
        return changed

    def delete(self, key: SigningKey, *, expected_state: str) -> None:
        self._tx.delete(SigningKeyModel(key.kid), condition=SigningKeyModel.state == expected_state)
        self._summary_actions.append(KeyRingModel.records[key.kid].remove())

    def commit(self) -> None:
        if self._summary_actions:
            self._tx.update(KeyRingModel(KEY_RING), actions=self._summary_actions,
                            condition=KeyRingModel.kid.exists())


#: Why DynamoDB may cancel a key-ring transaction without anything being wrong with it: a key was not
#: in the state the change expected, or a concurrent transaction was writing the same items (every
#: key-ring transaction writes the summary, so two at once always collide).
_RACE_REASONS = {"ConditionalCheckFailed", "TransactionConflict"}


def change_keys(describe) -> bool:
    """Run `describe(change)` and commit it as one transaction (the summary is built first if missing).
    False when DynamoDB cancelled it because another change got there first (see _RACE_REASONS):
    nothing was written. Any other failure raises."""
    from pynamodb.exceptions import TransactWriteError

    ensure_key_ring()
    try:
        with transact_write() as tx:
            change = KeyRingChange(tx)
            describe(change)
            change.commit()
    except TransactWriteError as exc:
        if _RACE_REASONS.intersection(cancellation_codes(exc)):
            return False
        raise
    return True
