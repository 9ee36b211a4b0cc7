"""Which failures are a dependency's, not ours: the one classification behind every 503.

DynamoDB, Secrets Manager and KMS throttle, have bad moments and time out. botocore has already
retried such a call (chalicelib/aws.py: standard mode, within the request's deadline) by the time
the error reaches a view, so the request cannot succeed now but its retry may: the answer is 503
with Retry-After (RFC 9110 §15.6.4, §10.2.3) and `temporarily_unavailable`, never a 500, which
says the server is broken and makes clients and alarms treat a throttle as a bug. Everything else
unexpected stays a 500 (chalicelib/web.py).

A fault never costs the client its sign-in: the endpoints consume nothing single-use until all that
can fail has succeeded, or put it back when a later step fails (chalicelib/grants/*). So "retry
later" is honest advice.
"""
from __future__ import annotations

from .errors import DeadlineExceeded, StorageIncomplete, TemporarilyUnavailable

#: Error codes AWS answers when a caller is over a rate or a service is briefly short of capacity:
#: DynamoDB (ProvisionedThroughputExceeded, RequestLimitExceeded, Throttling), KMS and Secrets
#: Manager (ThrottlingException, KMS's LimitExceededException), and botocore's list of the same
#: family (botocore/retries/standard.py). Retried by botocore; left over when the retries ran out.
THROTTLING_CODES = frozenset({
    "ProvisionedThroughputExceededException", "ThrottlingException", "Throttling", "ThrottledException",
    "RequestThrottledException", "TooManyRequestsException", "RequestLimitExceeded", "LimitExceededException",
    "RequestThrottled", "SlowDown", "BandwidthLimitExceeded", "TransactionInProgressException",
})
#: Codes of a service failing on its side: DynamoDB's InternalServerError / ServiceUnavailable,
#: Secrets Manager's InternalServiceError, KMS's KMSInternalException, DependencyTimeoutException and
#: KeyUnavailableException ("you can retry"), and request timeouts.
UNAVAILABLE_CODES = frozenset({
    "InternalServerError", "InternalFailure", "ServiceUnavailable", "ServiceUnavailableException",
    "InternalServiceError", "KMSInternalException", "DependencyTimeoutException", "KeyUnavailableException",
    "RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete",
})
#: Reasons an item of a cancelled DynamoDB transaction may give that say "not now" rather than
#: "no": a transaction cancelled only for these is a fault. TransactionConflict is another request
#: writing the same item at that instant; storage retries it a few times before giving up.
TRANSIENT_CANCELLATIONS = frozenset({"ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded",
                                     "TransactionConflict", "InternalServerError", "None", None})
#: What a 503 tells the client to wait, in seconds: botocore has just spent its retries with
#: backoff, so at once would be too soon; anything longer keeps a user waiting for nothing.
RETRY_AFTER_SECONDS = 2


def classify(exc: BaseException) -> str | None:
    """A short name of the dependency fault behind `exc` (for the log), or None when it is not one.

    Follows pynamodb's `cause` and Python's exception chain, so a pynamodb UpdateError wrapping a
    botocore ClientError wrapping a throttle is found, as is a botocore timeout re-raised by our code.
    """
    from botocore.exceptions import ClientError, ConnectionError as BotoConnectionError, HTTPClientError

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, DeadlineExceeded):
            return "deadline"
        if isinstance(exc, StorageIncomplete):
            return "dynamodb:UnprocessedKeys"
        if isinstance(exc, (BotoConnectionError, HTTPClientError)):
            return f"network:{type(exc).__name__}"
        if isinstance(exc, ClientError):
            return _client_error(exc)
        exc = getattr(exc, "cause", None) or exc.__cause__ or exc.__context__
    return None


def _client_error(exc) -> str | None:
    error = exc.response.get("Error", {})
    code = error.get("Code")
    service = exc.operation_name or "aws"
    if code in THROTTLING_CODES or code in UNAVAILABLE_CODES:
        return f"{service}:{code}"
    if code == "TransactionCanceledException":
        reasons = _cancellation_reasons(exc)
        if reasons and all(reason in TRANSIENT_CANCELLATIONS for reason in reasons) \
                and any(reason not in (None, "None") for reason in reasons):
            return f"{service}:TransactionCanceled({','.join(r for r in reasons if r not in (None, 'None'))})"
        return None
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
    if status >= 500:
        return f"{service}:HTTP {status}"
    return None


def _cancellation_reasons(exc) -> list[str | None]:
    """Each item's reason of a cancelled transaction: botocore keeps them in the response, pynamodb's
    VerboseClientError (which drops them from its response) as `cancellation_reasons`."""
    if exc.response.get("CancellationReasons"):
        return [reason.get("Code") for reason in exc.response["CancellationReasons"]]
    return [reason.code if reason is not None else None for reason in getattr(exc, "cancellation_reasons", ())]


def unavailable(exc: BaseException) -> TemporarilyUnavailable | None:
    """The 503 to answer for `exc`, or None when `exc` is not a dependency fault."""
    fault = classify(exc)
    if fault is None:
        return None
    return TemporarilyUnavailable("the service is temporarily unavailable; retry shortly",
                                  detail=fault, retry_after=RETRY_AFTER_SECONDS)
