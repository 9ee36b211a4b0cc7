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
    header = request.headers.get("authorization")
    from_header = header[7:].strip() if header and header[:7].lower() == "bearer " else None
    if header and from_header is None:
        raise MissingToken("use the Bearer authentication scheme")
    from_body = None
    if request.method == "POST" and (request.headers.get("content-type") or "").startswith(FORM):
        from_body = form_params(request).get("access_token")
    if from_header and from_body:
        raise InvalidRequest("send the access token in exactly one place")
    token = from_header or from_body
    if not token:
        raise MissingToken("an access token is required")
    return token


@route(bp, "/userinfo", ["GET", "POST"], content_types=[FORM, "application/json"], cors=TOKEN_CORS)
def userinfo():
    from ..keys import keyring
    from ..storage.models import GrantModel, UserModel
    from ..tokens.claims import user_claims
    from ..tokens.issue import user_attributes
    from ..tokens.verify import verify_access_token

    s = settings()
    token = bearer_token(bp.current_request)
    audience = sorted({s.issuer, s.default_audience})
    try:
        claims = verify_access_token(token, jwks=keyring.cached_jwks(), issuer=s.issuer, audience=audience)
    except InvalidToken as exc:
        if "unknown key" not in exc.description:
            raise
        # A key rotated since this container cached /jwks: look once more before refusing.
        claims = verify_access_token(token, jwks=keyring.cached_jwks(refresh=True), issuer=s.issuer,
                                     audience=audience)
    scopes = claims.get("scope", "").split()
    if "openid" not in scopes:
        raise InsufficientScope("the access token lacks the openid scope", scope="openid")
    if not claims.get("grant_id"):
        raise InvalidToken("the access token is not bound to a grant")
    try:
        grant = GrantModel.get(claims["grant_id"], consistent_read=True)
        user = UserModel.get(claims["sub"])
    except (GrantModel.DoesNotExist, UserModel.DoesNotExist):
        raise InvalidToken("the access token is no longer valid", detail="grant or user missing") from None
    if grant.status != "active" or user.disabled:
        raise InvalidToken("the access token has been revoked", detail=f"grant {grant.grant_id} {grant.status}")
    return json_response({"sub": claims["sub"], **user_claims(user_attributes(user), scopes)})
