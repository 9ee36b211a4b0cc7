"""`make bench`'s federation and logout table (bench/federation.py, issue 15) in small, so its paths
cannot rot: every path's input is still made (a browser back from a real loopback upstream with a
code, fresh signed-in sessions with a grant) and its request still does what its row says
(federation.paths checks the status and where it leads), with the calls the table reports. These are
structural counts, not timings: what each request path costs in DynamoDB, SQS, Secrets Manager, SES
and outbound HTTP once the container's caches are warm. Each run in its own interpreter, as
tests/integration/test_self_service_bench.py does."""
from __future__ import annotations

import json

import pytest

from tests.integration.test_self_service_bench import _run

pytestmark = pytest.mark.integration

#: DynamoDB calls per path, warm.
DYNAMODB = {
    "GET /login (with a connection's button)": 2,  # the pending request, the client (connections cached)
    "POST /federation/start (the button)": 3,  # + the state record
    "GET /federation/callback (returning linked user)": 5,
    "GET /federation/callback (just-in-time account)": 4,
    "GET /federation/callback (automatic link)": 5,
    "GET /federation/callback (linked user with TOTP)": 4,
    "POST /login (home-realm address: to the upstream)": 3,
    "GET /authorize (idp_hint: to the upstream)": 2,  # the pending request and the state record
    "POST /logout (session with a grant)": 2,
    "GET /logout (id_token_hint of this session)": 3,
    "deliver_logout (session message: fan-out)": 1,  # the user's grants (clients cached)
    "deliver_logout (delivery: logout token POST)": 0,  # client and signing key cached
}

#: SQS and Secrets Manager calls per path, warm: a sign-out with a grant enqueues ONE message (and
#: the request path sends nothing to a relying party); the fan-out queues one message per relying
#: party in one batch. The connection's secret is cached: no Secrets Manager call once warm.
AWS = {label: {} for label in DYNAMODB} | {
    "POST /logout (session with a grant)": {"sqs:SendMessage": 1},
    "GET /logout (id_token_hint of this session)": {"sqs:SendMessage": 1},
    "deliver_logout (session message: fan-out)": {"sqs:SendMessageBatch": 1},
}

#: Outbound HTTP requests per path: the upstream's token endpoint on a callback (discovery and JWKS
#: cached; userinfo not needed: the ID token carries the email), the relying party's back-channel URI
#: on a delivery, nothing else.
OUTBOUND = {label: 0 for label in DYNAMODB} | {
    "GET /federation/callback (returning linked user)": 1, "GET /federation/callback (just-in-time account)": 1,
    "GET /federation/callback (automatic link)": 1, "GET /federation/callback (linked user with TOTP)": 1,
    "deliver_logout (delivery: logout token POST)": 1,
}

#: SES SendEmail: the notice to the owner that a sign-in was linked to their account.
EMAILS = {label: 0 for label in DYNAMODB} | {"GET /federation/callback (automatic link)": 1}


def test_every_federation_path_runs_with_its_calls():
    result = json.loads(_run("bench/dynamodb_calls.py", "--json", timeout=180).splitlines()[-1])["federation"]

    assert set(result) == set(DYNAMODB)
    assert {label: sum(row["warm"].values()) for label, row in result.items()} == DYNAMODB
    assert {label: row["aws"] for label, row in result.items()} == AWS
    assert {label: row["outbound"] for label, row in result.items()} == OUTBOUND
    assert {label: row["emails"] for label, row in result.items()} == EMAILS
    assert {label: row["kms"] for label, row in result.items()} == {label: {} for label in DYNAMODB}
    assert not any(row["argon2id"] for row in result.values())  # no password is checked on these paths


def test_make_bench_prints_the_federation_table():
    # One measured run per path, no cold start and no other accounts table: request_cpu.py's own
    # loop against a moto server.
    out = _run("bench/request_cpu.py", "1", "0", "0", "0", "1", timeout=300)
    assert "issue 12 self-service paths" not in out and "issue 13 second-factor paths" not in out
    table = out.split("issue 15 federation and logout paths", 1)[1]
    for label in DYNAMODB:
        assert f"\n{label} " in table, label
