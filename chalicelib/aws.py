"""AWS clients, created lazily and once per container.

boto3 is imported only when a client is first needed, keeping `import app` cheap on cold start.
Endpoints are never hard-coded: botocore honours AWS_ENDPOINT_URL (set locally to the moto
server), so the same code talks to real AWS in production.
"""
from __future__ import annotations

import functools

from .config import region


@functools.lru_cache(maxsize=None)
def client(service: str):
    import boto3
    from botocore.config import Config

    # Short timeouts and standard retries: a Lambda request has a hard deadline of its own.
    config = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})
    return boto3.session.Session().client(service, region_name=region(), config=config)


def reset_clients() -> None:
    """Forget cached clients (tests switch endpoints between moto servers)."""
    client.cache_clear()
