"""The local stack's stand-in for the logout queue's Lambda event source mapping (`make run`).

    python -m tools.logout_poller        (env: the local stage's settings, AWS_ENDPOINT_URL: moto)

In AWS, SQS invokes the `deliver_logout` function (chalicelib/blueprints/logout_delivery.py) with
each message and redelivers one that raised after the queue's visibility timeout. Here this loop
receives the messages from the moto server's queue and hands each to the same function
(chalicelib/oauth/backchannel_logout.handle): handled, the message is deleted; raised, it is left
to come back after the visibility timeout (tools/devstack.py creates the queue with a short one).
Development only, never deployed.
"""
from __future__ import annotations

import time

from chalicelib.log import get_logger

log = get_logger("idp.logout_poller")


def poll_once(settings, *, wait_seconds: int = 1) -> tuple[int, int]:
    """Receive what is visible now and handle each message: (handled, failed)."""
    from chalicelib import logout_queue
    from chalicelib.oauth.backchannel_logout import handle

    handled = failed = 0
    for receipt, message in logout_queue.receive(settings, wait_seconds=wait_seconds):
        try:
            handle(message, settings)
        except Exception as exc:  # noqa: BLE001 - as in Lambda: the message comes back later
            failed += 1
            log.warning("logout message failed; it comes back after the visibility timeout",
                        extra={"kind": message.get("kind"), "fault": repr(exc)[:300]})
            continue
        logout_queue.delete(receipt, settings)
        handled += 1
    return handled, failed


def main() -> int:
    from chalicelib.config import settings

    while True:
        try:
            # Long polls shorter than the shared client's read timeout (chalicelib/aws.py, 5 s): an
            # empty queue answers after wait_seconds, which must not look like a dead server.
            poll_once(settings(), wait_seconds=2)
        except Exception as exc:  # noqa: BLE001 - the moto server restarting: try again shortly
            log.warning("logout queue not reachable", extra={"fault": repr(exc)[:300]})
            time.sleep(2)


if __name__ == "__main__":
    raise SystemExit(main())
