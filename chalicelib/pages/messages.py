"""What the hosted pages may say when something goes wrong: fixed text, chosen by the kind of error.

A page on the IdP's domain carries the IdP's authority, so it must never say what a stranger chose:
a parameter name in a crafted /authorize link, or the contents of a client ID metadata document
("parameter <Call +1 555 0100 to unlock your account> is repeated" would read as our own words).
Views pick a message by its id (the kind of error, never the exception's text), the page shows the
request id as "Reference", and the detail goes to the log under the same request id.

Every text is marked with `N_` (gettext's no-op marker): a Babel catalog extracts them with
`pybabel extract -k N_ -k _`, and the templates translate them when rendering (`_(message.body)`).
Only these fixed strings may be passed to `_()`: with autoescaping, gettext output is trusted markup.
"""
from __future__ import annotations

from dataclasses import dataclass


def N_(text: str) -> str:
    """Mark `text` for translation without translating it here (it is translated when rendered)."""
    return text


@dataclass(frozen=True)
class Message:
    title: str
    body: str


_STOPPED = N_("We couldn't continue")

# Message ids. UntrustedRequest.kind (chalicelib/oauth/authorization.py) names one of the first five.
MISSING_CLIENT_ID = "missing_client_id"
UNKNOWN_CLIENT = "unknown_client"
UNVERIFIED_CLIENT = "unverified_client"
MISSING_REDIRECT_URI = "missing_redirect_uri"
UNREGISTERED_REDIRECT_URI = "unregistered_redirect_uri"
MALFORMED_REQUEST = "malformed_request"
EXPIRED_REQUEST = "expired_request"
FORBIDDEN_POST = "forbidden_post"
TEMPORARILY_UNAVAILABLE = "temporarily_unavailable"

#: The developer-facing words in parentheses are fixed too; they tell an app's developer what to fix.
MESSAGES = {
    MISSING_CLIENT_ID: Message(_STOPPED, N_(
        "The link that brought you here does not say which app it is for (client_id is required).")),
    UNKNOWN_CLIENT: Message(N_("Unknown app"), N_(
        "The app that sent you here is not registered with this sign-in service (unknown client).")),
    UNVERIFIED_CLIENT: Message(N_("We couldn't verify this app"), N_(
        "The app that sent you here names a web address that should describe it, but that description "
        "could not be fetched or is not valid, so the app could not be verified.")),
    MISSING_REDIRECT_URI: Message(_STOPPED, N_(
        "The link that brought you here does not say where to send you back (redirect_uri is required).")),
    UNREGISTERED_REDIRECT_URI: Message(_STOPPED, N_(
        "The app asked to send you back to an address it has not registered, so we stopped here "
        "(redirect_uri is not registered for this client).")),
    MALFORMED_REQUEST: Message(_STOPPED, N_(
        "The link or form that brought you here is malformed.")),
    EXPIRED_REQUEST: Message(_STOPPED, N_(
        "This sign-in request has expired or was already used. Go back to the app and start again.")),
    FORBIDDEN_POST: Message(_STOPPED, N_(
        "This form was submitted from another site or has expired. Go back to the app and start again.")),
    TEMPORARILY_UNAVAILABLE: Message(N_("Please try again"), N_(
        "The sign-in service is busy right now. Wait a moment, then reload this page or go back to the app "
        "and try again.")),
}

#: Sign-in form alerts (login.html), fixed like the rest.
WRONG_CREDENTIALS = N_("Incorrect email or password.")
TOO_MANY_ATTEMPTS = N_("Too many attempts. Wait a few minutes and try again.")
ACCOUNT_UNDER_ATTACK = N_("Too many attempts for this account. Signing in from a device you have used before "
                          "still works; otherwise wait a few minutes and try again.")

#: Why a new password was refused (chalicelib/password_policy.py, NIST SP 800-63B-4 §3.1.1.2). The two
#: lengths repeat password_policy.MIN_LENGTH and MAX_LENGTH (a catalog entry must be a literal);
#: tests/unit/test_password_policy.py checks that they agree.
PASSWORD_TOO_SHORT = N_("password must be at least 8 characters")
PASSWORD_TOO_LONG = N_("password must be at most 1024 characters")
PASSWORD_CONTAINS_EMAIL = N_("password must not be your email address or made from it")
PASSWORD_TOO_COMMON = N_("password is too common: it is on a list of passwords that attackers try first")

#: The account page (/account, chalicelib/blueprints/account.py): what each action answers, fixed text.
ACCOUNT_DONE = {
    "profile": N_("Your profile was saved."),
    "password": N_("Your password was changed and you were signed out everywhere. Sign in with your new password."),
    "signed_out": N_("You were signed out everywhere. Sign in again to continue."),
    "email_sent": N_("If that address can be used, we sent a link to it. Open the link to finish the change; "
                     "until then your address stays as it is."),
    "email_changed": N_("Your email address was changed. Sign in with your new address from now on."),
    "app_revoked": N_("The app's access was removed. It has to ask you again before it can sign you in."),
}
WRONG_PASSWORD = N_("That is not your current password.")
SAME_EMAIL = N_("That is already your email address.")
INVALID_EMAIL = N_("Enter a valid email address, like name@example.com.")
INVALID_NAME = N_("Names can have at most 200 characters and no control characters.")
INVALID_LOCALE = N_("Enter a language tag such as en, en-GB or pt-BR, or leave it empty.")
TOO_MANY_EMAILS = N_("Too many email changes were asked for. Wait an hour and try again.")
ACCOUNT_CHANGED_MEANWHILE = N_("Your account changed while this was being done. Reload the page and try again.")
EMAIL_LINK_USED = N_("This link was already used. If your address has not changed, ask for a new link on your "
                     "account page.")
EMAIL_LINK_INVALID = N_("This link is not valid or has expired. Ask for a new one on your account page.")
EMAIL_TAKEN_NOW = N_("That address now belongs to another account, so your address was not changed.")
ACCOUNT_DELETED = N_("Your account was deleted. Your personal data is gone and this email address is free.")
