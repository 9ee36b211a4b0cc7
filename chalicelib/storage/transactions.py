"""Write transactions assembled from items that several storage modules contribute.

A sign-in that completes with a second factor writes, in one TransactWriteItems, the session
(storage/sign_ins.py) and the factor's single use (storage/factors.py: the TOTP time step, the
recovery code, the passkey's counter, the WebAuthn challenge). Each module describes its items as
`TxItem`s; `write` runs them and names the items whose condition refused the whole.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from ..errors import ItemsRefused

from .models import cancellation_codes, retrying_conflicts, transact_write

#: The order pynamodb sends a transaction's items in: DynamoDB's cancellation reasons follow it.
ORDER = ("check", "delete", "put", "update")
CONFLICT_RETRIES = 3


@dataclass(frozen=True)
class TxItem:
    """One item of a write transaction: `add(tx)` adds it to a pynamodb TransactWrite."""

    kind: str  # one of ORDER
    #: Names the item when its condition refuses the transaction ("totp_step", "challenge", ...).
    label: str
    add: Callable


#: A transaction was cancelled by the conditions of these items (`.labels`); nothing was written.
Refused = ItemsRefused


def ordered(items: Sequence[TxItem]) -> list[TxItem]:
    """`items` in the order pynamodb sends them (stable within a kind)."""
    return sorted(items, key=lambda item: ORDER.index(item.kind))


def refused_labels(items: Sequence[TxItem], exc: Exception) -> frozenset[str]:
    """The labels of the items (as sent: `ordered`) whose condition cancelled the transaction."""
    return frozenset(item.label for item, code in zip(ordered(items), cancellation_codes(exc))
                     if code == "ConditionalCheckFailed")


def write(items: Sequence[TxItem]) -> None:
    """Write `items` in one TransactWriteItems (retried while DynamoDB reports a conflict with a
    concurrent transaction). Raises Refused naming the items whose condition failed; any other
    failure (throttling, network) raises as is."""
    from pynamodb.exceptions import TransactWriteError

    sent = ordered(items)

    def run():
        with transact_write() as tx:
            for item in sent:
                item.add(tx)

    try:
        retrying_conflicts(run, CONFLICT_RETRIES)
    except TransactWriteError as exc:
        labels = refused_labels(sent, exc)
        if labels:
            raise Refused(labels) from None
        raise
