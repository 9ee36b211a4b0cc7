"""Finding the client a request names: a registered client by id, or a client ID metadata document
by URL (chalicelib/oauth/client_documents.py)."""
from __future__ import annotations

from ..config import Settings
from ..storage.models import ClientModel


def find_client(client_id: str | None, settings: Settings, *, cache_seconds: int = 0,
                source_ip: str | None = None) -> ClientModel | None:
    """The active client for `client_id`, or None. Raises client_documents.DocumentError when the
    id is a document URL that cannot be used (the reason is safe to show). `source_ip` is the address
    of the request, against which document fetches are rate limited."""
    from ..storage.clients import get_client, get_client_cached
    from .client_documents import is_document_client_id, resolve

    if not client_id:
        return None
    if is_document_client_id(client_id):
        return resolve(client_id, settings, source_ip=source_ip)
    client = get_client_cached(client_id, cache_seconds) if cache_seconds else get_client(client_id)
    return None if client is None or client.disabled else client
