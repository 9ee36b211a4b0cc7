"""Structured JSON logs, one object per line, each carrying the request id.

CloudWatch Logs Insights parses JSON lines natively, so operators can filter on `request_id`,
`event` or `error` without regexes.
"""
from __future__ import annotations

import contextvars
import json
import logging
import sys
import time

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": request_id.get(),
        }
        # Anything passed as logging's `extra=` becomes a top-level field.
        entry.update({k: v for k, v in vars(record).items() if k not in _RESERVED})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


_configured = False


def get_logger(name: str) -> logging.Logger:
    global _configured
    if not _configured:
        _configure()
        _configured = True
    return logging.getLogger(name)


def _configure() -> None:
    import os

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("idp")
    root.handlers[:] = [handler]
    root.setLevel(os.environ.get("LOG_LEVEL", "INFO").upper())
    root.propagate = False
    # The SDKs log routine INFO lines (credential discovery, settings files) on every cold start;
    # on CloudWatch that is cost and noise, so only their warnings pass.
    for noisy in ("botocore", "boto3", "pynamodb", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def now() -> int:
    """Seconds since the epoch; the one clock the code reads (tests patch it here)."""
    return int(time.time())
