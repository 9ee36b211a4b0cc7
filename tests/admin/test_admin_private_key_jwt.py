"""`./idp-admin clients create|update --auth-method private_key_jwt --jwks-file F | --jwks-uri U`:
keys registered, no secret made, a secret removed when a client switches to its key and a new one
shown once when it switches back; bad keys change nothing (exit 2)."""
from __future__ import annotations

import json
import os

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from chalicelib.hashing import matches_hash
from chalicelib.storage.clients import get_client
from tools import admin

APP = "https://app.example.com/cb"


@pytest.fixture
def run(aws, capsys):
    def run(*argv):
        status = admin.main(list(argv), environ=dict(os.environ))
        out, err = capsys.readouterr()
        return status, out, err
    return run


def jwks_file(tmp_path, name="jwks.json", *, private=False) -> tuple[str, dict]:
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = {**ECAlgorithm.to_jwk(key if private else key.public_key(), as_dict=True), "kid": name}
    path = tmp_path / name
    path.write_text(json.dumps({"keys": [jwk]}))
    return str(path), {"keys": [jwk]}


def test_create_a_private_key_jwt_client_from_a_jwks_file(run, tmp_path):
    path, jwks = jwks_file(tmp_path)
    status, out, err = run("clients", "create", "--name", "Agent", "--redirect-uri", APP,
                           "--auth-method", "private_key_jwt", "--jwks-file", path)
    assert (status, err) == (0, "")
    created = json.loads(out)
    assert "client_secret" not in created
    assert created["token_endpoint_auth_method"] == "private_key_jwt" and created["jwks"] == jwks
    stored = get_client(created["client_id"])
    assert stored.secret_hash is None and json.loads(stored.jwks) == jwks and stored.jwks_uri is None


def test_create_with_a_jwks_uri(run):
    status, out, _ = run("clients", "create", "--name", "Agent", "--redirect-uri", APP,
                         "--auth-method", "private_key_jwt", "--jwks-uri", "https://agent.example.com/jwks.json")
    assert status == 0
    assert json.loads(out)["jwks_uri"] == "https://agent.example.com/jwks.json"


@pytest.mark.parametrize("extra, message", [
    ((), "private_key_jwt needs exactly one of jwks and jwks_uri"),
    (("--jwks-uri", "http://agent.example.com/jwks.json"), "jwks_uri must use https"),
])
def test_create_refuses_a_key_client_without_usable_keys(run, extra, message):
    status, out, err = run("clients", "create", "--name", "Agent", "--redirect-uri", APP,
                           "--auth-method", "private_key_jwt", *extra)
    assert (status, out) == (2, "") and message in err


def test_create_refuses_a_private_key_and_writes_nothing(run, tmp_path):
    from chalicelib.storage.clients import list_clients

    path, _ = jwks_file(tmp_path, private=True)
    status, out, err = run("clients", "create", "--name", "Agent", "--redirect-uri", APP,
                           "--auth-method", "private_key_jwt", "--jwks-file", path)
    assert (status, out) == (2, "") and "public keys only" in err
    assert list_clients() == []


def test_a_secret_client_switches_to_its_key_and_back(run, tmp_path):
    status, out, _ = run("clients", "create", "--name", "App", "--redirect-uri", APP)
    created = json.loads(out)
    client_id, old_secret = created["client_id"], created["client_secret"]
    path, jwks = jwks_file(tmp_path)

    status, out, err = run("clients", "update", client_id, "--auth-method", "private_key_jwt", "--jwks-file", path)
    assert (status, err) == (0, "")
    assert json.loads(out)["jwks"] == jwks and "client_secret" not in json.loads(out)
    stored = get_client(client_id)
    assert stored.token_endpoint_auth_method == "private_key_jwt" and stored.secret_hash is None, \
        "the old secret no longer exists"

    rotated_path, rotated = jwks_file(tmp_path, "next.json")
    status, out, _ = run("clients", "update", client_id, "--jwks-file", rotated_path)
    assert status == 0 and json.loads(get_client(client_id).jwks) == rotated

    status, out, err = run("clients", "update", client_id, "--auth-method", "client_secret_post")
    assert status == 0 and err == "note: client_secret is shown only once; store it now.\n"
    new_secret = json.loads(out)["client_secret"]
    stored = get_client(client_id)
    assert stored.jwks is None and matches_hash(new_secret, stored.secret_hash)
    assert not matches_hash(old_secret, stored.secret_hash)


def test_keys_for_a_secret_client_are_refused(run, tmp_path):
    _, out, _ = run("clients", "create", "--name", "App", "--redirect-uri", APP)
    client_id = json.loads(out)["client_id"]
    before = get_client(client_id)
    path, _ = jwks_file(tmp_path)
    status, out, err = run("clients", "update", client_id, "--jwks-file", path)
    assert (status, out) == (2, "") and "jwks and jwks_uri are for token_endpoint_auth_method private_key_jwt" in err
    assert get_client(client_id) == before


def test_a_public_client_cannot_switch_to_a_key(run, tmp_path):
    _, out, _ = run("clients", "create", "--name", "SPA", "--public", "--redirect-uri", APP)
    client_id = json.loads(out)["client_id"]
    path, _ = jwks_file(tmp_path)
    status, _, err = run("clients", "update", client_id, "--auth-method", "private_key_jwt", "--jwks-file", path)
    assert status == 2 and "public clients" in err
