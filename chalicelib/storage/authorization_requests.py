"""Pending authorization requests: validated at /authorize, waiting for sign-in and consent.

The browser carries only `request_id` (256-bit random) between pages; everything that decides what
is issued stays in the item, out of the browser's reach. A request answered at once (signed in,
consent remembered) is never stored. Reading one together with other items is
storage/sign_ins.read_attempt's; finishing one when its code is issued is storage/codes.issue's.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..log import now
from .models import AuthorizationRequestModel, conditionally
from .pushed_requests import KEY_PREFIX as PUSHED_KEY_PREFIX

#: Request ids are 43 characters (new_secret()); a much longer one is not ours and is not read.
MAX_REQUEST_ID_LENGTH = 100


@dataclass(frozen=True)
class PendingRequest:
    request_id: str
    client_id: str
    redirect_uri: str
    code_challenge: str
    code_challenge_method: str
    created_at: int
    expires_at: int
    scopes: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    state: str | None = None
    nonce: str | None = None
    prompt: tuple[str, ...] = ()
    max_age: int | None = None
    login_hint: str | None = None
    #: A public client cannot prove who it is at the token endpoint (RFC 8252 §8.6).
    client_public: bool = False
    #: The `aud` issued when no resource is named (oauth/resources.resource_less_audience).
    resource_less_audience: str | None = None
    #: The session that signed in for this very request (prompt=login is satisfied only by it).
    login_session_hash: str | None = None
    #: The supported locale the request's `ui_locales` picked (chalicelib/i18n.py), if any.
    ui_locale: str | None = None
    #: Known acr values asked for voluntarily (`acr_values`, non-essential `claims` acr), in request order.
    acr_values: tuple[str, ...] = ()
    #: Known acr values of an essential `acr` claim request (OIDC Core §5.5.1.1): met or refused.
    essential_acr: tuple[str, ...] = ()
    #: The client requires a second factor (its `require_mfa`; MFA_POLICY decides what it means).
    client_requires_mfa: bool = False
    #: The client's ways in (its `connections`: connection ids and "password"); empty: any.
    client_connections: tuple[str, ...] = ()
    #: RFC 9449 §10 `dpop_jkt`: the code will be redeemable only with a DPoP proof of this key.
    dpop_jkt: str | None = None


def from_model(item: AuthorizationRequestModel | None) -> PendingRequest | None:
    """The record of an item, or None for no item or an expired one (TTL deletion lags). A pushed
    request (storage/pushed_requests.py) shares the table, and whoever saw its request_uri can hash
    it into a key: named as a `request_id`, it is no pending request, and is None too."""
    if item is None or item.expires_at <= now() or item.request_id.startswith(PUSHED_KEY_PREFIX):
        return None
    return PendingRequest(
        request_id=item.request_id, client_id=item.client_id, redirect_uri=item.redirect_uri,
        code_challenge=item.code_challenge, code_challenge_method=item.code_challenge_method,
        created_at=int(item.created_at), expires_at=int(item.expires_at), scopes=tuple(item.scopes or ()),
        resources=tuple(item.resources or ()), state=item.state, nonce=item.nonce, prompt=tuple(item.prompt or ()),
        max_age=None if item.max_age is None else int(item.max_age), login_hint=item.login_hint,
        client_public=bool(item.client_public), resource_less_audience=item.resource_less_audience,
        login_session_hash=item.login_session_hash, ui_locale=item.ui_locale,
        acr_values=tuple(item.acr_values or ()), essential_acr=tuple(item.essential_acr or ()),
        client_requires_mfa=bool(item.client_requires_mfa),
        client_connections=tuple(item.client_connections or ()), dpop_jkt=item.dpop_jkt)


def store(request: PendingRequest) -> None:
    """Write a new pending request (its id is 256-bit random, so the key is never taken by another).

    When botocore sends the PutItem again because the answer to the first was lost, the second finds
    the item the first wrote: on a refusal the item is read (only then), and finding exactly this
    request means it was stored, by us."""
    item = AuthorizationRequestModel(
        request_id=request.request_id, client_id=request.client_id, redirect_uri=request.redirect_uri,
        code_challenge=request.code_challenge, code_challenge_method=request.code_challenge_method,
        created_at=request.created_at, expires_at=request.expires_at, scopes=list(request.scopes),
        resources=list(request.resources), state=request.state, nonce=request.nonce, prompt=list(request.prompt),
        max_age=request.max_age, login_hint=request.login_hint, client_public=request.client_public,
        resource_less_audience=request.resource_less_audience, ui_locale=request.ui_locale,
        acr_values=list(request.acr_values), essential_acr=list(request.essential_acr),
        client_requires_mfa=request.client_requires_mfa,
        client_connections=list(request.client_connections) or None, dpop_jkt=request.dpop_jkt,
    )
    if not conditionally(lambda: item.save(condition=AuthorizationRequestModel.request_id.does_not_exist())) \
            and load(request.request_id) != request:
        raise RuntimeError(f"authorization request id {request.request_id} is already taken")


def load(request_id: str | None) -> PendingRequest | None:
    """A stored request that has not expired, strongly consistent (it is single-use)."""
    if not request_id or len(request_id) > MAX_REQUEST_ID_LENGTH:
        return None
    try:
        return from_model(AuthorizationRequestModel.get(request_id, consistent_read=True))
    except AuthorizationRequestModel.DoesNotExist:
        return None


def finish(request_id: str) -> bool:
    """Delete a pending request exactly once; False when another tab already finished it."""
    return conditionally(lambda: AuthorizationRequestModel(request_id=request_id).delete(
        condition=AuthorizationRequestModel.request_id.exists()))
