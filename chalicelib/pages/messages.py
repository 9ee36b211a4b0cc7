"""What the hosted pages may say when something goes wrong: fixed text, chosen by the kind of error.

A page on the IdP's domain carries the IdP's authority, so it must never say what a stranger chose:
a parameter name in a crafted /authorize link, or the contents of a client ID metadata document
("parameter <Call +1 555 0100 to unlock your account> is repeated" would read as our own words).
Views pick a message by its id (the kind of error, never the exception's text), the page shows the
request id as "Reference", and the detail goes to the log under the same request id.

Every text is marked with `N_` (gettext's no-op marker): `make messages` extracts them into the
catalog (babel.cfg, chalicelib/i18n.py), and the templates translate them when rendering
(`_(message.body)`).
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
SIGN_IN_EXPIRED = "sign_in_expired"
FORBIDDEN_POST = "forbidden_post"
TEMPORARILY_UNAVAILABLE = "temporarily_unavailable"
EMAIL_NOT_SENT = "email_not_sent"
SIGNUP_CLOSED = "signup_closed"
VERIFY_LINK_USED = "verify_link_used"
VERIFY_LINK_EXPIRED = "verify_link_expired"
LINK_INVALID = "link_invalid"

#: The developer-facing words in parentheses are fixed too; they tell an app's developer what to fix.
MESSAGES = {
    SIGN_IN_EXPIRED: Message(N_("Sign in again"), N_(
        "This sign-in took too long or was already finished. Go back to the app and sign in again.")),
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
    # Amazon SES did not take a message (chalicelib/mail.py): nothing was kept that a retry would trip on.
    EMAIL_NOT_SENT: Message(N_("We couldn't send the email"), N_(
        "We could not send the email. Nothing was changed: wait a moment, then go back and try again.")),
    SIGNUP_CLOSED: Message(N_("Sign-up is not available"), N_(
        "New accounts cannot be created here. If you were invited, use the link in your invitation email.")),
    VERIFY_LINK_USED: Message(N_("This link was already used"), N_(
        "Each link and code works once. If you already confirmed your email address, go back to the app "
        "and continue; otherwise ask for a new email.")),
    VERIFY_LINK_EXPIRED: Message(N_("This link has expired"), N_(
        "Go back to the app, sign in, and ask for a new email.")),
    LINK_INVALID: Message(N_("This link is not valid"), N_(
        "The link is incomplete or no longer belongs to an account. Check that you opened the whole link "
        "from the newest email.")),
}

#: Sign-in form alerts (login.html), fixed like the rest.
WRONG_CREDENTIALS = N_("Incorrect email or password.")
#: The verification page opened in another browser: the account's password did not match.
VERIFY_WRONG_PASSWORD = N_("That is not the password of this account.")
TOO_MANY_ATTEMPTS = N_("Too many attempts. Wait a few minutes and try again.")
#: The device page (device.html, chalicelib/blueprints/device.py).
DEVICE_CODE_MALFORMED = N_("Enter the 8 letters your device shows, like BCDF-GHJK.")
DEVICE_CODE_UNKNOWN = N_("That code is not valid, has expired or was already used. Check the code on your device, "
                         "or start again there.")
DEVICE_NEEDS_STRONGER_SIGN_IN = N_("This app needs another sign-in than the one you used: two-step verification, "
                                   "or the sign-in your organisation set up for it. Sign out, sign in that way, "
                                   "and enter the code again.")
#: The second step of a sign-in (mfa.html).
WRONG_CODE = N_("That code is not right, or it was already used. Try the newest code.")
PASSKEY_FAILED = N_("That passkey could not be used. Try again, or use another way to verify.")
MFA_TOO_MANY_ATTEMPTS = N_("Too many wrong codes. Wait a few minutes and try again.")
ACCOUNT_UNDER_ATTACK = N_("Too many attempts for this account. Signing in from a device you have used before "
                          "still works; otherwise wait a few minutes and try again.")

#: Why a new password was refused (chalicelib/password_policy.py, NIST SP 800-63B-4 §3.1.1.2). The two
#: lengths repeat password_policy.MIN_LENGTH and MAX_LENGTH (a catalog entry must be a literal);
#: tests/unit/test_password_policy.py checks that they agree.
PASSWORD_TOO_SHORT = N_("The password must be at least 8 characters long.")
PASSWORD_TOO_LONG = N_("The password must be at most 1024 characters long.")
PASSWORD_CONTAINS_EMAIL = N_("The password must not be your email address or made from it.")
PASSWORD_TOO_COMMON = N_("This password is too common: it is on a list of passwords that attackers try first.")

#: Sign-up and email verification alerts (signup.html, check_email.html), fixed like the rest.
INVALID_EMAIL = N_("Enter a valid email address, like name@example.com.")
EMAIL_DOMAIN_NOT_ALLOWED = N_("Accounts can only be created with an email address of an allowed domain.")
INVALID_NAME = N_("Names can have at most 200 characters and no control characters.")
TOO_MANY_REQUESTS = N_("Too many requests for this email address or from your network. Wait a while and try again.")
EMAIL_RESENT = N_("If this address needs confirming, we sent a new email. Earlier links keep working until "
                  "they expire.")
NOT_VERIFIED_YET = N_("Your email address is not confirmed yet. Open the link in the email, or enter its code.")
CODE_NOT_VALID = N_("That code is not valid, was already used or has expired.")

# Password reset and invitations (chalicelib/blueprints/recovery.py) --------------------------------

LINK_UNKNOWN = "link_unknown"
LINK_USED = "link_used"
LINK_EXPIRED = "link_expired"
ACCOUNT_EXISTS = "account_exists"

_LINK = N_("This link doesn't work")
MESSAGES.update({
    # One text for a link never issued, one for another purpose, and a reset whose account is gone,
    # disabled or has another address now: the page says nothing about which.
    LINK_UNKNOWN: Message(_LINK, N_(
        "This link is not valid. Check that you opened or copied all of it, or ask for a new one.")),
    LINK_USED: Message(_LINK, N_("This link was already used. Each link works once; ask for a new one if you "
                                 "still need it.")),
    LINK_EXPIRED: Message(_LINK, N_("This link has expired. Ask for a new one.")),
    ACCOUNT_EXISTS: Message(N_("You already have an account"), N_(
        "An account already exists for this email address. Sign in with it, or reset its password if you "
        "forgot it.")),
})
#: The invitation form's alert for a display name storage/users.py refuses: the sign-up form's.
NAME_INVALID = INVALID_NAME

#: The account page (/account, chalicelib/blueprints/account.py): what each action answers, fixed text.
ACCOUNT_DONE = {
    "profile": N_("Your profile was saved."),
    "password": N_("Your password was changed and you were signed out everywhere. Sign in with your new password."),
    "signed_out": N_("You were signed out everywhere. Sign in again to continue."),
    "email_sent": N_("If that address can be used, we sent a link to it. Open the link to finish the change; "
                     "until then your address stays as it is."),
    "email_changed": N_("Your email address was changed. Sign in with your new address from now on."),
    "app_revoked": N_("The app's access was removed. It has to ask you again before it can sign you in."),
    "totp_added": N_("Your authenticator app is set up. You will be asked for a code when you sign in."),
    "totp_removed": N_("The authenticator app was removed from your account."),
}
WRONG_PASSWORD = N_("That is not your current password.")
SAME_EMAIL = N_("That is already your email address.")
INVALID_LOCALE = N_("Enter a language tag such as en, en-GB or pt-BR, or leave it empty.")
TOO_MANY_EMAILS = N_("Too many email changes were asked for. Wait an hour and try again.")
ACCOUNT_CHANGED_MEANWHILE = N_("Your account changed while this was being done. Reload the page and try again.")
EMAIL_LINK_USED = N_("This link was already used. If your address has not changed, ask for a new link on your "
                     "account page.")
EMAIL_LINK_INVALID = N_("This link is not valid or has expired. Ask for a new one on your account page.")
EMAIL_TAKEN_NOW = N_("That address now belongs to another account, so your address was not changed.")
ACCOUNT_DELETED = N_("Your account was deleted. Your personal data is gone and this email address is free.")

# Two-step verification (chalicelib/accounts/totp.py, recovery_codes.py)
TOTP_ALREADY_ACTIVE = N_("An authenticator app is already set up. Remove it first to set up another.")
TOTP_ENROLMENT_GONE = N_("This setup has expired or was already finished. Start again from your account page.")
TOTP_CODE_WRONG = N_("That code is not right. Check that the app's clock is correct and enter the newest code.")
TOTP_QR_TITLE = N_("QR code to scan with your authenticator app")
FACTOR_REQUIRED = N_("Two-step verification is required here. Add another way to sign in before removing this one.")
RECOVERY_NEEDS_FACTOR = N_("Recovery codes are for when your authenticator app or passkey is lost: set one up first.")
# Passkeys (chalicelib/accounts/passkeys.py) -------------------------------------------------------

#: One answer for every refused passkey sign-in: unknown credential, wrong origin, replay, disabled user.
PASSKEY_SIGN_IN_FAILED = N_("That passkey could not sign you in. Try again, or sign in with your password.")
ACCOUNT_DONE.update({
    "passkey_added": N_("Your passkey was added. You can sign in with it from now on."),
    "passkey_renamed": N_("Your passkey was renamed."),
    "passkey_removed": N_("Your passkey was removed. It no longer signs you in."),
})
PASSKEY_NAME_INVALID = N_("Give the passkey a name of at most 100 characters, without control characters.")
PASSKEY_NOT_ADDED = N_("The passkey could not be added. Try again.")
PASSKEY_LIMIT = N_("You have the most passkeys an account can have. Remove one to add another.")
PASSKEY_GONE = N_("That passkey is not on your account any more. Reload the page.")
PASSKEY_NEEDS_PASSWORD = N_("Your account has no password, so this passkey is how you sign in: it cannot be removed.")

#: The client takes only sign-ins through its connections (its `connections` restriction).
USE_A_CONNECTION = N_("This app asks you to sign in with one of the options below.")

# Signing in through an upstream identity provider (chalicelib/federation/upstream.py). The page never
# shows what the upstream said: its error text is logged, and these fixed words stand in for it.
UPSTREAM_FAILED = "upstream_failed"
UPSTREAM_REFUSED = "upstream_refused"
UPSTREAM_UNAVAILABLE = "upstream_unavailable"
_UPSTREAM_TITLE = N_("We couldn't sign you in")
MESSAGES.update({
    UPSTREAM_FAILED: Message(_UPSTREAM_TITLE, N_(
        "The answer from the service you chose to sign in with could not be accepted. Go back to the app "
        "and try again; if it keeps happening, tell the app's support team.")),
    UPSTREAM_REFUSED: Message(_UPSTREAM_TITLE, N_(
        "The service you chose to sign in with did not sign you in: the sign-in was cancelled or refused "
        "there. Go back to the app and try again, or choose another way to sign in.")),
    UPSTREAM_UNAVAILABLE: Message(N_("Please try again"), N_(
        "The service you chose to sign in with could not be reached just now. Wait a moment, then go back "
        "to the app and try again.")),
})

# Signing in through an upstream identity provider (chalicelib/blueprints/federation.py, issue 15) --
# Never the upstream's own words: its error codes and descriptions go to the log only.

FEDERATION_FAILED = "federation_failed"
FEDERATION_STATE = "federation_state"
FEDERATION_UNKNOWN_CONNECTION = "federation_unknown_connection"
FEDERATION_UNVERIFIED_EMAIL = "federation_unverified_email"
FEDERATION_LINKED_ELSEWHERE = "federation_linked_elsewhere"
FEDERATION_ACCOUNT_UNUSABLE = "federation_account_unusable"
FEDERATION_LINK_EXPIRED = "federation_link_expired"
FEDERATION_LINK_OTHER_BROWSER = "federation_link_other_browser"

_PROVIDER = N_("We couldn't sign you in")
MESSAGES.update({
    FEDERATION_FAILED: Message(_PROVIDER, N_(
        "Signing in with the other provider did not work. Go back to the app and try again, or choose another "
        "way to sign in.")),
    FEDERATION_STATE: Message(_PROVIDER, N_(
        "This sign-in was already finished, has expired, or was started in another browser. Go back to the app "
        "and start again.")),
    FEDERATION_UNKNOWN_CONNECTION: Message(_PROVIDER, N_(
        "This way of signing in is not available. Go back and choose another.")),
    FEDERATION_UNVERIFIED_EMAIL: Message(_PROVIDER, N_(
        "To create an account, the provider must share a verified email address with us, and it did not. "
        "Verify your email address with the provider, or choose another way to sign in.")),
    FEDERATION_LINKED_ELSEWHERE: Message(N_("Already linked"), N_(
        "This sign-in is already linked to another account. Sign in to that account and remove it there first.")),
    FEDERATION_ACCOUNT_UNUSABLE: Message(_PROVIDER, N_(
        "The account for this sign-in cannot be used. Contact the service's support.")),
    FEDERATION_LINK_EXPIRED: Message(N_("Sign in again"), N_(
        "Linking took too long or was already finished. Go back to the app and sign in again.")),
    FEDERATION_LINK_OTHER_BROWSER: Message(N_("Open this link where you started"), N_(
        "Open this link in the browser where you signed in with the other provider, or type its code there. "
        "If you did not ask to link a sign-in, ignore the email: nothing was changed.")),
})
#: The sign-in page's alert after the user cancelled at the upstream (its access_denied).
FEDERATION_CANCELLED = N_("Signing in with the other provider was cancelled. Choose how to sign in.")
#: The link page (federation_link.html).
LINK_SENT = N_("We sent a link to your email address. Open it in this browser, or type its code here.")
LINK_CODE_WRONG = N_("That code is not valid, was already used or has expired.")
LINK_NEEDS_VERIFIED_ACCOUNT = N_("Your account's email address is not confirmed yet, so an emailed link cannot "
                                 "prove the account is yours. Use its password, or reset the password first.")
#: The account page: an account made through an upstream provider has no password until the
#: forgotten-password email sets one (accounts/account.check_password).
NO_PASSWORD_YET = N_("Your account has no password yet. To set one, sign out and use \"Forgot password?\" on the "
                     "sign-in page.")
IDENTITY_LAST_WAY_IN = N_("This is the only way to sign in to your account. Set a password or link another sign-in "
                          "before removing it.")
IDENTITY_GONE = N_("That sign-in is not linked to your account any more. Reload the page.")
ACCOUNT_DONE.update({
    "identity_removed": N_("The sign-in was removed from your account. It no longer signs you in."),
    "identity_linked": N_("The sign-in was linked to your account. You can use it to sign in from now on."),
})
#: The sign-in form sent without a password (the field is optional: an address of a domain an upstream
#: claims needs none, chalicelib/blueprints/authorize.py).
ENTER_PASSWORD = N_("Enter your password.")
# Sign-out requested by an app (OpenID Connect RP-Initiated Logout 1.0, chalicelib/oauth/rp_initiated_logout.py)
INVALID_LOGOUT_REQUEST = "invalid_logout_request"
MESSAGES[INVALID_LOGOUT_REQUEST] = Message(_STOPPED, N_(
    "The app's sign-out request could not be checked, so nothing was changed and you were not sent anywhere "
    "(id_token_hint, client_id or post_logout_redirect_uri is not valid for this client)."))
# Pushed authorization requests (RFC 9126, chalicelib/oauth/pushed_authorization.py)
INVALID_REQUEST_URI = "invalid_request_uri"
MESSAGES[INVALID_REQUEST_URI] = Message(_STOPPED, N_(
    "This sign-in link has expired or was already used. Go back to the app and start again "
    "(request_uri is unknown, expired or already used)."))
REQUEST_URI_WITH_PARAMETERS = "request_uri_with_parameters"
MESSAGES[REQUEST_URI_WITH_PARAMETERS] = Message(_STOPPED, N_(
    "The link that brought you here is malformed (with request_uri, only client_id may be sent)."))
