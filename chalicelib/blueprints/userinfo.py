"""GET/POST /userinfo (OIDC Core §5.3) with Bearer tokens per RFC 6750 and DPoP-bound tokens per
RFC 9449 §7."""
from __future__ import annotations

from chalice import Blueprint

from .. import profiles
from ..config import settings
from ..errors import (BearerError, InsufficientScope, InvalidDpopProofChallenge, InvalidRequest, InvalidToken,
                      MissingToken)
from ..web import FORM, form_params, header_value, json_response, route
from .token import TOKEN_CORS

bp = Blueprint(__name__)


def presented_token(request) -> tuple[str, str]:
    """(scheme, token): RFC 6750 §2.1 Bearer or RFC 9449 §7.1 DPoP in the header, or RFC 6750 §2.2
    in the form body (a bearer token: DPoP has no body form); using both places, or none, is an error."""
    from ..verifier import BEARER, credentials

    header = request.headers.get("authorization")
    scheme, token = credentials(header) if header else (BEARER, None)
    from_body = None
    if request.method == "POST" and (request.headers.get("content-type") or "").startswith(FORM):
        from_body = form_params(request).get("access_token")
    if token and from_body:
        raise InvalidRequest("send the access token in exactly one place")
    if not (token or from_body):
        raise MissingToken("an access token is required")
    return scheme, token or from_body


@route(bp, "/userinfo", ["GET", "POST"], content_types=[FORM, "application/json"], cors=TOKEN_CORS)
def userinfo():
    """One DynamoDB call: the token's grant and its user, together (storage/grants.with_user); a
    DPoP request one more, last, when everything else passed: the proof's jti, spent with one
    conditional PutItem (storage/used_jtis). No nonce is demanded here (RFC 9449 §9 makes it the
    resource's choice): proofs are short-lived and single-use already."""
    from ..log import now
    from ..oauth import access_tokens
    from ..storage import grants, used_jtis
    from ..tokens.claims import user_claims
    from ..tokens.issue import user_attributes
    from ..verifier import DPOP, check_dpop_binding

    s = settings()
    algs = profiles.dpop_algs(s)  # the proof algorithms taken here, and named in DPoP challenges
    request = bp.current_request
    scheme, token = presented_token(request)
    try:
        claims = access_tokens.verify(token, s, audience=sorted({s.issuer, s.default_audience}),
                                      check_revocation=False)
        proof = check_dpop_binding(claims, scheme=scheme, access_token=token, proof=header_value(request, "dpop"),
                                   method=request.method, url=f"{s.issuer}/userinfo", now=now(),
                                   max_age=s.dpop_proof_max_age, algs=algs)
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
        if proof is not None and not used_jtis.use("dpop", proof.jkt, proof.jti, proof.expires_at):
            raise InvalidDpopProofChallenge("the DPoP proof was used before; make a new one",
                                            detail=f"jti {proof.jti}")
    except BearerError as exc:
        if scheme == DPOP:
            # RFC 9449 §7.1: the challenge answers in the scheme the request used.
            exc.schemes, exc.algs = ("DPoP",), " ".join(algs)
        raise
    return json_response({"sub": claims["sub"], **user_claims(user_attributes(user), scopes)})
