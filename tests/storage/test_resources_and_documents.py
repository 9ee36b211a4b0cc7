"""The resource registry and the client-document cache read as records (storage.resources.Resource,
storage.client_documents.CachedDocument), so the core never holds a pynamodb item."""
from __future__ import annotations

from chalicelib.storage import client_documents, resources

API = "https://notes.example.com/api"
DOC = "https://agent.example.com/client.json"


def test_a_registered_resource_reads_back_as_the_record_registration_returned(aws):
    registered = resources.register_resource(API, "Notes API", ["notes:read", "notes:write", "notes:read"])

    assert registered == resources.Resource(resource=API, name="Notes API", scopes=("notes:read", "notes:write"),
                                            public=False, created_at=registered.created_at)
    assert resources.get_resource(API) == registered == resources.get_resource_cached(API, 300)
    assert resources.list_resources() == [registered]
    assert resources.get_resource(resources.PUBLIC_SCOPES) is None, "the summary item is never a resource"


def test_a_public_resource_is_in_the_public_scopes_and_leaves_them_when_deleted(aws):
    resources.register_resource(API, "Notes API", ["notes:read"], public=True)
    assert resources.public_scopes(0) == ("notes:read",)

    assert resources.delete_resource(API) is True
    assert resources.delete_resource(API) is False
    assert resources.public_scopes(0) == ()


def test_a_cached_document_and_a_block_read_as_records(aws):
    assert client_documents.cached_document(DOC) is None
    assert client_documents.save_document(DOC, "{}", fetched_at=10, fresh_until=20, keep_until=30)
    assert client_documents.cached_document(DOC) == client_documents.CachedDocument(
        url=DOC, document="{}", fetched_at=10, fresh_until=20, expires_at=30, blocked=False)

    client_documents.block_document_client(DOC)
    assert client_documents.cached_document(DOC) == client_documents.CachedDocument(url=DOC, blocked=True)
    assert not client_documents.save_document(DOC, "{}", fetched_at=40, fresh_until=50, keep_until=60)


def test_refresh_bookkeeping_touches_only_the_copy_that_was_read(aws):
    client_documents.save_document(DOC, "{}", fetched_at=10, fresh_until=20, keep_until=30)
    read = client_documents.cached_document(DOC)
    client_documents.save_document(DOC, '{"new": 1}', fetched_at=11, fresh_until=21, keep_until=31)

    client_documents.postpone_refresh(read, 25)
    client_documents.forget_document(read)

    assert client_documents.cached_document(DOC).fresh_until == 21 and client_documents.cached_document(DOC).document
