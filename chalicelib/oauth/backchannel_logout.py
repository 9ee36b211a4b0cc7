"""OpenID Connect Back-Channel Logout 1.0: telling relying parties that a user's session ended.

When a session ends here (the sign-out page or end-session endpoint, the account page's "sign out
everywhere" and deletion, `idp-admin users disable|signout|mfa reset`, a password change or reset),
every client that holds a grant issued through it, and registered a `backchannel_logout_uri`,
gets a logout token (§2.4) POSTed to that URI (§2.5), so it can end its own session of the user.

Three stages, so that a sign-out never waits for another party's server:
1. the request path puts ONE message on the queue (chalicelib/logout_queue.py), and none when the
   session had no grants: `session_ended`, `user_signed_out`, `notify`. A queue that cannot be
   reached does not stop the sign-out: the session and its grants are already ended (the tokens
   are dead whatever the RPs hear), so the fault is logged and the user is signed out;
2. the delivery function (chalicelib/blueprints/logout_delivery.py) reads which clients held the
   ended grants and puts one message per (client, logout) on the queue: `fan_out`;
3. the same function signs a logout token per message and POSTs it through the outbound guard
   (chalicelib/outbound.py): `deliver`. A non-2xx answer, a timeout or an unreachable host raises
   LogoutDeliveryFailed, so SQS redelivers that one message later, up to the queue's redrive limit;
   other clients' messages are separate, so one failing relying party never delays another.

Pure functions (no I/O, no clock, no randomness): `session_id`, `logout_token_claims`,
`session_ended`, `user_signed_out`, `deliveries`.
"""
from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from urllib.parse import urlencode

from ..config import Settings
from ..errors import LogoutDeliveryFailed
from ..log import get_logger

log = get_logger("idp.backchannel_logout")

#: §2.4: the `events` member that makes a JWT a logout token.
EVENT = "http://schemas.openid.net/event/backchannel-logout"
#: §2.4: "explicitly typed ... `logout+jwt`", so it cannot pass for an ID token (RFC 8725 §3.11).
TOKEN_TYPE = "logout+jwt"
#: What the relying party's answer may be, and how long it may take (§2.8: the RP answers 200,
#: at most a short error body; it gets no time of ours beyond this).
DELIVERY_TIMEOUT_SECONDS = 5
MAX_ANSWER_BYTES = 4096
#: Grants revoked this many seconds before the sign-out said it began still count as ended by it
#: (the request path and the delivery function read different clocks).
CLOCK_SLACK_SECONDS = 5
#: The message kinds on the queue.
SESSION, USER, DELIVER = "session", "user", "deliver"


# Pure ------------------------------------------------------------------------------------------------

def session_id(session_hash: str) -> str:
    """The `sid` of a session (OpenID Connect Front-Channel Logout 1.0 §3, Back-Channel §2.1): a
    pure function of the session's key, which is itself the SHA-256 of the cookie, and never the
    cookie or the key (a `sid` travels to relying parties and in ID tokens; the key reads the
    session item). 32 base64url characters (192 bits) of SHA-256 over a labelled input."""
    digest = hashlib.sha256(f"sid|{session_hash}".encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")[:32]


def logout_token_claims(*, issuer: str, client_id: str, iat: int, ttl: int, jti: str, sub: str | None = None,
                        sid: str | None = None) -> dict:
    """§2.4: iss, aud (the client), iat, exp, jti, `events` with the back-channel logout member, and
    `sub` and/or `sid`; never `nonce` ("A nonce Claim MUST NOT be present": so that a logout token
    cannot be mistaken for an ID token)."""
    if sub is None and sid is None:
        raise ValueError("a logout token names the subject, the session, or both (§2.4)")
    claims = {"iss": issuer, "aud": client_id, "iat": iat, "exp": iat + ttl, "jti": jti, "events": {EVENT: {}}}
    if sub is not None:
        claims["sub"] = sub
    if sid is not None:
        claims["sid"] = sid
    return claims


def session_ended(session) -> dict | None:
    """The queue message for one ended session (storage Session, as `end` returned it), or None
    when no grant was issued through it: then no client can hold a session that came from it."""
    if not session.grant_ids:
        return None
    return {"kind": SESSION, "sub": session.sub, "sid": session_id(session.session_hash),
            "grant_ids": sorted(session.grant_ids)}


def user_signed_out(sub: str, since: int) -> dict:
    """The queue message for "every session of the user ended" (sign out everywhere, deletion,
    disable, a factor reset, a new password), `since` the time before the grants were revoked: the
    delivery function notifies the clients of every grant revoked from then on."""
    return {"kind": USER, "sub": sub, "since": since}


@dataclass(frozen=True)
class Delivery:
    client_id: str
    sub: str
    sid: str | None

    def message(self) -> dict:
        return {"kind": DELIVER, "client_id": self.client_id, "sub": self.sub, "sid": self.sid}


def deliveries(message: dict, grants, clients: dict, *, at: int) -> list[Delivery]:
    """Who is told what, for a SESSION or USER message: `grants` are the user's
    (storage.grants.SignedOutGrant), `clients` the Client (or None) of each client_id among them.

    - SESSION: the clients of the session's grants, each told `sub` and `sid`.
    - USER: the clients of every grant ended since the message's `since` (or still active), each
      told `sub` alone, which means all of the user's sessions (§2.4). A client that registered
      `backchannel_logout_session_required` gets one token per session of those grants instead,
      each with `sub` and `sid`; with no session known, nothing (it would refuse a token without one).
    A client without a backchannel_logout_uri, disabled or gone gets nothing.
    """
    sub = message["sub"]
    if message["kind"] == SESSION:
        wanted = set(message["grant_ids"])
        held = [g for g in grants if g.grant_id in wanted]
    else:
        since = int(message["since"]) - CLOCK_SLACK_SECONDS
        held = [g for g in grants if (g.revoked_at is not None and g.revoked_at >= since)
                or (g.status == "active" and g.expires_at > at)]
    found: dict[str, set] = {}
    for grant in held:
        found.setdefault(grant.client_id, set()).add(grant.session_hash)
    out = []
    for client_id in sorted(found):
        client = clients.get(client_id)
        if client is None or client.disabled or not client.backchannel_logout_uri:
            continue
        if message["kind"] == SESSION:
            out.append(Delivery(client_id, sub, message["sid"]))
        elif client.backchannel_logout_session_required:
            out += [Delivery(client_id, sub, sid) for sid in sorted(session_id(h) for h in found[client_id] if h)]
        else:
            out.append(Delivery(client_id, sub, None))
    return out


# The request path ------------------------------------------------------------------------------------

def notify(message: dict | None, settings: Settings) -> None:
    """Put `message` on the logout queue: one SendMessage, none for None. Never raises: the sign-out
    it follows is done and must be answered as done (module docstring); a failure is logged, with the
    message, so an operator can see which relying parties were not told."""
    from .. import logout_queue

    if message is None:
        return
    try:
        logout_queue.send(message, settings)
    except Exception as exc:  # noqa: BLE001 - after the sign-out nothing may turn its answer into an error
        log.error("back-channel logout not queued; relying parties keep their sessions",
                  extra={"kind": message["kind"], "sub": message["sub"], "fault": repr(exc)[:300]})


# The delivery function -------------------------------------------------------------------------------

def handle(message: dict, settings: Settings) -> None:
    """One queue message: fan out a SESSION or USER message, deliver a DELIVER one. Raises to have
    SQS deliver the message again."""
    if message.get("kind") == DELIVER:
        deliver(message, settings)
    elif message.get("kind") in (SESSION, USER):
        fan_out(message, settings)
    else:
        log.error("unknown logout message dropped", extra={"kind": str(message.get("kind"))[:50]})


def fan_out(message: dict, settings: Settings) -> None:
    """Read the user's grants (one Query) and their clients (cached registrations), and queue one
    DELIVER message per (client, logout)."""
    from .. import logout_queue
    from ..log import now
    from ..storage import grants as grant_store
    from ..storage.clients import get_client_cached

    grants = grant_store.for_logout(message["sub"])
    clients = {client_id: get_client_cached(client_id, settings.client_cache_seconds)
               for client_id in {g.client_id for g in grants}}
    planned = deliveries(message, grants, clients, at=now())
    if planned:
        logout_queue.send_all([d.message() for d in planned], settings)
    log.info("back-channel logout fanned out", extra={"kind": message["kind"], "deliveries": len(planned)})


def deliver(message: dict, settings: Settings) -> None:
    """Sign a logout token for one client and POST it (§2.5: `logout_token` form parameter) through
    the outbound guard. A fresh token (iat, exp, jti) per attempt, so a redelivered message never
    sends an expired one. A 2xx answer is delivered (§2.8: 200; some frameworks answer 204); any
    other answer, a timeout or an unreachable host raises LogoutDeliveryFailed. A URL the guard refuses
    (not public, or no longer allowed) is dropped and logged: retrying cannot change the verdict."""
    from .. import outbound
    from ..hashing import new_secret
    from ..keys import keyring
    from ..log import now
    from ..storage.clients import get_client_cached
    from ..tokens import jwt

    client = get_client_cached(message["client_id"], settings.client_cache_seconds)
    if client is None or client.disabled or not client.backchannel_logout_uri:
        log.info("back-channel logout dropped: the client is gone or no longer wants it",
                 extra={"client_id": message["client_id"]})
        return
    claims = logout_token_claims(issuer=settings.issuer, client_id=client.client_id, iat=now(),
                                 ttl=settings.logout_token_ttl, jti=new_secret(16), sub=message.get("sub"),
                                 sid=message.get("sid"))
    token = jwt.encode(claims, keyring.current_signer(), typ=TOKEN_TYPE)
    try:
        answer = outbound.send("POST", client.backchannel_logout_uri, settings, max_bytes=MAX_ANSWER_BYTES,
                               timeout=DELIVERY_TIMEOUT_SECONDS, body=urlencode({"logout_token": token}).encode(),
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
    except outbound.Refused as exc:
        log.warning("back-channel logout dropped: the URI is not allowed",
                    extra={"client_id": client.client_id, "reason": str(exc)})
        return
    except outbound.OutboundError as exc:
        raise LogoutDeliveryFailed(f"{client.client_id}: {type(exc).__name__}") from None
    if not 200 <= answer.status < 300:
        raise LogoutDeliveryFailed(f"{client.client_id}: answered {answer.status}")
    log.info("back-channel logout delivered", extra={"client_id": client.client_id, "status": answer.status})
