"""Scope parsing (RFC 6749 §3.3) and what each OpenID scope means (OIDC Core §5.4)."""
from __future__ import annotations

from ..capabilities import SCOPE_TOKEN
from ..errors import InvalidScope
from ..pages.messages import N_

#: Claims each standard scope releases (OIDC Core §5.4), limited to the user attributes we store
#: (no nickname, picture, website, birthdate, ...: nothing sets them).
SCOPE_CLAIMS = {
    "profile": ("name", "given_name", "family_name", "locale", "updated_at"),
    "email": ("email", "email_verified"),
}

#: Plain-language descriptions shown on the consent page (translated when rendered).
SCOPE_DESCRIPTIONS = {
    "openid": N_("Sign you in and know who you are"),
    "profile": N_("See your name"),
    "email": N_("See your email address"),
    "offline_access": N_("Stay signed in and access your data when you are not using the app"),
}


def parse(scope: str | None) -> list[str]:
    """Space-separated scope string -> ordered, de-duplicated list. Raises InvalidScope on bad syntax."""
    if scope is None:
        return []
    tokens = scope.split(" ")
    result: list[str] = []
    for token in tokens:
        if token == "":
            continue
        if not SCOPE_TOKEN.fullmatch(token):
            raise InvalidScope("scope contains characters not allowed by RFC 6749 §3.3")
        if token not in result:
            result.append(token)
    return result


def require_subset(requested: list[str], allowed: list[str]) -> list[str]:
    """Every requested scope must be one the client may ask for (RFC 6749 §3.3: we refuse rather
    than silently narrow, so the client learns of its misconfiguration)."""
    unknown = [s for s in requested if s not in allowed]
    if unknown:
        raise InvalidScope(f"scope not allowed for this client: {' '.join(unknown)}")
    return requested


def describe(scopes: list[str]) -> list[tuple[str, str | None]]:
    """(scope, description) for the consent page; None for a scope without one, which the page
    names inside a fixed sentence (so the sentence can be translated and the name escaped)."""
    return [(s, SCOPE_DESCRIPTIONS.get(s)) for s in scopes]
