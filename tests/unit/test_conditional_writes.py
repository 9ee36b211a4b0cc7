"""A conditional write that loses to its condition is an answer; any other failure is an error.

Revocation and sign-out used to treat every write failure as "already done", so a throttled
DynamoDB call would silently leave a grant or session alive."""
from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from pynamodb.exceptions import UpdateError

from chalicelib.storage.models import GrantModel, conditionally


def failure(code: str) -> UpdateError:
    return UpdateError("write failed", cause=ClientError({"Error": {"Code": code, "Message": code}}, "UpdateItem"))


def test_a_lost_condition_is_false():
    def write():
        raise failure("ConditionalCheckFailedException")

    assert conditionally(write) is False


def test_revocation_does_not_swallow_a_throttled_write(monkeypatch):
    from chalicelib.storage.grants import revoke

    def throttled(self, *args, **kwargs):
        raise failure("ProvisionedThroughputExceededException")

    monkeypatch.setattr(GrantModel, "update", throttled)
    with pytest.raises(UpdateError):
        revoke("u_1", "g1", reason="test")


def test_sign_out_does_not_swallow_a_throttled_write(monkeypatch):
    from chalicelib.oauth import sessions
    from chalicelib.storage.models import SessionModel

    def throttled(self, *args, **kwargs):
        raise failure("ProvisionedThroughputExceededException")

    monkeypatch.setattr(SessionModel, "update", throttled)
    with pytest.raises(UpdateError):
        sessions.end("a-session-cookie-value")


def test_a_write_that_timed_out_is_an_error_not_a_crash_in_the_error_handling():
    """botocore's connection errors carry response=None, on which pynamodb's cause_response_code
    itself raises AttributeError: a timed-out write must surface as the write's own error."""
    from botocore.exceptions import ReadTimeoutError
    from pynamodb.exceptions import TransactWriteError

    from chalicelib.storage.models import cancellation_codes, error_code, transaction_refused

    timeout = ReadTimeoutError(endpoint_url="http://dynamodb")

    def write():
        raise UpdateError("write failed", cause=timeout)

    with pytest.raises(UpdateError):
        conditionally(write)
    cancelled_by_timeout = TransactWriteError("transaction failed", cause=timeout)
    assert error_code(cancelled_by_timeout) is None and cancellation_codes(cancelled_by_timeout) == []
    assert not transaction_refused(cancelled_by_timeout)
