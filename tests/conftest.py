"""Shared fixtures. The environment is fixed before any chalicelib import: pynamodb reads table
names when models are defined, and settings are cached per process."""
from __future__ import annotations

import os
import socket

import pytest

TEST_ENV = {
    "STAGE": "local",
    "ISSUER": "http://localhost:8000",
    "TABLE_PREFIX": "idp-test",
    "SECRET_PREFIX": "idp/test/",
    "KEY_BACKEND": "secretsmanager",
    "SIGNING_ALG": "ES256",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "LOG_LEVEL": "WARNING",
    # The tests' users are made as the admin CLI makes them, with unverified addresses; the gate that
    # holds those back (REQUIRE_VERIFIED_EMAIL, on by default) is tested with it on in
    # tests/routes/test_signup.py and test_verified_email_gate.py.
    "REQUIRE_VERIFIED_EMAIL": "false",
}
os.environ.update(TEST_ENV)
for leaked in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
    os.environ.pop(leaked, None)

from tools import chalice_compat  # noqa: E402
from tools import moto_apigatewayv2, moto_kms  # noqa: E402
from tools.moto_server import install as serialize_dynamodb_actions  # noqa: E402

chalice_compat.install()
moto_kms.install()  # kms:GenerateDataKeyPair (KEY_BACKEND=kms-envelope), which moto lacks
moto_apigatewayv2.install()  # CloudFormation for the HTTP API front door, which moto lacks
# In-process moto too: it applies an update as read-then-write, so parallel atomic ADDs (the sign-in
# counters) lost updates and the parallel-guessing test failed now and then. DynamoDB does not.
serialize_dynamodb_actions()


def reset_process_state(*, endpoint_changed: bool = True) -> None:
    """Forget per-container caches (chalicelib/caches.py): what was read always; AWS clients and
    pynamodb connections only when the endpoint changes (building them re-parses botocore's service
    models, ~50 ms)."""
    from chalicelib import caches

    caches.clear_all(("data", "connection") if endpoint_changed else ("data",))


@pytest.fixture
def aws(monkeypatch):
    """In-process moto with every table bootstrapped; fresh state per test."""
    from moto import mock_aws

    from chalicelib.storage.tables import bootstrap_tables

    with mock_aws():
        reset_process_state(endpoint_changed=False)
        bootstrap_tables()
        ensure_factors_key()
        ensure_logout_queue()
        yield
    reset_process_state(endpoint_changed=False)


def ensure_factors_key() -> None:
    """FACTOR_KMS_KEY_ID's key (chalicelib/secret_box.py), as the local stack's bootstrap makes it."""
    from chalicelib.config import settings
    from tools.devstack import ensure_symmetric_key

    ensure_symmetric_key(settings().factor_kms_key_id, "test key: seals TOTP secrets")


def ensure_logout_queue() -> None:
    """The back-channel logout queue (chalicelib/logout_queue.py), as the local stack's bootstrap makes it."""
    from chalicelib import logout_queue
    from chalicelib.config import settings

    logout_queue.ensure_queue(settings())


def select_key_backend(monkeypatch, name: str) -> None:
    """KEY_BACKEND=name for this test, with what it needs: kms-envelope a symmetric key (inside moto)."""
    monkeypatch.setenv("KEY_BACKEND", name)
    if name == "kms-envelope":
        from chalicelib.aws import client

        key = client("kms").create_key(Description="test envelope key")["KeyMetadata"]["Arn"]
        monkeypatch.setenv("ENVELOPE_KMS_KEY_ID", key)
    reset_process_state(endpoint_changed=False)


@pytest.fixture
def keys(aws):
    """A current and a next signing key (the local bootstrap's state)."""
    from chalicelib.keys import keyring

    return keyring.ensure_keys()


@pytest.fixture
def http(keys):
    """chalice.test.Client's HTTP interface over the real app, backed by in-process moto."""
    from chalice.test import Client

    from app import app

    # stage "local" sets only STAGE; the default ("dev") would export the dev stage's ISSUER etc.
    with Client(app, stage_name="local") as client:
        yield client.http


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def moto_server():
    """A real moto server on loopback, for tests that must talk AWS over HTTP."""
    from moto.server import ThreadedMotoServer

    from tools import moto_server

    moto_server.install()  # DynamoDB's atomic conditional writes, as `make run` has them
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def aws_server(moto_server, monkeypatch):
    """The process talks to the moto server over HTTP, with fresh state and tables."""
    import requests

    from chalicelib.storage.tables import bootstrap_tables

    requests.post(f"{moto_server}/moto-api/reset", timeout=10).raise_for_status()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    reset_process_state()
    bootstrap_tables()
    ensure_factors_key()
    ensure_logout_queue()
    yield moto_server
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    reset_process_state()


@pytest.fixture
def alice(aws):
    from chalicelib.storage.users import create_user

    return create_user("alice@example.com", "correct horse battery", name="Alice Liddell")


@pytest.fixture
def public_client(aws):
    from chalicelib.oauth.clients import create_client

    client, _ = create_client(client_name="Notes App", client_type="public",
                              redirect_uris=["http://127.0.0.1/cb", "https://app.example.com/cb"],
                              scopes=["openid", "email", "profile"])
    return client


@pytest.fixture
def confidential_client(aws):
    from chalicelib.oauth.clients import create_client

    client, secret = create_client(client_name="Billing", client_type="confidential",
                                   redirect_uris=["http://127.0.0.1/cb"], scopes=["openid", "email", "profile"])
    return client, secret


@pytest.fixture
def browser(http):
    from tests.routes.flow import Browser

    return Browser(http)


@pytest.fixture
def idp_log(caplog):
    """The IdP's log as operators get it: a callable returning the JSON objects logged so far, each
    with its request_id. The "idp" logger does not propagate, so pytest's handler is attached to it
    directly; it formats each record as it is emitted, while the request id is still bound."""
    import json
    import logging

    from chalicelib.log import JsonFormatter, get_logger

    logger = get_logger("idp")
    caplog.handler.setFormatter(JsonFormatter())
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.INFO, logger="idp")
    yield lambda: [json.loads(line) for line in caplog.text.splitlines()]
    logger.removeHandler(caplog.handler)


@pytest.fixture
def api_resources(aws):
    """Two registered APIs (RFC 8707 resources) with their own scopes."""
    from chalicelib.storage.resources import register_resource

    return (register_resource("https://notes.example.com/api", "Notes API", ["notes:read", "notes:write"]),
            register_resource("https://billing.example.com/api", "Billing API", ["billing:read"]))


@pytest.fixture
def public_api(aws):
    """An API registered with --public: open to unverified (self-registered) clients."""
    from chalicelib.storage.resources import register_resource

    return register_resource("https://mcp.example.com/mcp", "Notes MCP", ["mcp:read", "mcp:write"], public=True)


@pytest.fixture
def service_client(aws, api_resources):
    """A confidential client with client_credentials (a backend job)."""
    from chalicelib.oauth.clients import create_client

    client, secret = create_client(client_name="Nightly job", grant_types=["client_credentials"],
                                   scopes=["notes:read", "notes:write", "billing:read"])
    return client, secret


def basic_auth(client_id: str, secret: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


@pytest.fixture
def argon2_evaluations(monkeypatch):
    """Every argon2id verification made from now on: each entry is one evaluation's arguments."""
    from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

    evaluations = []
    original = Argon2id.verify_phc_encoded

    def counting(*args):
        evaluations.append(args)
        return original(*args)

    monkeypatch.setattr(Argon2id, "verify_phc_encoded", staticmethod(counting))
    return evaluations
