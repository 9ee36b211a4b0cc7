"""Discovery documents and the JWK Set: public, cacheable, CORS-enabled (no cookies involved)."""
from __future__ import annotations

from chalice import Blueprint, CORSConfig

from .. import discovery
from ..config import settings
from ..web import json_response, route

bp = Blueprint(__name__)

#: Metadata and keys are read by browser-based clients from any origin; they carry no credentials.
PUBLIC_CORS = CORSConfig(allow_origin="*", max_age=600)
DISCOVERY_MAX_AGE = 3600


@route(bp, discovery.WELL_KNOWN_OIDC, ["GET"], cors=PUBLIC_CORS)
def openid_configuration():
    return json_response(discovery.metadata(settings()), max_age=DISCOVERY_MAX_AGE)


@route(bp, discovery.WELL_KNOWN_OAUTH, ["GET"], cors=PUBLIC_CORS)
def oauth_authorization_server():
    return json_response(discovery.metadata(settings()), max_age=DISCOVERY_MAX_AGE)


def _for_issuer_path(suffix: str):
    """RFC 8414 §3.1 puts an issuer's path after the well-known segment
    (/.well-known/oauth-authorization-server/tenant); serve it only for our own issuer's path."""
    from urllib.parse import urlsplit

    from ..errors import NotFound

    s = settings()
    if "/" + suffix != urlsplit(s.issuer).path.rstrip("/"):
        raise NotFound("no such issuer")
    return json_response(discovery.metadata(s), max_age=DISCOVERY_MAX_AGE)


@route(bp, discovery.WELL_KNOWN_OAUTH + "/{suffix}", ["GET"], cors=PUBLIC_CORS)
def oauth_authorization_server_for_path(suffix):
    return _for_issuer_path(suffix)


@route(bp, discovery.WELL_KNOWN_OIDC + "/{suffix}", ["GET"], cors=PUBLIC_CORS)
def openid_configuration_for_path(suffix):
    return _for_issuer_path(suffix)


@route(bp, "/jwks", ["GET"], cors=PUBLIC_CORS)
def jwks():
    """RFC 7517 §5 JWK Set, from this container's copy of the key ring (KEY_CACHE_SECONDS): a warm
    request makes no DynamoDB call. A key is published JWKS_MAX_AGE before it signs, so the copy's
    age never hides a signing key from a verifier."""
    from ..keys import keyring

    return json_response(keyring.cached_jwks(), max_age=settings().jwks_max_age,
                         headers={"Content-Type": "application/jwk-set+json"})
