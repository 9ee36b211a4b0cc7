"""The in-memory storage's own guarantees: nothing reaches AWS, every call is recorded, and a fake
whose parameters no longer match the real function's is refused at installation."""
from __future__ import annotations

import pytest

from tests.fakes import storage


def test_no_aws_call_can_be_made_on_the_memory_storage(memory_storage):
    from chalicelib import aws
    from chalicelib.storage.clients import get_client

    with pytest.raises(AssertionError, match="an AWS call"):
        get_client("a storage function the fake does not replace")
    with pytest.raises(AssertionError, match="an AWS call"):
        aws.client("secretsmanager")


def test_every_call_is_recorded_with_its_arguments(memory_storage):
    from chalicelib.storage import grants

    assert grants.revoke("u_1", "grant-1", reason="test") is False

    assert memory_storage.calls == [storage.Call("grants.revoke", ("u_1", "grant-1"), {"reason": "test"})]


def test_a_real_function_whose_parameters_changed_is_not_faked_silently(monkeypatch):
    from chalicelib.storage import grants

    monkeypatch.setattr(grants, "revoke", lambda sub, grant_id, *, reason, by=None: True)

    with pytest.raises(AssertionError, match="grants.revoke changed"):
        storage.install(monkeypatch)
