"""`chalice local`, with the local gateway taught API Gateway's greedy `{proxy+}` matching.

    python -m tools.chalice_local local --stage local --host 127.0.0.1 --port 8000

Arguments are chalice's own (`chalice local --help`); the project directory is always the repo root.
Note that chalice applies the stage's environment_variables from .chalice/config.json over the
process environment, so the local stage sets only STAGE and leaves the rest to tools/devstack.py.
"""
from __future__ import annotations

import subprocess
import sys

from chalice import cli
from chalice.cli import reloader

from tools import chalice_compat
from tools.stage_env import ROOT


def _respawn_this_module(args: list[str]):
    # With --autoreload (chalice's default), the parent process re-executes sys.argv as its worker.
    # sys.argv[0] is not a program here, so run this module again instead (patch included).
    def popen(_argv, **kwargs):
        return subprocess.Popen([sys.executable, "-m", "tools.chalice_local", *args], **kwargs)

    return lambda env: reloader.ParentProcess(env, popen).main()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    chalice_compat.install()
    reloader.start_parent_process = _respawn_this_module(args)
    # chalice.cli.main() parses sys.argv, like the `chalice` console script does.
    sys.argv = ["chalice", "--project-dir", str(ROOT), *args]
    return cli.main()


if __name__ == "__main__":
    sys.exit(main())
