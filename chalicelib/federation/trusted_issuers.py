"""JWTs from issuers the operator trusts: the connections whose `trust` names the purpose.

A trusted issuer is an OpenID Provider we already know as a connection (chalicelib/federation/
connections.py): its issuer, its discovery document and so its JWK Set. The operator says what its
JWTs are good for (`trust`: "id-jag" for the JWT bearer grant, "subject-token" for token exchange)
and how their subject becomes a local user (`subject_mapping`). draft-ietf-oauth-identity-assertion-
authz-grant §"Cross-Domain Access": "for each trusted issuer the Resource Authorization Server MUST
be configured to recognize that issuer, resolve identities asserted by that issuer to the
appropriate local account ... and associate the ID-JAG with the correct client relationship".

`verify` checks what every such JWT needs, before its purpose's own rules (the caller's):
- the header's `typ` is the one the purpose expects (RFC 8725 §3.11: explicit typing keeps one kind
  of JWT from being accepted as another, an ID token as an ID-JAG), with or without "application/"
  (RFC 7515 §4.1.9);
- `iss` names an enabled connection trusted for the purpose, and is not this server
  (draft-ietf-oauth-identity-assertion-authz-grant §"Cross-Domain Use": "the IdP MUST NOT issue
  access tokens in response to an ID-JAG it issued itself");
- the signature: an asymmetric algorithm (never `none` or HMAC, whose key would be public: RFC 8725
  §2.1, §3.1), by a key of the issuer's JWK Set (upstream.SIGNING_ALGS, the key found by `kid` with
  the same rate-limited refetch as ID tokens);
- `exp` and `iat` within upstream.LEEWAY; `sub` present.
The audience and everything else are the caller's: what `aud` must be differs per purpose.

Costs no DynamoDB call: the connections come from the container's cache (CLIENT_CACHE_SECONDS), the
discovery document and JWK Set from fetching's (their max-age).
"""
from __future__ import annotations

import jwt

from ..config import Settings
from ..errors import UntrustedJwt, UpstreamFailed, UpstreamUnavailable, echo
from . import upstream
from .connections import TRUST, Connection

#: A JWT longer than this is no assertion anyone sends (ours are well under 2 KiB).
MAX_JWT_LENGTH = 16 * 1024


def refused(reason: str, description: str, detail: str = "") -> UntrustedJwt:
    return UntrustedJwt(reason, description, detail=detail)


def typ_matches(header_typ, expected: str | tuple[str, ...]) -> bool:
    """RFC 7515 §4.1.9: media type names are case-insensitive, and "application/" may be left out.
    `expected`: one typ, or the few a purpose accepts."""
    if not isinstance(header_typ, str):
        return False
    accepted = (expected,) if isinstance(expected, str) else expected
    return header_typ.lower().removeprefix("application/") in {e.lower() for e in accepted}


def trusted_connection(issuer: str, purpose: str, settings: Settings) -> Connection | None:
    """The enabled connection whose issuer is exactly `issuer` and that is trusted for `purpose`."""
    from ..storage.connections import enabled_connections

    return next((c for c in enabled_connections(settings.client_cache_seconds)
                 if c.protocol == "oidc" and c.issuer == issuer and purpose in c.trust), None)


def verify(token, settings: Settings, *, purpose: str, typ: str | tuple[str, ...]) -> tuple[Connection, dict]:
    """The trusted connection and the verified claims of `token`; UntrustedJwt otherwise (module
    docstring). The issuer's faults (unreachable, 5xx) raise UpstreamUnavailable: a 503, try again."""
    if purpose not in TRUST:
        raise ValueError(f"unknown purpose {purpose!r}")
    if not isinstance(token, str) or not token or len(token) > MAX_JWT_LENGTH:
        raise refused("malformed", "the JWT is malformed")
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise refused("malformed", "the JWT is malformed", repr(exc)) from None
    if not typ_matches(header.get("typ"), typ):
        raise refused("typ", f"the JWT's typ must be {typ if isinstance(typ, str) else ' or '.join(typ)}",
                      f"typ {echo(header.get('typ'))}")
    alg = header.get("alg")
    if alg not in upstream.SIGNING_ALGS:
        raise refused("alg", "the JWT must be signed with an asymmetric algorithm", f"alg {echo(alg)}")
    issuer = unverified.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise refused("iss", "the JWT has no issuer")
    if issuer == settings.issuer:
        raise refused("own", "this server does not accept JWTs it issued itself for this")
    connection = trusted_connection(issuer, purpose, settings)
    if connection is None:
        raise refused("untrusted_issuer", "the JWT's issuer is not trusted here", f"iss {echo(issuer)}")
    try:
        document = upstream.metadata(connection, settings)
        key = upstream._signing_key(document["jwks_uri"], header, alg, settings)
    except UpstreamUnavailable:
        raise
    except UpstreamFailed as exc:
        raise refused(exc.reason, "the JWT's signature cannot be checked", exc.detail) from None
    try:
        claims = jwt.decode(token, key, algorithms=[alg], issuer=issuer, leeway=upstream.LEEWAY,
                            options={"verify_aud": False, "require": ["iss", "sub", "exp", "iat"]})
    except jwt.ExpiredSignatureError:
        raise refused("expired", "the JWT has expired") from None
    except (jwt.ImmatureSignatureError, jwt.InvalidIssuedAtError):
        raise refused("iat", "the JWT is not valid yet") from None
    except jwt.InvalidSignatureError:
        raise refused("signature", "the JWT's signature is invalid") from None
    except jwt.PyJWTError as exc:
        raise refused("claims", "the JWT's claims are invalid", repr(exc)) from None
    return connection, claims


def local_user(connection: Connection, *, subject: str, email, email_verified) -> str | None:
    """The local user (`sub`) a trusted issuer's subject is, by the connection's subject_mapping;
    None when there is none, or it is disabled or deleted (the caller names the error).

    "identity": the user who linked that upstream subject (`identity#<connection>#<sub>`, issue 15's
    linking); "email": the account with that address, verified here, in a domain the operator trusts
    the issuer for (`trusted_email_domains`), and asserted verified by the JWT (`email_verified`
    true, or Apple's "true"), as a sign-in through the connection requires (federation/sign_in.decide):
    an issuer that leaves it out may be passing on whatever its user typed (Entra's `email`)."""
    from ..storage.federated_identities import linked_sub
    from ..storage.users import find_user_by_email, get_user
    from .home_realm import email_domain

    if connection.subject_mapping == "email":
        if not isinstance(email, str) or not (email_verified is True or email_verified == "true"):
            return None
        if email_domain(email) not in connection.trusted_email_domains:
            return None
        user = find_user_by_email(email)
        if user is not None and not user.email_verified:
            user = None
    else:
        linked = linked_sub(connection.connection_id, subject)
        user = get_user(linked) if linked else None
    if user is None or user.disabled or user.deleted_at is not None:
        return None
    return user.pk
