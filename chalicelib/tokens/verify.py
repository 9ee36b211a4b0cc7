"""Access token verification (RFC 9068 §4), shared by /userinfo and resource servers.

Only asymmetric algorithms we issue are accepted: never `none`, never HMAC (an attacker who signs
with our *public* key as an HMAC secret must fail: RFC 8725 §2.1, §3.1). The key must come from
the JWK Set by `kid`, the header `typ` must be at+jwt, and iss/aud/exp are enforced.
"""
from __future__ import annotations

import jwt

from ..errors import InvalidToken

ALLOWED_ALGS = ("ES256", "RS256")
LEEWAY_SECONDS = 30


def verify_access_token(token: str, *, jwks: dict, issuer: str, audience: str | list[str]) -> dict:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise InvalidToken("the access token is malformed") from None
    alg = header.get("alg")
    if alg not in ALLOWED_ALGS:
        raise InvalidToken("the access token is not signed with an accepted algorithm", detail=f"alg={alg!r}")
    if str(header.get("typ", "")).lower() not in ("at+jwt", "application/at+jwt"):
        raise InvalidToken("the token is not an access token", detail=f"typ={header.get('typ')!r}")
    jwk = next((k for k in jwks.get("keys", ()) if k.get("kid") == header.get("kid")), None)
    if jwk is None:
        raise InvalidToken("the access token was signed by an unknown key", detail=f"kid={header.get('kid')!r}")
    if jwk.get("alg") != alg:
        raise InvalidToken("the access token's algorithm does not match its key")
    try:
        return jwt.decode(
            token, jwt.PyJWK(jwk).key, algorithms=[alg], audience=audience, issuer=issuer, leeway=LEEWAY_SECONDS,
            options={"require": ["iss", "sub", "aud", "exp", "iat", "jti", "client_id"]},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("the access token has expired") from None
    except jwt.InvalidTokenError as exc:
        raise InvalidToken("the access token is invalid", detail=str(exc)) from None
