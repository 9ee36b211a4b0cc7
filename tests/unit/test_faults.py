"""Which failures answer 503 (chalicelib/faults.py), and the request deadline of AWS calls (chalicelib/aws.py)."""
from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError
from pynamodb.exceptions import CancellationReason, TransactWriteError, UpdateError, VerboseClientError

from chalicelib import aws, faults
from chalicelib.errors import DeadlineExceeded, StorageIncomplete


def client_error(code: str, status: int = 400, operation: str = "UpdateItem") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       operation)


def cancelled(*reasons: str | None) -> TransactWriteError:
    cause = VerboseClientError({"Error": {"Code": "TransactionCanceledException", "Message": "cancelled"}},
                               "TransactWriteItems", {},
                               cancellation_reasons=[CancellationReason(code=r) if r else None for r in reasons])
    return TransactWriteError("Failed to write transaction items", cause)


@pytest.mark.parametrize("exc", [
    UpdateError("Failed to update item", client_error("ProvisionedThroughputExceededException")),
    client_error("ThrottlingException", operation="Sign"),
    client_error("RequestLimitExceeded"),
    client_error("InternalServerError", 500),
    client_error("KMSInternalException", 500, "Sign"),
    client_error("InternalServiceError", 500, "GetSecretValue"),
    client_error("SomethingNew", 503),
    cancelled("ThrottlingError", None),
    cancelled(None, "TransactionConflict"),
    ReadTimeoutError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com/"),
    ConnectTimeoutError(endpoint_url="https://kms.us-east-1.amazonaws.com/"),
    EndpointConnectionError(endpoint_url="https://secretsmanager.us-east-1.amazonaws.com/"),
    DeadlineExceeded("spent"),
    StorageIncomplete("unprocessed keys"),
], ids=repr)
def test_a_dependency_fault_is_a_503_with_retry_after(exc):
    answer = faults.unavailable(exc)
    status, body, headers = answer.to_response()
    assert (status, answer.error, headers["Retry-After"]) == (503, "temporarily_unavailable", "2")
    assert headers["Cache-Control"] == "no-store"


def test_a_fault_re_raised_by_our_code_is_still_found_through_the_exception_chain():
    try:
        try:
            raise ReadTimeoutError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com/")
        except ReadTimeoutError as exc:
            raise RuntimeError("while redeeming") from exc
    except RuntimeError as exc:
        assert faults.classify(exc) == "network:ReadTimeoutError"


@pytest.mark.parametrize("exc", [
    UpdateError("Failed to update item", client_error("ConditionalCheckFailedException")),
    cancelled("ConditionalCheckFailed", None),
    cancelled("ThrottlingError", "ConditionalCheckFailed"),
    client_error("ValidationException"),
    client_error("AccessDeniedException", operation="Sign"),
    KeyError("bug"),
], ids=repr)
def test_refusals_and_our_own_bugs_are_not_dependency_faults(exc):
    assert faults.classify(exc) is None


def test_no_aws_attempt_starts_after_the_request_deadline(monkeypatch):
    from chalicelib.config import settings

    clock = [100.0]
    monkeypatch.setattr(aws.time, "monotonic", lambda: clock[0])
    token = aws.start_deadline()
    try:
        aws._check_deadline()
        clock[0] += settings().aws_deadline_seconds + 0.01
        with pytest.raises(DeadlineExceeded):
            aws._check_deadline()
    finally:
        aws.end_deadline(token)
    aws._check_deadline()  # outside a request (admin CLI, rotation): no deadline


def test_a_deadline_of_zero_is_none(monkeypatch):
    """The local stage turns it off: no Lambda timeout applies there, and a loaded moto server is slow."""
    from chalicelib.config import settings

    clock = [100.0]
    monkeypatch.setattr(aws.time, "monotonic", lambda: clock[0])
    monkeypatch.setenv("AWS_DEADLINE_SECONDS", "0")
    settings.cache_clear()
    token = aws.start_deadline()
    try:
        clock[0] += 60
        aws._check_deadline()
    finally:
        aws.end_deadline(token)
        monkeypatch.delenv("AWS_DEADLINE_SECONDS")
        settings.cache_clear()
