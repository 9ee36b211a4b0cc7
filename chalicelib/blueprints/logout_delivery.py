"""Back-channel logout delivery: a Lambda function fed by the logout queue (SQS), with its own IAM role.

All the logic is chalicelib/oauth/backchannel_logout.py (`handle`); the local stack's poller
(tools/devstack.py) feeds the same function the same messages. One message per invocation
(batch size 1): a message that raises goes back to the queue alone, and SQS delivers it again after
the queue's visibility timeout, up to its redrive limit (then the dead-letter queue): one relying
party that fails is retried without holding up, or re-sending to, any other.

The queue ARN named here is a placeholder for `chalice package` (a string, which the merge template
replaces outright; a queue name would become an Fn::Sub that the merge would mix with ours):
infra/template.py points the event source at the stage's own queue.
"""
from __future__ import annotations

import json

from chalice import Blueprint

bp = Blueprint(__name__)

#: Chalice needs a queue at packaging time; the stage's queue replaces it (infra/template.py).
PLACEHOLDER_QUEUE_ARN = "arn:aws:sqs:us-east-1:000000000000:replaced-by-infra-template"


@bp.on_sqs_message(queue_arn=PLACEHOLDER_QUEUE_ARN, batch_size=1, name="deliver_logout")
def deliver_logout(event) -> None:
    from ..config import settings
    from ..oauth.backchannel_logout import handle

    for record in event:
        handle(json.loads(record.body), settings())
