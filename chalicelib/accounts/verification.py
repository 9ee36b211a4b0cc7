"""Email verification (issue 12 §2): the link and code that prove an address, and what proving it does.

A verification is a one-time link of purpose "verify_email" (storage/links.py: 130 random bits, only
their hash stored, consumed by one conditional write), valid VERIFY_EMAIL_TTL. The email carries it
twice: as a link and grouped as a code to type on the page that asked (people read mail on another
device). A GET of the link only shows a page with a button (mail scanners and link previewers fetch
links); the POST consumes it and marks the user's email verified, on condition the address is
still the user's (OIDC Core §5.1 `email_verified`).

The link remembers a hash of the cookie of the browser that asked for it (`browser_binding`), and
the authorization request it was asked for. Only in that same browser does confirming continue the
request; anywhere else the page says "you can close this tab and continue where you started". The
link itself must not be a way into someone's authorization request: whoever can make us send a
verification email to a victim chose the request it names.

Opened in another browser, the link also asks for the account's password before it verifies
anything. Otherwise a sign-up made by someone else with a victim's address (pre-account hijacking)
would be verified by the victim clicking "Confirm" on an email they did not expect, leaving the
stranger with an account that apps trust as the victim's. The victim does not know that password, so
the stranger's account stays unverified, and the victim's own sign-up later replaces it
(storage/users.restart_unverified). The person who did sign up knows it; in their own browser the
link needs nothing more. Wrong passwords are counted per link (`PASSWORD_ATTEMPTS`), which bounds
the argon2id work anyone holding the link can cause.

Resending issues a fresh link and leaves earlier ones valid until they expire: each is single use and
unguessable, the user may open whichever email arrives first, and revoking the others would need
a query per resend for no security gain.
"""
from __future__ import annotations

import hmac
from dataclasses import dataclass

from ..config import Settings
from ..hashing import sha256_hex
from ..log import get_logger, now

log = get_logger("idp.verification")

PURPOSE = "verify_email"
#: Wrong passwords accepted per link (opened in another browser) before it stops asking: then the
#: user asks for a new email, or confirms in the browser that signed up.
PASSWORD_ATTEMPTS = 5


@dataclass(frozen=True)
class Confirmed:
    """A consumed link and the user it verified (storage.models.UserModel, as written)."""

    link: object  # storage.links.Link
    user: object
    token: str
    use_id: str


def put_back(confirmed: Confirmed) -> bool:
    """Make the consumed link usable again (the undo when what follows the verification fails): the
    user stays verified, and the retry of the same POST consumes it again and goes on."""
    from ..storage import links

    return links.restore(confirmed.token, confirmed.use_id)


def browser_binding(cookie_value: str | None) -> str:
    """What a link stores about the browser that asked for it: a hash of its cookie, under its own
    label (the cookie's plain SHA-256 keys its session)."""
    return sha256_hex(f"verify-email-browser:{cookie_value or ''}")


def same_browser(link, cookie_value: str | None) -> bool:
    bound = (link.data or {}).get("browser")
    return bool(bound and cookie_value) and hmac.compare_digest(bound, browser_binding(cookie_value))


def send_verification(settings: Settings, user, *, browser: str | None, request_id: str | None,
                      verify_url: str) -> None:
    """Issue a link for `user`'s address, bound to the `browser` cookie, the authorization request
    `request_id` and the user's current `session_generation` (storage/users.generation_is), and
    email it. Raises errors.EmailNotSent when SES does not take it (the stored link is then never
    delivered, and expires)."""
    from ..mail import send
    from ..storage import links

    email = user.email
    token = links.issue(PURPOSE, email=email, sub=user.pk, at=now(), ttl=settings.verify_email_ttl,
                        request_id=request_id, data={"browser": browser_binding(browser),
                                                     "generation": int(user.session_generation or 0)})
    send(email, "verify_email", link=f"{verify_url}?token={token}", code=links.display_code(token),
         minutes=settings.verify_email_ttl // 60)


def peek(token: str):
    """The link for the confirmation page (never consumes), or storage.links.Refused."""
    from ..storage import links

    return links.peek(token, PURPOSE, now())


def confirm(token: str):
    """Consume the link and mark its user's email verified: Confirmed, or storage.links.Refused
    ("unknown", "used", "expired", or "stale": the user is gone, has another address now, or has been
    signed out everywhere since the link was sent, e.g. by someone signing up again for the address).
    A fault after the consume puts the link back (chalicelib/undo.py), so the retry works."""
    from ..storage import links
    from ..storage.users import mark_email_verified
    from ..undo import undone_on_failure

    outcome = links.consume(token, PURPOSE, now())
    if isinstance(outcome, links.Refused):
        return outcome
    link, use_id = outcome
    with undone_on_failure(lambda: links.restore(token, use_id), what="verification link", refusals=()):
        generation = (link.data or {}).get("generation")
        user = None if generation is None else mark_email_verified(link.sub, link.email, int(generation))
    if user is None:
        log.info("verification link for an address the user no longer has")
        return links.Refused("stale", link)
    log.info("email verified", extra={"sub": user.pk})
    return Confirmed(link, user, token, use_id)


def refresh_session_claims(session, user):
    """The session with the user's current ID-token claims (email_verified now true), written to its
    record so codes issued through it carry them; the session as it was when it has ended."""
    from dataclasses import replace

    from ..storage.sessions import set_user_claims
    from ..tokens.issue import user_attributes

    claims = user_attributes(user)
    if not set_user_claims(session.session_hash, claims):
        return session
    return replace(session, user_claims=claims)


def password_confirms(token: str, link, password: str) -> bool | None:
    """Whether `password` is the password of the account `link` verifies (a link opened in another
    browser than the one that signed up). None when the link has had PASSWORD_ATTEMPTS wrong ones
    already; True, without a check, when the link no longer names an account with that address
    (`confirm` then refuses it as stale). One argon2id evaluation when it checks."""
    from ..passwords import verify_password
    from ..storage.throttles import Counter, add_to_all, take_back
    from ..storage.users import get_user

    user = get_user(link.sub) if link.sub else None
    if user is None or user.email != link.email:
        return True  # nothing left to protect: `confirm` refuses the link as stale
    # Counted before the check, atomically and only below the limit, so parallel guesses cannot
    # all slip under it; taken back when right. The counter lives as long as the link can.
    key, window = f"verify-password#{sha256_hex(token)}", max(link.expires_at - now(), 60)
    if add_to_all([Counter(key, PASSWORD_ATTEMPTS)], window):
        return None
    matches = verify_password(password, user.password_hash)
    if matches:
        take_back([key], window)
    return matches
