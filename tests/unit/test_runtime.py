"""The container's init and its SnapStart restore hook (chalicelib/runtime.py)."""
from __future__ import annotations

import random
import sys
import types

import pytest


@pytest.fixture
def lambda_hooks(monkeypatch):
    """Lambda's snapshot_restore_py, as the Python runtimes provide it: the callables registered."""
    registered: list = []
    module = types.ModuleType("snapshot_restore_py")
    module.register_after_restore = lambda func, *args, **kwargs: registered.append(func)
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", module)
    return registered


def _promote_next_key_as_another_container_would():
    """The rotation's transaction (key items and the key-ring summary), without this process's cache reset."""
    from chalicelib.storage.signing_keys import change_keys, scan_keys

    keys = {k.state: k for k in scan_keys()}

    def promote(change):
        change.change(keys["current"], expected_state="current", state="retired")
        change.change(keys["next"], expected_state="next", state="current")

    change_keys(promote)
    return keys["next"].kid


def test_a_restored_container_reads_the_current_key_again_instead_of_trusting_the_snapshot(keys):
    from chalicelib import runtime
    from chalicelib.keys import keyring

    before = keyring.current_signer().kid
    promoted = _promote_next_key_as_another_container_would()
    assert keyring.current_signer().kid == before  # the container's cache, as a snapshot would hold it

    runtime.after_restore()

    assert keyring.current_signer().kid == promoted != before


def test_a_restored_container_reads_clients_and_resources_again(api_resources, service_client):
    from chalicelib import runtime
    from chalicelib.storage.clients import get_client_cached, set_client_disabled
    from chalicelib.storage.models import ResourceModel
    from chalicelib.storage.resources import get_resource_cached

    client, _ = service_client
    resource = api_resources[0].resource
    assert get_client_cached(client.client_id, 300).disabled is False
    assert get_resource_cached(resource, 300).name == "Notes API"
    set_client_disabled(client.client_id, True)
    ResourceModel(resource).update(actions=[ResourceModel.name.set("Notes API v2")])
    assert get_client_cached(client.client_id, 300).disabled is False

    runtime.after_restore()

    assert get_client_cached(client.client_id, 300).disabled is True
    assert get_resource_cached(resource, 300).name == "Notes API v2"


def test_a_restored_container_reseeds_pythons_random_so_retry_jitter_differs_between_containers(aws):
    from chalicelib import runtime

    random.seed(1234)
    as_snapshotted = [random.random() for _ in range(4)]
    random.seed(1234)  # every container resumes from this same state

    runtime.after_restore()

    assert [random.random() for _ in range(4)] != as_snapshotted


def test_on_lambda_import_registers_the_restore_hook(lambda_hooks):
    from chalicelib import runtime

    assert runtime.register_hooks() is True
    assert lambda_hooks == [runtime.after_restore]


def test_off_lambda_there_is_no_hook_library_and_nothing_is_registered(monkeypatch):
    from chalicelib import runtime

    monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)  # import fails, as locally
    assert runtime.register_hooks() is False


def test_a_snapstart_init_builds_the_clients_and_every_module_without_calling_aws(aws, lambda_hooks, monkeypatch):
    from chalicelib import aws as aws_module
    from chalicelib import runtime

    monkeypatch.setenv(runtime.INITIALIZATION_TYPE, "snap-start")
    aws_module.reset_clients()
    calls: list[str] = []
    aws_module.session().register("before-send", lambda **kwargs: calls.append(kwargs["event_name"]))

    runtime.initialize()

    assert set(aws_module._state) == {None, "dynamodb", "secretsmanager"}  # the session, then its clients
    assert "chalicelib.oauth.login" in sys.modules and "chalicelib.grants.refresh_token" in sys.modules
    assert lambda_hooks == [runtime.after_restore]
    assert calls == []
    aws_module.reset_clients()


def test_off_lambda_import_builds_nothing(aws, monkeypatch):
    from chalicelib import aws as aws_module
    from chalicelib import runtime

    monkeypatch.delenv(runtime.INITIALIZATION_TYPE, raising=False)
    aws_module.reset_clients()
    runtime.initialize()
    assert aws_module._state == {}


def test_an_envelope_key_is_decrypted_after_a_restore_and_never_lands_in_the_snapshot(aws, lambda_hooks, monkeypatch):
    """kms-envelope: init builds the KMS client but decrypts nothing; a restore forgets a decrypted key
    (the signer cache is "data"), so each restored container runs its own kms:Decrypt."""
    from chalicelib import aws as aws_module
    from chalicelib import runtime
    from chalicelib.keys import keyring
    from tests.conftest import select_key_backend

    select_key_backend(monkeypatch, "kms-envelope")
    keyring.ensure_keys()
    monkeypatch.setenv(runtime.INITIALIZATION_TYPE, "snap-start")
    aws_module.reset_clients()
    calls: list[str] = []
    aws_module.session().register("before-send", lambda **kwargs: calls.append(kwargs["event_name"]))

    runtime.initialize()

    assert set(aws_module._state) == {None, "dynamodb", "kms"} and calls == []
    keyring.current_signer()
    assert keyring._signer_cache and any(c.endswith("kms.Decrypt") for c in calls)
    runtime.after_restore()
    assert keyring._signer_cache == {}
    aws_module.reset_clients()
