"""Grants (refresh-token families): what the core may ask of the grants table, each in one round trip.

A grant is keyed by (sub, grant_id) (see GrantModel). The core holds `Grant` records, never models;
every function here is one DynamoDB call unless it says otherwise, and returns a record or an
outcome, never an OAuth error: deciding what a refusal means to a client is the core's job.

Why each hot operation is a single call:
- `start_family` (code redemption) and `rotate` (refresh) are one conditional UpdateItem each: the
  condition checks that the grant is active, unexpired and the client's (and for rotation that the
  presented token is the family's current one and not idle). Rotation's answer (ALL_OLD, from which
  the new state follows) is the grant the token response needs. A refused condition is `None`; `get` then tells why,
  off the hot path. `undo_rotation` puts a family back when the answer of its rotation could not
  be made (a fault after the write), one more conditional UpdateItem on that failure path only.
- `revoke_all_of_user` queries the table itself, strongly consistent: a grant created an instant
  before the user was disabled is found (code issuance checks the user in the same transaction
  that creates the grant, so none is created after).
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field, replace

from pynamodb.expressions.condition import size

from ..log import get_logger, now
from .models import GrantModel, UserModel, conditionally

log = get_logger("idp.grants")

#: Access tokens of one grant revoked one by one (RFC 7009) before the grant itself is revoked
#: instead: bounds the item (and what one client can make us store) at a few kilobytes.
MAX_REVOKED_JTIS = 100
#: The last this many tokens a family consumed are remembered (hash prefixes, in slots), so
#: presenting one of them again is recognised as reuse. Bounded so the grant stays about 1 KB: every
#: rotation writes the whole item (DynamoDB bills writes per KB of the item) and reads it back.
CONSUMED_SLOTS = 32


def consumed_mark(token_hash: str) -> str:
    """What a slot keeps of a consumed token's SHA-256 (hex): its first 64 bits, base64url (11
    characters). Enough to tell a family's tokens apart; matching one by chance, or finding a
    token that matches one, takes about 2^64 tries."""
    return base64.urlsafe_b64encode(bytes.fromhex(token_hash[:16])).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class FamilyState:
    """The family's attributes a rotation overwrites, as they were before it (None: absent), and
    the consumed slot it wrote: what `undo_rotation` writes back."""

    token_hash: str | None
    token_expires_at: int | None
    previous_hash: str | None
    rotated_at: int | None
    retry_seal: str | None
    last_used_at: int | None
    slot: str
    slot_mark: str | None
    dpop_jkt: str | None = None
    dpop_bound_from: int | None = None


@dataclass(frozen=True)
class Grant:
    sub: str
    grant_id: str
    client_id: str
    scopes: tuple[str, ...]
    resources: tuple[str, ...]
    created_at: int
    expires_at: int
    auth_time: int | None = None
    session_hash: str | None = None
    session_generation: int = 0
    user_claims: dict = field(default_factory=dict)
    #: How the session authenticated and the acr chosen at code issue: refreshed tokens repeat them.
    amr: tuple[str, ...] = ()
    acr: str | None = None
    status: str = "active"
    last_used_at: int | None = None
    token_hash: str | None = None
    token_expires_at: int | None = None
    previous_hash: str | None = None
    rotated_at: int | None = None
    retry_seal: str | None = None
    consumed: frozenset = frozenset()  # consumed_mark of each remembered consumed token
    revoked_jtis: frozenset = frozenset()
    #: RFC 9449 §5: the DPoP key (JWK thumbprint) a public client's refresh tokens are bound to.
    dpop_jkt: str | None = None
    #: The rotation number of its first token bound to `dpop_jkt` (None or 0: bound from the start).
    dpop_bound_from: int | None = None
    #: After `rotate`: the family as it was before, so that a rotation whose answer could not be
    #: made can be undone (`undo_rotation`). Not part of the grant's value.
    replaced: FamilyState | None = field(default=None, compare=False, repr=False)

    def is_active(self, at: int) -> bool:
        """Not revoked and within its absolute lifetime (TTL deletion lags, so it is checked here)."""
        return self.status == "active" and self.expires_at > at


def from_model(item: GrantModel) -> Grant:
    return Grant(sub=item.sub, grant_id=item.grant_id, client_id=item.client_id, scopes=tuple(item.scopes or ()),
                 resources=tuple(item.resources or ()), created_at=int(item.created_at),
                 expires_at=int(item.expires_at), auth_time=_int(item.auth_time), session_hash=item.session_hash,
                 session_generation=int(item.session_generation or 0),
                 user_claims=json.loads(item.user_claims) if item.user_claims else {},
                 amr=tuple(item.amr or ()), acr=item.acr, status=item.status,
                 last_used_at=_int(item.last_used_at), token_hash=item.token_hash,
                 token_expires_at=_int(item.token_expires_at), previous_hash=item.previous_hash,
                 rotated_at=_int(item.rotated_at), retry_seal=item.retry_seal,
                 consumed=frozenset(item.consumed.as_dict().values()) if item.consumed else frozenset(),
                 revoked_jtis=frozenset(item.revoked_jtis or ()), dpop_jkt=item.dpop_jkt,
                 dpop_bound_from=_int(item.dpop_bound_from))


def to_model(grant: Grant) -> GrantModel:
    return GrantModel(sub=grant.sub, grant_id=grant.grant_id, client_id=grant.client_id, scopes=list(grant.scopes),
                      resources=list(grant.resources), created_at=grant.created_at, expires_at=grant.expires_at,
                      auth_time=grant.auth_time, session_hash=grant.session_hash,
                      session_generation=grant.session_generation,
                      user_claims=json.dumps(grant.user_claims, separators=(",", ":")) if grant.user_claims else None,
                      amr=list(grant.amr) or None, acr=grant.acr, status=grant.status, token_hash=grant.token_hash,
                      token_expires_at=grant.token_expires_at,
                      consumed={})


def _int(value) -> int | None:
    return None if value is None else int(value)


def _valid_key(sub: str | None, grant_id: str | None) -> bool:
    return bool(sub) and bool(grant_id) and len(sub) <= 128 and len(grant_id) <= 128


#: What deciding whether an access token of the grant still works needs (oauth/access_tokens.grant_allows):
#: reading only these leaves the family's token state and consumed slots out of the response.
ACCESS_STATE = ("client_id", "status", "created_at", "expires_at", "revoked_jtis")


def access_state(sub: str | None, grant_id: str | None) -> Grant | None:
    """The grant's state as far as its access tokens are concerned (status, lifetime, client, the
    jtis revoked one by one; the other fields are left empty), strongly consistent; None when there
    is none."""
    return _read(sub, grant_id, attributes=["sub", "grant_id", *ACCESS_STATE])


def get(sub: str | None, grant_id: str | None) -> Grant | None:
    """The grant as stored (active or not), strongly consistent; None when there is none."""
    return _read(sub, grant_id)


def _read(sub: str | None, grant_id: str | None, attributes: list[str] | None = None) -> Grant | None:
    if not _valid_key(sub, grant_id):
        return None
    try:
        return from_model(GrantModel.get(sub, grant_id, consistent_read=True, attributes_to_get=attributes))
    except GrantModel.DoesNotExist:
        return None


def active(sub: str | None, grant_id: str | None) -> Grant | None:
    grant = get(sub, grant_id)
    return grant if grant is not None and grant.is_active(now()) else None


def _live(client_id: str, at: int):
    return (GrantModel.grant_id.exists() & (GrantModel.status == "active") & (GrantModel.expires_at > at)
            & (GrantModel.client_id == client_id))


def unstart_family(tx, sub: str, grant_id: str, family_token_hash: str | None) -> None:
    """In the transaction `tx`, take back what `start_family` wrote (last_used_at and the family's
    first refresh token, never delivered), on condition that token is absent or `family_token_hash`:
    the grant half of undoing a redemption whose token response could not be made (codes.restore,
    device_codes.restore). Its status is left alone: a grant revoked meanwhile stays revoked."""
    family = GrantModel.token_hash.does_not_exist()
    if family_token_hash is not None:
        family |= GrantModel.token_hash == family_token_hash
    tx.update(GrantModel(sub=sub, grant_id=grant_id),
              actions=[GrantModel.last_used_at.remove(), GrantModel.token_hash.remove(),
                       GrantModel.token_expires_at.remove(), GrantModel.dpop_jkt.remove(),
                       GrantModel.dpop_bound_from.remove()],
              condition=GrantModel.grant_id.exists() & family)


def start_family(sub: str, grant_id: str, client_id: str, *, token_hash: str | None, token_expires_at: int | None,
                 at: int, dpop_jkt: str | None = None) -> bool:
    """At code redemption: mark the grant used and, when a refresh token is issued, make it the
    family's current token, bound to the DPoP key `dpop_jkt` when given (RFC 9449 §5: a public
    client's refresh tokens). False when the grant is no longer active (signed out, revoked,
    replayed). Nothing is read back (ReturnValues NONE): the code carries what the response needs,
    and parsing the item back would cost as much CPU as the rest of the write."""
    actions = [GrantModel.last_used_at.set(at)]
    if token_hash is not None:
        actions += [GrantModel.token_hash.set(token_hash), GrantModel.token_expires_at.set(token_expires_at)]
        if dpop_jkt is not None:
            actions += [GrantModel.dpop_jkt.set(dpop_jkt), GrantModel.dpop_bound_from.set(0)]
    return conditionally(lambda: GrantModel._get_connection().update_item(
        sub, grant_id, actions=actions, condition=_live(client_id, at)))


def rotate(sub: str, grant_id: str, client_id: str, *, presented_hash: str, rotation: int, successor_hash: str,
           token_expires_at: int, retry_seal: str | None, at: int, dpop_jkt: str | None = None,
           bind_dpop_key: bool = False) -> Grant | None:
    """Refresh rotation in one conditional UpdateItem: the presented token must be the family's
    current, unexpired one; it becomes the previous token and the successor the current one. Two
    concurrent rotations of one token cannot both pass (the second sees another current hash).
    `rotation` numbers the presented token in its family (the condition on its hash vouches for it);
    its slot remembers the presented token as consumed. None when refused; the caller reads the
    grant (`get`) to learn why.

    `dpop_jkt`: the thumbprint of the request's DPoP proof (None: no proof). A family bound to a
    key rotates only for a proof of that key (RFC 9449 §5), checked by the same condition: a
    refresh with another key or none writes nothing. `bind_dpop_key`: bind the family to it now
    (a public client's first refresh with a proof; the condition ensures it was unbound or the same).

    `successor_hash` == `presented_hash` (PROFILE=fapi2, FAPI 2.0 §5.3.2.1 item 9): no rotation; the
    same condition, and the write only moves the token's idle expiry and last use on."""
    slot, mark = str(rotation % CONSUMED_SLOTS), consumed_mark(presented_hash)
    keeping = successor_hash == presented_hash  # PROFILE=fapi2: no rotation, the token stays current
    actions = [GrantModel.token_expires_at.set(token_expires_at), GrantModel.last_used_at.set(at)]
    if not keeping:
        actions += [GrantModel.previous_hash.set(presented_hash), GrantModel.rotated_at.set(at),
                    GrantModel.token_hash.set(successor_hash), GrantModel.consumed[slot].set(mark),
                    GrantModel.retry_seal.set(retry_seal) if retry_seal else GrantModel.retry_seal.remove()]
    first_bound = rotation if keeping else rotation + 1  # the first token bound, if this binds
    if bind_dpop_key and dpop_jkt is not None:
        # The first binding records where it began (the condition allows only the same key after).
        actions += [GrantModel.dpop_jkt.set(dpop_jkt),
                    GrantModel.dpop_bound_from.set(GrantModel.dpop_bound_from | first_bound)]
    condition = (_live(client_id, at) & (GrantModel.token_hash == presented_hash)
                 & (GrantModel.token_expires_at > at) & _key_allowed(dpop_jkt))
    answer = {}

    def write():
        # ALL_OLD rather than ALL_NEW, same size: the new state is the old one plus these actions,
        # and the old one is what an undo must write back (`undo_rotation`).
        answer.update(GrantModel._get_connection().update_item(
            sub, grant_id, actions=actions, condition=condition, return_values="ALL_OLD"))

    if not conditionally(write):
        return None
    old = GrantModel.from_raw_data(answer["Attributes"])
    before = from_model(old)
    slots = old.consumed.as_dict() if old.consumed else {}
    replaced = FamilyState(token_hash=before.token_hash, token_expires_at=before.token_expires_at,
                           previous_hash=before.previous_hash, rotated_at=before.rotated_at,
                           retry_seal=before.retry_seal, last_used_at=before.last_used_at, slot=slot,
                           slot_mark=slots.get(slot), dpop_jkt=before.dpop_jkt,
                           dpop_bound_from=before.dpop_bound_from)
    binds = bind_dpop_key and dpop_jkt is not None
    bound = dpop_jkt if binds else before.dpop_jkt
    bound_from = first_bound if binds and before.dpop_bound_from is None else before.dpop_bound_from
    if keeping:
        return replace(before, token_expires_at=token_expires_at, last_used_at=at, dpop_jkt=bound,
                       dpop_bound_from=bound_from, replaced=replaced)
    return replace(before, previous_hash=presented_hash, rotated_at=at, token_hash=successor_hash,
                   token_expires_at=token_expires_at, last_used_at=at, retry_seal=retry_seal or None,
                   consumed=frozenset({**slots, slot: mark}.values()), dpop_jkt=bound, dpop_bound_from=bound_from,
                   replaced=replaced)


def _key_allowed(dpop_jkt: str | None):
    """The family is unbound, or bound to the key proved (RFC 9449 §5)."""
    unbound = GrantModel.dpop_jkt.does_not_exist()
    return unbound if dpop_jkt is None else unbound | (GrantModel.dpop_jkt == dpop_jkt)


def undo_rotation(grant: Grant) -> bool:
    """Put the family back as it was before the rotation that returned `grant`, when the token
    response could not be made after it (a KMS fault while signing): the presented token is the
    current one again, so the client's retry rotates it as if nothing had happened, instead of
    looking like reuse and revoking the family. One conditional UpdateItem, on condition that the
    successor minted by that rotation is still current: it was never delivered, so nothing else can
    have rotated it, and a family revoked meanwhile stays revoked (only the family state is written).
    False when the condition failed or the rotation left nothing to undo with."""
    state = grant.replaced
    if state is None:
        return False

    def put_back(attribute, value):
        return attribute.set(value) if value is not None else attribute.remove()

    actions = [put_back(GrantModel.token_hash, state.token_hash),
               put_back(GrantModel.token_expires_at, state.token_expires_at),
               put_back(GrantModel.previous_hash, state.previous_hash),
               put_back(GrantModel.rotated_at, state.rotated_at), put_back(GrantModel.retry_seal, state.retry_seal),
               put_back(GrantModel.last_used_at, state.last_used_at),
               put_back(GrantModel.consumed[state.slot], state.slot_mark),
               put_back(GrantModel.dpop_jkt, state.dpop_jkt),
               put_back(GrantModel.dpop_bound_from, state.dpop_bound_from)]
    return conditionally(lambda: GrantModel._get_connection().update_item(
        grant.sub, grant.grant_id, actions=actions,
        condition=GrantModel.grant_id.exists() & (GrantModel.token_hash == grant.token_hash)))


def revoke(sub: str, grant_id: str, *, reason: str, erase_claims: bool = False) -> bool:
    """Revoke a grant: its refresh tokens stop rotating and its access tokens stop being accepted
    by /userinfo and /introspect. False when it was already revoked or never existed.
    `erase_claims`: also drop the user's claims kept with it (account deletion: no personal data
    stays behind until the TTL deletes the item)."""
    if not _valid_key(sub, grant_id):
        return False
    if not conditionally(lambda: GrantModel(sub=sub, grant_id=grant_id).update(
            actions=[GrantModel.status.set("revoked"), GrantModel.revoked_at.set(now()),
                     GrantModel.retry_seal.remove(), *([GrantModel.user_claims.remove()] if erase_claims else [])],
            condition=GrantModel.grant_id.exists() & (GrantModel.status == "active"))):
        return False
    log.warning("grant revoked", extra={"grant_id": grant_id, "reason": reason})
    return True


def revoke_by_refresh_token(sub: str, grant_id: str, client_id: str, token_hash: str) -> bool:
    """RFC 7009 for a refresh token: revoke its family, only if the token is the family's current or
    previous one and was issued to `client_id`, in the one conditional write. False otherwise."""
    if not _valid_key(sub, grant_id):
        return False
    holds_token = (GrantModel.token_hash == token_hash) | (GrantModel.previous_hash == token_hash)
    revoked = conditionally(lambda: GrantModel(sub=sub, grant_id=grant_id).update(
        actions=[GrantModel.status.set("revoked"), GrantModel.revoked_at.set(now()), GrantModel.retry_seal.remove()],
        condition=GrantModel.grant_id.exists() & (GrantModel.status == "active")
        & (GrantModel.client_id == client_id) & holds_token))
    if revoked:
        log.warning("grant revoked", extra={"grant_id": grant_id, "reason": "refresh token revoked by client"})
    return revoked


def deny_access_token(sub: str, grant_id: str, jti: str) -> bool:
    """Record one access token of the grant as revoked. False when the grant already holds
    MAX_REVOKED_JTIS of them (or is gone): the caller then revokes the whole grant instead."""
    return conditionally(lambda: GrantModel(sub=sub, grant_id=grant_id).update(
        actions=[GrantModel.revoked_jtis.add({jti})],
        condition=GrantModel.grant_id.exists()
        & (GrantModel.revoked_jtis.does_not_exist() | (size(GrantModel.revoked_jtis) < MAX_REVOKED_JTIS))))


def revoke_all_of_user(sub: str, *, reason: str, erase_claims: bool = False) -> int:
    """Revoke every active grant of a user: one strongly consistent Query (paged), then one
    update per active grant (`erase_claims`: see `revoke`)."""
    keys = [item.grant_id for item in GrantModel.query(sub, consistent_read=True,
                                                       filter_condition=GrantModel.status == "active",
                                                       attributes_to_get=["grant_id"])]
    return sum(revoke(sub, grant_id, reason=reason, erase_claims=erase_claims) for grant_id in keys)


def of_user(sub: str) -> list[Grant]:
    """Every active grant of a user (the account page: which apps, last used when), by the same
    strongly consistent Query (paged) as `revoke_all_of_user`, without the family's token state."""
    return [from_model(item) for item in GrantModel.query(
        sub, consistent_read=True, filter_condition=GrantModel.status == "active",
        attributes_to_get=["sub", "grant_id", "client_id", "scopes", "resources", "status", "created_at",
                           "expires_at", "last_used_at"])]


def revoke_all_of_client_for_user(sub: str, client_id: str, *, reason: str) -> int:
    """Revoke every active grant of one user with one client (the account page's "Revoke"): one
    strongly consistent Query, then one update per grant."""
    keys = [item.grant_id for item in GrantModel.query(
        sub, consistent_read=True, filter_condition=(GrantModel.status == "active") & (GrantModel.client_id == client_id),
        attributes_to_get=["grant_id"])]
    return sum(revoke(sub, grant_id, reason=reason) for grant_id in keys)


def revoke_grants_of(*, client_id: str, reason: str) -> int:
    """Revoke every grant of a client (through the by_client index: disabling or deleting a client
    also stops its token requests, so a grant the index has not caught up with is unusable anyway)."""
    return sum(revoke(item.sub, item.grant_id, reason=reason) for item in GrantModel.by_client.query(client_id))


def with_user(sub: str, grant_id: str) -> tuple[Grant | None, UserModel | None]:
    """The grant's access state (as `access_state`) and its user in one strongly consistent
    BatchGetItem (/userinfo)."""
    from .reads import consistent_batch_get

    grant, user = consistent_batch_get([(GrantModel, (sub, grant_id)), (UserModel, sub)],
                                       projections={GrantModel: ACCESS_STATE})
    return (from_model(grant) if grant is not None else None), user


@dataclass(frozen=True)
class SignedOutGrant:
    """What back-channel logout needs of a grant (chalicelib/oauth/backchannel_logout.py): whose
    client holds it, through which session, and whether (and when) it ended."""

    grant_id: str
    client_id: str
    session_hash: str | None
    status: str
    expires_at: int
    revoked_at: int | None = None


def for_logout(sub: str) -> list[SignedOutGrant]:
    """Every grant of a user not yet deleted by its TTL, active or revoked, with only what
    `SignedOutGrant` holds: one strongly consistent Query (paged). Read by the logout delivery
    function after a sign-out, never on a request path: strongly consistent, so the revocations
    the sign-out just wrote are seen."""
    if not sub or len(sub) > 128:
        return []
    return [SignedOutGrant(grant_id=item.grant_id, client_id=item.client_id, session_hash=item.session_hash,
                           status=item.status, expires_at=int(item.expires_at), revoked_at=_int(item.revoked_at))
            for item in GrantModel.query(sub, consistent_read=True, attributes_to_get=[
                "grant_id", "client_id", "session_hash", "status", "expires_at", "revoked_at"])]
