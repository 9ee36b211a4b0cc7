"""Invitations (issue 12 §5): an operator invites an address, the invitee sets a password.

`invite` runs in the admin CLI (`./idp-admin users invite`, operator credentials): it refuses an
address that already has an account, stores an "invitation" link (INVITATION_TTL) and sends the
`invitation` email. It works whatever SIGNUP_MODE says: the operator is the one deciding.

`accept` runs the POST of the invitation page. As with a reset (accounts/recovery.py), the caller
checked the password policy and the name before, without consuming (`links.peek`); then the link
is consumed by one conditional write, and the user is created with email_verified true (whoever
opened the link proved the mailbox) in the transaction that claims the address
(storage/users.create_user). If the address got an account meanwhile (a sign-up, a second
invitation) the link is put back and UserExists raised: nothing is spent, and the page sends them
to sign in. A fault while creating puts the link back too (chalicelib/undo.py).

Then the invitee is signed in: a session as POST /login makes one (storage/sign_ins.record_sign_in,
without an authorization request). Should that write fail, the account still stands, made as the
user asked; they are shown the same "ready" page, only not signed in, and sign in at the app.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import mail
from ..config import settings
from ..log import get_logger, now
from ..undo import undone_on_failure

log = get_logger("idp.accounts")

PURPOSE = "invitation"


def invitation_url(token: str) -> str:
    from urllib.parse import urlencode

    return f"{settings().issuer}/invitation?{urlencode({'token': token})}"


def invite(email: str, name: str | None = None) -> tuple[str, str]:
    """Invite `email`: (the normalised address, the link sent). Raises InvalidUser for a bad address
    or name, UserExists when the address has an account, EmailNotSent when SES refuses."""
    from ..storage import links
    from ..storage.users import UserExists, checked_email, checked_name, find_user_by_email

    email, name = checked_email(email), checked_name(name)
    if find_user_by_email(email) is not None:
        raise UserExists(f"{email} already has an account: nothing was sent")
    config = settings()
    token = links.issue(PURPOSE, email=email, at=now(), ttl=config.invitation_ttl,
                        data={"name": name} if name else None)
    url = invitation_url(token)
    mail.send(email, "invitation", link=url, name=name, days=max(1, config.invitation_ttl // 86400))
    return email, url


@dataclass(frozen=True)
class Accepted:
    user: object  # storage.models.UserModel
    #: storage.sign_ins.SignedIn, or None when the sign-in could not be written (module doc).
    signed_in: object | None


def accept(token: str, password: str, name: str | None, *, at: int | None = None):
    """Consume invitation `token` and create its user. Returns Accepted or storage.links.Refused;
    raises UserExists (link put back) when the address has an account by now."""
    from ..storage import links
    from ..storage.users import create_user

    at = now() if at is None else at
    consumed = links.consume(token, PURPOSE, at)
    if isinstance(consumed, links.Refused):
        return consumed
    link, use_id = consumed
    # refusals=(): UserExists and InvalidUser put the link back as much as a fault does.
    with undone_on_failure(lambda: links.restore(token, use_id), what="invitation link", refusals=()):
        user = create_user(link.email, password, name, email_verified=True)
    return Accepted(user, _sign_in(user))


def _sign_in(user):
    from ..storage.sign_ins import record_sign_in
    from ..tokens.issue import user_attributes

    config = settings()
    try:
        return record_sign_in(user, amr=["pwd"], user_claims=user_attributes(user), session_ttl=config.session_ttl,
                              device_ttl=config.known_device_ttl, request_id=None, mark_request=False,
                              take_back=(), window_seconds=config.login_throttle_window)
    except Exception:  # noqa: BLE001 - the account is made; signing in is a convenience (module doc)
        log.exception("invitation accepted, but the sign-in could not be written", extra={"sub": user.pk})
        return None
