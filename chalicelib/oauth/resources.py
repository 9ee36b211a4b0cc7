"""Resource indicators (RFC 8707) at the authorization and token endpoints.

A requested resource must be registered, allowed for the client (when the client lists resources),
and an absolute URI without fragment; anything else is `invalid_target`. At the token endpoint a
client may narrow the audience to resources granted at authorization, never widen it, and the
narrowed token carries only the scopes its audience defines (plus the identity scopes).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..capabilities import IDENTITY_SCOPES
from ..errors import InvalidScope, InvalidTarget

if TYPE_CHECKING:
    from ..storage.clients import Client
    from ..storage.resources import Resource


def resolve(requested: list[str], client: Client, *, max_age: int = 0) -> list[Resource]:
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
            # The reason quotes the URI; it goes to the log, the description stays fixed text.
            raise InvalidTarget("resource must be an absolute http(s) URI of at most 512 characters, without "
                                "query, fragment or whitespace", detail=str(exc)) from None
        resource = lookup(uri)
        if resource is None or (client.registered_dynamically and not resource.public):
            raise InvalidTarget("unknown resource", detail=uri)
        if client.resources and uri not in client.resources:
            raise InvalidTarget("this client may not request that resource", detail=uri)
        found.append(resource)
    return found


def check_scopes(scopes: list[str], resources: list, *, unverified: bool = False) -> None:
    """With resources named, every non-identity scope must be defined by one of them, so a token
    never carries a scope its audience does not understand; and every resource must receive at least
    one scope (identity scopes count), so no audience rides along in a token without its own scope
    (and, at /authorize, without the user's consent to it: consent is remembered per audience).
    Without resources an `unverified` client's audience is the issuer (`resource_less_audience`),
    which defines the identity scopes only: an API's scope needs the API named."""
    if not resources:
        foreign = [s for s in scopes if s not in scopes_for_audience(scopes, [], unverified=unverified)]
        if foreign:
            raise InvalidScope(f"scope needs the resource parameter naming its API: {' '.join(foreign)}")
        return
    defined = {s for r in resources for s in r.scopes}
    foreign = [s for s in scopes if s not in IDENTITY_SCOPES and s not in defined]
    if foreign:
        raise InvalidScope(f"scope not defined by the requested resource: {' '.join(foreign)}")
    idle = [r.resource for r in resources if not scopes_for_audience(scopes, [r])]
    if idle:
        raise InvalidScope(f"no requested scope is for the resource: {' '.join(idle)}")


def scopes_for_audience(scopes: list[str], resources: list, *, unverified: bool = False) -> list[str]:
    """What a token whose audience is `resources` may carry: the identity scopes and the scopes one
    of them defines (RFC 8707 §2: an access token is restricted to its audience). Without resources
    the audience is the default one (DEFAULT_AUDIENCE), which the operator points at whatever API
    they like, so nothing is dropped; for an `unverified` client it is the issuer, which defines
    the identity scopes only."""
    if not resources:
        return [s for s in scopes if s in IDENTITY_SCOPES] if unverified else list(scopes)
    defined = {s for r in resources for s in r.scopes}
    return [s for s in scopes if s in IDENTITY_SCOPES or s in defined]


def default_scopes(allowed: list[str], resources: list, *, unverified: bool = False) -> list[str]:
    """RFC 6749 §3.3 default when no scope was requested: the client's scopes, limited to those the
    requested resources define (identity scopes always apply)."""
    return scopes_for_audience(allowed, resources, unverified=unverified)


def narrow(requested: list[str], granted: list[str]) -> list[str]:
    """Token-endpoint `resource`: a subset of what was granted (RFC 8707 §2.2)."""
    extra = [uri for uri in requested if uri not in granted]
    if extra:
        raise InvalidTarget("resource was not granted at authorization", detail=" ".join(extra))
    return requested or granted


def audience(resources: list[str], default: str) -> list[str]:
    return list(resources) if resources else [default]


def resource_less_audience(client: Client, settings) -> str:
    """The `aud` of a token requested without a resource, at /authorize (consent is remembered for
    it) and at /token alike.

    DEFAULT_AUDIENCE is the operator's choice for the clients they vetted, and may well be a private
    API. A client nobody vetted (`registered_dynamically`) must never reach a private API (`resolve`
    refuses it them by name), so it gets the issuer instead, never DEFAULT_AUDIENCE: its
    resource-less tokens are for /userinfo, and carry identity scopes only (`scopes_for_audience`).
    Stricter of the two readings: an API's scope is not merely kept out of DEFAULT_AUDIENCE's
    token, it needs the API named with `resource` (RFC 8707), so the token's `aud` is that API."""
    return settings.issuer if client.registered_dynamically else settings.default_audience


def token_scopes(scopes: list[str], resources: list, *, unverified: bool = False) -> list[str]:
    """The scopes of a token for `resources`, checked again at every redemption and refresh because
    the registrations may have changed since the grant (RFC 8707 §2.2, RFC 6749 §6). A grant for
    Notes and Billing keeps each API's scopes side by side, so a token for Notes alone sheds
    Billing's, and a token for an API that no longer defines a granted scope sheds it; a token for
    an API left with none of its scopes, or with no scope at all, is refused rather than issued
    empty-handed."""
    kept = scopes_for_audience(scopes, resources, unverified=unverified)
    check_scopes(kept, resources, unverified=unverified)
    if not kept:
        raise InvalidScope("no granted scope is for the token's audience")
    return kept


def registered(uris: list[str], *, max_age: int) -> list[Resource]:
    """The registrations of resources granted earlier (a pending request's, a grant's), from this
    container's cache for up to `max_age` seconds (CLIENT_CACHE_SECONDS), so warm paths make no
    DynamoDB call for them. One deleted since is `invalid_target`: nothing says any more which
    scopes it defines."""
    from ..storage.resources import get_resource_cached

    uris = list(dict.fromkeys(uris))
    found = [get_resource_cached(uri, max_age) for uri in uris]
    gone = [uri for uri, resource in zip(uris, found) if resource is None]
    if gone:
        raise InvalidTarget("resource is no longer registered", detail=" ".join(gone))
    return found
