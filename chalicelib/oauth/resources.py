"""Resource indicators (RFC 8707) at the authorization and token endpoints.

A requested resource must be registered, allowed for the client (when the client lists resources),
and an absolute URI without fragment; anything else is `invalid_target`. At the token endpoint a
client may narrow the audience to resources granted at authorization, never widen it.
"""
from __future__ import annotations

from ..errors import InvalidScope, InvalidTarget
from ..storage.models import ClientModel

#: Scopes that concern the user's identity at this IdP, not any resource.
IDENTITY_SCOPES = ("openid", "profile", "email", "offline_access")


def resolve(requested: list[str], client: ClientModel, *, max_age: int = 0) -> list:
    """The registered resources for `requested`; `max_age` > 0 allows this container's cached copy.

    A client nobody vetted (dynamically registered or a metadata document) may target public
    resources only, and a private one is "unknown resource" to it, exactly like one that does not
    exist: otherwise it could get tokens whose `aud` is a private API (carrying identity scopes)
    and learn which private APIs exist."""
    from ..storage.resources import InvalidResource, check_resource_uri, get_resource, get_resource_cached

    lookup = (lambda uri: get_resource_cached(uri, max_age)) if max_age else get_resource
    found = []
    for uri in requested:
        try:
            check_resource_uri(uri)
        except InvalidResource as exc:
            raise InvalidTarget(str(exc)) from None
        resource = lookup(uri)
        if resource is None or (client.registered_dynamically and not resource.public):
            raise InvalidTarget("unknown resource", detail=uri)
        if client.resources and uri not in client.resources:
            raise InvalidTarget("this client may not request that resource", detail=uri)
        found.append(resource)
    return found


def check_scopes(scopes: list[str], resources: list) -> None:
    """With resources named, every non-identity scope must be defined by one of them, so a token
    never carries a scope its audience does not understand."""
    if not resources:
        return
    defined = {s for r in resources for s in r.scopes}
    foreign = [s for s in scopes if s not in IDENTITY_SCOPES and s not in defined]
    if foreign:
        raise InvalidScope(f"scope not defined by the requested resource: {' '.join(foreign)}")


def default_scopes(allowed: list[str], resources: list) -> list[str]:
    """RFC 6749 §3.3 default when no scope was requested: the client's scopes, limited to those the
    requested resources define (identity scopes always apply)."""
    if not resources:
        return list(allowed)
    defined = {s for r in resources for s in r.scopes}
    return [s for s in allowed if s in IDENTITY_SCOPES or s in defined]


def narrow(requested: list[str], granted: list[str]) -> list[str]:
    """Token-endpoint `resource`: a subset of what was granted (RFC 8707 §2.2)."""
    extra = [uri for uri in requested if uri not in granted]
    if extra:
        raise InvalidTarget("resource was not granted at authorization", detail=" ".join(extra))
    return requested or granted


def audience(resources: list[str], default: str) -> list[str]:
    return list(resources) if resources else [default]
