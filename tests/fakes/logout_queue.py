"""An in-memory twin of chalicelib/logout_queue.py for route tests: what a request puts on the logout
queue, without SQS. `install(monkeypatch)` swaps `send` and `send_all`; `failing=True` makes every
send raise as SQS would when it is down."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FakeQueue:
    messages: list = field(default_factory=list)
    failing: bool = False

    def send(self, message, settings):
        if self.failing:
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "InternalFailure", "Message": "down"},
                               "ResponseMetadata": {"HTTPStatusCode": 500}}, "SendMessage")
        self.messages.append(message)

    def send_all(self, messages, settings):
        for message in messages:
            self.send(message, settings)

    def take(self) -> list:
        taken, self.messages = self.messages, []
        return taken


def install(monkeypatch) -> FakeQueue:
    from chalicelib import logout_queue

    queue = FakeQueue()
    monkeypatch.setattr(logout_queue, "send", queue.send)
    monkeypatch.setattr(logout_queue, "send_all", queue.send_all)
    return queue
