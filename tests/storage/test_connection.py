"""The container builds one DynamoDB client, and every pynamodb model and transaction uses it
(chalicelib/storage/connection.py): a second client would cost a cold start ~150 ms."""
from __future__ import annotations

import pytest


@pytest.fixture
def created_clients(aws, monkeypatch):
    """The service name of every botocore client created from now on, by any session."""
    from botocore.session import Session

    from chalicelib import aws as aws_module
    from chalicelib.storage.models import reset_connections

    aws_module.reset_clients()
    reset_connections()
    created: list[str] = []
    original = Session.create_client

    def counting(self, service_name, *args, **kwargs):
        created.append(service_name)
        return original(self, service_name, *args, **kwargs)

    monkeypatch.setattr(Session, "create_client", counting)
    return created


def test_every_model_and_the_transactions_share_one_dynamodb_client(created_clients):
    from chalicelib import aws
    from chalicelib.oauth.clients import create_client
    from chalicelib.storage.clients import get_client
    from chalicelib.storage.models import ALL_MODELS, ClientModel, ResourceModel, SigningKeyModel, transact_write

    client, _ = create_client(client_name="Job", grant_types=["client_credentials"], scopes=["api:read"])
    assert get_client(client.client_id).client_name == "Job"
    assert list(ResourceModel.scan()) == []
    assert SigningKeyModel.count() == 0
    with transact_write() as transaction:
        transaction.update(ClientModel(client.client_id), actions=[ClientModel.disabled.set(True)])

    assert get_client(client.client_id).disabled is True
    assert created_clients == ["dynamodb"]
    assert {id(model._get_connection().connection.client) for model in ALL_MODELS} == {id(aws.client("dynamodb"))}


def test_the_shared_client_fails_fast_and_retries_in_standard_mode(created_clients):
    from chalicelib import aws

    config = aws.client("dynamodb").meta.config
    assert (config.connect_timeout, config.read_timeout) == (aws.CONNECT_TIMEOUT_SECONDS, aws.READ_TIMEOUT_SECONDS)
    assert config.retries == {"mode": "standard", "total_max_attempts": aws.TOTAL_MAX_ATTEMPTS}


def test_a_request_answers_inside_the_lambda_timeout_and_api_gateways_29_seconds():
    """No attempt starts after the request's deadline, and an attempt lasts at most connect + read:
    the last one ends with a second to spare for the answer."""
    import json
    from pathlib import Path

    from chalicelib import aws

    from chalicelib.config import Settings

    config = json.loads((Path(__file__).parents[2] / ".chalice" / "config.json").read_text())
    deadline = Settings.__dataclass_fields__["aws_deadline_seconds"].default
    last_attempt_ends = deadline + aws.CONNECT_TIMEOUT_SECONDS + aws.READ_TIMEOUT_SECONDS
    assert last_attempt_ends + 1 <= config["lambda_timeout"] <= 29
    for stage in ("dev", "prod"):  # deployed stages keep the default deadline
        assert "AWS_DEADLINE_SECONDS" not in config["stages"][stage].get("environment_variables", {})


def test_every_service_shares_one_botocore_session(created_clients):
    from chalicelib import aws

    assert aws.client("secretsmanager") is aws.client("secretsmanager")
    assert aws.client("kms")._loader is aws.client("dynamodb")._loader is aws.session().get_component("data_loader")
    assert created_clients == ["secretsmanager", "kms", "dynamodb"]


def test_a_new_endpoint_is_honoured_after_reset(created_clients, monkeypatch):
    from chalicelib import aws

    before = aws.client("dynamodb")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    aws.reset_clients()
    assert aws.client("dynamodb") is not before
    assert aws.client("dynamodb").meta.endpoint_url == "http://127.0.0.1:9"
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    aws.reset_clients()
