"""Fixed-window counters in DynamoDB: sign-in attempts, registrations, client document fetches.

A counter's key names what is counted and the window (chalicelib/oauth/throttle.window_key), e.g.
"ip#203.0.113.9#1795459"; items expire through the table's TTL two windows later. Counting is
atomic (an ADD), so parallel requests cannot all slip under a limit by reading the same count.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..log import now
from .models import ThrottleModel, cancellation_codes, retrying_conflicts, transact_write

#: Two attempts at once on one counter (say two guesses from one address) make DynamoDB cancel one
#: transaction rather than queue it: it is tried again a few times.
CONFLICT_RETRIES = 3


@dataclass(frozen=True)
class Counter:
    """One counter an attempt adds to: only while it is below `limit`, or always when None."""

    key: str
    limit: int | None = None


def count(key: str) -> int:
    try:
        return ThrottleModel.get(key, consistent_read=True).failures
    except ThrottleModel.DoesNotExist:
        return 0


def _adding(amount: int, window_seconds: int) -> list:
    return [ThrottleModel.failures.add(amount), ThrottleModel.expires_at.set(now() + 2 * window_seconds)]


def add(key: str, window_seconds: int, amount: int = 1) -> int:
    """Add atomically (a negative amount takes back); returns the new count."""
    item = ThrottleModel(pk=key)
    item.update(actions=_adding(amount, window_seconds))
    return item.failures


def add_to_all(counters: Sequence[Counter], window_seconds: int) -> frozenset[str]:
    """Add 1 to every counter, all or none, in one TransactWriteItems. Returns the keys that
    stopped it: counters at their limit and, should DynamoDB keep cancelling for concurrent
    writers after the retries, counters still contended. Empty: every counter was counted.

    Atomic across counters, so a refused attempt counts nowhere, and none can pass one limit while
    being refused by another. A counter at its limit stays at its limit."""
    from pynamodb.exceptions import TransactWriteError

    def write():
        with transact_write() as tx:
            for counter in counters:
                below = (None if counter.limit is None else
                         ThrottleModel.failures.does_not_exist() | (ThrottleModel.failures < counter.limit))
                tx.update(ThrottleModel(pk=counter.key), actions=_adding(1, window_seconds), condition=below)

    try:
        retrying_conflicts(write, CONFLICT_RETRIES)
    except TransactWriteError as exc:
        # Only updates, sent in the order given: the reasons line up with `counters`.
        stopped = frozenset(c.key for c, reason in zip(counters, cancellation_codes(exc))
                            if reason in ("ConditionalCheckFailed", "TransactionConflict"))
        if not stopped:  # throttled by DynamoDB, a timeout: not an answer about the counters
            raise
        return stopped
    return frozenset()


def taking_back(tx, keys: Sequence[str], window_seconds: int) -> None:
    """Add to transaction `tx` the take-back (-1) of each counter: a sign-in that succeeded is
    not a failure."""
    for key in keys:
        tx.update(ThrottleModel(pk=key), actions=_adding(-1, window_seconds))


def take_back(keys: Sequence[str], window_seconds: int) -> bool:
    """Take back (-1) each counter in one TransactWriteItems: an attempt that a fault cut short
    (before its sign-in was recorded) is no failure. Only on that failure path. True when written."""
    with transact_write() as tx:
        taking_back(tx, keys, window_seconds)
    return True
