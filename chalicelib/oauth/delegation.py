"""Delegation in token exchange (RFC 8693): who may act for whom, for what, how long. Pure.

Every exchange at this server is delegation, never impersonation (RFC 8693 §1.1): the issued token
keeps the subject token's `sub` and names the party acting for it in `act` (§4.1). Our stricter
reading of §2.1: without an `actor_token` the actor is the client that authenticated, so no token
ever changes hands without the hand being recorded.

- The chain (§4.1): "the outermost act claim represents the current actor while nested act claims
  represent prior actors". The new actor goes outside; the subject token's own `act` moves inside
  it. Its length is capped by the exchange policy (`max_depth`, at most MAX_DEPTH).
- `may_act` (§4.4): a subject token that names who may act for it is honoured: any other actor is
  refused.
- Scope only narrows: the result's scope is within the subject token's and the policy's.
- Lifetime: the result expires no later than its subject token (a delegation never outlives what it
  delegates).
- The policy (chalicelib/oauth/exchange_policy.py) says which subject audiences a client may trade
  for which targets; `admitting` picks the rules that apply.
"""
from __future__ import annotations

from ..errors import InvalidRequest, InvalidScope, InvalidTarget, InvalidToken
from ..verifier import MAX_ACTOR_CHAIN, actor_chain

#: The longest chain any policy may allow: each hop adds an object to every token of the chain, and
#: past a few hops nobody can audit who asked for what.
MAX_DEPTH = MAX_ACTOR_CHAIN
#: The claims that identify an actor (RFC 8693 §4.1: "claims that identify the actor"; `client_id`
#: per §4.3); `may_act` is compared on these.
IDENTITY_CLAIMS = ("iss", "sub", "client_id")


def new_act(actor: dict, subject_claims: dict) -> dict:
    """The `act` of the exchanged token: `actor` (its identity claims) as the current actor, the
    subject token's chain nested inside (§4.1). The actor's own delegation, if its token had one,
    is not carried: only the chain of the subject is being extended."""
    actor = {k: v for k, v in actor.items() if k in IDENTITY_CLAIMS}
    prior = subject_claims.get("act")
    return {**actor, "act": prior} if prior is not None else actor


def result_depth(subject_claims: dict) -> int:
    """How many actors the exchanged token's chain will name: the new actor and the subject
    token's. A subject chain that cannot be read, or is already at MAX_DEPTH, is refused."""
    try:
        prior = actor_chain(subject_claims)
    except InvalidToken:
        raise InvalidRequest("the subject token's delegation chain (act) is malformed") from None
    return 1 + len(prior)


def within_depth(depth: int, max_depth: int) -> bool:
    """The policy's `max_depth`, never beyond MAX_DEPTH whatever a policy says."""
    return depth <= min(max_depth, MAX_DEPTH)


TOO_DEEP = "the delegation chain would be longer than the exchange policy allows"


def may_act_allows(subject_claims: dict, actor_identity: dict) -> bool:
    """RFC 8693 §4.4: `may_act` names the party allowed to act for the subject; when the subject
    token carries one, the actor must match every identity claim it states. A `may_act` that is
    not an object, or states no identity claim, names nobody: refused rather than read as "anyone"."""
    if "may_act" not in subject_claims:
        return True
    may_act = subject_claims["may_act"]
    if not isinstance(may_act, dict):
        return False
    stated = {k: v for k, v in may_act.items() if k in IDENTITY_CLAIMS}
    return bool(stated) and all(actor_identity.get(k) == v for k, v in stated.items())


def narrowed_scopes(requested: list[str], subject_scopes: list[str] | None, policy_scopes: tuple[str, ...]) -> list[str]:
    """The result's scope: what was asked for, never more than the subject token carries (None:
    an ID token, which carries no scope) nor than the policy allows (empty: no limit of its own).
    Nothing asked for: everything within both (RFC 6749 §3.3 default)."""
    ceiling = list(subject_scopes) if subject_scopes is not None else list(policy_scopes)
    if policy_scopes:
        ceiling = [s for s in ceiling if s in policy_scopes]
    wider = [s for s in requested if s not in ceiling]
    if wider:
        raise InvalidScope(f"scope exceeds what the subject token and the exchange policy allow: {' '.join(wider)}")
    granted = requested or ceiling
    if not granted:
        raise InvalidScope("no scope of the subject token is allowed by the exchange policy")
    return granted


def admitting(policies, subject_audiences: list[str], targets: list[str]):
    """The access_token policies under which a token for `subject_audiences` may be exchanged for
    one for `targets` (every target among the policy's resources). Raises InvalidRequest when no
    policy takes the subject token's audience (RFC 8693 §2.2.2: a subject token "unacceptable based
    on policy"), InvalidTarget when some do but none reaches every target (§2.2.2)."""
    taking = [p for p in policies if set(subject_audiences) & set(p.subject_audiences)]
    if not taking:
        raise InvalidRequest("this client may not exchange tokens of the subject token's audience",
                             detail=f"aud={subject_audiences}")
    reaching = [p for p in taking if all(t in p.resources for t in targets)]
    if not reaching:
        raise InvalidTarget("the exchange policy does not allow a token for that resource or audience",
                            detail=" ".join(targets))
    return reaching


def expires_at(subject_claims: dict) -> int:
    """The latest `exp` of the result: the subject token's own (RFC 8693 leaves lifetime to the
    server; a delegation outliving what it delegates would outlive a sign-out too)."""
    return int(subject_claims["exp"])
