"""Refresh tokens (RFC 6749 §6, OAuth 2.1 §4.3.1, RFC 9700 §4.14.2): rotated on every use, with
reuse detection that revokes the whole family.

A token is "<grant_id>.<256-bit secret>": opaque to clients, stored only as its SHA-256, and it
names its family so that rotation is ONE DynamoDB transaction with no read first:
  1. mark the presented token consumed (condition: exists, unconsumed, unexpired, this client's),
  2. touch the grant (condition: active and within its absolute lifetime),
  3. put the successor (condition: does not exist).
Either all happen or none does, so concurrent refreshes of one token cannot fork the family.

The successor is random, like the first token: it must not be a function of anything a client
holds. (It once was HMAC(presented secret, label): whoever kept one old token computed the whole
chain offline, and since presenting a token that does not exist revokes nothing, walked it until
one worked, the family's current token, without ever presenting a consumed one.) A retry of the
same refresh within REFRESH_GRACE_SECONDS (RFC 9700 §4.14.2 allows it for lost responses) must
still get the same successor, so the successor's record carries it sealed under a key derived from
the presented token (chalicelib/sealing.py: HKDF-SHA256 + AES-GCM):
- reading the table gives sha256(token), not the token, so no seal opens;
- holding a token without the table gives nothing to open;
- the seal is removed when the successor is itself consumed, i.e. exactly when a retry stops
  being one, so even the table plus an old token opens nothing but the current link;
- no server secret to provision, rotate or fetch, and no extra DynamoDB call: the seal is written
  by the rotation transaction and read on the retry path, which reads the successor anyway.
(A server-held HMAC key would also stop the offline walk, but adds a secret whose leak forges
every chain, and a Secrets Manager read per container.) The seal is written only while the grace
window is on; successors written before it existed have none, so their predecessors get no
grace retry. Outside the grace window (default 0), presenting a consumed token is reuse: the
family is revoked.

A well-formed token of a live family that matches no stored token is never issued by us: it is
logged at warning and counted per family (throttle counter "refresh-unknown#<grant_id>"), but
the family is not revoked for it, since grant_id travels in access tokens (claim `grant_id`) and
anyone who saw one could then revoke the family at will.
"""
from __future__ import annotations

import re

from pynamodb.exceptions import TransactWriteError

from .. import sealing
from ..config import Settings
from ..errors import InvalidGrant
from ..hashing import matches_hash, new_secret, sha256_hex
from ..log import get_logger, now
from ..storage.grants import active_grant, revoke_grant
from ..storage.models import GrantModel, RefreshTokenModel, error_code, retrying_conflicts, transact_write
from . import throttle

log = get_logger("idp.refresh")

GENERIC = "the refresh token is invalid, expired or revoked"
#: Transaction conflicts (another request touching the same items) are retried a few times.
CONFLICT_RETRIES = 4
#: HKDF info of the key a successor is sealed under; used for nothing else.
RETRY_SEAL_PURPOSE = b"idp refresh-token retry seal v1"
#: Unrecognised tokens of a live family are counted per family in windows of this many seconds.
UNRECOGNISED_WINDOW = 3600


_TOKEN_SYNTAX = re.compile(r"[A-Za-z0-9_-]{1,64}\.[A-Za-z0-9_-]{1,128}")


def _split(token: str) -> tuple[str, str]:
    """`<grant_id>.<secret>`, both base64url: anything else is refused before any lookup."""
    if not _TOKEN_SYNTAX.fullmatch(token or ""):
        raise InvalidGrant(GENERIC, detail="malformed refresh token")
    grant_id, _, secret = token.partition(".")
    return grant_id, secret


split = _split


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
    try:
        return retrying_conflicts(lambda: _rotate_once(settings, token, grant_id, client_id), CONFLICT_RETRIES)
    except TransactWriteError as exc:
        if error_code(exc) != "TransactionCanceledException":
            raise
        return _after_failed_rotation(settings, token, grant_id, client_id)


def _rotate_once(settings: Settings, token: str, grant_id: str, client_id: str) -> tuple[GrantModel, str]:
    at = now()
    successor = f"{grant_id}.{new_secret()}"
    successor_hash = sha256_hex(successor)
    retry_seal = (sealing.seal(token, successor, purpose=RETRY_SEAL_PURPOSE, bound_to=successor_hash)
                  if settings.refresh_grace_seconds > 0 else None)
    presented = RefreshTokenModel(token_hash=sha256_hex(token))
    grant = GrantModel(grant_id=grant_id)
    with transact_write() as tx:
        tx.update(presented,
                  actions=[RefreshTokenModel.consumed_at.set(at),
                           RefreshTokenModel.successor_hash.set(successor_hash),
                           # Consumed: a retry of its predecessor is reuse from now on, and the
                           # seal would only help someone holding the table and an old token.
                           RefreshTokenModel.retry_seal.remove()],
                  condition=(RefreshTokenModel.token_hash.exists()
                             & RefreshTokenModel.consumed_at.does_not_exist()
                             & (RefreshTokenModel.expires_at > at)
                             & (RefreshTokenModel.client_id == client_id)
                             & (RefreshTokenModel.grant_id == grant_id)))
        tx.update(grant, actions=[GrantModel.last_used_at.set(at)],
                  condition=(GrantModel.status == "active") & (GrantModel.expires_at > at)
                  & (GrantModel.client_id == client_id))
        tx.save(RefreshTokenModel(token_hash=successor_hash, grant_id=grant_id, client_id=client_id,
                                  created_at=at, expires_at=at + settings.refresh_token_idle_ttl,
                                  retry_seal=retry_seal),
                condition=RefreshTokenModel.token_hash.does_not_exist())
    return GrantModel.get(grant_id, consistent_read=True), successor


def _after_failed_rotation(settings: Settings, token: str, grant_id: str, client_id: str):
    """Work out why the transaction was refused; revoke the family on reuse. Returns the grace
    successor or raises InvalidGrant.

    The presented token's record says why, so the cancellation reasons are not read: their order
    is the SDK's (pynamodb sends puts before updates), not the order the items were added in."""
    try:
        record = RefreshTokenModel.get(sha256_hex(token), consistent_read=True)
    except RefreshTokenModel.DoesNotExist:
        _report_unrecognised(settings, grant_id, client_id)
        raise InvalidGrant(GENERIC, detail="unknown refresh token") from None
    if record.client_id != client_id or record.grant_id != grant_id:
        raise InvalidGrant(GENERIC, detail=f"refresh token of {record.client_id} presented by {client_id}")
    if record.consumed_at is None:
        raise InvalidGrant(GENERIC, detail="refresh token expired or family inactive")
    within_grace = 0 < settings.refresh_grace_seconds and now() - record.consumed_at <= settings.refresh_grace_seconds
    if within_grace:
        successor = _unused_successor(token, record)
        grant = active_grant(grant_id) if successor is not None else None
        if grant is not None:
            log.info("refresh retried within grace window", extra={"grant_id": grant_id})
            return grant, successor
    revoke_grant(grant_id, reason="refresh token reuse")
    raise InvalidGrant(GENERIC, detail="refresh token reused; family revoked")


def _unused_successor(token: str, record: RefreshTokenModel) -> str | None:
    """The successor `token` was rotated into, opened from its seal; None when there is nothing to
    give back: no seal (grace off at rotation, or an older record), or the successor already used."""
    if not record.successor_hash:
        return None
    try:
        following = RefreshTokenModel.get(record.successor_hash, consistent_read=True)
    except RefreshTokenModel.DoesNotExist:
        return None
    # A retry is only a retry while the successor itself is unused; otherwise it is reuse.
    if following.consumed_at is not None or not following.retry_seal:
        return None
    successor = sealing.unseal(token, following.retry_seal, purpose=RETRY_SEAL_PURPOSE,
                               bound_to=following.token_hash)
    return successor if successor is not None and matches_hash(successor, record.successor_hash) else None


def _report_unrecognised(settings: Settings, grant_id: str, client_id: str) -> None:
    """A well-formed token naming a live family of this client, yet matching no stored token: we
    never issued it (or its record is gone with its idle lifetime). Someone may be guessing or
    deriving tokens of the family, so warn and count. Never revoke on this alone: grant_id is in
    every access token of the family (claim `grant_id`), so anyone who saw one could revoke it."""
    grant = active_grant(grant_id)
    if grant is None or grant.client_id != client_id:
        return
    if now() - (grant.last_used_at or grant.created_at) > settings.refresh_token_idle_ttl:
        return  # the family has been idle too long for any of its tokens to work: nothing to warn of
    key = throttle.window_key("refresh-unknown", grant_id, UNRECOGNISED_WINDOW)
    log.warning("refresh token of a known family not recognised",
                extra={"grant_id": grant_id, "client_id": client_id,
                       "count": throttle.add(key, UNRECOGNISED_WINDOW)})


def find(token: str) -> RefreshTokenModel | None:
    try:
        _split(token)
        return RefreshTokenModel.get(sha256_hex(token), consistent_read=True)
    except (InvalidGrant, RefreshTokenModel.DoesNotExist):
        return None
