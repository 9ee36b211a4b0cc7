"""Mint the token response: an RFC 9068 access token, an ID token for `openid`, and the refresh
token the grant handler decided on."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..config import Settings
from ..hashing import new_secret
from ..keys import keyring
from ..log import now
from ..oauth.backchannel_logout import session_id
from . import claims, jwt

if TYPE_CHECKING:
    from ..storage.clients import Client
    from ..storage.models import UserModel  # storage/users.py has no record type of its own yet


def issue_tokens(settings: Settings, *, client: Client, sub: str, scopes: list[str],
                 grant_id: str | None, auth_time: int | None, nonce: str | None, audience: list[str],
                 refresh_token: str | None = None, user_claims: dict | None = None, signer=None,
                 acr: str | None = None, amr=(), session_hash: str | None = None, act: dict | None = None,
                 expires_at: int | None = None, cnf: dict | None = None) -> dict:
    """`user_claims`: the user's ID-token claims (user_attributes), kept with the session and the grant.
    `acr`, `amr`: how the user authenticated, kept with the code and the grant (chalicelib/oauth/acr.py).
    `signer`: the key ring's current signer, when the caller acquired it before consuming anything
    (chalicelib/undo.py). `session_hash`: the browser session the code came from (kept with the code
    and the grant); the ID token names it by its `sid` (chalicelib/oauth/backchannel_logout.py).
    `act`, `expires_at`: a token exchange's delegation chain and lifetime cap (claims.access_token_claims).
    `cnf`: the DPoP key binding (chalicelib/oauth/dpop_binding.confirmation); the response then says
    `token_type` DPoP (RFC 9449 §5)."""
    signer = signer or keyring.current_signer()
    iat = now()
    access_claims = claims.access_token_claims(
        issuer=settings.issuer, sub=sub, client_id=client.client_id, audience=audience, scopes=scopes,
        jti=new_secret(16), iat=iat, ttl=settings.access_token_ttl, auth_time=auth_time, grant_id=grant_id,
        acr=acr, amr=amr, act=act, expires_at=expires_at, cnf=cnf)
    access_token = jwt.encode(access_claims, signer, typ="at+jwt")
    response = {
        "access_token": access_token,
        "token_type": "DPoP" if cnf and "jkt" in cnf else "Bearer",
        "expires_in": access_claims["exp"] - iat,
        "scope": " ".join(scopes),
    }
    if refresh_token is not None:
        response["refresh_token"] = refresh_token
    if "openid" in scopes and user_claims is not None:
        id_claims = claims.id_token_claims(
            issuer=settings.issuer, sub=sub, client_id=client.client_id, iat=iat, ttl=settings.id_token_ttl,
            auth_time=auth_time, nonce=nonce, access_token=access_token, alg=signer.alg,
            user=user_claims, scopes=scopes, acr=acr, amr=amr,
            sid=session_id(session_hash) if session_hash else None)
        response["id_token"] = jwt.encode(id_claims, signer, typ="JWT")
    return response


def user_attributes(user: UserModel) -> dict:
    """The user's claims as OIDC Core §5.1 names them; `updated_at` in epoch seconds (a JSON number)."""
    return {"name": user.name, "given_name": user.given_name, "family_name": user.family_name,
            "locale": user.locale, "updated_at": int(user.updated_at) if user.updated_at is not None else None,
            "email": user.email, "email_verified": user.email_verified}
