"""grant_type=urn:ietf:params:oauth:grant-type:device_code (RFC 8628 §3.4-§3.5): the device polls.

Each poll is one conditional UpdateItem (storage/device_codes.poll) that enforces the interval and
answers authorization_pending, access_denied or the redemption; a poll that came too early gets
slow_down and a 5 s longer interval (a second write). The first poll after the user approved
redeems the authorization for that poll alone; the grant's family starts with a second call, as at
code redemption: two DynamoDB calls for the tokens.

A device code presented again after its redemption is `invalid_grant` and, unlike a replayed
authorization code, does not revoke the grant: a device code never passes through a browser or a
redirect, so a second redemption is the device's own retry far more likely than a thief's.
"""
from __future__ import annotations

from ..config import Settings
from ..errors import (
    AuthorizationPending,
    DeviceAccessDenied,
    ExpiredToken,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    InvalidTarget,
    SlowDown,
)
from ..keys import keyring
from ..log import get_logger, now
from ..oauth import device_flow, dpop_binding, refresh_tokens
from ..oauth.resources import audience, registered, resource_less_audience, token_scopes
from ..storage import device_codes, grants
from ..tokens.issue import issue_tokens
from ..undo import undone_on_failure
from .authorization_code import wants_refresh_token

log = get_logger("idp.grants.device_code")

GENERIC = "the device code is invalid or was already used"


def handle(form: dict, client, settings: Settings, proof=None) -> dict:
    if not form.get("device_code"):
        raise InvalidRequest("device_code is required")
    parsed = device_flow.parse_device_code(form["device_code"])
    if parsed is None:
        raise InvalidGrant(GENERIC, detail="not a device code of ours")
    user_code, secret = parsed
    # Before anything is claimed: a Secrets Manager fault here costs the device nothing.
    signer = keyring.current_signer()
    at = now()
    outcome = device_codes.poll(user_code, secret, client.client_id, at, slow_down_step=device_flow.SLOW_DOWN_STEP)
    if isinstance(outcome, device_codes.Pending):
        raise AuthorizationPending("the user has not yet approved the request")
    if isinstance(outcome, device_codes.SlowDown):
        raise SlowDown(f"polling too fast: wait {outcome.interval} seconds between requests")
    if isinstance(outcome, device_codes.Refused):
        _refused(outcome)
    found = outcome.authorization
    refresh_token = refresh_tokens.new_token(found.sub, found.grant_id)
    with undone_on_failure(lambda: device_codes.restore(
            outcome, family_token_hash=refresh_tokens.token_hash(refresh_token)),
            what="device authorization", grant_id=found.grant_id):
        return _redeemed(found, client, settings, signer, at, refresh_token, proof)


def _refused(refusal: device_codes.Refused):
    if refusal.reason == "expired":
        raise ExpiredToken("the device code expired; start a new device authorization")
    if refusal.reason == "denied":
        raise DeviceAccessDenied("the user denied the request")
    raise InvalidGrant(GENERIC, detail={"unknown": "unknown device code or another client's",
                                        "used": "device code already redeemed"}.get(refusal.reason))


def _redeemed(found: device_codes.DeviceAuthorization, client, settings: Settings, signer, at: int,
              refresh_token: str, proof=None) -> dict:
    try:
        # Checked again as at code redemption: the registrations may have changed since the approval.
        targets = registered(list(found.resources), max_age=settings.client_cache_seconds)
        scopes = token_scopes(list(found.scopes), targets, unverified=client.registered_dynamically)
    except (InvalidTarget, InvalidScope) as exc:
        grants.revoke(found.sub, found.grant_id, reason=f"the device's audience no longer allows a token: {exc.description}")
        raise InvalidGrant(GENERIC, detail=f"audience check failed: {exc.description}") from None
    refresh_token = refresh_token if wants_refresh_token(client, scopes) else None
    started = grants.start_family(
        found.sub, found.grant_id, client.client_id, at=at,
        token_hash=refresh_tokens.token_hash(refresh_token) if refresh_token else None,
        token_expires_at=at + settings.refresh_token_idle_ttl if refresh_token else None,
        dpop_jkt=refresh_tokens.family_key(client, proof))
    if not started:
        raise InvalidGrant(GENERIC, detail=f"grant {found.grant_id} no longer active")
    log.info("device code redeemed", extra={"client_id": client.client_id, "grant_id": found.grant_id})
    return issue_tokens(settings, client=client, sub=found.sub, scopes=scopes, grant_id=found.grant_id,
                        auth_time=found.auth_time, nonce=None, user_claims=found.user_claims, acr=found.acr,
                        amr=found.amr, refresh_token=refresh_token, signer=signer,
                        cnf=dpop_binding.confirmation(proof),
                        audience=audience([t.resource for t in targets], resource_less_audience(client, settings)))
