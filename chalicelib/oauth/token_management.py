"""Revocation (RFC 7009) and introspection (RFC 7662) of the tokens we issue.

Shapes tell the two kinds apart: an access token is a JWS (three dot-separated parts), a refresh
token is "<sub>~<grant_id>~<n>.<secret>" (two). `token_type_hint` is therefore not needed (RFC 7009 §2.1 and
RFC 7662 §2.1 let the server ignore it).
"""
from __future__ import annotations

from ..config import Settings
from ..errors import InvalidToken, UnauthorizedClient
from ..hashing import matches_hash
from ..log import get_logger
from . import access_tokens, refresh_tokens

log = get_logger("idp.token_management")

INACTIVE = {"active": False}


def _is_jwt(token: str) -> bool:
    return token.count(".") == 2


def revoke(token: str, client, settings: Settings) -> None:
    """RFC 7009 §2.1. Unknown, invalid or expired tokens are not an error (§2.2)."""
    from ..storage import grants

    if _is_jwt(token):
        try:
            claims = access_tokens.verify(token, settings, audience=None)
        except InvalidToken:
            return
        _check_owner(claims["client_id"], client)
        access_tokens.revoke(claims)
        log.info("access token revoked", extra={"jti": claims["jti"], "client_id": client.client_id})
        return
    if not refresh_tokens.looks_like(token):
        return
    sub, grant_id, _ = refresh_tokens.parse(token)
    # A refresh token takes its whole family with it, access tokens included (RFC 7009 §2.1): one
    # conditional write, on condition that the token is the family's current or previous one.
    if grants.revoke_by_refresh_token(sub, grant_id, client.client_id, refresh_tokens.token_hash(token)):
        return
    grant = grants.get(sub, grant_id)
    if grant is not None and grant.client_id != client.client_id and (
            matches_hash(token, grant.token_hash) or matches_hash(token, grant.previous_hash)):
        _check_owner(grant.client_id, client)


def _check_owner(owner: str, client) -> None:
    # RFC 7009 §2.1: the server "verifies whether the token was issued to the client making the
    # revocation request. If this validation fails, the request is refused".
    if owner != client.client_id:
        raise UnauthorizedClient("the token was not issued to this client", detail=f"owner {owner}")


def introspect(token: str, caller, settings: Settings) -> dict:
    """RFC 7662 §2.2: `{"active": false}` for anything the caller may not know about."""
    if _is_jwt(token):
        return _introspect_access_token(token, caller, settings)
    return _introspect_refresh_token(token, caller)


def _introspect_access_token(token: str, caller, settings: Settings) -> dict:
    try:
        claims = access_tokens.verify(token, settings, audience=None)
    except InvalidToken:
        return INACTIVE
    audiences = claims["aud"] if isinstance(claims.get("aud"), list) else [claims.get("aud")]
    # A resource server sees tokens meant for the resources it serves, and a client its own tokens.
    if claims["client_id"] != caller.client_id and not set(audiences) & set(caller.introspects):
        log.info("introspection of a foreign audience", extra={"caller": caller.client_id, "aud": audiences})
        return INACTIVE
    # RFC 9470 §6.2 registers acr and auth_time for introspection responses: a resource server that
    # introspects can demand a stronger or fresher authentication like one that reads the JWT.
    # RFC 8693 §4.1: `act` (a token exchange's delegation chain) is an introspection response member too.
    # RFC 9449 §6.2: a DPoP-bound token's introspection says so, with its `cnf` (the key's thumbprint),
    # so a resource server that introspects can check the proof's key like one that reads the JWT.
    fields = ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "jti", "nbf", "auth_time", "acr", "act", "cnf")
    token_type = "DPoP" if "cnf" in claims else "Bearer"
    return {"active": True, "token_type": token_type, **{k: claims[k] for k in fields if k in claims}}


def _introspect_refresh_token(token: str, caller) -> dict:
    grant = refresh_tokens.current_grant(token)
    if grant is None or grant.client_id != caller.client_id:
        return INACTIVE
    answer = {"active": True, "token_type": "refresh_token", "scope": " ".join(grant.scopes),
              "client_id": grant.client_id, "sub": grant.sub, "iat": grant.rotated_at or grant.last_used_at,
              "exp": min(grant.token_expires_at, grant.expires_at)}
    # Kept with the grant (already read): what the family's tokens say about the sign-in.
    return {**answer, **{k: v for k, v in (("auth_time", grant.auth_time), ("acr", grant.acr)) if v is not None}}
