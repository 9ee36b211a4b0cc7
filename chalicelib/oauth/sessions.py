"""Browser sessions: the SSO cookie, its DynamoDB record, and CSRF tokens bound to it.

The cookie holds a 256-bit random value. Before sign-in it is an anonymous browser secret with no
record; after sign-in it is a fresh value (rotated, so a planted pre-login value is worthless)
whose SHA-256 keys a SessionModel item. CSRF tokens are HMAC(cookie value, purpose): a page on
another origin can neither read the cookie (HttpOnly) nor the token in our forms (no CORS, no
framing), so it cannot forge a form post that we accept.
"""
from __future__ import annotations

import base64
import hashlib
import hmac

from ..config import Settings
from ..hashing import new_secret, sha256_hex
from ..log import now


def host_cookie_name(settings: Settings, name: str) -> str:
    # The __Host- prefix makes the browser refuse the cookie unless it is Secure, Path=/, host-only.
    return f"__Host-{name}" if settings.https else name


def host_cookie_header(settings: Settings, name: str, value: str, *, same_site: str,
                       max_age: int | None = None) -> str:
    """Set-Cookie for one of our cookies: host-only, every path, never readable by script, and
    Secure (hence __Host-) whenever the issuer is https."""
    parts = [f"{host_cookie_name(settings, name)}={value}", "Path=/", "HttpOnly", f"SameSite={same_site}"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    if settings.https:
        parts.append("Secure")
    return "; ".join(parts)


def cookie_name(settings: Settings) -> str:
    return host_cookie_name(settings, "idp_session")


def cookie_header(settings: Settings, value: str, *, max_age: int | None = None) -> str:
    return host_cookie_header(settings, "idp_session", value, same_site="Lax", max_age=max_age)


def clear_cookie_header(settings: Settings) -> str:
    return cookie_header(settings, "", max_age=0)


def new_browser_secret() -> str:
    return new_secret()


def csrf_token(cookie_value: str, purpose: str) -> str:
    mac = hmac.new(cookie_value.encode("ascii"), f"csrf:{purpose}".encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def csrf_valid(cookie_value: str | None, purpose: str, token: str | None) -> bool:
    # Ours are ASCII; anything else is forged (and compare_digest refuses non-ASCII str with a TypeError).
    if not cookie_value or not token or not cookie_value.isascii() or not token.isascii():
        return False
    return hmac.compare_digest(csrf_token(cookie_value, purpose), token)


def load(cookie_value: str | None, *, check_user: bool = True):
    """The signed-in session behind a cookie, or None (anonymous, unknown, revoked or expired).

    With `check_user` (the default) also None when its user has since been disabled, deleted or
    signed out everywhere: a session from an older `session_generation` stays dead even after the
    user is re-enabled. That costs a read of the user; /authorize's fast path skips it
    (`check_user=False`, the record says `user_checked=False`) because the transaction that issues
    its code checks the same thing (chalicelib/storage/codes.issue)."""
    from dataclasses import replace

    from ..storage import sessions as session_store

    if not cookie_value or len(cookie_value) > 100:
        return None
    session = session_store.get(sha256_hex(cookie_value))
    if session is None or session.revoked or session.expires_at <= now():
        return None
    if not check_user:
        return session
    return replace(session, user_checked=True) if user_allows(session) else None


def record(cookie_value: str | None):
    """The session item behind a cookie whether live or ended (None when there is none): which
    session this browser has, for the end-session endpoint. A sign-out cut short by a fault after
    the session was marked revoked is finished by the retry, which must still recognise it."""
    from ..storage import sessions as session_store

    if not cookie_value or len(cookie_value) > 100:
        return None
    return session_store.get(sha256_hex(cookie_value))


def user_allows(session) -> bool:
    """The session's user still exists, is enabled and has not been signed out everywhere since."""
    from ..storage.users import get_user

    user = get_user(session.sub)
    return not (user is None or user.disabled or session.session_generation < user.session_generation)


def end(cookie_value: str | None) -> None:
    """Sign out: the session ends, and so does every grant issued through it (their refresh tokens
    and access tokens). Grants from other sessions of the same user are left alone. Then the
    clients holding those grants are to be told (OpenID Connect Back-Channel Logout 1.0): one
    message on the logout queue, none when there were no grants (oauth/backchannel_logout.py)."""
    from ..config import settings
    from ..storage import grants, sessions as session_store
    from . import backchannel_logout

    if not cookie_value:
        return
    # The update returns the item as written: every grant issued through the session is in
    # `grant_ids`, since issuing one needs the session unrevoked in the same transaction
    # (storage/codes.issue), so the two serialise on the session item.
    session = session_store.end(sha256_hex(cookie_value))
    if session is None:
        return  # anonymous or already gone: nothing to end
    for grant_id in sorted(session.grant_ids):
        grants.revoke(session.sub, grant_id, reason="signed out")
    backchannel_logout.notify(backchannel_logout.session_ended(session), settings())
