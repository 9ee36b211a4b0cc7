"""The device authorization grant's two ends other than polling (RFC 8628): the device
authorization endpoint (§3.1-§3.2) and the user's decision on the /device page (§3.3).

The token endpoint's side (§3.4-§3.5) is chalicelib/grants/device_code.py; the item the three
share is chalicelib/storage/device_codes.py; codes and URIs are oauth/device_flow.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..capabilities import DEVICE_CODE
from ..config import Settings
from ..errors import InvalidScope, UnauthorizedClient
from ..log import get_logger, now
from . import acr, device_flow, resources, scopes
from .clients import allowed_scopes

if TYPE_CHECKING:
    from ..storage.clients import Client

log = get_logger("idp.device")

#: A fresh user code collides with a live one about once in 2^34.6 / (codes live): retried, never twice in practice.
CODE_ATTEMPTS = 3


def start(form: dict, client: Client, settings: Settings) -> dict:
    """RFC 8628 §3.1: the device asks (client authenticated as at the token endpoint; a public client
    by its client_id). §3.2: the answer. One PutItem (client and resources from the container's cache).

    Scopes and resources are checked as /authorize checks them, so the page never shows what the
    token endpoint would refuse."""
    from ..storage import device_codes

    if DEVICE_CODE not in client.grant_types:
        raise UnauthorizedClient("this client may not use the device authorization grant")
    targets = resources.resolve(form.get("resource", []), client, max_age=settings.client_cache_seconds)
    allowed = allowed_scopes(client, settings)
    unverified = client.registered_dynamically
    requested = scopes.parse(form.get("scope"))
    granted = (scopes.require_subset(requested, allowed) if requested
               else resources.default_scopes(allowed, targets, unverified=unverified))
    if not granted:
        raise InvalidScope("no scope requested and the client has no default scopes")
    resources.check_scopes(granted, targets, unverified=unverified)
    at = now()
    for _ in range(CODE_ATTEMPTS):
        user_code = device_flow.new_user_code()
        device_code, secret = device_flow.new_device_code(user_code)
        if device_codes.create(user_code, secret, client_id=client.client_id, scopes=granted,
                               resources=[t.resource for t in targets], at=at,
                               expires_at=at + settings.device_code_ttl, interval=settings.device_poll_interval):
            break
    else:
        raise RuntimeError("no free user code after several attempts")
    log.info("device authorization started", extra={"client_id": client.client_id})
    uri, complete = device_flow.verification_uris(settings.issuer, user_code)
    return {"device_code": device_code, "user_code": device_flow.display(user_code), "verification_uri": uri,
            "verification_uri_complete": complete, "expires_in": settings.device_code_ttl,
            "interval": settings.device_poll_interval}


@dataclass(frozen=True)
class Shown:
    """What the consent page says about a device authorization."""

    user_code: str  # normalised
    client: Client
    scopes: tuple[str, ...]
    resources: tuple[str, ...]


def lookup(user_code: str, settings: Settings, *, source_ip: str | None = None) -> Shown | None:
    """The pending authorization of a (normalised) user code and its client, or None (unknown,
    expired, already decided, or its client gone or disabled). One GetItem; the client from cache."""
    from ..storage import device_codes
    from .clients import find_client

    found = device_codes.find(user_code, now())
    if found is None or found.status != "pending":
        return None
    client = find_client(found.client_id, settings, cache_seconds=settings.client_cache_seconds, source_ip=source_ip)
    if client is None:
        return None
    return Shown(user_code=user_code, client=client, scopes=found.scopes, resources=found.resources)


def session_fits(client: Client, session, settings: Settings) -> bool:
    """May this session approve `client`'s device? What /authorize asks of a session for the same
    client (oauth/authorization.way_in_allowed and .authentication), from what the session keeps:
    signed in through a way the client takes (its `connections`, federation/home_realm.py), and with
    a second factor when MFA_POLICY=required or the client's require_mfa says so. The page has no
    step-up of its own: a session that falls short is refused, and the user signs in that way first."""
    from ..federation.home_realm import allows

    if not allows(getattr(client, "connections", None) or (), session.connection_id):
        return False
    policy = settings.mfa_policy
    outcome = acr.needed(session_amr=session.amr, user_factors=() if policy == "off" else session.factors,
                         policy_requires_mfa=policy == "required" or (policy != "off" and client.require_mfa))
    return outcome.action == "ok"


def approve(shown: Shown, session, settings: Settings):
    """The user allowed the device: the grant and the approval in one transaction
    (storage/device_codes.approve). Returns None, or the storage refusal's reason ("session",
    "user", "authorization")."""
    from ..storage import device_codes, grants
    from .authorization import _user_claims, new_grant_id

    at = now()
    grant = grants.Grant(sub=session.sub, grant_id=new_grant_id(), client_id=shown.client.client_id,
                         scopes=shown.scopes, resources=shown.resources, created_at=at,
                         expires_at=at + settings.refresh_token_absolute_ttl, auth_time=session.auth_time,
                         session_generation=session.session_generation, user_claims=_user_claims(session),
                         amr=tuple(session.amr), acr=acr.claimed(session.amr, ()))
    refused = device_codes.approve(shown.user_code, grant, session_hash=session.session_hash,
                                   session_generation=session.session_generation, at=at,
                                   require_verified_email=settings.require_verified_email)
    log.info("device authorization approved" if refused is None else "device authorization not approved",
             extra={"client_id": shown.client.client_id, "grant_id": grant.grant_id,
                    "reason": None if refused is None else refused.reason})
    return None if refused is None else refused.reason


def deny(shown: Shown) -> bool:
    from ..storage import device_codes

    denied = device_codes.deny(shown.user_code, now())
    log.info("device authorization denied", extra={"client_id": shown.client.client_id, "written": denied})
    return denied
