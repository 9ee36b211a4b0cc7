"""Items of several tables in one BatchGetItem (chalicelib/storage/reads.py)."""
from __future__ import annotations

import json
from types import SimpleNamespace


def test_items_of_several_tables_come_back_in_the_order_asked_with_none_for_the_missing(aws):
    from chalicelib.storage.models import EmailClaimModel, UserModel
    from chalicelib.storage.reads import consistent_batch_get
    from chalicelib.storage.users import create_user

    user = create_user("alice@example.com", "correct horse battery")
    # The claim and the user share the users table; the missing key is read like any other.
    found = consistent_batch_get([(UserModel, "nobody#"), (EmailClaimModel, "email#alice@example.com"),
                                  (UserModel, user.pk)])
    assert found[0] is None
    assert isinstance(found[1], EmailClaimModel) and found[1].sub == user.pk
    assert isinstance(found[2], UserModel) and found[2].email == "alice@example.com"


def test_keys_dynamodb_leaves_unprocessed_are_asked_again(aws):
    """BatchGetItem may answer part of a request (a throttled table): the rest is read again."""
    from chalicelib import aws as aws_clients
    from chalicelib.storage.models import EmailClaimModel, UserModel
    from chalicelib.storage.reads import consistent_batch_get
    from chalicelib.storage.users import create_user

    user = create_user("alice@example.com", "correct horse battery")
    sent = []

    def nothing_processed_the_first_time(params, **_):
        request = json.loads(params["body"])["RequestItems"]
        sent.append(request)
        if len(sent) > 1:
            return None  # send it for real
        assert all(table["ConsistentRead"] for table in request.values())
        return SimpleNamespace(status_code=200, headers={}), {"Responses": {}, "UnprocessedKeys": request,
                                                                "ResponseMetadata": {"HTTPStatusCode": 200}}

    events = aws_clients.client("dynamodb").meta.events
    events.register("before-call.dynamodb.BatchGetItem", nothing_processed_the_first_time)
    try:
        claim, found = consistent_batch_get([(EmailClaimModel, "email#alice@example.com"), (UserModel, user.pk)])
    finally:
        events.unregister("before-call.dynamodb.BatchGetItem", nothing_processed_the_first_time)
    assert len(sent) == 2 and sent[0] == sent[1]
    assert claim.sub == found.pk == user.pk
