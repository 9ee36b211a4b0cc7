"""AWS access for the whole container: one botocore session and one client per service.

Building a client parses the service's model (tens of milliseconds, and a botocore session of its
own would parse the shared endpoint and partition data again), so the container builds one session
and, from it, one client per service, and everything shares them: the key backends, table bootstrap
and every pynamodb model (chalicelib/storage/connection.py). botocore clients are thread-safe once
built; building them is not, hence the lock. Endpoints are never hard-coded: botocore honours
AWS_ENDPOINT_URL (set locally to the moto server), so the same code talks to real AWS in production.
"""
from __future__ import annotations

import contextvars
import threading
import time

from . import caches
from .config import region
from .errors import DeadlineExceeded

# The time budget of a request's AWS calls. The function times out after 10 s (.chalice/config.json
# lambda_timeout), API Gateway after 29 s; a request cut off by either gets a bare 502/504 and no
# Retry-After, so every request must answer (with a 503 if need be, chalicelib/faults.py) well
# inside 10 s:
#   - an attempt takes at most CONNECT_TIMEOUT_SECONDS + READ_TIMEOUT_SECONDS = 6 s (botocore's
#     defaults, 60 s each, would outlast the function on a single stuck connection);
#   - botocore retries (standard mode: backoff with jitter on throttling and transient errors, and a
#     retry quota that stops retrying a failing service) up to TOTAL_MAX_ATTEMPTS per call;
#   - no attempt, first or retried, starts once the request has run AWS_DEADLINE_SECONDS (3 by
#     default; `_check_deadline`): the request answers 503 instead.
# So the last attempt starts by 3 s and ends by 3 + 6 = 9 s, whatever the number of calls, leaving
# about a second for CPU after it (argon2id at sign-in runs before the writes that follow it). A
# healthy DynamoDB, KMS or Secrets Manager call takes milliseconds; the numbers only bound the bad
# case. Outside a request (admin CLI, key rotation) there is no deadline: only the per-attempt bound.
CONNECT_TIMEOUT_SECONDS = 1
READ_TIMEOUT_SECONDS = 5
TOTAL_MAX_ATTEMPTS = 3

#: When the current request stops starting AWS attempts (time.monotonic()); None outside requests.
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("aws_deadline", default=None)

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
                found = botocore_session.create_client(service, region_name=region(), config=_config(service))
                # before-send: once per attempt, retries included (before-call would see only the first).
                found.meta.events.register("before-send", _check_deadline)
                _state[service] = found
    return found


def start_deadline() -> contextvars.Token:
    """Begin a request's budget (chalicelib/web.py): AWS attempts after AWS_DEADLINE_SECONDS fail
    (none when it is 0)."""
    from .config import settings

    seconds = settings().aws_deadline_seconds
    return _deadline.set(time.monotonic() + seconds if seconds else None)


def end_deadline(token: contextvars.Token) -> None:
    _deadline.reset(token)


def _check_deadline(**_) -> None:
    """Refuse to start an attempt past the request's deadline. Raised from before-send, which
    botocore does not retry: the call fails at once with DeadlineExceeded, a dependency fault."""
    deadline = _deadline.get()
    if deadline is not None and time.monotonic() > deadline:
        raise DeadlineExceeded("no AWS attempt starts past the request's deadline (AWS_DEADLINE_SECONDS)")


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
