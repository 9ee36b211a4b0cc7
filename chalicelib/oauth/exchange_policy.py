"""Exchange policies: the operator's rules for what a client may trade at the token endpoint.

RFC 8693 §2.1 leaves to the authorization server which subject tokens a client may exchange for
which targets ("the authorization server ... MUST perform the appropriate validation procedures
... and apply policy"); draft-ietf-oauth-identity-assertion-authz-grant leaves to the IdP which
client may obtain an ID-JAG for which downstream authorization server. Nothing is allowed without a
policy: a client with none gets `unauthorized_client`, a target no policy names `invalid_target`.

Two kinds of rule, kept as JSON text on the client item (ClientModel.exchange_policies), so the
token endpoint reads them with the client it has already cached:

- `access_token`: subject tokens whose audience is one of `subject_audiences` may be exchanged for
  an access token to one of `resources`, with at most `scopes`, and a delegation chain (`act`) at
  most `max_depth` actors deep.
- `id_jag`: the client may obtain an ID-JAG for the downstream authorization server `audience`
  (its issuer), naming itself there as `downstream_client_id`, for `resources` and `scopes`.
"""
from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass, field

from .. import caches

KINDS = ("access_token", "id_jag")


@dataclass(frozen=True)
class ExchangePolicy:
    policy_id: str
    kind: str
    resources: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    #: access_token: the audiences a subject token may carry (resource URIs; a client_id for ID tokens
    #: issued to that client).
    subject_audiences: tuple[str, ...] = ()
    #: access_token: how many actors the result's `act` chain may hold (1: the actor alone).
    max_depth: int = 1
    #: id_jag: the downstream authorization server's issuer, and this client's client_id there.
    audience: str | None = None
    downstream_client_id: str | None = None
    extra: dict = field(default_factory=dict, compare=False, hash=False)


def dump(policies) -> str | None:
    """JSON text for ClientModel.exchange_policies (None: no policy)."""
    if not policies:
        return None
    return json.dumps([{k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(p).items() if k != "extra"}
                       for p in policies], sort_keys=True)


@functools.lru_cache(maxsize=256)
def parse(text: str | None) -> tuple[ExchangePolicy, ...]:
    """The policies of a client (Client.exchange_policies). Cached by the text: the token endpoint
    parses the same few clients' policies over and over."""
    if not text:
        return ()
    return tuple(ExchangePolicy(**{k: tuple(v) if isinstance(v, list) else v for k, v in item.items()})
                 for item in json.loads(text))


caches.register("exchange_policy.parse", parse.cache_clear, kind="memo")


def of(client, kind: str) -> tuple[ExchangePolicy, ...]:
    return tuple(p for p in parse(getattr(client, "exchange_policies", None)) if p.kind == kind)
