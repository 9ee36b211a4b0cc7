"""A running `make run` stack for integration tests: one `python -m tools.devstack` on free ports.

pynamodb fixed the models' table names when they were imported, so every stack uses this process's
TABLE_PREFIX; pointing AWS_ENDPOINT_URL at a stack's moto server (the `use_stack` fixture) lets a test
read and write exactly what the running server sees.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import TEST_ENV, free_port, reset_process_state
from tests.integration.upstreams import node_upstream  # noqa: F401 (the federation tests' upstream OP)
from tools.devstack import port_in_use
from tools.stage_env import ROOT

READY_TIMEOUT = 60
STOP_TIMEOUT = 20
SECRET_PREFIX = "idp/devstack-test/"
AUDIENCE = "https://api.example.com"


class Stack:
    """One `python -m tools.devstack` in its own process group, with its output in files."""

    def __init__(self, state_dir: Path, backend: str, log_dir: Path, extra_env: dict[str, str] | None = None,
                 host: str = "localhost"):
        """`host` names the stack in its issuer: a second stack of one test (an upstream IdP) on
        127.0.0.1 keeps its cookies apart from the first's, since cookies ignore ports."""
        self.state_dir, self.backend = state_dir, backend
        self.port, self.moto_port, self.demo_port = _distinct_free_ports(3)
        self.base_url = f"http://{host}:{self.port}"
        self.moto_url = f"http://127.0.0.1:{self.moto_port}"
        self.demo_url = f"http://127.0.0.1:{self.demo_port}"
        self.stdout = log_dir / f"devstack-{self.port}.out"
        self.stderr = log_dir / f"devstack-{self.port}.err"
        env = {k: v for k, v in os.environ.items() if k not in TEST_ENV and k != "AWS_ENDPOINT_URL"}
        env.update(PORT=str(self.port), MOTO_PORT=str(self.moto_port), DEMO_PORT=str(self.demo_port),
                   LOCAL_STATE_DIR=str(state_dir),
                   TABLE_PREFIX=TEST_ENV["TABLE_PREFIX"], SECRET_PREFIX=SECRET_PREFIX, KEY_BACKEND=backend,
                   LOG_LEVEL="INFO")
        if host != "localhost":
            env["ISSUER"] = self.base_url
        env.update(extra_env or {})  # e.g. SSL_CERT_FILE, for a stack that must trust a test CA
        with open(self.stdout, "wb") as out, open(self.stderr, "wb") as err:
            self.process = subprocess.Popen([sys.executable, "-m", "tools.devstack"], cwd=ROOT, env=env,
                                            stdin=subprocess.DEVNULL, stdout=out, stderr=err, process_group=0)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"devstack exited with {self.process.returncode} before serving\n{self.output()}")
            # The banner comes once every server (the demo app last) answers.
            if "Local IdP is running" in _read(self.stdout):
                return
            time.sleep(0.2)
        pytest.fail(f"devstack did not start within {READY_TIMEOUT}s\n{self.output()}")

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
        """Processes still running any server, found by the port on their command line."""
        return (_pids_with_args(["-p", str(self.moto_port)]) + _pids_with_args(["--port", str(self.port)])
                + _pids_with_args(["--port", str(self.demo_port)]))

    def is_gone(self) -> bool:
        return not self.server_pids() and not any(port_in_use(p) for p in (self.port, self.moto_port, self.demo_port))

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


@pytest.fixture(scope="session")
def federated(tmp_path_factory):
    """An upstream and a downstream stack of this IdP, panva's OP, and their registrations
    (tests/integration/federation_stacks.py), shared by the federation end-to-end and browser tests."""
    from tests.integration.federation_stacks import federated_stacks

    yield from federated_stacks(tmp_path_factory.mktemp("federation"))


@pytest.fixture(scope="session")
def idp(tmp_path_factory):
    """One running stack (Secrets Manager keys) shared by the end-to-end tests of a session."""
    directory = tmp_path_factory.mktemp("idp")
    stack = Stack(directory / "state", "secretsmanager", directory)
    stack.wait_ready()
    yield stack
    stack.kill()
    print(stack.output())
