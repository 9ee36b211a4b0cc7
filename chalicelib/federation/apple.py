"""Sign in with Apple: what Apple does its own way.

Apple has no client secret to copy from a console: the client authenticates at its token endpoint
with a JWT it signs itself (ES256, with a private key downloaded from the Apple developer account),
`iss` the team id, `sub` the client id (the Services ID), `aud` "https://appleid.apple.com", `kid`
the key's id ("Creating a client secret", Apple's Sign in with Apple REST API documentation). Apple
accepts one living up to six months; we make a fresh one per token request, valid a few minutes,
so none is ever stored and a leaked one is soon useless.

Apple sends the user's name only on the first authorization, and only in the form_post body
(`user`, a JSON object), never in the ID token. It is not signed: it may name the profile of a new
account, but nothing is ever decided by it.
"""
from __future__ import annotations

import json

import jwt

AUDIENCE = "https://appleid.apple.com"
#: Seconds a client secret lives: long enough for one token request, far below Apple's limit.
CLIENT_SECRET_LIFETIME = 300


def client_secret(*, team_id: str, key_id: str, client_id: str, private_key_pem: str, at: int) -> str:
    """The client secret JWT for one token request at time `at`."""
    claims = {"iss": team_id, "sub": client_id, "aud": AUDIENCE, "iat": at, "exp": at + CLIENT_SECRET_LIFETIME}
    return jwt.encode(claims, private_key_pem, algorithm="ES256", headers={"kid": key_id})


def names(user_param: str | None) -> dict:
    """given_name / family_name from the `user` parameter of Apple's first form_post, when it is
    well-formed; {} otherwise."""
    try:
        user = json.loads(user_param) if user_param and len(user_param) <= 2048 else None
    except ValueError:
        return {}
    name = user.get("name") if isinstance(user, dict) else None
    if not isinstance(name, dict):
        return {}
    found = {"given_name": name.get("firstName"), "family_name": name.get("lastName")}
    return {claim: value for claim, value in found.items() if isinstance(value, str) and value}
