"""The account page's "Linked sign-ins" (issue 15): the upstream identities linked to the user
(storage/federated_identities.py), removing one, and which providers can be linked.

Removing one asks for the current password when the user has one (accounts/account.check_password,
throttled like a sign-in), as every change of a sign-in method does. It is refused when it is the
last way in: no password, no other identity and no passkey. That rule is checked on the user item
as read AND by the write's condition naming the way in that remains, so two concurrent removals
cannot together remove the last two.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from ..config import Settings
from ..errors import AccountActionRefused as Refused
from ..pages import messages


@dataclass(frozen=True)
class Linked:
    """One linked identity, for the page."""

    value: str  # the user item's entry "<connection_id>#<upstream sub>": the form's `identity`
    provider: str
    email: str | None
    linked_at: int

    @property
    def linked(self) -> str:
        return datetime.fromtimestamp(self.linked_at, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def page_context(settings: Settings, user) -> dict:
    """`identities` (Linked, oldest first: one BatchGetItem, none when the user has none) and
    `linkable` (the enabled connections, cached per container) for account.html."""
    from ..federation import sign_in
    from ..storage import federated_identities as store

    connections = {c.connection_id: c for c in sign_in.enabled(settings)}
    found = store.of_user(user)
    linked = [Linked(store.entry(i.connection_id, i.upstream_sub),
                     connections[i.connection_id].display_name if i.connection_id in connections else i.connection_id,
                     i.email, i.linked_at) for i in found]
    # A provider already linked is not offered again (one account per provider is the usual case;
    # another needs removing the first), and Remove is offered only where it would be allowed.
    linked_ids = {i.connection_id for i in found}
    removable = bool(user.password_hash) or len(linked) > 1 or any(
        entry.startswith("passkey#") for entry in (user.factors or ()))
    return {"identities": linked, "identities_removable": removable,
            "linkable": [c for c in connections.values() if c.connection_id not in linked_ids]}


def _keeps(user, value: str) -> tuple[str, str | None] | None:
    """A way in that remains without identity `value` (storage/federated_identities.unlink's
    `keeps`), or None when there is none."""
    from ..storage.factors import PASSKEY_PREFIX

    if user.password_hash:
        return ("password", None)
    others = sorted(set(user.identities or ()) - {value})
    if others:
        return ("identity", others[0])
    passkeys = sorted(entry for entry in user.factors or () if entry.startswith(PASSKEY_PREFIX))
    if passkeys:
        return ("passkey", passkeys[0])
    return None


def remove(settings: Settings, user, value: str, password: str, *, ip: str, device: str | None) -> None:
    """Unlink identity `value` from `user` (see the module docstring)."""
    from ..storage import federated_identities as store
    from .account import check_password

    if value not in (user.identities or ()):
        raise Refused(messages.IDENTITY_GONE, status=404)
    keeps = _keeps(user, value)
    if keeps is None:
        raise Refused(messages.IDENTITY_LAST_WAY_IN, status=409)
    if user.password_hash:
        check_password(settings, user, password, ip=ip, device=device)
    connection_id, _, upstream_sub = value.partition("#")
    outcome = store.unlink(user.pk, connection_id, upstream_sub, keeps=keeps)
    if outcome == "gone":
        raise Refused(messages.IDENTITY_GONE, status=404)
    if outcome == "last":
        raise Refused(messages.ACCOUNT_CHANGED_MEANWHILE, status=409)
