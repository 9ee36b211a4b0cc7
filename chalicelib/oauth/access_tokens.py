"""Our own view of access tokens we issued: signature by our keys, then revocation state.

A JWT stays valid by signature until it expires; "revoked" is what we know on top: its `jti` is
on the deny list (RFC 7009 revocation), or its grant (refresh-token family) has been revoked.
"""
from __future__ import annotations

from .. import caches
from ..config import Settings
from ..errors import InvalidToken
from ..verifier import Verifier

_verifiers: dict = {}
# A verifier holds no state of its own (it asks the key ring), but its key is the issuer.
caches.register("verifiers", _verifiers.clear)


def _local_verifier(settings: Settings, audience) -> Verifier:
    from ..keys import keyring

    key = (settings.issuer, tuple(audience) if isinstance(audience, list) else audience)
    if key not in _verifiers:
        # The key ring caches /jwks per container; the verifier asks it every time (cache_seconds=0)
        # and forces one refresh for an unknown kid.
        _verifiers[key] = Verifier(settings.issuer, audience, cache_seconds=0, refetch_interval=1,
                                   jwks_provider=lambda refresh: keyring.cached_jwks(refresh=refresh))
    return _verifiers[key]


def verify(token: str, settings: Settings, *, audience, check_revocation: bool = True) -> dict:
    """Claims of a token we issued and have not revoked; raises InvalidToken otherwise.
    `check_revocation=False`: the caller reads the grant itself (with other data, in one call)
    and must then apply `grant_allows`."""
    claims = _local_verifier(settings, audience).verify(token)
    if check_revocation and is_revoked(claims, settings):
        raise InvalidToken("the access token has been revoked", detail=f"jti={claims.get('jti')}")
    return claims


def grant_allows(claims: dict, grant) -> bool:
    """A user's access token lives while its grant is active and it was not revoked on its own.
    A token exchanged from one (RFC 8693, grants/token_exchange.py: it carries `act`) keeps the
    grant's id but names the exchanging client, so it dies with the grant it was delegated from."""
    from ..log import now

    return (grant is not None and grant.is_active(now())
            and (grant.client_id == claims.get("client_id") or "act" in claims)
            and claims.get("jti") not in grant.revoked_jtis)


def is_revoked(claims: dict, settings: Settings) -> bool:
    """One DynamoDB call: the grant of a user's token (its state and the jtis revoked one by one), or
    the deny list for a client's own token (client_credentials), whose client must also still be
    registered and enabled (from this container's cache)."""
    from ..storage import grants, revoked_tokens
    from ..storage.clients import get_client_cached
    from .client_documents import is_document_client_id

    if "grant_id" in claims:
        return not grant_allows(claims, grants.access_state(claims.get("sub"), claims["grant_id"]))
    if revoked_tokens.is_denied(claims["jti"]):
        return True
    if is_document_client_id(claims["client_id"]):
        return False
    client = get_client_cached(claims["client_id"], settings.client_cache_seconds)
    return client is None or client.disabled


def revoke(claims: dict) -> None:
    """RFC 7009 for an access token. A user's token goes on its grant's own list (bounded: past it
    the whole grant is revoked, which is what the client gets for revoking that many); a client's
    own token on the deny list until it would have expired anyway (the item's TTL)."""
    from ..storage import grants, revoked_tokens

    if "grant_id" in claims:
        if not grants.deny_access_token(claims["sub"], claims["grant_id"], claims["jti"]):
            grants.revoke(claims["sub"], claims["grant_id"], reason="too many access tokens revoked one by one")
        return
    revoked_tokens.deny(claims["jti"], int(claims["exp"]))
