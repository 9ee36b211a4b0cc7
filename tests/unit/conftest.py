"""Unit tests run without AWS: the core's storage calls go to the in-memory twin (tests/fakes/storage.py)."""
import pytest

from tests.fakes import storage


@pytest.fixture
def memory_storage(monkeypatch) -> storage.MemoryStorage:
    return storage.memory_storage(monkeypatch)
