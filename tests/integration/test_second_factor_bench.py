"""`make bench`'s second-factor table (bench/second_factor.py, issue 13) in small, so its paths cannot
rot: every path's input is still made (fresh TOTP users, recovery codes, passkey assertions from the
page's own options) and its request still does what its row says (second_factor.paths checks the
status and where it leads), with the DynamoDB calls, KMS calls, SES sends and argon2id the table
reports. Each run in its own interpreter, as tests/integration/test_self_service_bench.py does."""
from __future__ import annotations

import json

import pytest

from tests.integration.test_self_service_bench import _run

pytestmark = pytest.mark.integration

#: kms:Encrypt / kms:Decrypt per path (chalicelib/secret_box.py): the TOTP secret is sealed when an
#: enrolment starts and opened to check a code or show the pending enrolment; nothing else opens it.
KMS = {"POST /login (password; user with TOTP)": {}, "GET /mfa": {}, "POST /mfa (TOTP code)": {"Decrypt": 1},
       "POST /mfa (recovery code)": {}, "POST /mfa (passkey as second factor)": {}, "POST /login (passkey alone)": {},
       "POST /account/passkeys/add": {}, "POST /account/totp/start": {"Encrypt": 1},
       "GET /account/totp": {"Decrypt": 1}, "POST /account/totp (first code)": {"Decrypt": 1},
       "POST /account/recovery-codes": {}}

#: SES SendEmail calls per path: the notice that a recovery code was used, and the one that a passkey,
#: an authenticator app (TOTP activated by its first code) or new recovery codes were added.
EMAILS = {"POST /login (password; user with TOTP)": 0, "GET /mfa": 0, "POST /mfa (TOTP code)": 0,
          "POST /mfa (recovery code)": 1, "POST /mfa (passkey as second factor)": 0, "POST /login (passkey alone)": 0,
          "POST /account/passkeys/add": 1, "POST /account/totp/start": 0, "GET /account/totp": 0,
          "POST /account/totp (first code)": 1, "POST /account/recovery-codes": 1}


def test_every_second_factor_path_runs_with_its_calls_kms_emails_and_argon2id():
    from bench.second_factor import HASHES

    result = json.loads(_run("bench/dynamodb_calls.py", "--json", timeout=120).splitlines()[-1])["second_factor"]

    assert set(result) == set(KMS) == set(EMAILS)
    assert {label: row["kms"] for label, row in result.items()} == KMS
    assert {label: row["emails"] for label, row in result.items()} == EMAILS
    assert {label for label, row in result.items() if row["argon2id"]} == set(HASHES)
    for label, row in result.items():
        assert sum(row["warm"].values()) > 0, label  # every one of them reads or writes DynamoDB


def test_make_bench_prints_the_second_factor_table():
    # One measured run per path, no cold start, no self-service or federation table: request_cpu.py's
    # own loop against a moto server.
    out = _run("bench/request_cpu.py", "1", "0", "0", "1", "0", timeout=300)
    assert "issue 12 self-service paths" not in out
    table = out.split("issue 13 second-factor paths", 1)[1]
    for label in KMS:
        assert f"\n{label} " in table, label
