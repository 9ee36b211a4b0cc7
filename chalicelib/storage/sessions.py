"""Signed-in (SSO) sessions as the core sees them: records read by the hash of the cookie value.

Creating a session belongs to sign-in (chalicelib/oauth/login.py and oauth/sessions.start); this
module reads and ends them, one DynamoDB call each.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from .models import SessionModel, conditionally
from .transactions import Refused, TxItem, write


@dataclass(frozen=True)
class Session:
    session_hash: str
    sub: str
    auth_time: int
    expires_at: int
    amr: tuple[str, ...] = ()
    session_generation: int = 0
    revoked: bool = False
    grant_ids: frozenset = frozenset()
    #: ID-token claims of the user at sign-in (None on sessions from before they were kept).
    user_claims: dict | None = None
    #: The kinds of second factor the user had ("passkey", "totp", "recovery"), as of sign-in or the
    #: user's last change to them in this session.
    factors: tuple[str, ...] = ()
    #: The upstream connection signed in through; None: our own sign-in (password, passkey).
    connection_id: str | None = None
    #: False when the user's state (enabled, generation) has not been read with the session: the
    #: write that relies on it must check it (chalicelib/storage/codes.issue does).
    user_checked: bool = True


def from_model(item: SessionModel, *, user_checked: bool = True) -> Session:
    return Session(session_hash=item.session_hash, sub=item.sub, auth_time=int(item.auth_time),
                   expires_at=int(item.expires_at), amr=tuple(item.amr or ()),
                   session_generation=int(item.session_generation or 0), revoked=bool(item.revoked),
                   grant_ids=frozenset(item.grant_ids or ()),
                   user_claims=json.loads(item.user_claims) if item.user_claims else None,
                   factors=tuple(item.factors or ()), connection_id=item.connection_id, user_checked=user_checked)


def get(session_hash: str) -> Session | None:
    """The session item (live or not), strongly consistent: a sign-out must be seen at once."""
    try:
        return from_model(SessionModel.get(session_hash, consistent_read=True), user_checked=False)
    except SessionModel.DoesNotExist:
        return None


def end(session_hash: str) -> Session | None:
    """Mark the session revoked and return it as written (with every grant issued through it,
    since issuing one needs the session unrevoked in the same transaction); None when there is
    no such session."""
    item = SessionModel(session_hash=session_hash)
    if not conditionally(lambda: item.update(actions=[SessionModel.revoked.set(True)],
                                             condition=SessionModel.session_hash.exists())):
        return None
    return from_model(item)


def set_user_claims(session_hash: str, user_claims: dict) -> bool:
    """Replace the user's ID-token claims kept with a live session (after the user verified their
    email in this browser: codes issued from now on carry `email_verified: true`). One conditional
    update; False when the session is gone, revoked or expired."""
    item = SessionModel(session_hash=session_hash)
    return conditionally(lambda: item.update(
        actions=[SessionModel.user_claims.set(json.dumps(user_claims, separators=(",", ":")))], condition=_live()))


def set_factors(session_hash: str, kinds) -> bool:
    """Record the kinds of second factor the user now has on a live session (after they added or
    removed one in it). One conditional update; False when the session is gone, revoked or expired."""
    item = SessionModel(session_hash=session_hash)
    return conditionally(lambda: item.update(actions=[SessionModel.factors.set(sorted(kinds))], condition=_live()))


def _live():
    from ..log import now

    return (SessionModel.session_hash.exists() & (SessionModel.revoked == False)  # noqa: E712
            & (SessionModel.expires_at > now()))


def factors_item(session_hash: str, kinds) -> TxItem:
    """`set_factors` as an item of a transaction (label "session"): the factor change and the
    session that made it are written together, or neither."""
    return TxItem("update", "session", lambda tx: tx.update(
        SessionModel(session_hash=session_hash), actions=[SessionModel.factors.set(sorted(kinds))],
        condition=_live()))


def step_up(session_hash: str, amr, auth_time: int, *, factors=None, extra=()) -> bool:
    """The session's user just proved another factor: its amr and auth_time (OIDC Core §2: the
    time of the latest authentication) are replaced, and with `factors` its factor kinds, on
    condition the session is live, in one transaction with `extra` items (the factor's single use,
    or the enrolment that proved it). False when the session is gone, revoked or expired (nothing is
    written); transactions.Refused names the `extra` items whose condition refused."""
    actions = [SessionModel.amr.set(list(amr)), SessionModel.auth_time.set(int(auth_time))]
    if factors is not None:
        actions.append(SessionModel.factors.set(sorted(factors)))
    session = TxItem("update", "session", lambda tx: tx.update(SessionModel(session_hash=session_hash),
                                                               actions=actions, condition=_live()))
    try:
        write([session, *extra])
    except Refused as refused:
        if refused.labels - {"session"}:
            raise Refused(refused.labels - {"session"}) from None
        return False
    return True
