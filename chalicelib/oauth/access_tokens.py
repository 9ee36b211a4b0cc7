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


def verify(token: str, settings: Settings, *, audience) -> dict:
    """Claims of a token we issued and have not revoked; raises InvalidToken otherwise."""
    claims = _local_verifier(settings, audience).verify(token)
    if is_revoked(claims, settings):
        raise InvalidToken("the access token has been revoked", detail=f"jti={claims.get('jti')}")
    return claims


def is_revoked(claims: dict, settings: Settings) -> bool:
    from ..storage.clients import get_client_cached
    from ..storage.grants import active_grant
    from ..storage.models import RevokedTokenModel
    from .client_documents import is_document_client_id

    try:
        RevokedTokenModel.get(claims["jti"], consistent_read=True)
        return True
    except RevokedTokenModel.DoesNotExist:
        pass
    if "grant_id" in claims:
        return active_grant(claims["grant_id"]) is None
    # No grant (client_credentials): the token lives as long as its client stays registered and enabled.
    if is_document_client_id(claims["client_id"]):
        return False
    client = get_client_cached(claims["client_id"], settings.client_cache_seconds)
    return client is None or client.disabled


def revoke(claims: dict) -> None:
    """Deny-list the token's jti until it would have expired anyway (the item's TTL)."""
    from ..storage.models import RevokedTokenModel

    RevokedTokenModel(jti=claims["jti"], expires_at=int(claims["exp"])).save()
