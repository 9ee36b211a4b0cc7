"""What a password sign-in reads and writes, in as few round trips as its dependencies allow
(what it all means is decided in chalicelib/oauth/login.py).

Before the password check: `read_attempt` reads the typed email's claim and the authorization
request together (one BatchGetItem); the attempt is counted (storage/throttles.add_to_all); the
user is read by the claim's subject (users.get_user), or, past a limit with a device cookie, the
user and the device record together (`read_user_and_device`, one BatchGetItem). After it,
`record_sign_in` writes everything a successful sign-in changes in one TransactWriteItems.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Sequence

from ..hashing import new_secret, sha256_hex
from ..log import now
from . import authorization_requests, sessions
from .authorization_requests import PendingRequest
from .devices import new_device, unexpired
from .factors import Factor, from_model as factor_from_model
from .models import (
    AuthorizationRequestModel,
    EmailClaimModel,
    FactorModel,
    KnownDeviceModel,
    SessionModel,
    UserModel,
    cancellation_codes,
)
from .reads import consistent_batch_get
from .sessions import Session
from .throttles import taking_back
from .transactions import Refused, TxItem, ordered, write
from .users import claim_key, claimed_sub



def read_attempt(email: str, request_id: str | None) -> tuple[str, PendingRequest | None]:
    """(the subject to read for `email`, users.claimed_sub; the pending authorization request
    `request_id`, or None when it is unknown, expired or finished). One strongly consistent
    BatchGetItem whether or not the email has an account (the claim of whatever was typed is read).
    Without a well-formed `request_id` only the claim is read."""
    keys: list = [(EmailClaimModel, claim_key(email))]
    if request_id and len(request_id) <= authorization_requests.MAX_REQUEST_ID_LENGTH:
        keys.append((AuthorizationRequestModel, request_id))
    claim, *request = consistent_batch_get(keys)
    # DynamoDB's TTL deletes late (moto never): from_model checks the expiry.
    return claimed_sub(claim), authorization_requests.from_model(request[0] if request else None)


def read_user_and_device(sub: str, device_key: str) -> tuple[UserModel | None, KnownDeviceModel | None]:
    """The user `sub` and the unexpired known-device record `device_key` (devices.device_key), each
    or None: one strongly consistent BatchGetItem."""
    user, device = consistent_batch_get([(UserModel, sub), (KnownDeviceModel, device_key)])
    return user, unexpired(device)


def read_passkey_attempt(sub: str, factor_id: str, request_id: str | None) -> tuple[
        UserModel | None, Factor | None, PendingRequest | None]:
    """What a sign-in with a passkey alone needs, in ONE strongly consistent BatchGetItem: the user
    its assertion names (userHandle), that user's passkey `factor_id` and the pending authorization
    request `request_id` (None: the account page's own sign-in, or not well-formed), each or None."""
    keys: list = [(UserModel, sub), (FactorModel, (sub, factor_id))]
    if request_id and len(request_id) <= authorization_requests.MAX_REQUEST_ID_LENGTH:
        keys.append((AuthorizationRequestModel, request_id))
    user, factor, *request = consistent_batch_get(keys)
    return user, factor_from_model(factor), authorization_requests.from_model(request[0] if request else None)


@dataclass(frozen=True)
class SignedIn:
    """A successful sign-in, written."""

    #: The new session's raw cookie value (stored only as its hash) and record.
    session_cookie: str
    session: Session
    #: The new known-device cookie value (stored only as its hash).
    device_cookie: str
    #: The authorization request had been finished meanwhile (in another tab): the sign-in was
    #: written without it.
    request_finished: bool = False


def record_sign_in(user: UserModel, *, amr: Sequence[str], user_claims: dict, session_ttl: int, device_ttl: int,
                   request_id: str | None, mark_request: bool, take_back: Sequence[str],
                   window_seconds: int, auth_time: int | None = None, factors: Sequence[str] = (),
                   generation: int | None = None, extra: Sequence[TxItem] = (),
                   connection_id: str | None = None) -> SignedIn:
    """Write a successful sign-in in one TransactWriteItems: a new session under a new cookie
    value (session fixation defence: a value planted before sign-in never becomes a session); this
    browser as a new known device of the user; the take-back (-1) of the counters in `take_back`;
    and, on authorization request `request_id`, with `mark_request` (prompt=login, max_age=0), the session
    that signed in for it, else only a check that it still exists. `user_claims` (the user's
    ID-token claims) and `factors` (the kinds of second factor the user has) are kept with the
    session. Without `request_id` (a sign-in that serves no authorization request: an accepted
    invitation, accounts/invitations.py, or the account page's own sign-in) no request is checked.

    `auth_time`: when the user authenticated, if earlier than now (a sign-up's password, typed
    before its email was confirmed: OIDC `auth_time` and `max_age` must not count from later).
    `extra`: more items the sign-in depends on (storage/transactions.TxItem), written in the same
    transaction: the second step's deletion and its factor's single use (storage/sign_in_steps.py,
    storage/factors.py). When one of their conditions refuses, nothing is written and
    transactions.Refused names them.

    Session and device record the user's `session_generation` as read before the password check
    (or `generation`, as the first step of a two-step sign-in recorded it): if the user is signed
    out everywhere meanwhile, both are born dead rather than surviving it.

    A request finished meanwhile by another tab cancels the transaction; the sign-in is then
    written without it (`request_finished`). Should concurrent attempts keep conflicting on a
    counter, the sign-in is written without the take-backs: the success then counts as one failure
    of this window, rather than failing the sign-in."""
    from pynamodb.exceptions import TransactWriteError

    raw = new_secret()
    at = now()
    generation = user.session_generation if generation is None else generation
    session = SessionModel(session_hash=sha256_hex(raw), sub=user.pk, auth_time=min(auth_time or at, at),
                           amr=list(amr), created_at=at,
                           expires_at=at + session_ttl, session_generation=generation,
                           user_claims=json.dumps(user_claims, separators=(",", ":")),
                           factors=sorted(factors) or None, connection_id=connection_id)
    device_cookie, device = new_device(user.pk, device_ttl, generation)
    with_request, with_take_backs = request_id is not None, bool(take_back)
    extra_labels = {item.label for item in extra}

    def items() -> list[TxItem]:
        parts = [TxItem("put", "device", lambda tx: tx.save(device, condition=KnownDeviceModel.session_hash.does_not_exist())),
                 TxItem("put", "session", lambda tx: tx.save(session, condition=SessionModel.session_hash.does_not_exist()))]
        if with_request and not mark_request:
            parts.append(TxItem("check", "request", lambda tx: tx.condition_check(
                AuthorizationRequestModel, request_id, condition=AuthorizationRequestModel.request_id.exists())))
        if with_request and mark_request:
            parts.append(TxItem("update", "request", lambda tx: tx.update(
                AuthorizationRequestModel(request_id=request_id),
                actions=[AuthorizationRequestModel.login_session_hash.set(session.session_hash)],
                condition=AuthorizationRequestModel.request_id.exists())))
        if with_take_backs:
            parts += [TxItem("update", "counter", lambda tx, key=key: taking_back(tx, [key], window_seconds))
                      for key in take_back]
        return ordered([*parts, *extra])

    for _ in range(3):  # at most: as asked, without the request, without the take-backs
        sent = items()
        try:
            write(sent)
        except Refused as refused:
            if refused.labels & extra_labels:
                raise Refused(refused.labels & extra_labels) from None
            if "request" not in refused.labels:
                raise
            with_request = False
            continue
        except TransactWriteError as exc:  # not a condition: still contended after the retries
            contended = {item.label for item, reason in zip(sent, cancellation_codes(exc))
                         if reason == "TransactionConflict"}
            if contended != {"counter"}:
                raise
            with_take_backs = False
            continue
        return SignedIn(raw, sessions.from_model(session), device_cookie,
                        request_finished=request_id is not None and not with_request)
    raise AssertionError("unreachable: each retry drops one part")
