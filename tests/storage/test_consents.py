"""Remembered consents and the per-user list that lets the account page find them without a Scan."""
from __future__ import annotations


def test_remembering_lists_the_client_and_forgetting_takes_it_off(aws, public_client):
    from chalicelib.storage import consents

    consents.remember("u_a", public_client.client_id, {"openid https://api"})
    consents.remember("u_a", "https://app.example.com/client.json", {"openid https://api"})
    consents.remember("u_b", public_client.client_id, {"email https://api"})
    listed = {c.client_id: c for c in consents.list_of("u_a", ["grant-only-client"])}
    assert set(listed) == {public_client.client_id, "https://app.example.com/client.json", "grant-only-client"}
    assert listed[public_client.client_id].client_name == "Notes App"
    assert listed[public_client.client_id].pairs == {"openid https://api"}
    assert listed["https://app.example.com/client.json"].client_name is None
    assert listed["grant-only-client"].pairs == frozenset()

    consents.forget("u_a", public_client.client_id)
    assert consents.client_ids("u_a") == ["https://app.example.com/client.json"]
    assert consents.forget_all("u_a") == 1 and consents.client_ids("u_a") == [] and consents.list_of("u_a") == []
    assert consents.client_ids("u_b") == [public_client.client_id], "another user's consents stay"


def test_a_conflicting_consent_of_the_same_user_is_retried(aws, monkeypatch):
    from types import SimpleNamespace

    from chalicelib import aws as aws_clients
    from chalicelib.storage import consents

    conflicts = []

    def conflict_once(**_):
        if conflicts:
            return None
        conflicts.append(1)
        return SimpleNamespace(status_code=400, headers={}), {
            "Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
            "CancellationReasons": [{"Code": "None"}, {"Code": "TransactionConflict"}],
            "ResponseMetadata": {"HTTPStatusCode": 400}}

    events = aws_clients.client("dynamodb").meta.events
    events.register("before-call.dynamodb.TransactWriteItems", conflict_once)
    try:
        consents.remember("u_a", "client-1", {"openid https://api"})
    finally:
        events.unregister("before-call.dynamodb.TransactWriteItems", conflict_once)
    assert conflicts and consents.client_ids("u_a") == ["client-1"]
