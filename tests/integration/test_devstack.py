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
import time
from pathlib import Path

import jwt
import pytest
import requests

from tests.conftest import TEST_ENV, free_port, reset_process_state
from tools.devstack import port_in_use
from tools.stage_env import ROOT

pytestmark = pytest.mark.integration

READY_TIMEOUT = 60
STOP_TIMEOUT = 20
SECRET_PREFIX = "idp/devstack-test/"
AUDIENCE = "https://api.example.com"


class Stack:
    """One `python -m tools.devstack` in its own process group, with its output in files."""

    def __init__(self, state_dir: Path, backend: str, log_dir: Path):
        self.state_dir, self.backend = state_dir, backend
        self.port, self.moto_port = _distinct_free_ports(2)
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.moto_url = f"http://127.0.0.1:{self.moto_port}"
        self.stdout = log_dir / f"devstack-{self.port}.out"
        self.stderr = log_dir / f"devstack-{self.port}.err"
        env = {k: v for k, v in os.environ.items() if k not in TEST_ENV and k != "AWS_ENDPOINT_URL"}
        env.update(PORT=str(self.port), MOTO_PORT=str(self.moto_port), LOCAL_STATE_DIR=str(state_dir),
                   TABLE_PREFIX=TEST_ENV["TABLE_PREFIX"], SECRET_PREFIX=SECRET_PREFIX, KEY_BACKEND=backend,
                   LOG_LEVEL="INFO")
        with open(self.stdout, "wb") as out, open(self.stderr, "wb") as err:
            self.process = subprocess.Popen([sys.executable, "-m", "tools.devstack"], cwd=ROOT, env=env,
                                            stdin=subprocess.DEVNULL, stdout=out, stderr=err, process_group=0)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"devstack exited with {self.process.returncode} before serving\n{self.output()}")
            try:
                if self.get("/.well-known/openid-configuration").status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        pytest.fail(f"devstack did not serve discovery within {READY_TIMEOUT}s\n{self.output()}")

    def get(self, path: str, **kwargs) -> requests.Response:
        return requests.get(self.base_url + path, timeout=10, **kwargs)

    def interrupt(self) -> int:
        """Ctrl-C, as the terminal would deliver it; returns the exit status."""
        self.process.send_signal(signal.SIGINT)
        return self.wait()

    def wait(self) -> int:
        try:
            return self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"devstack still running {STOP_TIMEOUT}s later\n{self.output()}")

    def server_pids(self) -> list[int]:
        """Processes still running either server, found by the port on their command line."""
        return _pids_with_args(["-p", str(self.moto_port)]) + _pids_with_args(["--port", str(self.port)])

    def is_gone(self) -> bool:
        return not self.server_pids() and not port_in_use(self.port) and not port_in_use(self.moto_port)

    def output(self) -> str:
        parts = [f"--- devstack stdout ---\n{_read(self.stdout)}", f"--- devstack stderr ---\n{_read(self.stderr)}"]
        moto_log = self.state_dir / "moto.log"
        if moto_log.exists():
            parts.append(f"--- moto.log (tail) ---\n{_read(moto_log)[-4000:]}")
        return "\n".join(parts)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        for pid in self.server_pids():  # only if devstack failed to stop its own servers
            os.kill(pid, signal.SIGKILL)


def _distinct_free_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


def _pids_with_args(args: list[str]) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if any(argv[i:i + len(args)] == args for i in range(len(argv))):
            pids.append(int(entry.name))
    return pids


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else "(none)"


@pytest.fixture
def launch(tmp_path):
    """Start a devstack and wait until it serves; every stack is stopped and its output printed
    (pytest shows it when the test fails)."""
    stacks: list[Stack] = []

    def start(backend: str = "secretsmanager", state_dir: Path | None = None) -> Stack:
        stack = Stack(state_dir or tmp_path / f"state-{backend}", backend, tmp_path)
        stacks.append(stack)
        stack.wait_ready()
        return stack

    yield start
    for stack in stacks:
        stack.kill()
        print(stack.output())


@pytest.fixture
def use_stack(monkeypatch):
    """Point this process's AWS clients, tables and key ring at a running stack's moto server."""

    def point_at(stack: Stack) -> None:
        monkeypatch.setenv("AWS_ENDPOINT_URL", stack.moto_url)
        monkeypatch.setenv("KEY_BACKEND", stack.backend)
        monkeypatch.setenv("SECRET_PREFIX", SECRET_PREFIX)
        monkeypatch.setenv("ISSUER", stack.base_url)
        reset_process_state()

    yield point_at
    reset_process_state()


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
