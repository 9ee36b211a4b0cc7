"""Token endpoint grant handlers: one module per grant type, each `handle(form, client, settings)`."""
from __future__ import annotations

from ..capabilities import JWT_BEARER
from . import authorization_code, client_credentials, jwt_bearer, refresh_token

#: grant_type -> handler. The token endpoint only dispatches.
HANDLERS = {
    "authorization_code": authorization_code.handle,
    "refresh_token": refresh_token.handle,
    "client_credentials": client_credentials.handle,
    JWT_BEARER: jwt_bearer.handle,
}
