"""The client-authenticated endpoints: /token (RFC 6749 §3.2: parse -> authenticate -> dispatch on
grant_type), /par (RFC 9126), /revoke (RFC 7009) and /introspect (RFC 7662)."""
from __future__ import annotations

from contextlib import contextmanager

from chalice import Blueprint, CORSConfig

from ..config import settings
from ..errors import (
    InvalidClient,
    InvalidDpopProof,
    InvalidRequest,
    OAuthError,
    PayloadTooLarge,
    UnauthorizedClient,
    UnsupportedGrantType,
    echo,
)
from ..web import FORM, client_ip, form_params, header_value, json_response, route

bp = Blueprint(__name__)

#: Browser-based (public) clients call /token from their own origin. Nothing here rides on cookies,
#: so any origin may call it; the response is useless without the code and its PKCE verifier.
#: A browser client sends its DPoP proof and must read the nonce it gets back (RFC 9449 §8).
TOKEN_CORS = CORSConfig(allow_origin="*", allow_headers=["Authorization", "Content-Type", "DPoP"],
                        expose_headers=["DPoP-Nonce"], max_age=600)


def _authenticated_form():
    """Every endpoint here starts the same: parse the form, then authenticate the client."""
    from ..oauth import client_auth

    request = bp.current_request
    form = form_params(request)
    client, method = client_auth.authenticate(request.headers, form, settings(), source_ip=client_ip(request))
    return form, client, method


def _dpop_request(current):
    """The request's DPoP header (every field of it joined: two proofs are refused, RFC 9449 §4.3
    item 1) and the headers each answer to it carries: with DPOP_NONCE, a request carrying a proof
    gets the nonce to use next on success and error alike (§8.2)."""
    from ..oauth import dpop_binding

    dpop_header = header_value(bp.current_request, "dpop")
    return dpop_header, (dpop_binding.nonce_headers(current) if dpop_header is not None else {})


@contextmanager
def _errors_carry(headers: dict):
    try:
        yield
    except OAuthError as exc:
        for name, value in headers.items():
            exc.extra_headers.setdefault(name, value)
        raise


@route(bp, "/token", ["POST"], content_types=[FORM], cors=TOKEN_CORS)
def token():
    """Parse -> authenticate -> grant_type -> DPoP proof (RFC 9449 §5) -> the grant's handler.

    The proof is checked after client authentication, so an unauthenticated caller never gets to
    spend a jti (the one conditional PutItem a proof costs). The refusal of a request that lacks a
    proof it needed carries a nonce too: the client's next proof can carry it at once."""
    from ..grants import HANDLERS
    from ..oauth import dpop_binding

    current = settings()
    dpop_header, nonce = _dpop_request(current)
    with _errors_carry(nonce):
        form, client, _method = _authenticated_form()
        grant_type = form.get("grant_type")
        if not grant_type:
            raise InvalidRequest("grant_type is required")
        handler = HANDLERS.get(grant_type)
        if handler is None:
            raise UnsupportedGrantType(f"grant_type {echo(grant_type)} is not supported")
        if grant_type not in client.grant_types:
            raise UnauthorizedClient(f"this client may not use the {grant_type} grant")
        proof = dpop_binding.proof_for(dpop_header, method="POST", url=f"{current.issuer}/token", settings=current,
                                       require_nonce=current.dpop_nonce)
        if proof is None and dpop_binding.required(client, current):
            # RFC 9449 §5.2 (dpop_bound_access_tokens) / DPOP_REQUIRED: no proof, no token.
            raise InvalidDpopProof("a DPoP proof is required", headers=dpop_binding.nonce_headers(current))
        return json_response(handler(form, client, current, proof), headers=nonce)


@route(bp, "/device_authorization", ["POST"], content_types=[FORM], cors=TOKEN_CORS)
def device_authorization():
    """RFC 8628 §3.1: the client authenticates as at /token (a public client names its client_id)."""
    from ..oauth import device_authorization as device

    form, client, _method = _authenticated_form()
    return json_response(device.start(form, client, settings()))


@route(bp, "/par", ["POST"], content_types=[FORM], cors=TOKEN_CORS)
def pushed_authorization_request():
    """RFC 9126 §2: the client authenticates as at /token (a public client names its client_id) and
    pushes an authorization request; 201 with the request_uri for /authorize and its lifetime."""
    from ..oauth import pushed_authorization

    from ..oauth import dpop_binding

    limit = pushed_authorization.MAX_BODY_BYTES
    if len(bp.current_request.raw_body or b"") > limit:  # RFC 9126 §2.3: 413 beyond our bound
        raise PayloadTooLarge(f"a pushed authorization request must be at most {limit} bytes")
    current = settings()
    dpop_header, nonce = _dpop_request(current)
    with _errors_carry(nonce):
        form, client, _method = _authenticated_form()
        # RFC 9449 §10.1: a proof at the PAR endpoint binds the code to its key, as dpop_jkt would.
        proof = dpop_binding.proof_for(dpop_header, method="POST", url=f"{current.issuer}/par", settings=current,
                                       require_nonce=current.dpop_nonce)
        return json_response(pushed_authorization.push(form, client, current, proof=proof), status=201,
                             headers=nonce)


@route(bp, "/revoke", ["POST"], content_types=[FORM], cors=TOKEN_CORS)
def revoke():
    """RFC 7009: 200 with an empty body whether or not the token was known."""
    from ..oauth import token_management

    form, client, _method = _authenticated_form()
    token = form.get("token")
    if not token:
        raise InvalidRequest("token is required")
    token_management.revoke(token, client, settings())
    return json_response({})


@route(bp, "/introspect", ["POST"], content_types=[FORM])
def introspect():
    """RFC 7662: only clients registered for introspection (resource servers) may call it. No CORS:
    resource servers call it from their back ends."""
    from ..oauth import token_management

    form, client, method = _authenticated_form()
    if not client.introspection:
        # RFC 7662 §2.3: a caller not authorized to introspect gets a 401.
        raise InvalidClient("this client may not introspect tokens",
                            scheme="Basic" if method == "client_secret_basic" else None)
    token = form.get("token")
    if not token:
        raise InvalidRequest("token is required")
    return json_response(token_management.introspect(token, client, settings()))
