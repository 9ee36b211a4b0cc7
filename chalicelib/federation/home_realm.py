"""Which way to sign in: the connections a client offers, and home-realm discovery (HRD).

HRD sends a user to their organisation's identity provider without asking which: a connection may
claim email domains, and an address in one of them (typed on the sign-in page, or sent as the
`login_hint` of OIDC Core §3.1.2.1) goes straight to that connection. A client may also name the
connection itself with `idp_hint` (a connection id; the parameter several IdPs accept for this).

Pure functions on Connection records (chalicelib/federation/connections.py) and the client record;
the caller reads them (storage.connections.enabled_connections: cached, no call per request).
A client's `connections` (an operator's setting) restricts both the buttons and HRD: a domain
claimed by a connection the client does not offer does not route its users anywhere.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from .connections import PASSWORD

if TYPE_CHECKING:
    from ..storage.clients import Client
    from .connections import Connection


def allows(allowed: Iterable[str], connection_id: str | None) -> bool:
    """The one rule of a client's `connections` restriction (connection ids and PASSWORD; empty:
    every way in): may its users come in through `connection_id` (None: our own sign-in, password
    or passkey)? The pending request keeps a copy of the list (oauth/authorization.way_in_allowed)."""
    allowed = set(allowed or ())
    return not allowed or (connection_id or PASSWORD) in allowed


def connections_for(client: Client | None, connections: Iterable[Connection]) -> list[Connection]:
    """The enabled connections this client offers, in the given order: all of them when its
    `connections` is empty (or there is no client: the account page's own sign-in), else those it
    names."""
    allowed = client.connections if client is not None else ()
    return [c for c in connections if c.enabled and allows(allowed, c.connection_id)]


def password_allowed(client: Client | None) -> bool:
    """Whether the client's users may sign in with a password here: unless its `connections` names
    only upstream providers."""
    return allows(client.connections if client is not None else (), None)


def email_domain(email: str | None) -> str | None:
    """The domain of an address, lower-case, without a trailing dot; None when it has none."""
    if not email or "@" not in email:
        return None
    domain = email.rpartition("@")[2].strip().lower().rstrip(".")
    return domain or None


def by_email(email: str | None, connections: Iterable[Connection]) -> Connection | None:
    """The enabled connection that claims the address's domain (exact match, case-insensitive: a
    claim on "acme.com" does not cover "eu.acme.com"), or None. Domains are unique across
    connections (the admin CLI refuses a second claim), so at most one matches."""
    domain = email_domain(email)
    if domain is None:
        return None
    return next((c for c in connections if c.enabled and domain in c.domains), None)


def by_hint(hint: str | None, connections: Iterable[Connection]) -> Connection | None:
    """The enabled connection whose id is `hint` (idp_hint), or None."""
    if not hint:
        return None
    return next((c for c in connections if c.enabled and c.connection_id == hint), None)
