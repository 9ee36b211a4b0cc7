"""Our own ID tokens presented back to us (a token exchange's subject_token, RFC 8693 §3).

An ID token is an assertion to its audience (OIDC Core §2): only the client it was issued to may
present it, so `aud` must contain that client (and `azp`, when present, name it). Checked like a
relying party checks it (OIDC Core §3.1.3.7): our signature (a key of our JWKS, an asymmetric alg),
`typ` "JWT" (so an access token, `at+jwt`, a logout token or an ID-JAG is not one), iss, aud, exp.
Used by token exchange for access tokens (chalicelib/grants/token_exchange.py) and for ID-JAGs
(chalicelib/oauth/id_jag.py).
"""
from __future__ import annotations

import jwt

from ..capabilities import SIGNING_ALGS
from ..errors import InvalidRequest
from ..verifier import LEEWAY_SECONDS

#: `typ` of our ID tokens (chalicelib/tokens/issue.py).
ID_TOKEN_TYPE = "JWT"


def verify(token: str, *, jwks: dict, issuer: str, client_id: str, leeway: int = LEEWAY_SECONDS) -> dict:
    """The claims of an ID token we issued to `client_id`, unexpired. Raises InvalidRequest (RFC
    8693 §2.2.2: an invalid subject token is `invalid_request`), the reason for the log only."""
    refused = "the subject_token is not a valid ID token issued to this client"
    if not isinstance(token, str) or not token:
        raise InvalidRequest("subject_token is required")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise InvalidRequest(refused, detail="malformed") from None
    alg = header.get("alg")
    if alg not in SIGNING_ALGS or header.get("typ") != ID_TOKEN_TYPE:
        raise InvalidRequest(refused, detail=f"alg {alg!r} / typ {header.get('typ')!r}")
    jwk = next((k for k in jwks.get("keys", ()) if k.get("kid") == header.get("kid")), None)
    if jwk is None or jwk.get("alg") != alg:
        raise InvalidRequest(refused, detail="signed by a key not in our JWKS")
    try:
        claims = jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=[alg], issuer=issuer, audience=client_id,
                            leeway=leeway, options={"require": ["iss", "sub", "aud", "exp", "iat"]})
    except jwt.InvalidTokenError as exc:
        raise InvalidRequest(refused, detail=str(exc)) from None
    if "azp" in claims and claims["azp"] != client_id:
        raise InvalidRequest(refused, detail=f"azp={claims['azp']!r}")
    return claims
