"""`./idp-admin clients create|update` under PROFILE=fapi2: only confidential private_key_jwt clients can be
made (FAPI 2.0 Security Profile §5.3.2.1 items 3 and 6); a refusal writes nothing (exit 2)."""
from __future__ import annotations

import json
import os

import pytest

from chalicelib.storage.models import ClientModel
from tests.admin.test_admin_private_key_jwt import jwks_file
from tools import admin

APP = "https://app.example.com/cb"
REFUSED = "error: PROFILE=fapi2 allows only confidential clients using private_key_jwt (FAPI 2.0 §5.3.2.1 items 3 and 6)"


@pytest.fixture
def run(aws, capsys, monkeypatch):
    from chalicelib.config import settings

    def run(*argv, profile="fapi2"):
        monkeypatch.setenv("PROFILE", profile)
        settings.cache_clear()
        status = admin.main(list(argv), environ=dict(os.environ))
        out, err = capsys.readouterr()
        return status, out, err
    yield run
    settings.cache_clear()


@pytest.mark.parametrize("extra", [("--public",), (), ("--auth-method", "client_secret_post")])
def test_create_refuses_clients_that_could_not_authenticate(run, extra):
    status, out, err = run("clients", "create", "--name", "App", "--redirect-uri", APP, *extra)
    assert (status, out, err.strip()) == (2, "", REFUSED)
    assert list(ClientModel.scan()) == []


def test_create_a_private_key_jwt_client(run, tmp_path):
    path, _ = jwks_file(tmp_path)
    status, out, _ = run("clients", "create", "--name", "App", "--redirect-uri", APP,
                         "--auth-method", "private_key_jwt", "--jwks-file", path)
    assert status == 0 and json.loads(out)["token_endpoint_auth_method"] == "private_key_jwt"


def test_update_refuses_switching_a_key_client_to_a_secret(run, tmp_path):
    path, jwks = jwks_file(tmp_path)
    _, out, _ = run("clients", "create", "--name", "App", "--redirect-uri", APP,
                    "--auth-method", "private_key_jwt", "--jwks-file", path)
    client_id = json.loads(out)["client_id"]
    status, out, err = run("clients", "update", client_id, "--auth-method", "client_secret_basic")
    assert (status, err.strip()) == (2, REFUSED)
    stored = ClientModel.get(client_id)
    assert stored.token_endpoint_auth_method == "private_key_jwt" and stored.secret_hash is None


def test_the_core_profile_still_makes_secret_clients(run):
    status, out, _ = run("clients", "create", "--name", "App", "--redirect-uri", APP, profile="oauth2.1")
    assert status == 0 and "client_secret" in json.loads(out)
