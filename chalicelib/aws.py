"""AWS access for the whole container: one botocore session and one client per service.

Building a client parses the service's model (tens of milliseconds, and a botocore session of its
own would parse the shared endpoint and partition data again), so the container builds one session
and, from it, one client per service, and everything shares them: the key backends, table bootstrap
and every pynamodb model (chalicelib/storage/connection.py). botocore clients are thread-safe once
built; building them is not, hence the lock. Endpoints are never hard-coded: botocore honours
AWS_ENDPOINT_URL (set locally to the moto server), so the same code talks to real AWS in production.
"""
from __future__ import annotations

import threading

from . import caches
from .config import region

#: A Lambda request has a hard deadline of its own: fail fast rather than botocore's 60 s defaults.
CONNECT_TIMEOUT_SECONDS = 2
READ_TIMEOUT_SECONDS = 5
#: botocore's "standard" retry mode: exponential backoff with jitter on throttling and transient
#: errors, and a retry quota that stops retrying when a service is failing. 4 attempts = 3 retries.
TOTAL_MAX_ATTEMPTS = 4

_lock = threading.Lock()
#: The session (key None) and one client per service name: one dict, so one clear forgets both.
_state: dict = {}


def session():
    """The container's botocore session (credentials, region and endpoint resolution)."""
    found = _state.get(None)
    if found is None:
        with _lock:
            found = _state.get(None)
            if found is None:
                from botocore.session import get_session

                found = _state[None] = get_session()
    return found


def client(service: str):
    """The container's client for `service` ("dynamodb", "secretsmanager", "kms")."""
    found = _state.get(service)
    if found is None:
        botocore_session = session()
        with _lock:
            found = _state.get(service)
            if found is None:
                found = _state[service] = botocore_session.create_client(
                    service, region_name=region(), config=_config(service))
    return found


def _config(service: str):
    from botocore.config import Config

    return Config(connect_timeout=CONNECT_TIMEOUT_SECONDS, read_timeout=READ_TIMEOUT_SECONDS,
                  retries={"mode": "standard", "total_max_attempts": TOTAL_MAX_ATTEMPTS},
                  # pynamodb has always turned botocore's request validation off for DynamoDB: its
                  # requests are built by code, and validating each costs CPU on every call.
                  parameter_validation=service != "dynamodb",
                  user_agent=_user_agent())


def _user_agent() -> str:
    """A fixed User-Agent. Without one, botocore 1.3x+ rebuilds its structured User-Agent (SDK,
    OS, feature and config metadata, each component sanitised) twice per request: about a tenth of
    a warm refresh's CPU. The fixed string only drops the SDK's usage metrics."""
    import platform

    import botocore

    return f"serverless-idp botocore/{botocore.__version__} Python/{platform.python_version()}"


def reset_clients() -> None:
    """Forget the session and its clients, so the next call re-reads AWS_ENDPOINT_URL and the
    credentials (tests switching moto servers)."""
    with _lock:
        _state.clear()


caches.register("aws.session_and_clients", _state.clear, kind="connection")
