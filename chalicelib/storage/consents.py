"""Remembered consent: what a user has agreed to share with a client, as "<scope> <audience>" pairs
(chalicelib/oauth/consent.py). Checked inside the transaction that issues a code
(storage/codes.issue), so reading it costs a signed-in request nothing."""
from __future__ import annotations

from ..log import now
from .models import ConsentModel


def key(sub: str, client_id: str) -> str:
    return f"{sub}#{client_id}"


def remember(sub: str, client_id: str, pairs: set[str]) -> None:
    """Add `pairs` to what is remembered; DynamoDB's set ADD grows them atomically, so two grants at
    once both land and neither widens the other."""
    ConsentModel(pk=key(sub, client_id)).update(
        actions=[ConsentModel.audience_scopes.add(pairs), ConsentModel.updated_at.set(now())])
