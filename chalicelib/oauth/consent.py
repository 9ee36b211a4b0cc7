"""What a user allows a client, as (audience, scope) pairs (RFC 6749 §3.3, RFC 8707 §2, OIDC Core §3.1.2.4).

A scope means something only at the API that defines it: `write` at the Docs API is not `write` at
the Photos API. Remembering consent as a set of scopes next to a set of resources would combine
them, so that `read write` allowed for Docs and `read` allowed for Photos add up to `write` at
Photos, which nobody allowed. Consent is therefore remembered, and checked, pair by pair.

Which pairs a request asks for:
- a scope that an API defines pairs with each requested resource that defines it (validation has
  already made sure one does, and that every requested resource receives some scope);
- without resources, every scope pairs with the default audience (DEFAULT_AUDIENCE), the `aud` of
  the token issued;
- identity scopes (openid, profile, email, offline_access) pair with every audience too. They are
  about the user at this IdP, but the token that carries them carries `sub` to its audience, and
  offline_access keeps that audience reachable; allowing an app to identify you to one API is not
  allowing it to do so to another. Keyed with the issuer instead, `openid` allowed once would let
  any later request add a new API silently.

Pairs are stored as "<scope> <audience>" in one DynamoDB string set. The separator is a space: a
scope token cannot contain one (RFC 6749 §3.3, enforced by scopes.parse), so the first space ends
the scope whatever the audience holds, and the encoding is unambiguous. (Resource URIs cannot
contain whitespace either, storage.resources.check_resource_uri.)
"""
from __future__ import annotations

from ..capabilities import IDENTITY_SCOPES
from .resources import scopes_for_audience

SEPARATOR = " "


def per_audience(scopes: list[str], resources: list, default_audience: str) -> dict[str, list[str]]:
    """Audience URI -> the scopes a request asks for it (`resources`: the requested resources'
    registrations; none means the default audience)."""
    if not resources:
        return {default_audience: list(scopes)}
    return {r.resource: scopes_for_audience(scopes, [r]) for r in resources}


def pairs(wanted: dict[str, list[str]]) -> set[str]:
    """The stored form of `per_audience`: one "<scope> <audience>" string per pair."""
    return {f"{scope}{SEPARATOR}{audience}" for audience, scopes in wanted.items() for scope in scopes}


def page_sections(scopes: list[str], resources: list) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """What the consent page lists: the scopes about the user (all scopes when no API is named,
    since they all go to the default audience), then each API by name with the scopes it receives,
    so the user sees which permission goes where."""
    if not resources:
        return list(scopes), []
    about_you = [s for s in scopes if s in IDENTITY_SCOPES]
    apis = [(r.name or r.resource, [s for s in scopes_for_audience(scopes, [r]) if s not in IDENTITY_SCOPES])
            for r in resources]
    return about_you, apis
