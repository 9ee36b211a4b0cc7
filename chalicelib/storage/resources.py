"""The resource registry (RFC 8707): APIs clients may ask tokens for, with the scopes they define."""
from __future__ import annotations

from urllib.parse import urlsplit

from pynamodb.exceptions import DoesNotExist

from .. import caches
from ..capabilities import SCOPE_TOKEN
from ..log import now
from .cache import ContainerCache
from .models import ResourceModel, conditionally


class InvalidResource(ValueError):
    """A resource registration breaks a rule; the message says which."""


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


def register_resource(uri: str, name: str, scopes: list[str], *, public: bool = False) -> ResourceModel:
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
    resource.save()  # re-registering replaces name, scopes and the public flag
    forget_cached_resources()
    return resource


def get_resource(uri: str) -> ResourceModel | None:
    if len(uri.encode("utf-8")) > 1024:
        return None
    try:
        return ResourceModel.get(uri)
    except DoesNotExist:
        return None


_cache: ContainerCache[ResourceModel] = ContainerCache(lambda uri: get_resource(uri))
caches.register("resources", _cache.clear)


def get_resource_cached(uri: str, max_age: int) -> ResourceModel | None:
    """Like get_resource, reusing this container's copy for up to `max_age` seconds."""
    return _cache.get(uri, max_age)


def _load_public_scopes(_key: str) -> tuple[str, ...]:
    public = ResourceModel.scan(ResourceModel.public == True, consistent_read=True)  # noqa: E712 (pynamodb)
    return tuple(dict.fromkeys(s for r in sorted(public, key=lambda r: r.resource) for s in r.scopes))


_public_scopes: ContainerCache[tuple[str, ...]] = ContainerCache(_load_public_scopes)
caches.register("public_scopes", _public_scopes.clear)


def public_scopes(max_age: int) -> tuple[str, ...]:
    """The scopes of every public resource. A Scan, so each container reuses its answer for up to
    `max_age` seconds: /authorize and /token for unverified clients must not scan the table."""
    return _public_scopes.get("public", max_age)


def forget_cached_resources() -> None:
    """Forget this container's resources and public scopes (tests; and after a local change)."""
    _cache.clear()
    _public_scopes.clear()


def list_resources() -> list[ResourceModel]:
    return sorted(ResourceModel.scan(consistent_read=True), key=lambda r: r.resource)


def delete_resource(uri: str) -> bool:
    deleted = conditionally(lambda: ResourceModel(resource=uri).delete(condition=ResourceModel.resource.exists()))
    forget_cached_resources()
    return deleted
