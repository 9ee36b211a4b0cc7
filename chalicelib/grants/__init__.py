"""Token endpoint grant handlers: one module per grant type, each `handle(form, client, settings, proof)`.

`proof`: the request's checked DPoP proof (chalicelib/oauth/dpop_binding.proof_for, its jti already
spent), or None. With one, every grant binds the access token it issues to the proof's key
(`cnf.jkt`, `token_type` DPoP: RFC 9449 §5, §6.1)."""
from __future__ import annotations

from ..capabilities import DEVICE_CODE, JWT_BEARER, TOKEN_EXCHANGE
from . import authorization_code, client_credentials, device_code, jwt_bearer, refresh_token, token_exchange

#: grant_type -> handler. The token endpoint only dispatches.
HANDLERS = {
    "authorization_code": authorization_code.handle,
    "refresh_token": refresh_token.handle,
    "client_credentials": client_credentials.handle,
    DEVICE_CODE: device_code.handle,
    TOKEN_EXCHANGE: token_exchange.handle,
    JWT_BEARER: jwt_bearer.handle,
}
