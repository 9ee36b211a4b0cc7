"""POST /token (RFC 6749 §3.2): parse -> authenticate the client -> dispatch on grant_type."""
from __future__ import annotations

from chalice import Blueprint, CORSConfig

from ..config import settings
from ..errors import InvalidRequest, UnauthorizedClient, UnsupportedGrantType
from ..web import FORM, form_params, json_response, route

bp = Blueprint(__name__)

#: Browser-based (public) clients call /token from their own origin. Nothing here rides on cookies,
#: so any origin may call it; the response is useless without the code and its PKCE verifier.
TOKEN_CORS = CORSConfig(allow_origin="*", allow_headers=["Authorization", "Content-Type"], max_age=600)


@route(bp, "/token", ["POST"], content_types=[FORM], cors=TOKEN_CORS)
def token():
    from ..grants import HANDLERS
    from ..oauth import client_auth

    request = bp.current_request
    form = form_params(request)
    client, _method = client_auth.authenticate(request.headers, form)
    grant_type = form.get("grant_type")
    if not grant_type:
        raise InvalidRequest("grant_type is required")
    handler = HANDLERS.get(grant_type)
    if handler is None:
        raise UnsupportedGrantType(f"grant_type {grant_type} is not supported")
    if grant_type not in client.grant_types:
        raise UnauthorizedClient(f"this client may not use the {grant_type} grant")
    return json_response(handler(form, client, settings()))
