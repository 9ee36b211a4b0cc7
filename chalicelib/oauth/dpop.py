"""DPoP proofs (RFC 9449): checking one, and the thumbprint that binds tokens to its key.

A DPoP proof is a JWT the client signs, per request, with a private key it never sends. The public
key rides in the proof's header (`jwk`); tokens issued against it carry that key's RFC 7638
thumbprint as `cnf.jkt` (§6), so a stolen token is useless without the private key.

`check_proof` is pure (no I/O, no clock: `now` is passed in) and applies RFC 9449 §4.3 in order:
1. exactly one proof, a well-formed compact JWS (items 1-2);
2. `typ` is `dpop+jwt` (item 4), `alg` an asymmetric one we accept (item 5: never `none` or HMAC);
3. `jwk` is a public key fitting `alg`, with no private member (item 6, RFC 9449 §4.2: "MUST NOT
   contain a private key"), and the signature verifies with it (item 7);
4. `htm` is the request's method and `htu` its URL, both compared after normalisation, without
   query or fragment (items 8-9, RFC 3986 §6.2.2-6.2.3);
5. `iat` lies within [now - max_age, now + leeway] (item 11) and `jti` is present (§4.2);
6. `nonce`, when the server demands one, is one it handed out (item 10, §8);
7. `ath`, at a resource server, is the base64url SHA-256 of the access token presented with it
   (item 12, §4.2).
The caller then spends the `jti` (storage/used_jtis.py, kind "dpop", keyed by the key's thumbprint,
§11.1) and, for a bound token, compares `cnf.jkt` with `Proof.jkt` (§7.1).

Refusals raise errors.DpopProofRefused; the token endpoint turns it into `invalid_dpop_proof` or
`use_dpop_nonce`, a resource server into its WWW-Authenticate: DPoP challenge.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import math
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlsplit, urlunsplit

import jwt

from ..capabilities import DPOP_ALGS, DPOP_PROOF_TYP
from ..errors import DpopProofRefused as Refused
from ..errors import echo
from ..keys.jwk import fits, thumbprint

#: RFC 7517/7518 members that only a private (or symmetric) key has.
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
#: Seconds a proof's `iat` may lie in the future: clients' clocks drift, a little.
FUTURE_LEEWAY = 10
#: Longest proof and jti accepted: a proof is a few hundred bytes (an RSA key makes it ~1.5 KB).
MAX_PROOF_LENGTH = 8192
MAX_JTI_LENGTH = 256
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Proof:
    """A proof that passed every check. `jkt`: RFC 7638 thumbprint of its key (what `cnf.jkt` and
    `dpop_jkt` name); `expires_at`: when replaying its `jti` stops mattering, because its `iat` is
    then too old anyway (how long storage/used_jtis must remember it)."""

    jkt: str
    jti: str
    iat: int
    nonce: str | None
    expires_at: int


def normalise_htu(url: str) -> str:
    """RFC 9449 §4.3 item 9: the URL without query and fragment, with scheme and host in lowercase
    and the scheme's default port dropped (RFC 3986 §6.2.2.1, §6.2.3); an empty path is "/"."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        # Not a port: kept as written, so it can never equal a URL of ours (dropping it made
        # "https://host:99999/token" the same endpoint as "https://host/token").
        return urlunsplit((scheme, parts.netloc.lower(), parts.path or "/", "", ""))
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", "", ""))


def _normalised_or_none(url: str) -> str | None:
    """normalise_htu of a URL from a proof, None when it is not one (urlsplit raises ValueError for
    e.g. an unclosed IPv6 bracket): a proof's claims never make a 500."""
    try:
        return normalise_htu(url)
    except ValueError:
        return None


def access_token_hash(access_token: str) -> str:
    """RFC 9449 §4.2 `ath`: base64url(SHA-256(ASCII(access token))), unpadded."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def jwk_thumbprint(jwk: dict) -> str:
    """RFC 7638 thumbprint of a public JWK (EC, RSA, or OKP: RFC 8037 §2)."""
    return thumbprint(jwk)


def check_proof(proof: str | None, *, method: str, url: str, now: int, max_age: int,
                algs: tuple[str, ...] = DPOP_ALGS, access_token: str | None = None,
                nonce_ok: Callable[[str], bool] | None = None) -> Proof:
    """The proof in a request's `DPoP` header, checked for `method` on `url` (RFC 9449 §4.3).

    `access_token`: the token presented with it at a resource server (its `ath` must match).
    `nonce_ok`: when the server demands nonces, says whether a nonce is current; a missing or
    stale one raises Refused with `nonce_needed`, so the caller answers use_dpop_nonce (§8)."""
    if not proof:
        raise Refused("a DPoP proof is required")
    if "," in proof or len(proof) > MAX_PROOF_LENGTH:
        # Headers sent twice arrive joined by commas; a compact JWS never contains one (§4.3 item 1).
        raise Refused("exactly one DPoP proof is allowed", "several DPoP headers, or an oversized one")
    try:
        header = jwt.get_unverified_header(proof)
    except jwt.PyJWTError as exc:
        raise Refused("the DPoP proof is not a well-formed JWT", repr(exc)) from None
    if header.get("typ") != DPOP_PROOF_TYP:
        raise Refused(f"the DPoP proof's typ must be {DPOP_PROOF_TYP}", f"typ {echo(header.get('typ'))}")
    alg = header.get("alg")
    if alg not in algs:
        raise Refused(f"the DPoP proof's alg must be one of {' '.join(algs)}", f"alg {echo(alg)}")
    jwk = header.get("jwk")
    if not isinstance(jwk, dict):
        raise Refused("the DPoP proof must carry its public key in jwk")
    if _PRIVATE_MEMBERS & set(jwk):
        raise Refused("the DPoP proof's jwk must be a public key", "private members in jwk")
    try:
        key = jwt.PyJWK(jwk, algorithm=alg).key
    except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
        raise Refused("the DPoP proof's jwk is not a key for its alg", repr(exc)) from None
    if not fits(key, alg):
        raise Refused("the DPoP proof's jwk is not a public key for its alg", f"alg {alg}")
    try:
        claims = jwt.decode(proof, key, algorithms=[alg], options={"verify_exp": False, "verify_aud": False,
                                                                   "verify_iat": False, "verify_nbf": False})
    except jwt.PyJWTError as exc:
        raise Refused("the DPoP proof's signature does not verify", repr(exc)) from None
    return _checked_claims(claims, jwk, method=method, url=url, now=now, max_age=max_age,
                           access_token=access_token, nonce_ok=nonce_ok)


def _checked_claims(claims: dict, jwk: dict, *, method: str, url: str, now: int, max_age: int,
                    access_token: str | None, nonce_ok: Callable[[str], bool] | None) -> Proof:
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_LENGTH:
        raise Refused("the DPoP proof needs a jti")
    if claims.get("htm") != method:
        raise Refused(f"the DPoP proof's htm must be {method}", f"htm {echo(claims.get('htm'))}")
    htu = claims.get("htu")
    if not isinstance(htu, str) or _normalised_or_none(htu) != normalise_htu(url):
        raise Refused("the DPoP proof's htu does not name this endpoint", f"htu {echo(htu, 120)}")
    iat = claims.get("iat")
    if (not isinstance(iat, (int, float)) or isinstance(iat, bool)
            or (isinstance(iat, float) and not math.isfinite(iat))):
        # Python's json reads NaN and Infinity; NaN passes every comparison below (and int() of it
        # raises), so only finite numbers are times.
        raise Refused("the DPoP proof needs a numeric iat")
    if iat > now + FUTURE_LEEWAY:
        raise Refused("the DPoP proof's iat is in the future", f"iat {iat} now {now}")
    if iat < now - max_age:
        raise Refused("the DPoP proof is too old; make a new one", f"iat {iat} now {now}")
    nonce = claims.get("nonce")
    if nonce_ok is not None and not (isinstance(nonce, str) and nonce_ok(nonce)):
        raise Refused("a fresh DPoP nonce from this server is required", nonce_needed=True)
    if access_token is not None:
        ath = claims.get("ath")
        if not isinstance(ath, str) or not hmac.compare_digest(ath.encode("ascii", "replace"),
                                                               access_token_hash(access_token).encode("ascii")):
            raise Refused("the DPoP proof's ath does not match the access token")
    return Proof(jkt=jwk_thumbprint(jwk), jti=jti, iat=int(iat), nonce=nonce if isinstance(nonce, str) else None,
                 expires_at=int(iat) + max_age + FUTURE_LEEWAY)

