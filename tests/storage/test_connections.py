"""The connections table and the connections' Secrets Manager secrets (issue 15), on moto."""
from __future__ import annotations

import dataclasses

import pytest
from botocore.exceptions import ClientError

from chalicelib.errors import TemporarilyUnavailable
from chalicelib.federation import connections as federation
from chalicelib.federation.connections import Connection, secret, secret_name, store_secret, validate
from chalicelib.storage import connections
from chalicelib.storage.models import ConnectionModel


def make(connection_id="acme", **fields) -> Connection:
    values = validate(preset="oidc", connection_id=connection_id, client_id="idp", display_name=connection_id.title(),
                      issuer=f"https://{connection_id}.example", **fields)
    return Connection(**values, secret_name=f"idp/test/connections/{connection_id}", created_at=1, updated_at=1)


@pytest.fixture
def scans(aws, monkeypatch):
    """How many Scans of the connections table have been made."""
    made = []
    real = ConnectionModel.scan.__func__

    def counting(cls, *args, **kwargs):
        made.append(1)
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(ConnectionModel, "scan", classmethod(counting))
    return made


def test_a_connection_round_trips_with_its_tuples_and_mappings(aws):
    acme = make(domains=["acme.example"], acr_mapping={"urn:acme:mfa": "urn:serverless-idp:acr:mfa"},
                claim_mapping={"email": "mail"}, store_tokens=True)
    assert connections.add_connection(acme) is True
    assert connections.get_connection("acme") == acme
    assert connections.list_connections() == [acme]


def test_an_id_is_added_once_and_the_first_stays(aws):
    first = make()
    assert connections.add_connection(first) is True
    assert connections.add_connection(dataclasses.replace(first, client_id="other")) is False
    assert connections.add_connection(first) is False
    assert connections.get_connection("acme").client_id == "idp"


def test_update_and_delete_only_an_existing_connection(aws):
    acme = make()
    assert connections.update_connection(acme) is False and connections.get_connection("acme") is None
    connections.add_connection(acme)
    changed = dataclasses.replace(acme, enabled=False, domains=("acme.example",), updated_at=2)
    assert connections.update_connection(changed) is True
    assert connections.get_connection("acme") == changed
    assert connections.delete_connection("acme") is True
    assert connections.delete_connection("acme") is False
    assert connections.get_connection("acme") is None


@pytest.mark.parametrize("connection_id", ["", "Acme", "a" * 2000, "acme#x", None])
def test_ids_that_can_never_be_stored_are_unknown_without_a_call(aws, monkeypatch, connection_id):
    monkeypatch.setattr(ConnectionModel, "get", lambda *a, **k: pytest.fail("read"))
    assert connections.get_connection(connection_id) is None
    assert connections.delete_connection(connection_id) is False


def test_enabled_connections_are_one_scan_per_container_per_cache_window(scans):
    connections.add_connection(make("zeta"))
    connections.add_connection(make("alpha"))
    connections.add_connection(dataclasses.replace(make("off"), enabled=False))
    connections.forget_cached_connections()

    assert [c.connection_id for c in connections.enabled_connections(60)] == ["alpha", "zeta"]
    assert [c.connection_id for c in connections.enabled_connections(60)] == ["alpha", "zeta"]
    assert len(scans) == 1
    # Another container's change (written behind this one's back) shows once the window has passed.
    ConnectionModel(**{**ConnectionModel.get("off").attribute_values, "enabled": True}).save()
    assert len(connections.enabled_connections(60)) == 2 and len(scans) == 1
    assert len(connections.enabled_connections(0)) == 3 and len(scans) == 2


def test_no_connections_is_remembered_too(scans):
    assert connections.enabled_connections(60) == () and connections.enabled_connections(60) == ()
    assert len(scans) == 1


# the secret

def test_the_secret_is_read_once_per_container_within_its_cache_time(aws, monkeypatch):
    acme = make()
    store_secret(acme.secret_name, {"client_secret": "s1"}, stage="local")
    assert secret(acme) == {"client_secret": "s1"}
    from chalicelib.aws import client

    client("secretsmanager").put_secret_value(SecretId=acme.secret_name, SecretString='{"client_secret": "s2"}')
    assert secret(acme) == {"client_secret": "s1"}  # cached
    secret(acme)["client_secret"] = "changed by a caller"
    assert secret(acme) == {"client_secret": "s1"}  # callers get a copy
    federation.forget_cached_secrets()
    assert secret(acme) == {"client_secret": "s2"}


def test_a_connection_without_a_stored_name_uses_the_stage_prefix(aws):
    from chalicelib.config import settings

    acme = dataclasses.replace(make(), secret_name=None)
    assert secret_name("acme", settings()) == "idp/test/connections/acme"
    store_secret("idp/test/connections/acme", {"private_key": "pem"}, stage="local")
    assert secret(acme) == {"private_key": "pem"}


@pytest.mark.parametrize("code", ["ThrottlingException", "InternalServiceError"])
def test_secrets_manager_faults_are_503s(aws, monkeypatch, code):
    from chalicelib.aws import client

    def failing(**_):
        raise ClientError({"Error": {"Code": code, "Message": "no"}, "ResponseMetadata": {"HTTPStatusCode": 500}},
                          "GetSecretValue")

    monkeypatch.setattr(client("secretsmanager"), "get_secret_value", failing)
    with pytest.raises(TemporarilyUnavailable) as raised:
        secret(make())
    assert raised.value.retry_after and raised.value.status == 503


def test_a_missing_or_broken_secret_is_a_503_never_a_500(aws):
    acme = make()
    with pytest.raises(TemporarilyUnavailable) as raised:
        secret(acme)
    assert "ResourceNotFoundException" not in raised.value.description
    assert "idp/test/connections/acme" in raised.value.detail
    store_secret(acme.secret_name, ["not", "an", "object"], stage="local")
    with pytest.raises(TemporarilyUnavailable):
        secret(acme)
