"""GitHub: OAuth 2.0 without OpenID Connect, so there is no ID token to verify.

Who signed in is whatever GitHub's REST API says the access token belongs to: `GET {api_base}/user`
(its numeric `id` is the stable subject; the login can be renamed and later taken by someone else)
and `GET {api_base}/user/emails` (scope user:email), where only the address GitHub marks both
`primary` and `verified` is used, as a verified email. Requests carry GitHub's media type and API
version ("Getting started with the REST API", GitHub Docs) and a User-Agent, which its API requires.
The claims come back in OpenID Connect's names, so the connection's claim mapping applies to them as
to any upstream.
"""
from __future__ import annotations

from ..config import Settings
from . import fetching

API_VERSION = "2022-11-28"
USER_AGENT = "idp-federation"


def claims(api_base: str, access_token: str, settings: Settings) -> dict:
    """OpenID Connect style claims of the GitHub user the access token belongs to."""
    headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/vnd.github+json",
               "X-GitHub-Api-Version": API_VERSION, "User-Agent": USER_AGENT}
    base = api_base.rstrip("/")
    user = fetching.get_json(f"{base}/user", settings, what="userinfo", headers=headers)
    subject = user.get("id")
    if not isinstance(subject, int) or isinstance(subject, bool) or subject <= 0:
        raise fetching.failed("userinfo", "GitHub user without a numeric id")
    emails = fetching.get_json(f"{base}/user/emails", settings, what="userinfo", headers=headers, expect=list)
    primary = next((entry.get("email") for entry in emails
                    if isinstance(entry, dict) and entry.get("primary") is True and entry.get("verified") is True
                    and isinstance(entry.get("email"), str)), None)
    found = {"sub": str(subject), "login": user.get("login"), "name": user.get("name"),
             "email": primary, "email_verified": primary is not None}
    return {claim: value for claim, value in found.items() if value is not None}
