"""Per-container caches: one registry, one reset.

Everything a Lambda container remembers between requests (settings, registrations read on hot
paths, the key ring's view of the current key and JWKS, AWS clients) registers here with the
function that forgets it. Tests forget it all between tests with `clear_all()`; after a SnapStart
restore the runtime hook can do the same for the kinds that must not outlive the snapshot.
tests/unit/test_caches.py fails if a module-level cache is not registered.

Kinds: "data" (what was read from DynamoDB, Secrets Manager or the environment: may be stale),
"connection" (AWS clients and pynamodb connections: expensive to rebuild, tied to an endpoint and
credentials), "memo" (pure functions of the code, e.g. the Jinja environment: never stale).
"""
from __future__ import annotations

from typing import Callable

KINDS = ("data", "connection", "memo")
_registry: dict[str, tuple[str, Callable[[], None]]] = {}


def register(name: str, clear: Callable[[], None], *, kind: str = "data") -> None:
    """Register (or replace, on a module reload) the cache `name` and how to forget it."""
    if kind not in KINDS:
        raise ValueError(f"cache kind must be one of {KINDS}, got {kind!r}")
    _registry[name] = (kind, clear)


def clear_all(kinds: tuple[str, ...] = KINDS) -> None:
    """Forget every registered cache of the given kinds (all by default)."""
    for kind, clear in list(_registry.values()):
        if kind in kinds:
            clear()


def registered() -> dict[str, tuple[str, Callable[[], None]]]:
    return dict(_registry)
