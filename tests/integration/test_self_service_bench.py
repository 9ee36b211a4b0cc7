"""`make bench`'s self-service table (bench/self_service.py, issue 12) in small, so its paths cannot
rot: every path's input is still made and its request still answers 200/302 (bench/request_cpu.py's
`measure` asserts it), with the DynamoDB calls, SES sends and argon2id the table reports. Each run in
its own interpreter: the benches set the environment and patch the app, neither of which belongs in
this process."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tools.stage_env import ROOT

pytestmark = pytest.mark.integration

#: SES SendEmail calls per path: the one email each sends (the "someone tried to sign up with your
#: address" one for a verified address, the "password changed" notice after a reset or a change),
#: and none where nothing is mailed (an unknown address asking for a reset gets the same page, no mail).
EMAILS = {"GET /signup": 0, "POST /signup (new address)": 1, "POST /signup (existing verified address)": 1,
          "GET /verify-email": 0, "POST /verify-email (same browser)": 0, "POST /forgot-password (known address)": 1,
          "POST /forgot-password (unknown address)": 0, "GET /reset-password": 0, "POST /reset-password": 1,
          "POST /account/login": 0, "GET /account": 0, "POST /account/profile": 0, "POST /account/password": 1}


def _run(*args: str, timeout: int) -> str:
    run = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout


def test_every_self_service_path_runs_with_its_calls_emails_and_argon2id():
    from bench.self_service import HASHES

    result = json.loads(_run("bench/dynamodb_calls.py", "--json", timeout=120).splitlines()[-1])["self_service"]

    assert set(result) == set(EMAILS)
    assert {label: row["emails"] for label, row in result.items()} == EMAILS
    assert {label for label, row in result.items() if row["argon2id"]} == set(HASHES)
    for label, row in result.items():
        assert sum(row["warm"].values()) > 0, label  # every one of them reads or writes DynamoDB


def test_make_bench_prints_the_self_service_table():
    # One measured run per path, no cold start, no second-factor, federation or delegation table
    # (tests/integration/test_second_factor_bench.py...): request_cpu.py's own loop against a moto server.
    out = _run("bench/request_cpu.py", "1", "0", "1", "0", "0", "0", timeout=300)
    table = out.split("issue 12 self-service paths", 1)[1]
    for label in EMAILS:
        assert f"\n{label} " in table, label
