"""Grant (refresh-token family) revocation: one conditional update per grant."""
from __future__ import annotations

from ..log import get_logger, now
from .models import GrantModel, conditionally

log = get_logger("idp.grants")


def revoke_grant(grant_id: str, *, reason: str) -> bool:
    """Revoke a grant: its refresh tokens stop rotating and its access tokens stop being accepted
    by /userinfo and /introspect. False when it was already revoked or never existed."""
    if not conditionally(lambda: GrantModel(grant_id=grant_id).update(
            actions=[GrantModel.status.set("revoked"), GrantModel.revoked_at.set(now())],
            condition=GrantModel.grant_id.exists() & (GrantModel.status == "active"))):
        return False
    log.warning("grant revoked", extra={"grant_id": grant_id, "reason": reason})
    return True


def revoke_grants_of(*, sub: str | None = None, client_id: str | None = None, session_hash: str | None = None,
                     reason: str) -> int:
    """Revoke every grant of a user, a client or an SSO session (through the grants table's GSIs)."""
    index, key = next((i, k) for i, k in ((GrantModel.by_sub, sub), (GrantModel.by_client, client_id),
                                          (GrantModel.by_session, session_hash)) if k)
    return sum(revoke_grant(item.grant_id, reason=reason) for item in index.query(key))


def active_grant(grant_id: str | None) -> GrantModel | None:
    """The grant if it exists, is active and within its absolute lifetime."""
    if not grant_id or len(grant_id) > 128:
        return None
    try:
        grant = GrantModel.get(grant_id, consistent_read=True)
    except GrantModel.DoesNotExist:
        return None
    return grant if grant.status == "active" and grant.expires_at > now() else None
