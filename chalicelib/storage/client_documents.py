"""The cache of client ID metadata documents, and operators' blocks on document clients.

One ClientDocumentModel item per document URL. chalicelib/oauth/client_documents.py reads it once
per request that names the URL (it always did, for the cached document), so a block is noticed
without any extra DynamoDB call. A document client has no ClientModel to disable: the block on its
URL is how an operator stops one (a phishing app, say) without closing document clients to everyone.
"""
from __future__ import annotations

from dataclasses import dataclass

from .models import ClientDocumentModel, conditionally


@dataclass(frozen=True)
class CachedDocument:
    """The item for a document URL: a cached copy (`document`, the validated JSON text, with its
    times) or an operator's block (`blocked`, with or without a copy from before it)."""

    url: str
    document: str | None = None
    fetched_at: int | None = None
    #: End of the copy's cache lifetime; None on copies cached before it existed (then `expires_at`).
    fresh_until: int | None = None
    #: The TTL: how long the copy may stand in for a refresh that cannot happen. None on a block.
    expires_at: int | None = None
    blocked: bool = False

#: A cached copy is written only if the URL is not blocked: a fetch that was under way when an
#: operator blocked the URL must not overwrite the block with the document.
_NOT_BLOCKED = ClientDocumentModel.blocked.does_not_exist() | (ClientDocumentModel.blocked == False)  # noqa: E712


def cached_document(url: str) -> CachedDocument | None:
    """The item for `url` (a cached document or a block), or None."""
    try:
        item = ClientDocumentModel.get(url, consistent_read=False)
    except ClientDocumentModel.DoesNotExist:
        return None
    return CachedDocument(url=item.url, document=item.document, fetched_at=item.fetched_at,
                          fresh_until=item.fresh_until, expires_at=item.expires_at, blocked=bool(item.blocked))


def save_document(url: str, document: str, *, fetched_at: int, fresh_until: int, keep_until: int) -> bool:
    """Cache a validated document, fresh until `fresh_until` and kept (TTL) until `keep_until`.
    False when the URL is blocked: the block stays."""
    item = ClientDocumentModel(url=url, document=document, fetched_at=fetched_at, fresh_until=fresh_until,
                               expires_at=keep_until)
    return conditionally(lambda: item.save(condition=_NOT_BLOCKED))


def postpone_refresh(cached: CachedDocument, until: int) -> None:
    """After a failed refresh the stale copy is served without trying again until `until`, so a host
    that is down (or a fetch budget that is spent) is not retried on every request. Only the copy
    that was read is touched: not one a concurrent request has just refreshed, nor a block."""
    conditionally(lambda: ClientDocumentModel(cached.url).update(
        actions=[ClientDocumentModel.fresh_until.set(until)],
        condition=(ClientDocumentModel.fetched_at == cached.fetched_at) & _NOT_BLOCKED))


def forget_document(cached: CachedDocument) -> None:
    """Drop a cached copy its URL no longer vouches for (withdrawn, or now invalid), so a later
    network failure cannot bring it back as a stale copy. Never drops a block or a newer copy."""
    conditionally(lambda: ClientDocumentModel(cached.url).delete(
        condition=(ClientDocumentModel.fetched_at == cached.fetched_at) & _NOT_BLOCKED))


def block_document_client(url: str) -> int:
    """Block a document client: its URL becomes an unknown client_id, never fetched again, until
    unblocked. Replaces any cached copy; the item has no expires_at, so TTL never lifts the block.
    Then revokes the client's grants (the block first, so no new grant starts after the revocation).
    Returns how many grants were revoked."""
    from .grants import revoke_grants_of

    ClientDocumentModel(url=url, blocked=True).save()
    return revoke_grants_of(client_id=url, reason="document client blocked")


def unblock_document_client(url: str) -> bool:
    """Lift a block; the next request fetches the document afresh. False when the URL was not blocked."""
    return conditionally(lambda: ClientDocumentModel(url).delete(condition=ClientDocumentModel.blocked == True))  # noqa: E712
