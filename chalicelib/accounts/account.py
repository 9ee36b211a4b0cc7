"""What a signed-in user can do to their own account (issue 12 §4): edit the profile, change the
password or the email address, sign out everywhere, see and revoke the apps they allowed, delete
the account. The blueprint (chalicelib/blueprints/account.py) parses and renders; this decides.

Re-authentication. Changing the password or the address, and deleting the account, need the
current password: a browser left signed in must not be enough to take the account over. That
check is a sign-in attempt in all but name (oauth/login.py's `begin` and `authenticate`): counted
by the same per-account and per-address throttle before argon2id runs, taken back when right, so
the account page is no side door for guessing.

Writes that end things (sessions, grants) follow one order, so that a fault never leaves a
half-done change and a retry always works:
1. before the commit, revoke what must die (grants, consents): idempotent, and a 503 here leaves
   the session alive for the retry;
2. the commit: one conditional write on the user (storage/accounts.py) that also moves
   `session_generation` on, so every session ends and no code is issued for an old one from then on;
3. after it, best effort: revoke once more (a grant created between 1 and 2 by a code issued in
   that instant), send the notification email. These are logged when they fail, never a 503: the
   change is made and the user's session is gone, so a "try again" could not be retried.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..config import Settings
from ..errors import AccountActionRefused as Refused, LoginFailed
from ..log import get_logger, now
from ..pages import messages

log = get_logger("idp.account")

#: An email-change link works once, for this long (seconds).
EMAIL_CHANGE_TTL = 3600


@dataclass(frozen=True)
class App:
    """A client the user allowed, for the account page."""

    client_id: str
    client_name: str | None
    #: (audience, [scopes]) as allowed, audiences sorted.
    access: tuple
    last_used_at: int | None

    @property
    def last_used(self) -> str | None:
        """`last_used_at` for the page, in UTC (the page knows no time zone)."""
        from datetime import datetime, timezone

        if self.last_used_at is None:
            return None
        return datetime.fromtimestamp(self.last_used_at, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class SignInMethods:
    """The account page's "Two-step verification" section: TOTP's state ("active", "pending" or
    None), how many recovery codes are left (None: none were made), the passkeys (storage Factors)."""

    totp: str | None
    recovery_left: int | None
    passkeys: tuple = ()

    @property
    def has_factor(self) -> bool:
        """A factor that recovery codes can stand next to."""
        return self.totp == "active" or bool(self.passkeys)


def sign_in_methods(settings: Settings, user) -> SignInMethods | None:
    """The user's factors for the account page (one Query), or None when MFA_POLICY is off (the
    section is not shown)."""
    from ..storage import factors
    from .totp import ENROLMENT_TTL

    if settings.mfa_policy == "off":
        return None
    totp, recovery_left, passkeys = None, None, []
    for factor in factors.of_user(user.pk):
        if factor.kind == factors.TOTP:
            if not factor.pending:
                totp = "active"
            elif factor.created_at + ENROLMENT_TTL > now():
                totp = "pending"
        elif factor.kind == factors.RECOVERY:
            recovery_left = len(factor.code_hashes)
        elif factor.kind == factors.PASSKEY:
            passkeys.append(factor)
    return SignInMethods(totp=totp, recovery_left=recovery_left, passkeys=tuple(passkeys))


def _best_effort(what: str, action) -> None:
    """Run a step after the commit; a failure is logged, not answered (see the module docstring)."""
    try:
        action()
    except Exception as exc:  # noqa: BLE001 - after the commit nothing may turn the answer into an error
        log.error(f"{what} failed after the change was made", extra={"fault": repr(exc)[:300]})


# Who is signed in ----------------------------------------------------------------------------------

def signed_in(cookie_value: str | None):
    """(session, user) behind the session cookie, or None: no session, or one that ended, or whose
    user is gone, disabled or signed out everywhere since. Two reads (the session, the user)."""
    from ..oauth import sessions
    from ..storage.users import get_user

    session = sessions.load(cookie_value, check_user=False)
    if session is None:
        return None
    user = get_user(session.sub)
    if user is None or user.disabled or user.deleted_at is not None \
            or session.session_generation < user.session_generation:
        return None
    return session, user


def check_password(settings: Settings, user, password: str, *, ip: str, device: str | None) -> None:
    """The user's current password, checked as a sign-in attempt is (see the module docstring):
    Refused(WRONG_PASSWORD, 401) or Refused(TOO_MANY_ATTEMPTS, 429) when wrong or throttled."""
    from ..errors import LoginThrottled
    from ..oauth import login

    if not user.password_hash:
        # Signed up through an upstream provider (storage/federated_identities.py): there is no
        # password to check, and none to guess. The forgotten-password email sets one.
        raise Refused(messages.NO_PASSWORD_YET, status=409)
    attempt = login.begin(settings, user.email, ip, None)
    try:
        found = login.authenticate(settings, attempt, password, device)
    except LoginThrottled as exc:
        raise Refused(messages.TOO_MANY_ATTEMPTS, status=429, retry_after=exc.retry_after) from None
    except LoginFailed:
        raise Refused(messages.WRONG_PASSWORD, status=401) from None
    if found.pk != user.pk:  # the address moved to another account meanwhile: not this user's password
        raise Refused(messages.ACCOUNT_CHANGED_MEANWHILE, status=409)
    login.take_back(settings, attempt)


# Profile ---------------------------------------------------------------------------------------------

def update_profile(session, user, form: dict) -> None:
    """Check and save name, given name, family name and locale; the browser's session carries the
    new claims at once (storage/accounts.update_profile)."""
    from ..storage import accounts as store
    from ..tokens.issue import user_attributes
    from . import profile

    try:
        checked = profile.check(**{field: form.get(field, "") for field in profile.FIELDS})
    except profile.InvalidProfile as exc:
        raise Refused(messages.INVALID_LOCALE if exc.field == "locale" else messages.INVALID_NAME) from None
    at = now()
    claims = {**user_attributes(user), "name": checked.name, "given_name": checked.given_name,
              "family_name": checked.family_name, "locale": checked.locale, "updated_at": at}
    if not store.update_profile(user.pk, checked, at=at, session_hash=session.session_hash, session_claims=claims):
        raise Refused(messages.ACCOUNT_CHANGED_MEANWHILE, status=409)


# Password --------------------------------------------------------------------------------------------

def change_password(settings: Settings, user, current: str, new: str, *, ip: str, device: str | None) -> None:
    """Replace the password after checking the current one and the new one (NIST SP 800-63B-4
    §3.1.1.2, chalicelib/password_policy.py). Every session ends, this browser's too, and every
    refresh-token family is revoked: whoever knew the old password may hold one. The user signs in
    again with the new password (which proves it works). Then a notice goes to the address."""
    from .. import password_policy
    from ..passwords import hash_password
    from ..storage import accounts as store, grants

    check_password(settings, user, current, ip=ip, device=device)
    weak = password_policy.problem(new, user.email)
    if weak:
        raise Refused(weak)
    new_hash = hash_password(new)
    since = now()
    grants.revoke_all_of_user(user.pk, reason="password changed")
    if not store.change_password(user.pk, old_hash=user.password_hash, new_hash=new_hash):
        raise Refused(messages.ACCOUNT_CHANGED_MEANWHILE, status=409)
    _best_effort("revoking grants", lambda: grants.revoke_all_of_user(user.pk, reason="password changed"))
    _signed_out_everywhere(settings, user.pk, since)
    _best_effort("password_changed email", lambda: _mail(user.email, "password_changed", user))


def _mail(to: str, template: str, user, **context) -> None:
    from .. import mail

    mail.send(to, template, locale=user.locale, **context)


# Email address ---------------------------------------------------------------------------------------

def request_email_change(settings: Settings, user, new_email: str, password: str, *, ip: str,
                         device: str | None) -> None:
    """Send a one-time link to `new_email` that moves the account there. The answer is the same
    whether or not the address already has an account, and nothing is sent to a taken address
    (its owner learns nothing either: a notice would tell them someone typed it, but not who, and
    nothing they can act on). Counted per address and per IP (accounts/limits.py)."""
    from ..storage import links
    from ..storage.users import InvalidUser, _check_email, find_user_by_email, normalise_email
    from . import limits

    new_email = normalise_email(new_email)
    try:
        _check_email(new_email)
    except InvalidUser:
        raise Refused(messages.INVALID_EMAIL) from None
    if new_email == user.email:
        raise Refused(messages.SAME_EMAIL)
    check_password(settings, user, password, ip=ip, device=device)
    retry_after = limits.allow("email_change", email=new_email, ip=ip)
    if retry_after is not None:
        raise Refused(messages.TOO_MANY_EMAILS, status=429, retry_after=retry_after)
    if find_user_by_email(new_email) is not None:
        log.info("email change to a taken address: nothing sent", extra={"sub": user.pk})
        return
    token = links.issue("email_change", email=new_email, at=now(), ttl=EMAIL_CHANGE_TTL, sub=user.pk,
                        data={"new_email": new_email, "generation": int(user.session_generation or 0)})
    # A link that could not be sent (EmailNotSent, a 503) stays unused until it expires: nobody has it.
    _mail(new_email, "email_change_verify", user, link=f"{settings.issuer}/account/email/confirm?token={token}",
          minutes=EMAIL_CHANGE_TTL // 60)


def email_change_link(token: str):
    """The pending change behind a link, for the page a GET shows (never consumes): the new address,
    or Refused."""
    from ..storage import links

    found = links.peek(token, "email_change", now())
    if isinstance(found, links.Refused):
        raise Refused(messages.EMAIL_LINK_USED if found.reason == "used" else messages.EMAIL_LINK_INVALID)
    return found.data.get("new_email")


def confirm_email_change(token: str) -> str:
    """Use the link (one conditional write) and move the account to its new address in one
    transaction (storage/accounts.change_email); then tell the old address. Returns the new address.
    A fault after the link was used puts it back (chalicelib/undo.py), so the retry works."""
    from ..storage import accounts as store, links
    from ..storage.users import get_user
    from ..undo import undone_on_failure

    used = links.consume(token, "email_change", now())
    if isinstance(used, links.Refused):
        raise Refused(messages.EMAIL_LINK_USED if used.reason == "used" else messages.EMAIL_LINK_INVALID)
    link, use_id = used
    with undone_on_failure(lambda: links.restore(token, use_id), what="email change link", refusals=(Refused,)):
        user = get_user(link.sub)
        new_email = link.data.get("new_email")
        if user is None or user.disabled or user.deleted_at is not None or not new_email:
            raise Refused(messages.EMAIL_LINK_INVALID)
        if user.email == new_email:
            return new_email  # done already (a retry whose first answer was lost)
        generation = link.data.get("generation")
        if generation is None:
            raise Refused(messages.EMAIL_LINK_INVALID)
        # Only under the generation the link was asked for: a password change or reset, signing out
        # everywhere, or a new sign-up for a never-verified address voids links sent before.
        outcome = store.change_email(user.pk, old_email=user.email, new_email=new_email,
                                     generation=int(generation))
    if outcome == "taken":
        raise Refused(messages.EMAIL_TAKEN_NOW, status=409)
    if outcome == "stale":
        raise Refused(messages.ACCOUNT_CHANGED_MEANWHILE, status=409)
    _best_effort("email_changed email", lambda: _mail(user.email, "email_changed", user, new_email=new_email))
    return new_email


# Sessions and apps -----------------------------------------------------------------------------------

def sign_out_everywhere(sub: str) -> None:
    """End every session (this one too) and revoke every refresh-token family, as
    `idp-admin users signout` does, in the order of the module docstring; then the apps are told."""
    from ..config import settings
    from ..storage import accounts as store, grants

    since = now()
    grants.revoke_all_of_user(sub, reason="signed out everywhere")
    if store.end_sessions(sub):
        _best_effort("revoking grants", lambda: grants.revoke_all_of_user(sub, reason="signed out everywhere"))
        _signed_out_everywhere(settings(), sub, since)


def _signed_out_everywhere(settings: Settings, sub: str, since: int) -> None:
    """After the commit: the clients of every grant revoked since `since` are to be told
    (OpenID Connect Back-Channel Logout 1.0): one message on the logout queue, never an error
    (oauth/backchannel_logout.notify logs a failure)."""
    from ..oauth import backchannel_logout

    backchannel_logout.notify(backchannel_logout.user_signed_out(sub, since), settings)


def apps(sub: str) -> list[App]:
    """The clients the user allowed (remembered consents, and clients holding an active grant),
    with what each may access and when it was last used. Three reads: the user's grants (Query),
    their list of consents (GetItem), the consents with the clients' names (BatchGetItem)."""
    from ..oauth.consent import SEPARATOR
    from ..storage import consents, grants

    last_used: dict[str, int] = {}
    for grant in grants.of_user(sub):
        used = grant.last_used_at or grant.created_at
        last_used[grant.client_id] = max(last_used.get(grant.client_id, 0), used)
    found = []
    for consent in consents.list_of(sub, last_used):
        access: dict[str, list[str]] = {}
        for pair in sorted(consent.pairs):
            scope, _, audience = pair.partition(SEPARATOR)
            access.setdefault(audience, []).append(scope)
        found.append(App(consent.client_id, consent.client_name, tuple(sorted(access.items())),
                         last_used.get(consent.client_id, consent.updated_at)))
    return found


def revoke_app(sub: str, client_id: str) -> None:
    """Forget the consent (the app must ask again), then revoke the app's refresh-token families of
    this user. In that order: a code issued in between needs the consent, so no grant outlives it."""
    from ..storage import consents, grants

    # Bytes, not characters: "<sub>#<client_id>" must fit DynamoDB's 2048-byte key limit.
    if not client_id or len(client_id.encode("utf-8")) > 1900:
        return
    consents.forget(sub, client_id)
    grants.revoke_all_of_client_for_user(sub, client_id, reason="revoked by the user")


# Deletion --------------------------------------------------------------------------------------------

def delete_account(settings: Settings, session, user, password: str, *, ip: str, device: str | None) -> None:
    """Delete the account after checking the password: every grant revoked and its kept claims
    erased, every consent deleted, then the user item becomes a tombstone without personal data and
    the address is freed (storage/accounts.delete_account). The "account deleted" notice goes out
    after that commit, to the address held in memory: sent before, it could announce a deletion
    that a fault then stopped; sent after, a failure to send (logged) is the only loss."""
    from ..storage import accounts as store, consents, factors, grants

    check_password(settings, user, password, ip=ip, device=device)
    since = now()
    grants.revoke_all_of_user(user.pk, reason="account deleted", erase_claims=True)
    consents.forget_all(user.pk)
    if not store.delete_account(user.pk, email=user.email, identities=user.identities):
        raise Refused(messages.ACCOUNT_CHANGED_MEANWHILE, status=409)
    _best_effort("revoking grants", lambda: grants.revoke_all_of_user(user.pk, reason="account deleted",
                                                                       erase_claims=True))
    _best_effort("ending the session", lambda: store.end_session(session.session_hash))
    _signed_out_everywhere(settings, user.pk, since)
    # The tombstone names no factor any more, so none can be used; their items (passkey public keys,
    # the sealed TOTP secret) go too, after the commit like the rest.
    _best_effort("removing the factors", lambda: factors.remove_all(user.pk))
    _best_effort("account_deleted email", lambda: _mail(user.email, "account_deleted", user))
