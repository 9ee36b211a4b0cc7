"""grant_type=urn:ietf:params:oauth:grant-type:token-exchange (RFC 8693): an audience-bound access
token for the next hop, with the delegation recorded in `act`.

A confidential client trades a subject token (our access token, or an ID token we issued to it) for
an access token to a `resource`/`audience` its exchange policy names (oauth/exchange_policy.py):
same `sub`, scope narrowed, never outliving the subject token, and `act` naming the actor (the
`actor_token`'s subject, or the client itself) with the subject token's own chain nested inside
(oauth/delegation.py). Never a refresh token (§2.2.1 allows one; no policy can ask for it: a
delegation is renewed by exchanging a fresh subject token, which keeps the subject's own revocation
in charge). `requested_token_type` id-jag is the Identity Assertion JWT (oauth/id_jag.py).

Errors follow §2.2.2: an invalid or unacceptable subject or actor token is `invalid_request`, a
target no policy allows `invalid_target`, a client without a policy `unauthorized_client`.

DynamoDB: one call for an access-token subject (its revocation state: the grant, or the deny list),
one for an ID-token subject (the user, still enabled); one more for an access-token actor, one
conditional put for a client-assertion actor (its jti). Policies, client and resources come from
this container's caches, and every policy refusal comes before any call.
"""
from __future__ import annotations

from dataclasses import dataclass

import jwt

from ..capabilities import ACCESS_TOKEN_TYPE, ID_JAG_TOKEN_TYPE, ID_TOKEN_TYPE, JWT_TOKEN_TYPE
from ..config import Settings
from ..errors import (
    InvalidRequest,
    InvalidScope,
    InvalidToken,
    OAuthError,
    TemporarilyUnavailable,
    UnauthorizedClient,
    UntrustedJwt,
)
from ..keys import keyring
from ..log import get_logger, now
from ..oauth import access_tokens, delegation, dpop_binding, exchange_policy, id_tokens, scopes
from ..oauth.resources import resolve, token_scopes
from ..tokens.issue import issue_tokens
from ..verifier import actor_chain

log = get_logger("idp.grants.token_exchange")

#: RFC 8693 §3 token types (chalicelib/capabilities.py). A jwt subject token comes from an issuer
#: trusted for "subject-token" (federation/trusted_issuers.py); a jwt actor token is a client
#: assertion (oauth/client_assertions.py). The ID-JAG is chalicelib/oauth/id_jag.py's.
JWT_TYPE = JWT_TOKEN_TYPE
ID_JAG_TYPE = ID_JAG_TOKEN_TYPE
SUBJECT_TOKEN_TYPES = (ACCESS_TOKEN_TYPE, ID_TOKEN_TYPE, JWT_TYPE)
ACTOR_TOKEN_TYPES = (ACCESS_TOKEN_TYPE, JWT_TYPE)


@dataclass(frozen=True)
class Subject:
    """A verified subject token: its claims, the audiences a policy is matched on, its scopes (None
    for an ID token, which carries none) and its type (for the audit line)."""

    claims: dict
    audiences: list[str]
    scopes: list[str] | None
    token_type: str


def handle(form: dict, client, settings: Settings, proof=None) -> dict:
    """An access token bound to the request's DPoP key when it has a proof (RFC 9449 §5); an ID-JAG
    is never bound (it is an assertion for another server's token endpoint, not an access token)."""
    if client.client_type != "confidential":
        # Registration refuses the grant to public clients too (oauth/client_metadata.py).
        raise UnauthorizedClient("token exchange is for confidential clients only")
    requested_type = form.get("requested_token_type") or ACCESS_TOKEN_TYPE
    if requested_type == ID_JAG_TYPE:
        return _id_jag(form, client, settings)
    if requested_type != ACCESS_TOKEN_TYPE:
        raise InvalidRequest("unsupported requested_token_type")
    policies = exchange_policy.of(client, "access_token")
    if not policies:
        raise UnauthorizedClient("no exchange policy allows this client to exchange tokens")
    targets = _targets(form)
    requested_scopes = scopes.parse(form.get("scope"))
    registrations = resolve(targets, client, max_age=settings.client_cache_seconds)
    subject = _subject(form, client, settings)
    depth = delegation.result_depth(subject.claims)
    reaching = delegation.admitting(policies, subject.audiences, targets)
    policy, granted = _fitting(reaching, requested_scopes, subject, depth)
    granted = token_scopes(granted, registrations, unverified=client.registered_dynamically)
    actor, identity = _actor(form, client, settings)
    if not delegation.may_act_allows(subject.claims, identity):
        raise InvalidRequest("the subject token does not allow this actor to act for it (may_act)",
                             detail=f"actor {identity.get('sub')}")
    _still_valid(subject, client, settings)
    act = delegation.new_act(actor, subject.claims)
    claims = subject.claims
    response = issue_tokens(settings, client=client, sub=claims["sub"], scopes=granted,
                            grant_id=claims.get("grant_id"), auth_time=claims.get("auth_time"), nonce=None,
                            audience=targets, acr=claims.get("acr"), amr=claims.get("amr") or (), act=act,
                            expires_at=delegation.expires_at(claims), cnf=dpop_binding.confirmation(proof))
    response["issued_token_type"] = ACCESS_TOKEN_TYPE
    _audit(subject, act, client, targets, granted, policy, response)
    return response


def _id_jag(form: dict, client, settings: Settings) -> dict:
    """The IdP side of ID-JAG is a token exchange too; chalicelib/oauth/id_jag.py does it."""
    from ..oauth import id_jag

    return id_jag.exchange(form, client, settings)


def _targets(form: dict) -> list[str]:
    """RFC 8693 §2.1: `resource` (repeatable, RFC 8707) and `audience` name the target; here an
    audience is a registered resource's identifier like a resource, so both land in one list. One
    is required: an exchanged token is for a named next hop, never for whatever is the default."""
    targets = list(dict.fromkeys([*form.get("resource", []), *([form["audience"]] if form.get("audience") else [])]))
    if not targets:
        raise InvalidRequest("resource or audience is required: name the API the token is for")
    return targets


def _subject(form: dict, client, settings: Settings) -> Subject:
    """The subject token, verified by signature (revocation comes last, `_still_valid`: policy
    refusals must cost no DynamoDB call)."""
    token, token_type = form.get("subject_token"), form.get("subject_token_type")
    if not token or not token_type:
        raise InvalidRequest("subject_token and subject_token_type are required")
    if token_type == ACCESS_TOKEN_TYPE:
        try:
            claims = access_tokens.verify(token, settings, audience=None, check_revocation=False)
        except InvalidToken as exc:
            raise InvalidRequest("the subject_token is not a valid access token", detail=exc.description) from None
        return Subject(claims, _audiences(claims), scopes.parse(claims.get("scope")), token_type)
    if token_type == ID_TOKEN_TYPE:
        claims = id_tokens.verify(token, jwks=keyring.cached_jwks(), issuer=settings.issuer,
                                  client_id=client.client_id)
        return Subject(claims, _audiences(claims), None, token_type)
    if token_type == JWT_TYPE:
        return _trusted_subject(token, client, settings)
    raise InvalidRequest("unsupported subject_token_type")


#: The typs a trusted issuer's subject token may carry: an ID token's ("JWT", OIDC Core) or an
#: access token's ("at+jwt", RFC 9068). RFC 8725 §3.11: nothing untyped, so no logout token, ID-JAG
#: or other kind of JWT passes for a subject token.
TRUSTED_SUBJECT_TYPS = ("JWT", "at+jwt")


def _trusted_subject(token: str, client, settings: Settings) -> Subject:
    """A JWT from an issuer the operator trusts for subject tokens (a connection with `trust`
    subject-token): signature, issuer, typ and lifetime by trusted_issuers.verify; its `aud` must name
    us (RFC 7523 §3 item 3's rule for assertions; a token meant for another party is not ours to
    trade); its subject becomes the local user by the connection's mapping (one or two GetItems).
    The policy is matched on its audiences like any subject token's: an operator lists this issuer's
    tokens by our issuer among a policy's subject audiences. Its `scope` (if any) is ignored: scopes
    are ours to give, so the policy's are the limit, as for an ID token."""
    from ..federation import home_realm, trusted_issuers

    try:
        connection, claims = trusted_issuers.verify(token, settings, purpose="subject-token", typ=TRUSTED_SUBJECT_TYPS)
    except UntrustedJwt as exc:
        raise InvalidRequest("the subject_token is not a JWT from a trusted issuer", detail=exc.detail) from None
    # The client's `connections` restriction holds for the issuer's users as at a sign-in and for
    # its ID-JAGs (grants/jwt_bearer.py): a client limited to other ways in cannot bring them in here.
    if not home_realm.allows(client.connections, connection.connection_id):
        raise InvalidRequest("this client's users may not come in through the subject_token's issuer",
                             detail=f"connection={connection.connection_id}")
    audiences = _audiences(claims)
    if settings.issuer not in audiences:
        raise InvalidRequest("the subject_token is not meant for this server", detail=f"aud={audiences}")
    sub = trusted_issuers.local_user(connection, subject=claims["sub"], email=claims.get("email"),
                                     email_verified=claims.get("email_verified"))
    if sub is None:
        raise InvalidRequest("the subject_token's subject is not known here",
                             detail=f"connection={connection.connection_id} sub={claims['sub']}")
    # Ours from here on: the local user, no upstream grant, session or delegation chain (an upstream
    # `act` is the upstream's to vouch for, not ours to copy into our tokens).
    local = {"sub": sub, "exp": claims["exp"], "iss": claims["iss"], "aud": claims.get("aud"),
             "jti": claims.get("jti")}
    # Its `may_act` (§4.4) is kept, though: a restriction its issuer put on who may act is honoured
    # (compared with our actor's identity, so one naming a party of the issuer's refuses: fails closed).
    if "may_act" in claims:
        local["may_act"] = claims["may_act"]
    return Subject(local, audiences, None, JWT_TYPE)


def _audiences(claims: dict) -> list[str]:
    aud = claims.get("aud")
    return [aud] if isinstance(aud, str) else [a for a in aud or () if isinstance(a, str)]


def _fitting(reaching, requested_scopes: list[str], subject: Subject, depth: int):
    """The first policy under which the scope and the chain's depth fit, and the scopes it grants;
    the first refusal when none does."""
    first_refusal = None
    for policy in reaching:
        try:
            granted = delegation.narrowed_scopes(requested_scopes, subject.scopes, policy.scopes)
        except InvalidScope as exc:
            first_refusal = first_refusal or exc
            continue
        if not delegation.within_depth(depth, policy.max_depth):
            # RFC 8693 §2.2.2: a token whose result would break policy is `invalid_request`.
            first_refusal = first_refusal or InvalidRequest(delegation.TOO_DEEP,
                                                            detail=f"depth {depth} > {policy.max_depth}")
            continue
        return policy, granted
    raise first_refusal


def _actor(form: dict, client, settings: Settings) -> tuple[dict, dict]:
    """(the actor's `act` entry, its identity for `may_act`). RFC 8693 §2.1: actor_token_type is
    required with an actor_token and forbidden without one. No actor_token: the client itself."""
    token, token_type = form.get("actor_token"), form.get("actor_token_type")
    if not token:
        if token_type:
            raise InvalidRequest("actor_token_type without actor_token")
        return _acting(client.client_id, client.client_id, settings)
    if not token_type:
        raise InvalidRequest("actor_token_type is required with actor_token")
    if token_type == ACCESS_TOKEN_TYPE:
        try:
            claims = access_tokens.verify(token, settings, audience=None)
        except InvalidToken as exc:
            raise InvalidRequest("the actor_token is not a valid access token", detail=exc.description) from None
        # A bearer token proves who its holder is only to whom it was issued: another client's
        # token (leaked, or handed on) would let this client claim to be anyone.
        if claims["client_id"] != client.client_id:
            raise InvalidRequest("the actor_token was not issued to this client",
                                 detail=f"issued to {claims['client_id']}")
        return _acting(claims["sub"], claims["client_id"], settings)
    if token_type == JWT_TYPE:
        actor_client = _asserted_actor(token, settings)
        return _acting(actor_client.client_id, actor_client.client_id, settings)
    raise InvalidRequest("unsupported actor_token_type")


def _acting(sub: str, client_id: str, settings: Settings) -> tuple[dict, dict]:
    return {"sub": sub}, {"iss": settings.issuer, "sub": sub, "client_id": client_id}


def _asserted_actor(assertion: str, settings: Settings):
    """An actor_token of type jwt: a client assertion (RFC 7523 §2.2) of a registered
    private_key_jwt client, the acting agent (oauth/client_assertions.py; its jti is single-use)."""
    from ..oauth import client_assertions

    try:
        return client_assertions.verify_actor_assertion(assertion, settings)
    except TemporarilyUnavailable:
        raise
    except OAuthError as exc:
        raise InvalidRequest("the actor_token is not a valid client assertion", detail=exc.description) from None


def _still_valid(subject: Subject, client, settings: Settings) -> None:
    """Last, once policy allowed everything: unexpired (the verifiers allow clock skew; a token that
    expired a moment ago would give an already expired result), and not revoked. An access token's
    grant or deny list (one call); an ID token cannot be revoked, so its user must still be
    active (one call): a disabled user's ID token buys nothing."""
    from ..storage.users import get_user

    claims = subject.claims
    if delegation.expires_at(claims) <= now():
        raise InvalidRequest("the subject_token has expired")
    if subject.token_type == JWT_TYPE:
        return  # its issuer's to revoke; the local user was read and found active (_trusted_subject)
    if subject.token_type == ACCESS_TOKEN_TYPE:
        if access_tokens.is_revoked(claims, settings):
            raise InvalidRequest("the subject_token has been revoked", detail=f"jti={claims.get('jti')}")
        return
    user = get_user(claims["sub"])
    if user is None or user.disabled or user.deleted_at is not None:
        raise InvalidRequest("the subject_token's user is no longer active", detail=f"sub={claims['sub']}")


def _audit(subject: Subject, act: dict, client, targets: list[str], granted: list[str], policy,
           response: dict) -> None:
    """One structured line per exchange: who for whom (the whole chain), which client under which
    policy, from which audience to which."""
    issued = jwt.decode(response["access_token"], options={"verify_signature": False})
    log.info("token exchange", extra={
        "event": "token_exchange", "sub": subject.claims["sub"], "actor_chain": actor_chain({"act": act}),
        "client_id": client.client_id, "policy_id": policy.policy_id, "subject_token_type": subject.token_type,
        "subject_aud": subject.audiences, "subject_jti": subject.claims.get("jti"), "aud": targets,
        "scope": " ".join(granted), "jti": issued["jti"], "exp": issued["exp"]})
