"""The queue of back-channel logout notifications: the only code that talks to SQS.

OpenID Connect Back-Channel Logout 1.0 has the OP POST a logout token to every relying party that
holds a session ended at the OP. Those RPs are other people's servers: slow, down, or gone. So a
sign-out never waits for them: the request path puts one message on this queue
(chalicelib/oauth/backchannel_logout.py says what it holds) and a function of its own
(chalicelib/blueprints/logout_delivery.py) does the rest, with SQS redelivering what failed
(the deployed queue's redrive policy moves a message that kept failing to a dead-letter queue:
infra/template.py).

Messages are JSON objects; this module neither knows nor checks what they mean.
"""
from __future__ import annotations

import json

from . import caches
from .config import Settings
from .errors import LogoutQueueRefused

#: The queue's name after TABLE_PREFIX, when LOGOUT_QUEUE_URL does not name it.
QUEUE_SUFFIX = "-logout"
#: SendMessageBatch takes at most this many messages.
BATCH = 10

#: The queue URL looked up by name (the local stack), per container.
_urls: dict[str, str] = {}
caches.register("logout_queue.urls", _urls.clear)


def queue_name(settings: Settings) -> str:
    return f"{settings.table_prefix}{QUEUE_SUFFIX}"


def queue_url(settings: Settings) -> str:
    """LOGOUT_QUEUE_URL, else the URL of the queue `<TABLE_PREFIX>-logout` (one GetQueueUrl per container)."""
    from .aws import client

    if settings.logout_queue_url:
        return settings.logout_queue_url
    name = queue_name(settings)
    if name not in _urls:
        _urls[name] = client("sqs").get_queue_url(QueueName=name)["QueueUrl"]
    return _urls[name]


def send(message: dict, settings: Settings) -> None:
    """Put one message on the queue: one SendMessage (plus the URL lookup on a cold local container)."""
    from .aws import client

    client("sqs").send_message(QueueUrl=queue_url(settings), MessageBody=_body(message))


def send_all(messages: list[dict], settings: Settings) -> None:
    """Put every message on the queue, BATCH per SendMessageBatch. Raises errors.LogoutQueueRefused when SQS
    refused any of them (after the others went): the caller's own message is then redelivered and
    sends them all again, which is harmless (a relying party may get a logout token twice)."""
    from .aws import client

    sqs = client("sqs")
    for start in range(0, len(messages), BATCH):
        chunk = messages[start:start + BATCH]
        answer = sqs.send_message_batch(QueueUrl=queue_url(settings), Entries=[
            {"Id": str(index), "MessageBody": _body(message)} for index, message in enumerate(chunk)])
        if answer.get("Failed"):
            raise LogoutQueueRefused(f"SQS refused {len(answer['Failed'])} of {len(chunk)} messages: "
                               f"{answer['Failed'][0].get('Code')}")


def _body(message: dict) -> str:
    return json.dumps(message, separators=(",", ":"), sort_keys=True)


# The local stack (tools/devstack.py) and tests -------------------------------------------------------

def ensure_queue(settings: Settings, *, visibility_timeout: int = 30) -> str:
    """Create the queue `<TABLE_PREFIX>-logout` if it is missing, with this visibility timeout; its
    URL. The deployed stack creates its own (infra/template.py)."""
    from .aws import client

    sqs, attributes = client("sqs"), {"VisibilityTimeout": str(visibility_timeout)}
    try:
        url = sqs.create_queue(QueueName=queue_name(settings), Attributes=attributes)["QueueUrl"]
    except sqs.exceptions.QueueNameExists:  # made before with other attributes: take these
        url = sqs.get_queue_url(QueueName=queue_name(settings))["QueueUrl"]
        sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    _urls[queue_name(settings)] = url
    return url


def receive(settings: Settings, *, wait_seconds: int = 1, max_messages: int = 10) -> list[tuple[str, dict]]:
    """(receipt handle, message) of the messages now visible: what Lambda's event source mapping does
    in AWS, for the local stack's poller."""
    from .aws import client

    answer = client("sqs").receive_message(QueueUrl=queue_url(settings), MaxNumberOfMessages=max_messages,
                                           WaitTimeSeconds=wait_seconds)
    return [(m["ReceiptHandle"], json.loads(m["Body"])) for m in answer.get("Messages", ())]


def delete(receipt: str, settings: Settings) -> None:
    """The message was handled: it must not come back."""
    from .aws import client

    client("sqs").delete_message(QueueUrl=queue_url(settings), ReceiptHandle=receipt)
