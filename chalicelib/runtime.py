"""The container's life on Lambda: what init builds, and what a SnapStart restore must make unique again.

On Lambda (AWS_LAMBDA_INITIALIZATION_TYPE is set), `import app` runs `prepare()`: the settings are
validated (a bad setting fails the init, loudly, not the first user's request) and what every
request path needs is built once: the botocore session, the DynamoDB client and the key backend's
client (chalicelib/aws.py), every pynamodb model's connection. Doing it at init costs a fresh
container nothing extra: the first request would have built the same.

With SnapStart (initialization type "snap-start") init runs once, when a version is published, and
Lambda resumes every new container from a snapshot of it. Init is then free for the containers, so
it also imports every module of chalicelib and compiles the hosted pages' templates. No AWS call is
made at init: a connection opened then would be stale in every restored container.

What a restored container shares with every other one, and why that is safe, is in docs/deploy.md
("SnapStart: what survives a restore"). `after_restore()` undoes the rest; Lambda runs it through
the runtime hook of the `snapshot_restore_py` library, which the Lambda Python runtimes include
(it is not a dependency here; without it, as locally, nothing is registered).
"""
from __future__ import annotations

import os
import random

#: Set by Lambda in every execution environment: "on-demand", "provisioned-concurrency" or "snap-start".
INITIALIZATION_TYPE = "AWS_LAMBDA_INITIALIZATION_TYPE"


def on_lambda() -> bool:
    return bool(os.environ.get(INITIALIZATION_TYPE))


def prepare() -> None:
    """Build what every request needs (called at init on Lambda; see the module docstring)."""
    from . import aws
    from .config import settings
    from . import storage

    backend = settings().key_backend
    aws.client("dynamodb")
    aws.client("secretsmanager" if backend == "secretsmanager" else "kms")
    storage.prepare()
    if os.environ.get(INITIALIZATION_TYPE) == "snap-start":
        _import_everything()


def _import_everything() -> None:
    """Import every chalicelib module (views import theirs lazily) and compile every page template."""
    import importlib
    import pkgutil  # only here: an on-demand init needs neither

    import chalicelib

    for module in pkgutil.walk_packages(chalicelib.__path__, "chalicelib."):
        importlib.import_module(module.name)
    from .pages import compile_templates

    compile_templates()


def after_restore() -> None:
    """Run in each container resumed from a SnapStart snapshot, before its first request.

    - Python's `random`: the IdP draws every secret from `secrets`/os.urandom, which the kernel
      keeps unique per restored VM, but botocore's retry backoff jitters with `random`; seeded
      alike in every restored container, their retries would fall in step. Re-seeded from os.urandom.
    - Per-container data caches (chalicelib/caches.py, kind "data": settings, current signing key,
      clients, resources): their ages are measured with time.monotonic(), which does not count the
      time a snapshot spent on the shelf, and the key may have rotated since. Emptied; the next
      request reads them again. Connections (kind "connection") stay: they hold no state to renew.
    """
    from . import caches

    random.seed()
    caches.clear_all(("data",))


def register_hooks() -> bool:
    """Register `after_restore` with Lambda's SnapStart runtime hooks; False where there are none."""
    try:
        from snapshot_restore_py import register_after_restore
    except ImportError:  # not on Lambda: nothing is ever restored
        return False
    register_after_restore(after_restore)
    return True


def initialize() -> None:
    """What `import app` does for the container: on Lambda, prepare and register the restore hook."""
    if on_lambda():
        prepare()
        register_hooks()
