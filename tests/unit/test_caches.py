"""Per-container caches: every one is registered in chalicelib/caches.py, and one reset forgets them."""
from __future__ import annotations

import importlib
import pkgutil

import chalicelib
from chalicelib import caches
from chalicelib.storage.cache import ContainerCache

#: Module-level caches deliberately left out of the registry (none).
NOT_YET_REGISTERED: set[str] = set()


def module_level_caches() -> dict[str, object]:
    """Every module-level lru_cache, ContainerCache, and dict or set that is empty once imported
    (filled as requests come: a cache), across all of chalicelib."""
    found = {}
    for info in pkgutil.walk_packages(chalicelib.__path__, "chalicelib."):
        module = importlib.import_module(info.name)
        if module is caches:
            continue
        for name, value in vars(module).items():
            if getattr(value, "__module__", module.__name__) != module.__name__ and callable(value):
                continue  # imported from elsewhere: checked there
            is_cache = (hasattr(value, "cache_clear") and hasattr(value, "cache_info")
                        or isinstance(value, ContainerCache)
                        or type(value) in (dict, set) and not value)
            if is_cache:
                found[f"{module.__name__}.{name}"] = value
    return found


def clear_of(value):
    return value.cache_clear if hasattr(value, "cache_clear") else value.clear


def test_every_module_level_cache_is_registered():
    found = module_level_caches()  # imports every module, so each has registered what it keeps
    registered = [clear for _, clear in caches.registered().values()]
    unregistered = {name for name, value in found.items() if clear_of(value) not in registered}
    assert unregistered == NOT_YET_REGISTERED


def test_clear_all_forgets_what_each_registered_cache_remembers(monkeypatch):
    from chalicelib import config
    from chalicelib.keys import keyring
    from chalicelib.storage import clients

    monkeypatch.setenv("ISSUER", "https://login.example.com")
    config.settings()
    keyring._current_cache["jwks"] = "stale"
    clients._cache._entries["c1"] = (0.0, "stale")

    caches.clear_all(("data",))

    assert config.settings.cache_info().currsize == 0
    assert keyring._current_cache == {} and clients._cache._entries == {}


def test_clear_all_leaves_other_kinds_alone():
    forgotten = []
    caches.register("test.memo", lambda: forgotten.append("memo"), kind="memo")
    try:
        caches.clear_all(("data",))
        assert forgotten == []
        caches.clear_all()
        assert forgotten == ["memo"]
    finally:
        caches._registry.pop("test.memo")
