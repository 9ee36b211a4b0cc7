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
from ..storage.models import SessionModel, conditionally


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
    if not cookie_value or not token:
        return False
    return hmac.compare_digest(csrf_token(cookie_value, purpose), token)


def load(cookie_value: str | None) -> SessionModel | None:
    """The signed-in session behind a cookie, or None (anonymous, unknown, revoked, expired, or its
    user has since been disabled, deleted or signed out everywhere: a session from an older
    `session_generation` stays dead even after the user is re-enabled)."""
    from ..storage.users import get_user

    if not cookie_value or len(cookie_value) > 100:
        return None
    try:
        session = SessionModel.get(sha256_hex(cookie_value), consistent_read=True)
    except SessionModel.DoesNotExist:
        return None
    if session.revoked or session.expires_at <= now():
        return None
    user = get_user(session.sub)
    if user is None or user.disabled or session.session_generation < user.session_generation:
        return None
    return session


def end(cookie_value: str | None) -> None:
    """Sign out: the session ends, and so does every grant issued through it (their refresh tokens
    and access tokens). Grants from other sessions of the same user are left alone."""
    from ..storage.grants import revoke_grant, revoke_grants_of

    if not cookie_value:
        return
    session_hash = sha256_hex(cookie_value)
    session = SessionModel(session_hash=session_hash)
    # The update returns the item as written (pynamodb reads ALL_NEW back into `session`): every
    # grant issued through the session is in `grant_ids`, since issuing one needs the session
    # unrevoked in the same transaction (oauth/authorization.issue_code).
    if not conditionally(lambda: session.update(actions=[SessionModel.revoked.set(True)],
                                                condition=SessionModel.session_hash.exists())):
        return  # anonymous or already gone: nothing to end
    for grant_id in sorted(session.grant_ids or ()):
        revoke_grant(grant_id, reason="signed out")
    # Sessions signed in before grant_ids existed are found through the index.
    revoke_grants_of(session_hash=session_hash, reason="signed out")
