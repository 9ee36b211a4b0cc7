"""`make bench`'s delegation table (bench/delegation.py, issue 14) in small, so its paths cannot rot:
every path's input is still made (client assertions, subject tokens from the code flow, ID-JAGs
signed with a key a real loopback issuer publishes, device authorizations approved in a browser) and
its request still does what its row says (delegation.paths checks the status, the pending poll's
error and the device page's last words), with the calls the table reports. These are structural
counts, not timings: what each new grant costs in DynamoDB, other AWS calls and outbound HTTP once
the container's caches are warm. Each run in its own interpreter, as
tests/integration/test_self_service_bench.py does."""
from __future__ import annotations

import json

import pytest

from tests.integration.test_self_service_bench import _run

pytestmark = pytest.mark.integration

#: DynamoDB calls per path, warm (clients with their exchange policies, resources, connections,
#: signing keys and the trusted issuer's discovery and JWKS come from container caches).
DYNAMODB = {
    "POST /token client_credentials (private_key_jwt)": 1,  # the assertion's jti, one conditional put
    "POST /token token exchange (access-token subject)": 1,  # the subject token's grant
    "POST /token token exchange (ID-token subject)": 1,  # the user, still enabled
    "POST /token token exchange (+ jwt actor_token)": 2,  # + the actor's assertion jti
    "POST /token token exchange (for an ID-JAG)": 1,  # the user
    "POST /token jwt-bearer (ID-JAG of a trusted issuer)": 3,  # the linked identity, the user, the jti (put)
    "POST /device_authorization": 1,  # the authorization, one conditional put
    "POST /token device_code (pending)": 1,  # one conditional update answers pending
    "POST /token device_code (approved: tokens)": 2,  # the redemption (codes), then the grant's family
    # The session and its user, the throttle counters (one transaction), the code.
    "POST /device (code look-up)": 4,
    # The session and its user, the code, then user, session, grant and approval in one transaction.
    "POST /device/consent (allow)": 4,
}


def test_every_delegation_path_runs_with_its_calls():
    result = json.loads(_run("bench/dynamodb_calls.py", "--json", timeout=240).splitlines()[-1])["delegation"]

    assert set(result) == set(DYNAMODB)
    assert {label: sum(row["warm"].values()) for label, row in result.items()} == DYNAMODB
    # Nothing but DynamoDB once warm: no Secrets Manager (signing key cached), no SQS, KMS or SES, and
    # no outbound request (the trusted issuer's documents cached by the unmeasured first run).
    assert {label: row["aws"] for label, row in result.items()} == {label: {} for label in DYNAMODB}
    assert {label: row["kms"] for label, row in result.items()} == {label: {} for label in DYNAMODB}
    assert {label: row["emails"] for label, row in result.items()} == {label: 0 for label in DYNAMODB}
    assert {label: row["outbound"] for label, row in result.items()} == {label: 0 for label in DYNAMODB}
    assert not any(row["argon2id"] for row in result.values())  # no password is checked on these paths


def test_make_bench_prints_the_delegation_table():
    # One measured run per path, no cold start and no other accounts table: request_cpu.py's own
    # loop against a moto server.
    out = _run("bench/request_cpu.py", "1", "0", "0", "0", "0", "1", timeout=300)
    assert "issue 15 federation and logout paths" not in out
    table = out.split("issue 14 delegation paths", 1)[1]
    for label in DYNAMODB:
        assert f"\n{label} " in table, label


def test_one_table_alone_prints_itself_then_its_figures():
    # `request_cpu.py --table delegation N`: the table as make bench prints it, the JSON last.
    out = _run("bench/request_cpu.py", "--table", "delegation", "1", timeout=300)
    lines = out.splitlines()
    assert set(json.loads(lines[-1])) == set(DYNAMODB)
    table = out.split("issue 14 delegation paths", 1)[1]
    for label in DYNAMODB:
        assert f"\n{label} " in table, label
