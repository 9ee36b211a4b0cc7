"""POST /register (RFC 7591) and GET/PUT/DELETE /register/{client_id} (RFC 7592).

JSON in, JSON out, no cookies: CORS is open so browser-based MCP clients can register.
"""
from __future__ import annotations

import json

from chalice import Blueprint, CORSConfig, Response

from ..config import settings
from ..errors import AccessDenied, InvalidClientMetadata, InvalidToken, PayloadTooLarge, TooManyRequests
from ..web import client_ip, json_response, route

bp = Blueprint(__name__)

REGISTRATION_CORS = CORSConfig(allow_origin="*", allow_headers=["Authorization", "Content-Type"], max_age=600)
JSON = ["application/json"]
RATE_WINDOW = 3600


def _json_body(request):
    from ..oauth.registration import MAX_BODY_BYTES

    raw = request.raw_body or b""
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the registration request must be at most {MAX_BODY_BYTES} bytes")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidClientMetadata("the request body is not valid JSON") from None


def _registration_token(request) -> str:
    from ..verifier import bearer_token

    try:
        return bearer_token(request.headers.get("authorization"))
    except InvalidToken:
        raise InvalidToken("a registration access token is required") from None


def _check_registration_allowed(request, s) -> None:
    import hmac

    from ..hashing import sha256_hex
    from ..oauth import throttle

    if s.registration_mode == "off":
        raise AccessDenied("dynamic client registration is disabled")
    if s.registration_mode == "token":
        presented = _registration_token(request)
        if not hmac.compare_digest(sha256_hex(presented), s.registration_token_sha256):
            raise InvalidToken("the initial access token is not valid")
    # An IPv6 client is counted by its /64: it could otherwise rotate addresses within its own prefix.
    key = throttle.window_key("register", throttle.address_key(client_ip(request)), RATE_WINDOW)
    if throttle.add(key, RATE_WINDOW) > s.registration_max_per_ip:
        raise TooManyRequests("too many registrations from this address; try again later",
                              headers={"Retry-After": str(RATE_WINDOW)})


@route(bp, "/register", ["POST"], content_types=JSON, cors=REGISTRATION_CORS)
def register():
    from ..oauth import registration

    request = bp.current_request
    s = settings()
    _check_registration_allowed(request, s)
    return json_response(registration.register(_json_body(request), s), status=201)


@route(bp, "/register/{client_id}", ["GET", "PUT", "DELETE"], content_types=JSON, cors=REGISTRATION_CORS)
def manage(client_id):
    from ..oauth import registration

    request = bp.current_request
    s = settings()
    client = registration.authorize_management(client_id, _registration_token(request))
    if request.method == "DELETE":
        registration.delete(client)
        return Response(body="", status_code=204, headers={"Cache-Control": "no-store"})
    if request.method == "PUT":
        return json_response(registration.update(client, _json_body(request), s))
    return json_response(registration.read(client, s))  # RFC 7592 §3: every read rotates the token
