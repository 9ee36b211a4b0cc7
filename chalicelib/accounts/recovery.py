"""Forgotten passwords: the reset link by email, and setting a new password with it (issue 12 §3).

`request_reset` answers the same whether or not the address has an account (OWASP Forgot Password
Cheat Sheet, "return a consistent message for both existent and non-existent accounts"): the page
always says "if an account exists for that address, we sent a link". What differs is only what
happens out of sight: a user who exists and is enabled gets a `reset_password` email; an unknown or
disabled address gets nothing (not even a "someone asked to reset" note: it would tell a stranger's
mailbox that the address is being tried, for no benefit to its owner). The DynamoDB work is the same
up to the link itself: the limits transaction, and the two reads of `find_user_by_email` in both
cases; the known case adds the link's PutItem and the SES call. That remaining timing difference is
the one way to tell them apart; closing it needs the send moved off the request (a queue), see the
issue's closing note.

`reset_password` runs the POST of the link's form. Its order is what makes it safe:
1. the caller has checked the new password against the policy (password_policy.problem) for the
   link's address, read without consuming (`links.peek`): a refused password spends nothing;
2. the link is consumed by one conditional write (storage/links.consume): of two concurrent
   POSTs exactly one goes on;
3. the new hash, email_verified and the session-generation bump are one UpdateItem, then every
   refresh-token family is revoked (storage/users.set_password, as `./idp-admin users signout`
   does). Any fault in 3 puts the link back (chalicelib/undo.py), so the user's retry does it all;
4. the "your password was changed" notice. If SES fails here the reset still stands: the password
   is what the user came to change, and it changed, with everything that must go with it done; the
   notice is a courtesy to a user who (almost always) just did it. Failing the page would tell them
   their reset failed when it did not, and their retry would find the link spent. So the failure is
   logged, not shown: "no half-made state" (issue 12 §8) is about never losing what the user did.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import mail
from ..config import settings
from ..errors import EmailNotSent
from ..log import get_logger, now
from ..undo import undone_on_failure

log = get_logger("idp.accounts")

PURPOSE = "reset_password"


def reset_url(token: str) -> str:
    from urllib.parse import urlencode

    return f"{settings().issuer}/reset-password?{urlencode({'token': token})}"


def request_reset(email: str, *, ip: str, request_id: str | None) -> int | None:
    """Send a reset link to `email` if it is an enabled user's. None: the "we sent a link if..."
    page, whatever happened; else the seconds to wait (accounts/limits.py refused the attempt).
    Raises EmailNotSent when SES does not take the message (the link then exists but its token was
    never given to anyone: nothing usable is left)."""
    from ..storage import links
    from ..storage.authorization_requests import MAX_REQUEST_ID_LENGTH
    from ..storage.users import find_user_by_email, normalise_email
    from . import limits

    email = normalise_email(email)
    retry_after = limits.allow("reset", email=email, ip=ip)
    if retry_after is not None:
        return retry_after
    user = find_user_by_email(email)
    if user is None or user.disabled:
        return None
    config = settings()
    # The request the user came from, so the "password changed" page can lead back to its
    # sign-in; whether it is still live is decided then.
    request_id = request_id if request_id and len(request_id) <= MAX_REQUEST_ID_LENGTH else None
    token = links.issue(PURPOSE, email=user.email, sub=user.pk, at=now(), ttl=config.reset_password_ttl,
                        request_id=request_id)
    mail.send(user.email, "reset_password", link=reset_url(token), minutes=config.reset_password_ttl // 60)
    return None


@dataclass(frozen=True)
class Reset:
    """A password was reset: `request_id` is the authorization request the link carried (or None)."""

    email: str
    request_id: str | None


def reset_password(token: str, password: str, *, at: int | None = None):
    """Consume reset link `token` and give its user `password`, ending every session and grant.
    Returns Reset, or storage.links.Refused (used, expired, unknown; "unknown" too when the user is
    gone, disabled or has another address now). The caller checked the policy first (module doc)."""
    from ..oauth import backchannel_logout
    from ..storage import links
    from ..storage.users import set_password

    at = now() if at is None else at
    consumed = links.consume(token, PURPOSE, at)
    if isinstance(consumed, links.Refused):
        return consumed
    link, use_id = consumed
    # Anything failing from here puts the link back, a refused password included (refusals=()):
    # the user's next try needs it.
    since = now()
    with undone_on_failure(lambda: links.restore(token, use_id), what="reset link", refusals=()):
        changed = set_password(link.sub, password, email=link.email, reason="password reset")
    if not changed:
        return links.Refused("unknown", link)
    # Every session ended: the apps are told (OpenID Connect Back-Channel Logout 1.0), never an error.
    backchannel_logout.notify(backchannel_logout.user_signed_out(link.sub, since), settings())
    # Issue 13 (second factors) hooks in here: a reset proves the mailbox only, so it must never
    # remove or bypass a second factor; the next sign-in still asks for it.
    try:
        mail.send(link.email, "password_changed", via_reset=True)
    except EmailNotSent:
        log.warning("password reset, but the password_changed notice was not sent", extra={"sub": link.sub})
    return Reset(email=link.email, request_id=link.request_id)
