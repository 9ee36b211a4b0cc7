"""Remembered consent: what a user has agreed to share with a client, as "<scope> <audience>" pairs
(chalicelib/oauth/consent.py). Checked inside the transaction that issues a code
(storage/codes.issue), so reading it costs a signed-in request nothing.

The account page lists and revokes them (issue 12). The consents table is keyed by
"<sub>#<client_id>" only, so a user's consents cannot be queried: every write that adds or removes
a consent also adds or removes its client in the user's ConsentListModel item ("apps#<sub>"), in
the same transaction, and listing is one GetItem plus one BatchGetItem of the consents it names.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..log import now
from .models import ConsentListModel, ConsentModel, retrying_conflicts, transact_write

LIST_PREFIX = "apps#"
CONFLICT_RETRIES = 3
#: BatchGetItem takes at most 100 keys; a user with more consents than that is listed in pages.
_BATCH = 100


def key(sub: str, client_id: str) -> str:
    return f"{sub}#{client_id}"


def list_key(sub: str) -> str:
    return LIST_PREFIX + sub


@dataclass(frozen=True)
class Consent:
    client_id: str
    #: "<scope> <audience>" pairs (oauth/consent.py).
    pairs: frozenset
    updated_at: int | None
    #: The registered client's name; None for a client ID metadata document (a URL: the page shows
    #: its host) or a client deleted since.
    client_name: str | None = None


def remember(sub: str, client_id: str, pairs: set[str]) -> None:
    """Add `pairs` to what is remembered; DynamoDB's set ADD grows them atomically, so two grants at
    once both land and neither widens the other. The user's list of clients gains `client_id` in
    the same transaction (one call, as the single UpdateItem it replaces)."""
    def write():
        with transact_write() as tx:
            tx.update(ConsentModel(pk=key(sub, client_id)),
                      actions=[ConsentModel.audience_scopes.add(pairs), ConsentModel.updated_at.set(now())])
            tx.update(ConsentListModel(pk=list_key(sub)), actions=[ConsentListModel.client_ids.add({client_id})])

    # Two consents of one user at once (two apps, two tabs) both write the list item: DynamoDB
    # cancels one with TransactionConflict, which is tried again (both writes are ADDs).
    retrying_conflicts(write, CONFLICT_RETRIES)


def client_ids(sub: str) -> list[str]:
    """The clients `sub` has consents with (one strongly consistent GetItem), sorted."""
    try:
        item = ConsentListModel.get(list_key(sub), consistent_read=True)
    except ConsentListModel.DoesNotExist:
        return []
    return sorted(item.client_ids or ())


def list_of(sub: str, extra_client_ids=()) -> list[Consent]:
    """Every consent of `sub`, and a record for each of `extra_client_ids` without one (clients the
    user has grants with, consented before the list existed): `client_ids`, then one BatchGetItem
    of the consents and their client registrations (per 50 clients)."""
    from .models import ClientModel
    from .reads import consistent_batch_get

    ids = sorted(set(client_ids(sub)) | set(extra_client_ids))
    found = []
    for start in range(0, len(ids), _BATCH // 2):
        chunk = ids[start:start + _BATCH // 2]
        keys = [(ConsentModel, key(sub, c)) for c in chunk] + [(ClientModel, c) for c in chunk
                                                               if not c.startswith(("https://", "http://"))]
        items = consistent_batch_get(keys)
        consents, clients = items[:len(chunk)], {k: item for (_, k), item in zip(keys[len(chunk):], items[len(chunk):])}
        for client_id, item in zip(chunk, consents):
            client = clients.get(client_id)
            found.append(Consent(client_id, frozenset(item.audience_scopes or ()) if item else frozenset(),
                                 int(item.updated_at) if item and item.updated_at is not None else None,
                                 client.client_name if client is not None else None))
    return found


def forget(sub: str, client_id: str) -> None:
    """Delete the consent and take its client off the user's list, in one transaction. Forgetting
    what is not remembered changes nothing (no conditions), so a retry after a fault is harmless."""
    with transact_write() as tx:
        tx.delete(ConsentModel(pk=key(sub, client_id)))
        tx.update(ConsentListModel(pk=list_key(sub)), actions=[ConsentListModel.client_ids.delete({client_id})])


def forget_all(sub: str) -> int:
    """Delete every consent of `sub` and the list itself (account deletion): one GetItem, then one
    transaction per 99 consents, the last one deleting the list too (a transaction holds at most
    100 items). Idempotent, so a retry after a fault finishes the job. Returns how many there were."""
    ids = client_ids(sub)
    chunks = [ids[start:start + 99] for start in range(0, len(ids), 99)] or [[]]
    for index, chunk in enumerate(chunks):
        with transact_write() as tx:
            for client_id in chunk:
                tx.delete(ConsentModel(pk=key(sub, client_id)))
            if index == len(chunks) - 1:
                tx.delete(ConsentListModel(pk=list_key(sub)))
            else:
                tx.update(ConsentListModel(pk=list_key(sub)), actions=[ConsentListModel.client_ids.delete(set(chunk))])
    return len(ids)
