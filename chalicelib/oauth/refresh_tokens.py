"""Refresh tokens (RFC 6749 §6, OAuth 2.1 §4.3.1, RFC 9700 §4.14.2): rotated on every use, with
reuse detection that revokes the whole family.

A token is "<sub>~<grant_id>~<n>.<256-bit secret>": opaque to clients, stored only as its SHA-256,
and it names its family (the grant's key) and its place in it (`n`, the rotation number), so that
rotation is ONE conditional UpdateItem of the grant with no read first
(chalicelib/storage/grants.rotate): the presented token must be the family's current, unexpired
one, the family active, unexpired and this client's; the successor becomes current, the presented
token previous, and its slot among the family's remembered consumed tokens records it. Concurrent
refreshes of one token cannot fork the family: the second sees another current token.

The successor is random, like the first token: it must not be a function of anything a client
holds (whoever kept one old token could otherwise compute the chain offline). A retry of the same
refresh within REFRESH_GRACE_SECONDS (RFC 9700 §4.14.2 allows it for lost responses) must still get
the same successor, so the grant keeps the current token sealed under the previous one
(chalicelib/sealing.py: HKDF-SHA256 + AES-GCM): reading the table gives hashes, not tokens, so no
seal opens; a token without the table opens nothing; and the seal is replaced at the next rotation,
exactly when a retry stops being one. The seal is written only while the grace window is on.

When the update is refused, the grant is read once (off the hot path) to say why:
- the presented token is the current one: it has gone idle (REFRESH_TOKEN_IDLE_TTL);
- it is the previous one: a retry within the grace window gets the sealed successor, otherwise it
  is reuse and the family is revoked;
- it is one of the family's last CONSUMED_SLOTS consumed tokens: reuse, the family is revoked;
- otherwise it was never issued by us (or is older than the slots remember): it is logged at
  warning and counted per family, but the family is not revoked for it, since sub and grant_id
  travel in access tokens and anyone who saw one could then revoke the family at will.

DPoP (RFC 9449 §5): a public client's family is bound to the key of the first proof it presented
(at redemption, or at its first refresh with a proof); the rotation's condition then demands a proof
of that key, so a refresh with another key or none writes nothing. The refusal's read reports it as
such before any reuse check: a token presented without its key proves nothing about who holds the
family, so it neither rotates, consumes nor revokes it. A confidential client's family stays bound
to the client's authentication; its new access tokens are bound to whatever key each refresh proves.
"""
from __future__ import annotations

import re

from .. import profiles, sealing
from ..config import Settings
from ..errors import InvalidGrant
from ..hashing import matches_hash, new_secret, sha256_hex
from ..log import get_logger, now
from ..storage import grants
from . import throttle

log = get_logger("idp.refresh")

GENERIC = "the refresh token is invalid, expired or revoked"
KEY_MISMATCH = "the refresh token is bound to a DPoP key this request did not prove"
#: HKDF info of the key a successor is sealed under; used for nothing else.
RETRY_SEAL_PURPOSE = b"idp refresh-token retry seal v2"
#: Unrecognised tokens of a live family are counted per family in windows of this many seconds.
UNRECOGNISED_WINDOW = 3600

_TOKEN_SYNTAX = re.compile(r"([A-Za-z0-9_-]{1,64})~([A-Za-z0-9_-]{1,64})~(0|[1-9][0-9]{0,8})\.[A-Za-z0-9_-]{20,128}")


def parse(token: str) -> tuple[str, str, int]:
    """(sub, grant_id, n) of a well-formed token; anything else is refused before any lookup."""
    match = _TOKEN_SYNTAX.fullmatch(token or "")
    if match is None:
        raise InvalidGrant(GENERIC, detail="malformed refresh token")
    return match.group(1), match.group(2), int(match.group(3))


def looks_like(token: str) -> bool:
    return _TOKEN_SYNTAX.fullmatch(token or "") is not None


def new_token(sub: str, grant_id: str, n: int = 0) -> str:
    return f"{sub}~{grant_id}~{n}.{new_secret()}"


def token_hash(token: str) -> str:
    return sha256_hex(token)


def family_key(client, proof) -> str | None:
    """The DPoP key a family's refresh tokens are bound to: RFC 9449 §5, "Refresh tokens issued to
    public clients [presenting a valid DPoP proof] MUST be bound to the respective public key";
    None for a confidential client (its authentication binds them) or without a proof."""
    return proof.jkt if proof is not None and client.client_type == "public" else None


def rotate(settings: Settings, token: str, client_id: str, *, dpop_jkt: str | None = None,
           bind_dpop_key: bool = False) -> tuple[grants.Grant, str]:
    """Consume `token` and return (its grant, the successor token). Raises InvalidGrant.
    `dpop_jkt`: the thumbprint of the request's DPoP proof; `bind_dpop_key`: bind the family to it
    (family_key: a public client's proof). Under PROFILE=fapi2 (profiles.rotates_refresh_tokens) the
    "successor" is `token` itself: the same conditional write checks it and moves its idle expiry on."""
    sub, grant_id, n = parse(token)
    at = now()
    rotating = profiles.rotates_refresh_tokens(settings)
    successor = new_token(sub, grant_id, n + 1) if rotating else token
    successor_hash = token_hash(successor)
    retry_seal = (sealing.seal(token, successor, purpose=RETRY_SEAL_PURPOSE, bound_to=successor_hash)
                  if rotating and settings.refresh_grace_seconds > 0 else None)
    presented_hash = token_hash(token)
    grant = grants.rotate(sub, grant_id, client_id, presented_hash=presented_hash, rotation=n,
                          successor_hash=successor_hash, token_expires_at=at + settings.refresh_token_idle_ttl,
                          retry_seal=retry_seal, at=at, dpop_jkt=dpop_jkt, bind_dpop_key=bind_dpop_key)
    if grant is not None:
        return grant, successor
    return _after_refusal(settings, token, presented_hash, sub, grant_id, client_id, at, successor, successor_hash,
                          dpop_jkt, rotation=n)


def _after_refusal(settings: Settings, token: str, presented_hash: str, sub: str, grant_id: str, client_id: str,
                   at: int, successor: str, successor_hash: str,
                   dpop_jkt: str | None = None, rotation: int = 0) -> tuple[grants.Grant, str]:
    """Work out why the rotation was refused; revoke the family on reuse. Returns the grace
    successor, or our own successor when our rotation did happen, or raises InvalidGrant."""
    grant = grants.get(sub, grant_id)
    if grant is None:
        raise InvalidGrant(GENERIC, detail="unknown refresh token family")
    if grant.client_id != client_id:
        raise InvalidGrant(GENERIC, detail=f"refresh token of {grant.client_id} presented by {client_id}")
    if not grant.is_active(at):
        raise InvalidGrant(GENERIC, detail="refresh token family revoked or expired")
    if grant.token_hash == successor_hash and grant.previous_hash == presented_hash:
        # Our own rotation: its answer was lost and botocore sent the write again, which found the
        # successor we minted (random, known to nobody else) already current. Not reuse. Undoing it
        # after a later fault cannot restore what it overwrote (the answer that said is lost).
        log.info("refresh rotation found already applied (response lost, write retried)",
                 extra={"grant_id": grant_id})
        return grant, successor
    other_key = grant.dpop_jkt is not None and grant.dpop_jkt != dpop_jkt
    if other_key and rotation >= (grant.dpop_bound_from or 0):
        # Before any reuse check: without the key, presenting a token of the bound family (even an
        # old one) changes nothing. A token from before the family was bound (at a refresh: whoever
        # bound it held that token) is another matter: its holder without the key is one of two
        # parties that had it, which is reuse (RFC 9700 §4.14.2), never a grace retry.
        raise InvalidGrant(KEY_MISMATCH, detail=f"family bound to {grant.dpop_jkt}, proof {dpop_jkt}")
    if matches_hash(token, grant.token_hash):
        raise InvalidGrant(GENERIC, detail="refresh token expired (idle)")
    if matches_hash(token, grant.previous_hash):
        within_grace = (not other_key and 0 < settings.refresh_grace_seconds and grant.rotated_at is not None
                        and at - grant.rotated_at <= settings.refresh_grace_seconds)
        successor = _sealed_successor(token, grant) if within_grace else None
        if successor is not None:
            log.info("refresh retried within grace window", extra={"grant_id": grant_id})
            return grant, successor
        _revoke_reused(grant)
    if grants.consumed_mark(presented_hash) in grant.consumed:
        _revoke_reused(grant)
    _report_unrecognised(settings, grant, client_id, at)
    raise InvalidGrant(GENERIC, detail="unknown refresh token")


def _revoke_reused(grant: grants.Grant):
    grants.revoke(grant.sub, grant.grant_id, reason="refresh token reuse")
    raise InvalidGrant(GENERIC, detail="refresh token reused; family revoked")


def _sealed_successor(token: str, grant: grants.Grant) -> str | None:
    """The family's current token, opened from its seal with the previous token; None when there is
    no seal (grace off at rotation) or it does not open to the current token."""
    if not grant.retry_seal or not grant.token_hash:
        return None
    successor = sealing.unseal(token, grant.retry_seal, purpose=RETRY_SEAL_PURPOSE, bound_to=grant.token_hash)
    return successor if successor is not None and matches_hash(successor, grant.token_hash) else None


def _report_unrecognised(settings: Settings, grant: grants.Grant, client_id: str, at: int) -> None:
    """A well-formed token naming a live family of this client, yet none of its current, previous or
    remembered consumed tokens: we never issued it, or it is older than the slots remember. Someone
    may be guessing tokens of the family, so warn and count. Never revoke on this alone: sub and
    grant_id are in every access token of the family, so anyone who saw one could revoke it."""
    if at - (grant.last_used_at or grant.created_at) > settings.refresh_token_idle_ttl:
        return  # the family has been idle too long for any of its tokens to work: nothing to warn of
    key = throttle.window_key("refresh-unknown", grant.grant_id, UNRECOGNISED_WINDOW)
    log.warning("refresh token of a known family not recognised",
                extra={"grant_id": grant.grant_id, "client_id": client_id,
                       "count": throttle.add(key, UNRECOGNISED_WINDOW)})


def current_grant(token: str) -> grants.Grant | None:
    """The grant whose current, unexpired refresh token this is (introspection); None otherwise."""
    if not looks_like(token):
        return None
    sub, grant_id, _ = parse(token)
    grant = grants.get(sub, grant_id)
    at = now()
    if grant is None or not grant.is_active(at) or not matches_hash(token, grant.token_hash):
        return None
    return grant if (grant.token_expires_at or 0) > at else None
