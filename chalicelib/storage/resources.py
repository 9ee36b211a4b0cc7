"""The resource registry (RFC 8707): APIs clients may ask tokens for, with the scopes they define.

The public resources' scopes (the ceiling of clients nobody vetted) are also kept in one summary
item of the same table (PublicScopesModel, key PUBLIC_SCOPES), changed in the same transaction as
each resource, so a request reads them with one GetItem instead of scanning the table.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlsplit

from pynamodb.exceptions import DoesNotExist

from .. import caches
from ..capabilities import SCOPE_TOKEN
from ..log import now
from .cache import ContainerCache
from .models import PublicScopesModel, ResourceModel, conditionally, transact_write, transaction_refused

#: The summary's key: never a resource, which is an absolute http(s) URI (check_resource_uri).
PUBLIC_SCOPES = "#public-scopes"


class InvalidResource(ValueError):
    """A resource registration breaks a rule; the message says which."""


@dataclass(frozen=True)
class Resource:
    """A protected resource (RFC 8707 resource indicator) and the scopes it defines."""

    resource: str  # absolute URI, no fragment
    name: str
    scopes: tuple[str, ...] = ()
    #: Open to clients nobody vetted (see ResourceModel.public).
    public: bool = False
    created_at: int = 0


def _record(item: ResourceModel) -> Resource:
    return Resource(resource=item.resource, name=item.name, scopes=tuple(item.scopes), public=bool(item.public),
                    created_at=item.created_at)


def check_resource_uri(uri: str) -> str:
    """RFC 8707 §2: an absolute URI without a fragment. We also refuse a query (the RFC says SHOULD
    NOT) so one API cannot be registered under many spellings."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        raise InvalidResource(f"resource is not a valid URI: {uri!r}") from None
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise InvalidResource(f"resource must be an absolute http(s) URI: {uri!r}")
    if "#" in uri:
        raise InvalidResource(f"resource must not contain a fragment: {uri!r}")
    if parts.query:
        raise InvalidResource(f"resource must not contain a query: {uri!r}")
    if any(c.isspace() for c in uri) or len(uri) > 512:
        raise InvalidResource(f"resource must be at most 512 characters without whitespace: {uri!r}")
    return uri


def register_resource(uri: str, name: str, scopes: list[str], *, public: bool = False) -> Resource:
    """Register (or replace) a resource. `public` opens it to unverified clients."""
    check_resource_uri(uri)
    name = (name or "").strip()
    if not 1 <= len(name) <= 200:
        raise InvalidResource("name must be 1 to 200 characters")
    scopes = list(dict.fromkeys(scopes))
    bad = [s for s in scopes if not SCOPE_TOKEN.fullmatch(s)]
    if bad:
        raise InvalidResource(f"invalid scope {bad[0]!r}")
    resource = ResourceModel(resource=uri, name=name, scopes=scopes, public=public, created_at=now())
    entry = PublicScopesModel.scopes_by_resource[uri]
    _ensure_public_scopes()
    # One transaction: concurrent registrations of other resources change other entries of the
    # summary, and DynamoDB serialises transactions on one item, so no registration is lost.
    with transact_write() as tx:
        tx.save(resource)  # re-registering replaces name, scopes and the public flag
        tx.update(PublicScopesModel(PUBLIC_SCOPES), actions=[entry.set(json.dumps(scopes)) if public else entry.remove()],
                  condition=PublicScopesModel.resource.exists())
    forget_cached_resources()
    return _record(resource)


def get_resource(uri: str) -> Resource | None:
    if len(uri.encode("utf-8")) > 1024 or uri == PUBLIC_SCOPES:
        return None
    try:
        return _record(ResourceModel.get(uri))
    except DoesNotExist:
        return None


_cache: ContainerCache[Resource] = ContainerCache(lambda uri: get_resource(uri))
caches.register("resources", _cache.clear)


def get_resource_cached(uri: str, max_age: int) -> Resource | None:
    """Like get_resource, reusing this container's copy for up to `max_age` seconds."""
    return _cache.get(uri, max_age)


def _load_public_scopes(_key: str) -> tuple[str, ...]:
    by_resource = _ensure_public_scopes()
    return tuple(dict.fromkeys(s for uri in sorted(by_resource) for s in by_resource[uri]))


def _read_public_scopes() -> dict[str, list[str]] | None:
    from pynamodb.exceptions import DoesNotExist

    try:
        summary = PublicScopesModel.get(PUBLIC_SCOPES, consistent_read=True)
    except DoesNotExist:
        return None
    return {uri: json.loads(text) for uri, text in summary.scopes_by_resource.as_dict().items()}


def _ensure_public_scopes() -> dict[str, list[str]]:
    """The summary, built from one Scan if it does not exist yet (a deployment from before it: once).
    A conditional put, and every change is conditioned on the summary existing, so no registration
    can slip in between the Scan and the put."""
    found = _read_public_scopes()
    if found is not None:
        return found
    public = ResourceModel.scan(ResourceModel.public == True, consistent_read=True)  # noqa: E712 (pynamodb)
    by_resource = {r.resource: list(r.scopes) for r in public if r.resource != PUBLIC_SCOPES}
    summary = PublicScopesModel(PUBLIC_SCOPES, scopes_by_resource={u: json.dumps(s) for u, s in by_resource.items()})
    if conditionally(lambda: summary.save(condition=PublicScopesModel.resource.does_not_exist())):
        return by_resource
    return _read_public_scopes() or {}


_public_scopes: ContainerCache[tuple[str, ...]] = ContainerCache(_load_public_scopes)
caches.register("public_scopes", _public_scopes.clear)


def public_scopes(max_age: int) -> tuple[str, ...]:
    """The scopes of every public resource: one GetItem, which each container reuses for up to
    `max_age` seconds."""
    return _public_scopes.get("public", max_age)


def forget_cached_resources() -> None:
    """Forget this container's resources and public scopes (tests; and after a local change)."""
    _cache.clear()
    _public_scopes.clear()


def list_resources() -> list[Resource]:
    return sorted((_record(item) for item in ResourceModel.scan(ResourceModel.resource != PUBLIC_SCOPES,
                                                                consistent_read=True)),
                  key=lambda r: r.resource)


def delete_resource(uri: str) -> bool:
    if uri == PUBLIC_SCOPES:
        return False
    _ensure_public_scopes()
    try:
        with transact_write() as tx:
            tx.delete(ResourceModel(resource=uri), condition=ResourceModel.resource.exists())
            tx.update(PublicScopesModel(PUBLIC_SCOPES), actions=[PublicScopesModel.scopes_by_resource[uri].remove()],
                      condition=PublicScopesModel.resource.exists())
    except Exception as exc:
        if not transaction_refused(exc):
            raise
        return False
    finally:
        forget_cached_resources()
    return True
