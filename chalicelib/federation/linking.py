"""Linking an upstream identity to the local account that has its email, after proof (issue 15
rule 2, chalicelib/federation/sign_in.py): an upstream that is not trusted for the email's domain
(or did not verify the email) is no proof that whoever signed in there owns the local account.

The pending link (storage/federation_states.PendingLink) belongs to the browser that came back from
the upstream (its idp_fedlink cookie). Proof, in that browser:
- the local account's password, checked exactly as a sign-in attempt (oauth/login.begin and
  authenticate: the same per-account and per-address throttle before argon2id, taken back when
  right), or
- the code of a single-use link emailed to the account's address (storage/links.py, purpose
  "link_identity"), opened in that browser or typed there. A link opened in another browser does
  nothing: else whoever starts a link with their own upstream account could have the victim
  click "link" in the victim's mailbox and own a way into the victim's account.
Then the link, the pending link's deletion and the sign-in are one transaction
(sign_in._sign_in), and the owner is told by email (`identity_linked`).
"""
from __future__ import annotations

from ..config import Settings
from ..log import get_logger, now
from ..pages import messages
from .sign_in import LINK_TTL, Outcome, Refusal, _sign_in, connection, pending_link

log = get_logger("idp.federation")

PURPOSE = "link_identity"


def _connection(settings: Settings, link):
    conn = connection(settings, link.connection_id)
    if conn is None:
        raise Refusal(messages.FEDERATION_UNKNOWN_CONNECTION, "connection gone or disabled")
    return conn


def _link(link) -> dict:
    """The identity a pending link names, for _sign_in (linked with the session, or when the second
    factor completes: never on the password or emailed link alone when the user has one)."""
    return pending_link(link.connection_id, link.upstream_sub, email=link.upstream_email,
                        sealed_tokens=link.sealed_tokens)


def _amr(link) -> list[str]:
    """The amr of a sign-in by a pending link: the upstream's, never its "mfa". Until the link is
    proved, the upstream account is a stranger's as far as this user is concerned: its acr vouches
    for that account, not for this one, so it never stands in for the user's own second factor."""
    return [value for value in link.amr if value != "mfa"]


def _items(link):
    """The pending link's single use, in the transaction that signs in (or starts the second step)."""
    from ..storage import federation_states

    return [federation_states.consumed_link(link)]


def _request(link):
    from ..storage.authorization_requests import load

    if link.request_id is None:
        return None
    request = load(link.request_id)
    if request is None:
        raise Refusal(messages.EXPIRED_REQUEST, "authorization request gone")
    return request


def with_password(settings: Settings, link, password: str, *, ip: str, device: str | None) -> Outcome:
    """Prove the account with its password (LoginFailed / LoginThrottled as /login raises them),
    then link and sign in."""
    from ..errors import LoginFailed
    from ..oauth import login
    from ..undo import undone_on_failure

    _connection(settings, link)  # refused when the connection went meanwhile
    attempt = login.begin(settings, link.email, ip, link.request_id)
    if link.request_id is not None and attempt.request is None:
        raise Refusal(messages.EXPIRED_REQUEST, "authorization request gone")
    user = login.authenticate(settings, attempt, password, device)
    if user.pk != link.sub:  # the address moved to another account meanwhile
        raise LoginFailed()
    keys = [counter.key for _, counter in attempt.counters]
    with undone_on_failure(lambda: login.take_back(settings, attempt), what="link attempt", refusals=(Refusal,)):
        return _sign_in(settings, user, amr=_amr(link), strong=False, request=attempt.request,
                        extra=_items(link), at=link.auth_time, take_back=keys, link=_link(link),
                        connection_id=link.connection_id)


def _check_verified(user) -> None:
    """An emailed link proves the mailbox, which is no proof of an account whose address nobody
    verified: that may be someone else's sign-up with the owner's address (pre-account hijacking),
    whose password they would keep once the owner's upstream account is linked to it. The owner
    signs in with the password, or resets it (which verifies the address and ends the other's
    sessions) and links then."""
    if user is not None and not user.email_verified:
        raise Refusal(messages.LINK_NEEDS_VERIFIED_ACCOUNT, "emailed link for an unverified account", status=409)


def send_link(settings: Settings, link, *, ip: str, base_url: str) -> int | None:
    """Email a single-use link (and its code) to the account's address. None when sent, else the
    seconds to wait (accounts/limits.py: the same hourly limits as every email we send)."""
    from .. import mail
    from ..accounts import limits
    from ..storage import links

    from ..storage.users import get_user

    conn = _connection(settings, link)
    _check_verified(get_user(link.sub))
    retry_after = limits.allow(PURPOSE, email=link.email, ip=ip)
    if retry_after is not None:
        return retry_after
    token = links.issue(PURPOSE, email=link.email, sub=link.sub, at=now(), ttl=LINK_TTL, request_id=link.request_id,
                        data={"pending": link.key})
    # A message SES does not take raises EmailNotSent (503): the link then exists, unknown to anyone.
    mail.send(link.email, PURPOSE, provider=conn.display_name, link=f"{base_url}/federation/link?token={token}",
              code=links.display_code(token), minutes=LINK_TTL // 60)
    return None


def _matches(found, link) -> bool:
    return found.sub == link.sub and found.data.get("pending") == link.key


def link_for(token: str, link) -> bool:
    """Whether `token` is an unused, unexpired link for this browser's pending link (no write)."""
    from ..storage import links

    found = links.peek(token, PURPOSE, now())
    return not isinstance(found, links.Refused) and _matches(found, link)


def with_token(settings: Settings, link, token: str) -> Outcome:
    """Prove the account with the emailed link or its code (typed in this browser): the link is
    consumed (one conditional write), then link and sign in; a fault after the consume puts the
    link back (chalicelib/undo.py). Refusal(LINK_CODE_WRONG) when the code is not this pending
    link's, used or expired: a code for another pending link is never spent here."""
    from ..storage import links
    from ..undo import undone_on_failure

    from ..storage.users import get_user

    _connection(settings, link)  # refused when the connection went meanwhile
    if not link_for(token, link):
        raise Refusal(messages.LINK_CODE_WRONG, "link code wrong, used or for another pending link", status=401)
    request = _request(link)
    user = get_user(link.sub)
    if user is None or user.disabled or user.deleted_at is not None:
        raise Refusal(messages.FEDERATION_ACCOUNT_UNUSABLE, "user disabled or deleted", status=403)
    _check_verified(user)
    used = links.consume(token, PURPOSE, now())
    if isinstance(used, links.Refused) or not _matches(used[0], link):
        raise Refusal(messages.LINK_CODE_WRONG, "link code used meanwhile", status=401)
    _, use_id = used
    # Refusals too put the link back: the pending link went meanwhile (another tab linked), and the
    # code must not be spent for nothing.
    with undone_on_failure(lambda: links.restore(token, use_id), what="identity link", refusals=()):
        return _sign_in(settings, user, amr=_amr(link), strong=False, request=request,
                        extra=_items(link), at=link.auth_time, link=_link(link),
                        connection_id=link.connection_id)
