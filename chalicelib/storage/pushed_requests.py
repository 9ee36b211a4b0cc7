"""Pushed authorization requests (RFC 9126): written by /par, consumed once by /authorize.

An item lives in the authorization_requests table under "par#<SHA-256 of the secret>" (the secret is
the tail of the request_uri handed to the client; only its hash is stored). It holds the client it
was pushed by and the validated request's parameters as JSON text, until `expires_at` (PAR_TTL
seconds; DynamoDB TTL removes it later, so every read checks the time).

Consuming is ONE conditional UpdateItem that returns the item (ALL_NEW): it exists, was pushed by the
client now naming it, has not expired, and nobody has used it. Of 32 browsers racing with the same
request_uri exactly one gets the parameters; a request_uri can never be read without being spent.
The update marks the item `used_by` a random claim of this call rather than deleting it: a resend of
the same update (botocore, its answer lost) finds its own claim and still gets the parameters, and a
fault later in the same request can put it back (`release`) so that the user's reload works.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from ..hashing import new_secret
from .models import PushedRequestModel, conditionally

#: Key prefix of a pushed request: "#" is never in a pending request's id (URL-safe base64), so the
#: two kinds of item never share a key.
KEY_PREFIX = "par#"


def key(secret_hash: str) -> str:
    return f"{KEY_PREFIX}{secret_hash}"


@dataclass(frozen=True)
class PushedRequest:
    #: SHA-256 (hex) of the secret in the request_uri.
    secret_hash: str
    client_id: str
    #: The parameters as the client pushed them (strings; `resource` a list, chalicelib/web.py).
    params: dict
    created_at: int
    expires_at: int


@dataclass(frozen=True)
class Consumed:
    """The parameters of a consumed request, and the claim that `release` needs to put it back."""

    params: dict
    claim: str


def store(request: PushedRequest) -> None:
    """Write a pushed request (one PutItem). Its key comes from a fresh 256-bit secret, so the only way
    the does-not-exist condition can refuse is botocore resending our own PutItem after its answer
    was lost: the item is then ours already, and nothing is overwritten."""
    item = PushedRequestModel(request_id=key(request.secret_hash), client_id=request.client_id,
                              params=json.dumps(request.params, separators=(",", ":"), sort_keys=True),
                              created_at=request.created_at, expires_at=request.expires_at)
    conditionally(lambda: item.save(condition=PushedRequestModel.request_id.does_not_exist()))


def consume(secret_hash: str, client_id: str, at: int) -> Consumed | None:
    """Spend the pushed request `secret_hash` for `client_id` and return its parameters, or None when
    it is unknown, expired, pushed by another client or already used (one conditional UpdateItem;
    the reasons are not told apart: telling them would cost a read)."""
    claim = new_secret(16)
    item = PushedRequestModel(request_id=key(secret_hash))
    condition = (PushedRequestModel.request_id.exists() & (PushedRequestModel.client_id == client_id)
                 & (PushedRequestModel.expires_at > at)
                 & (PushedRequestModel.used_by.does_not_exist() | (PushedRequestModel.used_by == claim)))
    if not conditionally(lambda: item.update(actions=[PushedRequestModel.used_by.set(claim)], condition=condition)):
        return None
    return Consumed(params=json.loads(item.params), claim=claim)


def release(secret_hash: str, claim: str) -> bool:
    """Put back a request that `consume` spent with `claim` (chalicelib/undo.py: a fault after the
    consume must not cost the user their sign-in). False when it is no longer that claim's."""
    item = PushedRequestModel(request_id=key(secret_hash))
    return conditionally(lambda: item.update(actions=[PushedRequestModel.used_by.remove()],
                                             condition=PushedRequestModel.used_by == claim))
