"""DynamoDB transactions are idempotent under SDK retries (ClientRequestToken)."""
from __future__ import annotations


def test_every_transaction_carries_its_own_client_request_token(aws):
    """botocore retries a transaction whose response was lost with the same parameters; without a
    token, the retry of one that succeeded fails on its own "does not exist" conditions."""
    from chalicelib import aws as aws_clients
    from chalicelib.storage.models import ResourceModel, transact_write

    sent = []
    events = aws_clients.client("dynamodb").meta.events
    record = lambda params, **_: sent.append(params.get("ClientRequestToken"))  # noqa: E731
    events.register("provide-client-params.dynamodb.TransactWriteItems", record)
    try:
        for n in range(2):
            with transact_write() as tx:
                tx.save(ResourceModel(resource=f"https://api{n}.example.com", name="API", created_at=0),
                        condition=ResourceModel.resource.does_not_exist())
    finally:
        events.unregister("provide-client-params.dynamodb.TransactWriteItems", record)
    assert len(sent) == 2 and all(sent) and sent[0] != sent[1]
