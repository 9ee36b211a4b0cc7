"""Refresh tokens (RFC 6749 §6, OAuth 2.1 §4.3.1, RFC 9700 §4.14.2): rotated on every use, with
reuse detection that revokes the whole family.

A token is "<grant_id>.<256-bit secret>": opaque to clients, stored only as its SHA-256, and it
names its family so that rotation is ONE DynamoDB transaction with no read first:
  1. mark the presented token consumed (condition: exists, unconsumed, unexpired, this client's),
  2. touch the grant (condition: active and within its absolute lifetime),
  3. put the successor (condition: does not exist).
Either all happen or none does, so concurrent refreshes of one token cannot fork the family.

The successor is HMAC(presented secret, "successor"): a retry of the same refresh within
REFRESH_GRACE_SECONDS can be answered with the same successor without storing it. Outside the
grace window (default 0), presenting a consumed token is reuse: the family is revoked.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time

from pynamodb.exceptions import TransactWriteError

from ..config import Settings
from ..errors import InvalidGrant
from ..hashing import new_secret, sha256_hex
from ..log import get_logger, now
from ..storage.grants import active_grant, revoke_grant
from ..storage.models import GrantModel, RefreshTokenModel, transact_write

log = get_logger("idp.refresh")

GENERIC = "the refresh token is invalid, expired or revoked"
#: Transaction conflicts (another request touching the same items) are retried a few times.
CONFLICT_RETRIES = 4


_TOKEN_SYNTAX = re.compile(r"[A-Za-z0-9_-]{1,64}\.[A-Za-z0-9_-]{1,128}")


def _split(token: str) -> tuple[str, str]:
    """`<grant_id>.<secret>`, both base64url: anything else is refused before any lookup."""
    if not _TOKEN_SYNTAX.fullmatch(token or ""):
        raise InvalidGrant(GENERIC, detail="malformed refresh token")
    grant_id, _, secret = token.partition(".")
    return grant_id, secret


split = _split


def successor_of(token: str) -> str:
    grant_id, secret = _split(token)
    mac = hmac.new(secret.encode("ascii"), b"refresh-token-successor", hashlib.sha256).digest()
    return f"{grant_id}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode('ascii')}"


def mint(settings: Settings, grant_id: str, client_id: str) -> str:
    token = f"{grant_id}.{new_secret()}"
    at = now()
    RefreshTokenModel(token_hash=sha256_hex(token), grant_id=grant_id, client_id=client_id, created_at=at,
                      expires_at=at + settings.refresh_token_idle_ttl).save(
        condition=RefreshTokenModel.token_hash.does_not_exist())
    return token


def rotate(settings: Settings, token: str, client_id: str) -> tuple[GrantModel, str]:
    """Consume `token` and return (its grant, the successor token). Raises InvalidGrant."""
    grant_id, _ = _split(token)
    for attempt in range(CONFLICT_RETRIES):
        try:
            return _rotate_once(settings, token, grant_id, client_id)
        except TransactWriteError as exc:
            reasons = [r.code if r else None for r in exc.cancellation_reasons]
            if "TransactionConflict" in reasons and attempt + 1 < CONFLICT_RETRIES:
                time.sleep(0.02 * (attempt + 1))
                continue
            if exc.cause_response_code != "TransactionCanceledException":
                raise
            return _after_failed_rotation(settings, token, grant_id, client_id, reasons)
    raise AssertionError("unreachable")


def _rotate_once(settings: Settings, token: str, grant_id: str, client_id: str) -> tuple[GrantModel, str]:
    at = now()
    successor = successor_of(token)
    presented = RefreshTokenModel(token_hash=sha256_hex(token))
    grant = GrantModel(grant_id=grant_id)
    with transact_write() as tx:
        tx.update(presented,
                  actions=[RefreshTokenModel.consumed_at.set(at),
                           RefreshTokenModel.successor_hash.set(sha256_hex(successor))],
                  condition=(RefreshTokenModel.token_hash.exists()
                             & RefreshTokenModel.consumed_at.does_not_exist()
                             & (RefreshTokenModel.expires_at > at)
                             & (RefreshTokenModel.client_id == client_id)
                             & (RefreshTokenModel.grant_id == grant_id)))
        tx.update(grant, actions=[GrantModel.last_used_at.set(at)],
                  condition=(GrantModel.status == "active") & (GrantModel.expires_at > at)
                  & (GrantModel.client_id == client_id))
        tx.save(RefreshTokenModel(token_hash=sha256_hex(successor), grant_id=grant_id, client_id=client_id,
                                  created_at=at, expires_at=at + settings.refresh_token_idle_ttl),
                condition=RefreshTokenModel.token_hash.does_not_exist())
    return GrantModel.get(grant_id, consistent_read=True), successor


def _after_failed_rotation(settings: Settings, token: str, grant_id: str, client_id: str, reasons):
    """Work out why the transaction was refused; revoke the family on reuse. Returns the grace
    successor or raises InvalidGrant."""
    token_reason, grant_reason = (reasons + [None, None])[:2]
    if grant_reason == "ConditionalCheckFailed" and token_reason is None:
        raise InvalidGrant(GENERIC, detail=f"grant {grant_id} revoked, expired or not this client's")
    try:
        record = RefreshTokenModel.get(sha256_hex(token), consistent_read=True)
    except RefreshTokenModel.DoesNotExist:
        raise InvalidGrant(GENERIC, detail="unknown refresh token") from None
    if record.client_id != client_id or record.grant_id != grant_id:
        raise InvalidGrant(GENERIC, detail=f"refresh token of {record.client_id} presented by {client_id}")
    if record.consumed_at is None:
        raise InvalidGrant(GENERIC, detail="refresh token expired or family inactive")
    successor = successor_of(token)
    within_grace = 0 < settings.refresh_grace_seconds and now() - record.consumed_at <= settings.refresh_grace_seconds
    if within_grace and record.successor_hash == sha256_hex(successor):
        # A retry is only a retry while the successor itself is unused; otherwise it is reuse.
        following = find(successor)
        grant = active_grant(grant_id)
        if following is not None and following.consumed_at is None and grant is not None:
            log.info("refresh retried within grace window", extra={"grant_id": grant_id})
            return grant, successor
    revoke_grant(grant_id, reason="refresh token reuse")
    raise InvalidGrant(GENERIC, detail="refresh token reused; family revoked")


def find(token: str) -> RefreshTokenModel | None:
    try:
        _split(token)
        return RefreshTokenModel.get(sha256_hex(token), consistent_read=True)
    except (InvalidGrant, RefreshTokenModel.DoesNotExist):
        return None
