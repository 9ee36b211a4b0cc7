"""Self-service sign-up (issue 12 §1): who may sign up, and what a sign-up does.

SIGNUP_MODE decides whether /signup exists at all: "open" (anyone), "invite" and "off" (closed:
invitations, `./idp-admin users invite`, are their own flow and work in every mode, so an invited
address never needs this page). SIGNUP_EMAIL_DOMAINS narrows "open" to some domains.

The answer never says whether an address already has an account (OWASP ASVS 4.0 V2.1 / NIST SP
800-63B §5.2.2's spirit: no account enumeration): every accepted form gets the same "check your
email" page, and costs the same argon2id evaluation, in every case:
- a new address: the user is created (email_verified false) and a verification email sent (link +
  typed code, chalicelib/accounts/verification.py), bound to this browser;
- an address with a verified account: nothing changes, and its owner is told by email that someone
  tried to sign up with it;
- an address with an unverified account: the account belongs to whoever verifies the address, so
  the new password and name replace the old, the old sessions and grants end (a pre-registration by
  someone else must not survive the owner's sign-up), and a new verification is sent.

Nobody is signed in by a sign-up, in any case: a session for a new address but none for a verified
account's would tell whoever follows up with the same cookie which addresses have an account.
Confirming the address in the browser that signed up signs it in and goes on with the
authorization request (blueprints/signup.py); confirmed elsewhere, the first tab's Continue leads
to the sign-in page.

If Amazon SES does not take the email, the new user is deleted again (chalicelib/undo.py), so the
address is free and a retry signs up afresh (for an unverified account left by an older attempt, a
retry replaces it anyway). The verification link issued before the send is then harmless: it names
a user that no longer exists, and consuming it verifies nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..config import Settings
from ..errors import SignupLimited, SignupRefused
from ..log import get_logger
from ..pages import messages

log = get_logger("idp.signup")


@dataclass(frozen=True)
class Form:
    email: str  # normalised
    password: str
    name: str | None


def enabled(settings: Settings) -> bool:
    """Whether /signup takes sign-ups (and the sign-in page links to it)."""
    return settings.signup_mode == "open"


def domain_allowed(settings: Settings, email: str) -> bool:
    """SIGNUP_EMAIL_DOMAINS: exact domains, compared on the normalised address."""
    allowed = settings.signup_email_domains
    return not allowed or email.rpartition("@")[2] in allowed


def check_form(settings: Settings, email: str, password: str, name: str | None) -> Form:
    """The form, normalised, or SignupRefused: address shape, domain, then the password policy
    (NIST SP 800-63B-4 §3.1.1.2, chalicelib/password_policy.py), then the name. Pure: these say
    nothing about who has an account."""
    from ..password_policy import problem
    from ..storage.users import InvalidUser, check_new_user, is_valid_email, normalise_email

    email = normalise_email(email)
    if not is_valid_email(email):
        raise SignupRefused(messages.INVALID_EMAIL)
    if not domain_allowed(settings, email):
        raise SignupRefused(messages.EMAIL_DOMAIN_NOT_ALLOWED)
    refused = problem(password, email)
    if refused:
        raise SignupRefused(refused)
    try:
        _, name = check_new_user(email, password, name)
    except InvalidUser:
        raise SignupRefused(messages.INVALID_NAME) from None
    return Form(email, password, name)


def sign_up(settings: Settings, form: Form, *, ip: str, request_id: str, verify_url: str, browser: str) -> None:
    """Do what the form asks (see the module docstring). Nobody is signed in here, whatever the
    case: a session for a new address but none for a verified account's would tell whoever follows
    up with the same cookie (/authorize, /check-email, /account) which addresses have an account.
    The browser is signed in when it confirms the address (blueprints/signup.py), the link being
    bound to `browser`, the fresh cookie value this answer sets. Raises SignupLimited, and
    errors.EmailNotSent when SES did not take the email (nothing then kept).

    `verify_url`: the verification page's absolute URL; the token goes in its query."""
    from ..accounts import limits
    from ..mail import send
    from ..passwords import hash_password
    from ..storage.users import UserExists, create_user, delete_unverified, find_user_by_email, restart_unverified
    from ..undo import undone_on_failure
    from .verification import send_verification

    retry_after = limits.allow("signup", email=form.email, ip=ip)
    if retry_after is not None:
        raise SignupLimited(retry_after)
    # One argon2id in every case, before the case is known: the time it takes says nothing.
    password_hash = hash_password(form.password)
    user = find_user_by_email(form.email)
    if user is None:
        try:
            user = create_user(form.email, form.password, form.name, password_hash=password_hash)
        except UserExists:
            log.info("sign-up raced another for the same address")
            return  # the other sign-up sends the email
        with undone_on_failure(lambda: delete_unverified(user.pk, form.email), what="new unverified user",
                               refusals=()):
            send_verification(settings, user, browser=browser, request_id=request_id, verify_url=verify_url)
        return
    if user.email_verified:
        # No link in it: a sign-in link would carry the stranger's authorization request to the owner.
        send(form.email, "signup_existing")
        return
    restarted = restart_unverified(user.pk, form.email, password_hash, form.name)
    if restarted is None:
        return  # verified a moment ago: the owner's account, left alone
    send_verification(settings, restarted, browser=browser, request_id=request_id, verify_url=verify_url)
