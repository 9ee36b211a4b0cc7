"""GET/POST /userinfo (OIDC Core §5.3) with Bearer tokens per RFC 6750."""
from __future__ import annotations

from chalice import Blueprint

from ..config import settings
from ..errors import InsufficientScope, InvalidRequest, InvalidToken, MissingToken
from ..web import FORM, form_params, json_response, route
from .token import TOKEN_CORS

bp = Blueprint(__name__)


def bearer_token(request) -> str:
    """RFC 6750 §2.1 (header) or §2.2 (form body); using both, or none, is an error."""
    from ..verifier import bearer_token as from_header

    header = request.headers.get("authorization")
    token = from_header(header) if header else None
    from_body = None
    if request.method == "POST" and (request.headers.get("content-type") or "").startswith(FORM):
        from_body = form_params(request).get("access_token")
    if token and from_body:
        raise InvalidRequest("send the access token in exactly one place")
    if not (token or from_body):
        raise MissingToken("an access token is required")
    return token or from_body


@route(bp, "/userinfo", ["GET", "POST"], content_types=[FORM, "application/json"], cors=TOKEN_CORS)
def userinfo():
    """One DynamoDB call: the token's grant and its user, together (storage/grants.with_user)."""
    from ..oauth import access_tokens
    from ..storage import grants
    from ..tokens.claims import user_claims
    from ..tokens.issue import user_attributes

    s = settings()
    claims = access_tokens.verify(bearer_token(bp.current_request), s,
                                  audience=sorted({s.issuer, s.default_audience}), check_revocation=False)
    scopes = claims.get("scope", "").split()
    if "openid" not in scopes:
        raise InsufficientScope("the access token lacks the openid scope", scope="openid")
    if "grant_id" not in claims:
        raise InvalidToken("the access token is not bound to a user's grant")
    grant, user = grants.with_user(claims["sub"], claims["grant_id"])
    if not access_tokens.grant_allows(claims, grant):
        raise InvalidToken("the access token has been revoked", detail=f"jti={claims.get('jti')}")
    if user is None or user.disabled:
        raise InvalidToken("the access token is no longer valid", detail="user disabled or deleted")
    return json_response({"sub": claims["sub"], **user_claims(user_attributes(user), scopes)})
