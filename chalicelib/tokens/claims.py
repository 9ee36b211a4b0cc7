"""Pure claim builders: no I/O, no clock, no randomness (all passed in), so tests need no HTTP.

- Access tokens follow the JWT profile of RFC 9068 (header typ "at+jwt").
- ID tokens follow OpenID Connect Core §2 and §3.1.3.6 (at_hash).
"""
from __future__ import annotations

import base64
import hashlib

from ..oauth.scopes import SCOPE_CLAIMS

#: Hash function of each JWS alg, for at_hash (OIDC Core §3.1.3.6: the alg's hash, left half).
_ALG_HASH = {"ES256": hashlib.sha256, "RS256": hashlib.sha256}


def access_token_claims(*, issuer: str, sub: str, client_id: str, audience: list[str], scopes: list[str],
                        jti: str, iat: int, ttl: int, auth_time: int | None = None,
                        grant_id: str | None = None, acr: str | None = None, amr=(), act: dict | None = None,
                        expires_at: int | None = None, cnf: dict | None = None) -> dict:
    """RFC 9068 §2.2. `grant_id` ties the token to its grant so revoking the grant revokes it.
    RFC 9068 §2.2.1: auth_time, acr and amr of the user's authentication, so a resource server can
    demand a stronger or fresher one (RFC 9470, chalicelib/verifier.py).
    `act`: RFC 8693 §4.1, who acts for `sub` (a token exchange's delegation chain, oauth/delegation.py).
    `expires_at`: a cap on `exp` (RFC 8693: an exchanged token never outlives its subject token).
    `cnf`: RFC 7800 §3.1 confirmation, here RFC 9449 §6.1 `{"jkt": <JWK thumbprint>}`: the token
    works only with a DPoP proof of that key."""
    claims = {
        "iss": issuer,
        "sub": sub,
        "aud": audience[0] if len(audience) == 1 else list(audience),
        "client_id": client_id,
        "scope": " ".join(scopes),
        "jti": jti,
        "iat": iat,
        "exp": iat + ttl if expires_at is None else min(iat + ttl, expires_at),
    }
    if act is not None:
        claims["act"] = act
    if cnf is not None:
        claims["cnf"] = cnf
    if auth_time is not None:
        claims["auth_time"] = auth_time
    claims.update(authentication_claims(acr, amr))
    if grant_id is not None:
        claims["grant_id"] = grant_id
    return claims


def at_hash(access_token: str, alg: str) -> str:
    digest = _ALG_HASH[alg](access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


def user_claims(user: dict, scopes: list[str]) -> dict:
    """The claims `scopes` release about `user` (a plain dict of stored attributes)."""
    released = {}
    for scope in scopes:
        for name in SCOPE_CLAIMS.get(scope, ()):
            if user.get(name) is not None:
                released[name] = user[name]
    return released


def authentication_claims(acr: str | None, amr) -> dict:
    """OIDC Core §2 `acr` and `amr` (RFC 8176), each only when known (grants and codes from before
    they were kept have neither)."""
    claims = {}
    if acr:
        claims["acr"] = acr
    if amr:
        claims["amr"] = list(amr)
    return claims


def id_token_claims(*, issuer: str, sub: str, client_id: str, iat: int, ttl: int, auth_time: int,
                    nonce: str | None, access_token: str | None, alg: str, user: dict,
                    scopes: list[str], acr: str | None = None, amr=(), sid: str | None = None) -> dict:
    """OIDC Core §2; `acr`/`amr`/`auth_time` again in refreshed ID tokens (§12.2). `sid`: the
    session the token came from (OpenID Connect Back-Channel Logout 1.0 §2.1, Front-Channel Logout
    §3): the RP keeps it to match a logout token, and sends the token back as id_token_hint."""
    claims = {
        "iss": issuer,
        "sub": sub,
        "aud": client_id,
        # OIDC Core §2: azp names the party the token was issued to.
        "azp": client_id,
        "iat": iat,
        "exp": iat + ttl,
        "auth_time": auth_time,
    }
    claims.update(authentication_claims(acr, amr))
    if nonce is not None:
        claims["nonce"] = nonce
    if sid is not None:
        claims["sid"] = sid
    if access_token is not None:
        claims["at_hash"] = at_hash(access_token, alg)
    claims.update(user_claims(user, scopes))
    return claims
