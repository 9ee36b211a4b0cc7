"""A per-container read-through cache with a maximum age, for registrations read on hot paths."""
from __future__ import annotations

import time
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class ContainerCache(Generic[T]):
    """Remembers what `load` returned for a key for up to `max_age` seconds. Misses (None) are not
    remembered, so something registered a moment ago is found at once."""

    def __init__(self, load: Callable[[str], T | None]):
        self._load = load
        self._entries: dict[str, tuple[float, T]] = {}

    def get(self, key: str, max_age: float) -> T | None:
        hit = self._entries.get(key)
        if hit is not None and time.monotonic() - hit[0] < max_age:
            return hit[1]
        value = self._load(key)
        if value is not None:
            self._entries[key] = (time.monotonic(), value)
        return value

    def clear(self) -> None:
        self._entries.clear()
