"""The deny list of access tokens that have no grant (client_credentials), revoked before they
expire (RFC 7009): one item per `jti`, kept until the token's `exp` (the table's TTL)."""
from __future__ import annotations

from .models import RevokedTokenModel


def deny(jti: str, expires_at: int) -> None:
    RevokedTokenModel(jti=jti, expires_at=expires_at).save()


def is_denied(jti: str) -> bool:
    """One strongly consistent GetItem: a revocation must be seen at once."""
    try:
        RevokedTokenModel.get(jti, consistent_read=True)
    except RevokedTokenModel.DoesNotExist:
        return False
    return True
