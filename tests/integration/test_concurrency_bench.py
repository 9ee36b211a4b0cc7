"""`make bench-load` in small (bench/concurrency.py): 8 workers for 5 seconds mixing every token path
against a moto server, then the tables prove that no code was redeemed twice and no refresh family
forked. Run in its own interpreter: the bench sets the environment and makes Chalice keep the
current request per thread, neither of which belongs in this process."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tools.stage_env import ROOT

pytestmark = pytest.mark.integration


def test_a_short_concurrency_run_loses_nothing_and_spends_nothing_twice():
    run = subprocess.run([sys.executable, "bench/concurrency.py", "--duration", "5", "--workers", "8", "--json"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode in (0, 1), run.stderr
    result = json.loads(run.stdout.splitlines()[-1])

    assert result["problems"] == []
    assert run.returncode == 0
    checked = result["checked"]
    assert checked["codes redeemed"] > 0 and checked["rotations"] > 0  # the run did the work it checks
    assert {"sign-in", "redeem code", "refresh", "client_credentials", "introspect"} <= set(result["kinds"])
    for kind, row in result["kinds"].items():
        assert all(int(status) < 500 for status in row["statuses"]), (kind, row["statuses"])
