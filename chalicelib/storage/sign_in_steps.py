"""Sign-ins half done: the password was right and the user's second factor is still to come.

No session exists in between. The browser holds an `idp_mfa` cookie "<sub>.<256-bit secret>"; the
sessions table holds only "mfa#<SHA-256 of the whole value>" with what the first step proved
(SignInStepModel). Carrying the subject in the cookie lets the second step read the step item, the
user and the factor it is checked against in ONE BatchGetItem (`read`), and the step is deleted in
the transaction that writes the session (storage/sign_ins.record_sign_in's `extra`: `consumed`),
so a step completes once.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Sequence

from ..hashing import new_secret, sha256_hex
from ..log import now
from .factors import Factor, from_model as factor_from_model
from .models import FactorModel, SignInStepModel, UserModel
from .reads import consistent_batch_get
from .throttles import taking_back
from .transactions import TxItem, write

STEP_PREFIX = "mfa#"
MAX_COOKIE_LENGTH = 120


@dataclass(frozen=True)
class Step:
    key: str
    sub: str
    amr: tuple[str, ...]
    auth_time: int
    request_id: str | None
    session_generation: int
    expires_at: int
    #: The upstream identity to link when the step completes (see `start`), else None.
    pending_link: dict | None = None
    #: The upstream connection of the first step, if it was made there.
    connection_id: str | None = None


def _key(cookie_value: str) -> str:
    return STEP_PREFIX + sha256_hex(cookie_value)


def _sub_of(cookie_value: str | None) -> str | None:
    """The subject a well-formed step cookie names, else None (not worth a read)."""
    if not cookie_value or len(cookie_value) > MAX_COOKIE_LENGTH or not cookie_value.isascii():
        return None
    sub, dot, secret = cookie_value.partition(".")
    return sub if dot and sub.startswith("u_") and secret else None


def start(user: UserModel, *, amr: Sequence[str], auth_time: int, request_id: str | None, ttl: int,
          take_back: Sequence[str] = (), window_seconds: int = 0, extra: Sequence[TxItem] = (),
          pending_link: dict | None = None, connection_id: str | None = None) -> str:
    """Record that the first step of a sign-in succeeded: the step item, with the take-back (-1)
    of the password attempt's throttle counters (it was no failure), in one transaction. Returns
    the cookie value (stored only as its hash). `extra`: more items written in the same
    transaction (a sign-in through an upstream: its stored tokens); transactions.Refused names those
    whose condition refused. `pending_link`: an upstream identity (connection_id, upstream_sub,
    email, sealed_tokens) that the transaction completing the step links
    (oauth/second_factor.complete_sign_in): a first step proves too little to link anything."""
    raw = f"{user.pk}.{new_secret()}"
    at = now()
    item = SignInStepModel(session_hash=_key(raw), sub=user.pk, amr=list(amr), auth_time=auth_time,
                           request_id=request_id, session_generation=user.session_generation, created_at=at,
                           expires_at=at + ttl,
                           pending_link=json.dumps(pending_link, separators=(",", ":")) if pending_link else None,
                           connection_id=connection_id)
    items = [TxItem("put", "step", lambda tx: tx.save(item, condition=SignInStepModel.session_hash.does_not_exist()))]
    if take_back:
        items.append(TxItem("update", "counters", lambda tx: taking_back(tx, take_back, window_seconds)))
    write([*items, *extra])
    return raw


def read(cookie_value: str | None, factor_ids: Sequence[str] = ()) -> tuple[Step | None, UserModel | None,
                                                                            dict[str, Factor]]:
    """(the step, its user, the user's factors `factor_ids` that exist) in one strongly consistent
    BatchGetItem. (None, None, {}) without a read when the cookie is not one of ours; the step is
    None when it is unknown, expired or names another user."""
    sub = _sub_of(cookie_value)
    if sub is None:
        return None, None, {}
    keys: list = [(SignInStepModel, _key(cookie_value)), (UserModel, sub)]
    keys += [(FactorModel, (sub, factor_id)) for factor_id in factor_ids]
    item, user, *factors = consistent_batch_get(keys)
    step = None
    if item is not None and item.sub == sub and item.expires_at > now():
        step = Step(key=item.session_hash, sub=item.sub, amr=tuple(item.amr or ()), auth_time=int(item.auth_time),
                    request_id=item.request_id, session_generation=int(item.session_generation or 0),
                    expires_at=int(item.expires_at),
                    pending_link=json.loads(item.pending_link) if item.pending_link else None,
                    connection_id=item.connection_id)
    found = {f.factor_id: factor_from_model(f) for f in factors if f is not None}
    return step, user, found


def consumed(step: Step) -> TxItem:
    """The step's deletion, on condition it is still there: part of the transaction that completes
    the sign-in, so a step completes once."""
    return TxItem("delete", "step", lambda tx: tx.delete(SignInStepModel(session_hash=step.key),
                                                         condition=SignInStepModel.session_hash.exists()))


def cookie_key(cookie_value: str | None) -> str | None:
    """The step item's key for a cookie value (None when it is not one of ours)."""
    return _key(cookie_value) if _sub_of(cookie_value) else None
