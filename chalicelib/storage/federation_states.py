"""The short-lived records of a sign-in through an upstream identity provider (issue 15), in the
sessions table like the other steps of a sign-in:

- "fed#<SHA-256 of state>" (FederationStateModel): what the callback needs to finish the upstream
  flow (connection, nonce, PKCE verifier, the pending request, the account linking) and the hash of
  the browser binding. `consume_state` deletes it with ONE conditional DeleteItem returning the old
  item (ALL_OLD), so a state works once, even for two concurrent callbacks.
- "fedlink#<SHA-256 of the idp_fedlink cookie>" (PendingLinkModel): an upstream identity whose
  email belongs to a local account, waiting for proof of that account. Deleted by the transaction
  that links it (`consumed_link`).

Expiry is checked here, not left to the TTL (which deletes late, and moto never).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..hashing import sha256_hex
from ..log import now
from .models import FederationStateModel, PendingLinkModel, conditionally
from .transactions import TxItem

STATE_PREFIX = "fed#"
LINK_PREFIX = "fedlink#"
#: Ours are 43 characters; anything much longer is not worth a read.
MAX_VALUE_LENGTH = 100


@dataclass(frozen=True)
class State:
    connection_id: str
    nonce: str | None
    code_verifier: str
    request_id: str | None
    link_sub: str | None
    binding_hash: str
    expires_at: int


def _usable(value: str | None) -> bool:
    return bool(value) and len(value) <= MAX_VALUE_LENGTH and value.isascii()


def save_state(state: str, *, connection_id: str, nonce: str | None, code_verifier: str, request_id: str | None,
               link_sub: str | None, binding_hash: str, ttl: int) -> None:
    at = now()
    item = FederationStateModel(session_hash=STATE_PREFIX + sha256_hex(state), connection_id=connection_id,
                                nonce=nonce, code_verifier=code_verifier, request_id=request_id, link_sub=link_sub,
                                binding_hash=binding_hash, created_at=at, expires_at=at + ttl)
    # 256 random bits: a refusal is this very write, re-sent by botocore after a lost answer.
    conditionally(lambda: item.save(condition=FederationStateModel.session_hash.does_not_exist()))


def consume_state(state: str | None) -> State | None:
    """The state record, deleted (one conditional DeleteItem, ALL_OLD): None when there is none
    (never issued, used already, or not ours) or it expired."""
    if not _usable(state):
        return None
    key = STATE_PREFIX + sha256_hex(state)
    answer: dict = {}

    def delete():
        answer.update(FederationStateModel._get_connection().delete_item(
            key, condition=FederationStateModel.session_hash.exists(), return_values="ALL_OLD"))

    if not conditionally(delete) or "Attributes" not in answer:
        return None
    item = FederationStateModel.from_raw_data(answer["Attributes"])
    if int(item.expires_at) <= now():
        return None
    return State(connection_id=item.connection_id, nonce=item.nonce, code_verifier=item.code_verifier,
                 request_id=item.request_id, link_sub=item.link_sub, binding_hash=item.binding_hash,
                 expires_at=int(item.expires_at))


@dataclass(frozen=True)
class PendingLink:
    key: str
    connection_id: str
    upstream_sub: str
    sub: str
    email: str
    upstream_email: str | None
    amr: tuple[str, ...]
    auth_time: int
    request_id: str | None
    sealed_tokens: str | None
    expires_at: int


def link_key(cookie_value: str) -> str:
    return LINK_PREFIX + sha256_hex(cookie_value)


def save_pending_link(cookie_value: str, *, connection_id: str, upstream_sub: str, sub: str, email: str,
                      upstream_email: str | None, amr, auth_time: int, request_id: str | None,
                      sealed_tokens: str | None, ttl: int) -> None:
    at = now()
    item = PendingLinkModel(session_hash=link_key(cookie_value), connection_id=connection_id,
                            upstream_sub=upstream_sub, sub=sub, email=email, upstream_email=upstream_email,
                            amr=list(amr), auth_time=auth_time, request_id=request_id, sealed_tokens=sealed_tokens,
                            created_at=at, expires_at=at + ttl)
    conditionally(lambda: item.save(condition=PendingLinkModel.session_hash.does_not_exist()))


def read_pending_link(cookie_value: str | None) -> PendingLink | None:
    """The unexpired pending link of this browser's idp_fedlink cookie, else None (one GetItem)."""
    if not _usable(cookie_value):
        return None
    try:
        item = PendingLinkModel.get(link_key(cookie_value), consistent_read=True)
    except PendingLinkModel.DoesNotExist:
        return None
    if int(item.expires_at) <= now():
        return None
    return PendingLink(key=item.session_hash, connection_id=item.connection_id, upstream_sub=item.upstream_sub,
                       sub=item.sub, email=item.email, upstream_email=item.upstream_email,
                       amr=tuple(item.amr or ()), auth_time=int(item.auth_time), request_id=item.request_id,
                       sealed_tokens=item.sealed_tokens, expires_at=int(item.expires_at))


def consumed_link(link: PendingLink) -> TxItem:
    """The pending link's deletion, on condition it is still there (label "pending_link"): part
    of the transaction that links, so it links once."""
    return TxItem("delete", "pending_link", lambda tx: tx.delete(PendingLinkModel(session_hash=link.key),
                                                                 condition=PendingLinkModel.session_hash.exists()))
