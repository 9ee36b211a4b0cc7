"""`make run` end to end: tools.devstack over real HTTP, stopped with Ctrl-C, restarted on the same state.

Each stack gets free ports and its own state dir. The stack uses this process's TABLE_PREFIX because
pynamodb fixed the models' table names when they were imported, so the test can read and write the
stack's tables by pointing AWS_ENDPOINT_URL at the stack's moto server.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import jwt
import pytest
import requests

from tests.conftest import TEST_ENV, free_port
from tests.integration.conftest import AUDIENCE, STOP_TIMEOUT, Stack, _pids_with_args, _read
from tools.stage_env import ROOT

pytestmark = pytest.mark.integration

def sign_and_verify_with_served_jwks(stack: Stack) -> str:
    """Sign a JWT with the key ring's current key; verify it with pyjwt against the server's /jwks."""
    from chalicelib.keys import keyring
    from chalicelib.tokens import jwt as jwt_encode

    token = jwt_encode.encode({"sub": "alice", "aud": AUDIENCE, "iss": stack.base_url}, keyring.current_signer())
    kid = jwt.get_unverified_header(token)["kid"]
    served = stack.get("/jwks").json()["keys"]
    jwk = next((k for k in served if k["kid"] == kid), None)
    assert jwk is not None, f"the signing key {kid} is not in /jwks: {served}"
    key = jwt.PyJWK(jwk).key
    assert jwt.decode(token, key, algorithms=[jwk["alg"]], audience=AUDIENCE)["sub"] == "alice"
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(token, key, algorithms=[jwk["alg"]], audience="https://other.example.com")
    return kid


def clients_table():
    from chalicelib.aws import client
    from chalicelib.storage.models import ClientModel

    return client("dynamodb"), ClientModel.Meta.table_name


@pytest.mark.parametrize("backend", ["secretsmanager", "kms"])
def test_make_run_serves_signs_and_keeps_its_state_across_ctrl_c_and_restart(launch, use_stack, backend):
    stack = launch(backend)
    assert stack.get("/.well-known/openid-configuration").json()["issuer"] == stack.base_url
    assert len(stack.get("/jwks").json()["keys"]) == 2, "a current and a next key are published"

    use_stack(stack)
    dynamodb, table = clients_table()
    dynamodb.put_item(TableName=table, Item={"client_id": {"S": "persisted"}, "client_name": {"S": "My app"}})
    kid = sign_and_verify_with_served_jwks(stack)
    assert token_from_the_running_server_verifies(stack) == kid

    assert stack.interrupt() == 0
    assert stack.is_gone(), f"servers left running: {stack.server_pids()}"

    # Same state dir, new ports: the recording is replayed into a moto server on another port.
    restarted = launch(backend, state_dir=stack.state_dir)
    use_stack(restarted)
    dynamodb, table = clients_table()
    item = dynamodb.get_item(TableName=table, Key={"client_id": {"S": "persisted"}}, ConsistentRead=True)
    assert item["Item"]["client_name"] == {"S": "My app"}
    restarted_kid = sign_and_verify_with_served_jwks(restarted)
    if backend == "secretsmanager":
        assert restarted_kid == kid, "Secrets Manager keys survive a restart"
    # moto replays KMS keys with new ids and material, so the key ring replaces them at start-up.


def test_totp_secrets_and_envelope_signing_keys_sealed_before_a_restart_open_after_it(launch, use_stack,
                                                                                       monkeypatch):
    """KMS calls are not replayed, so the bootstrap makes the symmetric keys again at every start from
    <state dir>/kms-keys.json: same key id, same material, so old ciphertexts still open."""
    from chalicelib import secret_box
    from chalicelib.errors import SealBroken
    from tools.stage_env import LOCAL_ENVELOPE_KEY

    monkeypatch.setenv("ENVELOPE_KMS_KEY_ID", LOCAL_ENVELOPE_KEY)  # what the stack's bootstrap made
    stack = launch("kms-envelope")
    use_stack(stack)
    sealed = secret_box.seal("JBSWY3DPEHPK3PXP", purpose="totp", subject="alice")
    kid = sign_and_verify_with_served_jwks(stack)
    assert stack.interrupt() == 0

    restarted = launch("kms-envelope", state_dir=stack.state_dir)
    use_stack(restarted)
    assert secret_box.unseal(sealed, purpose="totp", subject="alice") == "JBSWY3DPEHPK3PXP"
    with pytest.raises(SealBroken):
        secret_box.unseal(sealed, purpose="totp", subject="mallory")  # the encryption context still binds
    assert sign_and_verify_with_served_jwks(restarted) == kid, "the envelope wrapping key survives too"
    assert token_from_the_running_server_verifies(restarted) == kid
    assert (stack.state_dir / "kms-keys.json").stat().st_mode & 0o777 == 0o600, "it holds key material"


def token_from_the_running_server_verifies(stack) -> str:
    """The running server itself signs (POST /token, client_credentials); pyjwt verifies the token
    with the key the server publishes in /jwks. Returns the signing kid."""
    import base64

    from chalicelib.oauth.clients import create_client

    client, secret = create_client(client_name="Job", grant_types=["client_credentials"], scopes=["jobs:run"])
    basic = base64.b64encode(f"{client.client_id}:{secret}".encode()).decode()
    response = requests.post(f"{stack.base_url}/token", data={"grant_type": "client_credentials"},
                             headers={"Authorization": f"Basic {basic}"}, timeout=10)
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    header = jwt.get_unverified_header(token)
    jwk = next(k for k in stack.get("/jwks").json()["keys"] if k["kid"] == header["kid"])
    claims = jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=[jwk["alg"]], audience=stack.base_url,
                        issuer=stack.base_url)
    assert header["typ"] == "at+jwt" and claims["client_id"] == client.client_id
    return header["kid"]


def test_unknown_paths_and_wrong_methods_get_json_errors_over_http(launch):
    stack = launch()

    missing = stack.get("/no/such/endpoint")
    assert missing.status_code == 404
    assert missing.headers["Content-Type"] == "application/json"
    assert missing.json()["error"] == "not_found"

    wrong_method = requests.post(f"{stack.base_url}/jwks", json={}, timeout=10)
    assert wrong_method.status_code == 405
    assert wrong_method.headers["Allow"] == "GET"
    assert wrong_method.json()["error"] == "method_not_allowed"


def test_a_server_dying_takes_the_whole_stack_down_with_a_non_zero_status(launch):
    stack = launch()
    (moto_pid,) = _pids_with_args(["-p", str(stack.moto_port)])

    os.kill(moto_pid, signal.SIGKILL)

    assert stack.wait() == 1
    assert "moto server exited unexpectedly" in _read(stack.stderr)
    assert stack.is_gone()


def test_refuses_to_start_when_a_port_is_taken(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if k not in TEST_ENV}
        env.update(PORT=str(port), MOTO_PORT=str(free_port()), LOCAL_STATE_DIR=str(tmp_path / "state"))
        result = subprocess.run([sys.executable, "-m", "tools.devstack"], cwd=ROOT, env=env, capture_output=True,
                                text=True, timeout=STOP_TIMEOUT)

    assert result.returncode == 2
    assert f"PORT={port} is already in use" in result.stderr
    assert not (tmp_path / "state").exists(), "nothing is started or written"


def test_the_stack_sends_email_after_every_start_and_its_recording_keeps_no_message(launch, use_stack, monkeypatch,
                                                                                      capsys):
    """The bootstrap verifies the sender each start (sends are not replayed, the identity may be);
    every message lands in <state dir>/outbox, which ./idp-admin reads."""
    from chalicelib import mail
    from tools import admin

    stack = launch()
    monkeypatch.setenv("OUTBOX_DIR", str(stack.state_dir / "outbox"))
    use_stack(stack)
    mail.send("first@example.org", "verify_email", link=f"{stack.base_url}/verify?t=1", code="1", minutes=30)
    assert f"outbox     {stack.state_dir / 'outbox'}" in stack.output()
    assert stack.interrupt() == 0

    restarted = launch(state_dir=stack.state_dir)
    recording = (stack.state_dir / "moto-recording.jsonl").read_text()
    assert "/v2/email/identities" in recording and "/v2/email/outbound-emails" not in recording
    use_stack(restarted)
    mail.send("second@example.org", "verify_email", link=f"{restarted.base_url}/verify?t=2", code="2", minutes=30)

    capsys.readouterr()
    environ = {**os.environ, "LOCAL_STATE_DIR": str(stack.state_dir), "PORT": str(restarted.port),
               "MOTO_PORT": str(restarted.moto_port)}
    assert admin.main(["outbox", "list"], environ=environ) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[2] for line in listed] == ["second@example.org", "first@example.org"]
