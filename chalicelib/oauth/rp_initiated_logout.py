"""OpenID Connect RP-Initiated Logout 1.0: an app sends the browser to /logout to sign the user out.

The request (§2) may carry `id_token_hint` (an ID token we issued to the app), `client_id`,
`post_logout_redirect_uri` (where to send the browser afterwards), `state` (returned with it),
`ui_locales` and `logout_hint`. What is checked, and why:
- `id_token_hint`: our signature (a key of our JWKS, an asymmetric alg, `typ` JWT, so an access or
  logout token is not one), our issuer, a `sub` and an `aud`; its expiry is ignored (§2: "The OP
  need not be listed as an audience ... [and] SHOULD accept ID Tokens ... even when expired", the
  usual case when the app's session outlived the token). A hint that does not verify is refused:
  it would be the only thing vouching for the redirect.
- `client_id` must be an audience of the hint when both are sent (§2: "the OP MUST verify that it
  matches the ID Token's audience").
- `post_logout_redirect_uri` is used only when it exactly matches one the client registered (§3:
  "MUST NOT perform post-logout redirection if [it] does not exactly match"), and so only when the
  client is known (from the hint or client_id); otherwise the request is refused with our error page
  and never redirected: an unchecked redirect would make our domain an open redirector.
- `logout_hint` is accepted and not used: the session is the browser's own.

Whether to ask (§3: the OP "SHOULD ask the End-User whether to log out"): not when the hint's `sid`
names the browser's current session (the app that asks is one this very session signed in to, with
a token only it received); otherwise a confirmation page asks first, and names the host the browser
goes back to. A browser without a session is asked too: nothing else vouches that whoever sent it
there may bounce it on to that address unasked (an open redirector: anyone can register a client).
"""
from __future__ import annotations

import hmac
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import jwt

from ..capabilities import SIGNING_ALGS
from ..config import Settings
from ..errors import DocumentError, InvalidIdTokenHint, UntrustedRequest
from .backchannel_logout import session_id

#: The request parameters of §2 (with the confirmation form's own csrf_token, nothing else is read).
PARAMETERS = ("id_token_hint", "client_id", "post_logout_redirect_uri", "state", "ui_locales", "logout_hint")
#: The error page's message id for every refusal (chalicelib/pages/messages.py).
REFUSED = "invalid_logout_request"
#: `typ` of our ID tokens (chalicelib/tokens/issue.py).
ID_TOKEN_TYPE = "JWT"


@dataclass(frozen=True)
class EndSessionRequest:
    """A checked end-session request: the app (None when none was named), where to return
    (the registered URI with `state`, or None), and the hint's session and subject."""

    client: object | None = None
    location: str | None = None
    hint_sid: str | None = None
    hint_sub: str | None = None
    #: The parameters to carry through the confirmation form (the checked ones, as sent).
    carried: tuple = ()

    @property
    def return_host(self) -> str | None:
        return urlsplit(self.location).netloc or None if self.location else None

    def current_session(self, session) -> bool:
        """The hint names this browser's session (its `sid`), compared in constant time."""
        return (session is not None and self.hint_sid is not None
                and hmac.compare_digest(self.hint_sid.encode(), session_id(session.session_hash).encode()))


def is_end_session_request(params: dict) -> bool:
    """The request carries any §2 parameter (a bare /logout is the plain sign-out page)."""
    return any(params.get(name) for name in PARAMETERS)


# Pure ------------------------------------------------------------------------------------------------

def hint_claims(token: str, *, jwks: dict, issuer: str) -> dict:
    """The claims of an ID token we issued, verified against `jwks` except for its expiry (module
    docstring). Raises InvalidIdTokenHint."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise InvalidIdTokenHint("malformed") from None
    alg = header.get("alg")
    if alg not in SIGNING_ALGS or header.get("typ") != ID_TOKEN_TYPE:
        raise InvalidIdTokenHint(f"alg {alg!r} / typ {header.get('typ')!r} is not an ID token of ours")
    jwk = next((k for k in jwks.get("keys", ()) if k.get("kid") == header.get("kid")), None)
    if jwk is None or jwk.get("alg") != alg:
        raise InvalidIdTokenHint("signed by a key not in our JWKS")
    try:
        claims = jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=[alg], issuer=issuer,
                            options={"verify_exp": False, "verify_aud": False, "verify_iat": False,
                                     "verify_nbf": False, "require": ["iss", "sub", "aud"]})
    except jwt.InvalidTokenError as exc:
        raise InvalidIdTokenHint(str(exc)) from None
    return claims


def audiences(claims: dict) -> list[str]:
    aud = claims.get("aud")
    return [aud] if isinstance(aud, str) else [a for a in aud if isinstance(a, str)] if isinstance(aud, list) else []


def with_state(uri: str, state: str | None) -> str:
    """§3: `state` is passed back as a query parameter of post_logout_redirect_uri (whose own
    query is kept)."""
    if not state:
        return uri
    parts = urlsplit(uri)
    query = urlencode([*parse_qsl(parts.query, keep_blank_values=True), ("state", state)])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def refused(description: str) -> UntrustedRequest:
    return UntrustedRequest(REFUSED, description)


def check(params: dict, *, hint: dict | None, client) -> EndSessionRequest:
    """The request once the hint is verified (`hint`: its claims, or None without one) and the
    client looked up (`client`: the one the hint or client_id names, or None). Raises
    UntrustedRequest (kind REFUSED) for what must not be followed (module docstring)."""
    client_id = params.get("client_id")
    if hint is not None and client_id and client_id not in audiences(hint):
        raise refused("client_id is not an audience of id_token_hint")
    uri = params.get("post_logout_redirect_uri")
    location = None
    if uri:
        if client is None:
            raise refused("post_logout_redirect_uri without a known client (id_token_hint or client_id)")
        if uri not in client.post_logout_redirect_uris:
            raise refused("post_logout_redirect_uri is not registered for the client")
        location = with_state(uri, params.get("state"))
    carried = tuple((name, params[name]) for name in PARAMETERS if params.get(name))
    return EndSessionRequest(client=client, location=location, hint_sid=(hint or {}).get("sid"),
                             hint_sub=(hint or {}).get("sub"), carried=carried)


# With I/O --------------------------------------------------------------------------------------------

def parse(params: dict, settings: Settings, *, source_ip: str | None = None) -> EndSessionRequest:
    """Verify the hint (our JWKS, from the key ring's container cache) and find the client (the
    registration cache), then `check`."""
    from ..keys import keyring
    from .clients import find_client

    hint = None
    token = params.get("id_token_hint")
    if token:
        # No refresh for an unknown kid: a key signs only after JWKS_MAX_AGE as "next" in /jwks, and
        # the container's copy is at most KEY_CACHE_SECONDS old; a refresh would let anyone make
        # us read the key ring at will.
        try:
            hint = hint_claims(token, jwks=keyring.cached_jwks(), issuer=settings.issuer)
        except InvalidIdTokenHint as exc:
            raise UntrustedRequest(REFUSED, "id_token_hint is not an ID token of ours", detail=str(exc)) from None
    named = params.get("client_id") or (audiences(hint)[0] if hint and len(audiences(hint)) == 1 else
                                        (hint or {}).get("azp"))
    client = None
    if named:
        try:
            client = find_client(named, settings, cache_seconds=settings.client_cache_seconds, source_ip=source_ip)
        except DocumentError:
            client = None
    return check(params, hint=hint, client=client)
