"""`make bench`'s sender-constrained table (bench/sender_constrained.py, issue 16) in small, so its
paths cannot rot: every DPoP row still gets a token bound to its key (or, at /userinfo, has its
proof taken), every pushed request still comes back as a code, with the calls the table reports.
These are structural counts, not timings: what a DPoP proof and a pushed request add to a request
once the container's caches are warm, next to the same request without them. Each run in its own
interpreter, as tests/integration/test_self_service_bench.py does."""
from __future__ import annotations

import json

import pytest

from tests.integration.test_self_service_bench import _run

pytestmark = pytest.mark.integration

#: DynamoDB calls per path, warm (clients, the signing key and the DPoP nonce key come from container
#: caches). Each DPoP row is its twin's calls plus the proof's jti, one conditional PutItem.
DYNAMODB = {
    "POST /token client_credentials (Bearer)": 0,
    "POST /token client_credentials (DPoP)": 1,  # the proof's jti
    "POST /token authorization_code (Bearer)": 2,  # the code's conditional update, the grant's family
    "POST /token authorization_code (DPoP, dpop_jkt)": 3,  # + the jti (the jkt check rides on the code's update)
    "POST /token refresh, public client (Bearer)": 1,  # the family's conditional update
    "POST /token refresh, public client (DPoP-bound)": 2,  # + the jti (the key check rides on the update)
    "GET /userinfo (Bearer)": 1,  # the grant and the user, one batch
    "GET /userinfo (DPoP)": 2,  # + the jti
    "POST /par (client_secret_basic)": 1,  # the pushed request, one put
    "GET /authorize (front channel, signed in, consented)": 2,  # the session, then one transaction
    "GET /authorize (request_uri, signed in, consented)": 3,  # + the pushed request's conditional consume
    "POST /token client_credentials (DPoP, cold nonce)": 1,  # the jti
}
#: Calls besides DynamoDB: only where the nonce key is not yet cached (once per container).
OTHER_AWS = {label: {} for label in DYNAMODB} | {
    "POST /token client_credentials (DPoP, cold nonce)": {"secrets-manager:GetSecretValue": 1}}


def test_every_sender_constrained_path_runs_with_its_calls():
    result = json.loads(_run("bench/dynamodb_calls.py", "--json", timeout=240).splitlines()[-1])["sender_constrained"]

    assert set(result) == set(DYNAMODB)
    assert {label: sum(row["warm"].values()) for label, row in result.items()} == DYNAMODB
    # The proof's jti is a PutItem: the only call DPoP adds to any row.
    for label in ("POST /token client_credentials (DPoP)", "POST /token authorization_code (DPoP, dpop_jkt)",
                  "POST /token refresh, public client (DPoP-bound)", "GET /userinfo (DPoP)"):
        assert result[label]["warm"].get("PutItem") == 1, label
    assert {label: row["aws"] for label, row in result.items()} == OTHER_AWS
    assert {label: row["kms"] for label, row in result.items()} == {label: {} for label in DYNAMODB}
    assert {label: row["emails"] for label, row in result.items()} == {label: 0 for label in DYNAMODB}
    assert {label: row["outbound"] for label, row in result.items()} == {label: 0 for label in DYNAMODB}
    assert not any(row["argon2id"] for row in result.values())  # no password is checked on these paths


def test_make_bench_prints_the_sender_constrained_table():
    # One measured run per path, no cold start and no other accounts table: request_cpu.py's own
    # loop against a moto server.
    out = _run("bench/request_cpu.py", "1", "0", "0", "0", "0", "0", "1", timeout=300)
    assert "issue 14 delegation paths" not in out
    table = out.split("issue 16 sender-constrained paths", 1)[1]
    for label in DYNAMODB:
        assert f"\n{label} " in table, label
    differences = table.split("difference to the twin", 1)[1]
    assert "\nPOST /token client_credentials (DPoP) " in differences


def test_one_table_alone_prints_itself_then_its_figures():
    # `request_cpu.py --table sender_constrained N`: the table as make bench prints it, the JSON last.
    out = _run("bench/request_cpu.py", "--table", "sender_constrained", "1", timeout=300)
    lines = out.splitlines()
    assert set(json.loads(lines[-1])) == set(DYNAMODB)
    table = out.split("issue 16 sender-constrained paths", 1)[1]
    for label in DYNAMODB:
        assert f"\n{label} " in table, label
