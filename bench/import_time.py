"""Cold-start cost: `import app` in a fresh interpreter versus a bare `import boto3`.

Each figure is the median wall time of N fresh interpreters (python -c ...), minus the median of
an interpreter that imports nothing, so only the import itself is measured.
Run: make bench   (or .venv/bin/python bench/import_time.py [N])
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "ISSUER": "https://login.example.com", "STAGE": "prod", "PYTHONDONTWRITEBYTECODE": "1"}


def median_seconds(code: str, runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=ENV, check=True)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    # Warm the bytecode cache and the OS page cache once, as a Lambda container image would be.
    subprocess.run([sys.executable, "-c", "import app, boto3"], cwd=ROOT, env=ENV, check=True)
    baseline = median_seconds("pass", runs)
    for label, code in (("import boto3", "import boto3"), ("import app", "import app")):
        print(f"{label:14s} {1000 * (median_seconds(code, runs) - baseline):7.1f} ms  (median of {runs}, "
              f"interpreter start-up of {1000 * baseline:.1f} ms subtracted)")
    modules = subprocess.run([sys.executable, "-c", "import app, sys; print(len(sys.modules))"], cwd=ROOT, env=ENV,
                             check=True, capture_output=True, text=True).stdout.strip()
    print(f"modules loaded by `import app`: {modules}")


if __name__ == "__main__":
    main()
