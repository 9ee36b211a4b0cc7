"""The environment a stage runs with, for tools that run outside Lambda (devstack, admin CLI).

Lambda gets its environment from .chalice/config.json; the tools read the same file so that the
admin CLI talks to exactly the tables and keys the deployed stage uses. For the local stage,
values that depend on the machine (ports, endpoint, issuer) are filled in here, and anything
already exported in the shell wins, so `PORT=9000 make run` or `KEY_BACKEND=kms make run` work.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / ".chalice" / "config.json"

#: Where `make run` keeps its state (moto's request recording). `make reset-local` deletes it.
DEFAULT_STATE_DIR = ROOT / ".local"


#: The local stack's symmetric KMS key for KEY_BACKEND=kms-envelope (tools/devstack.py creates it).
LOCAL_ENVELOPE_KEY = "alias/idp-local-signing-keys"


def chalice_stage_env(stage: str) -> dict[str, str]:
    config = json.loads(CONFIG.read_text())
    if stage not in config["stages"]:
        raise SystemExit(f"unknown stage {stage!r}; .chalice/config.json has {sorted(config['stages'])}")
    return {**config.get("environment_variables", {}), **config["stages"][stage].get("environment_variables", {})}


def local_state_dir(environ=None) -> Path:
    """LOCAL_STATE_DIR, else .local/ in the checkout; absolute, so every tool finds the same one."""
    environ = os.environ if environ is None else environ
    return Path(environ.get("LOCAL_STATE_DIR") or DEFAULT_STATE_DIR).resolve()


def local_defaults(environ=None) -> dict[str, str]:
    environ = os.environ if environ is None else environ
    port = environ.get("PORT", "8000")
    moto_port = environ.get("MOTO_PORT", "4566")
    return {
        "PORT": port,
        "MOTO_PORT": moto_port,
        # Every email the local stack sends is also kept here (chalicelib/mail.py), for
        # `./idp-admin outbox list|show` and the demo app: nothing leaves the machine.
        "OUTBOX_DIR": str(local_state_dir(environ) / "outbox"),
        "ISSUER": f"http://localhost:{port}",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{moto_port}",
        # moto accepts any credentials; these keep boto3 from searching for real ones.
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        # Used with KEY_BACKEND=kms-envelope: the devstack's bootstrap creates the key behind it.
        "ENVELOPE_KMS_KEY_ID": LOCAL_ENVELOPE_KEY,
    }


def stage_environment(stage: str, environ=None) -> dict[str, str]:
    """The full environment for `stage`: config.json values, local defaults, then the shell's."""
    environ = dict(os.environ if environ is None else environ)
    env = chalice_stage_env(stage)
    if stage == "local":
        env = {**local_defaults(environ), **env}
        # The shell overrides everything but STAGE for the local stack.
        env.update({k: v for k, v in environ.items() if k in _LOCAL_OVERRIDABLE})
    return {**environ, **env}


_LOCAL_OVERRIDABLE = {
    "PORT", "MOTO_PORT", "ISSUER", "AWS_ENDPOINT_URL", "TABLE_PREFIX", "SECRET_PREFIX", "KEY_BACKEND",
    "SIGNING_ALG", "JWKS_MAX_AGE", "KEY_RETIRE_AFTER", "KEY_CACHE_SECONDS", "LOG_LEVEL", "OUTBOX_DIR",
}
