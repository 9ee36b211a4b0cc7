"""Token endpoint grant handlers: one module per grant type, each `handle(form, client, settings)`."""
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
