"""DynamoDB calls per request, counted with a botocore event hook (`before-call.dynamodb`).

The paths of `make bench` (bench/scenario.py) through the same measuring loop
(bench/request_cpu.py's `measure`, one warm-up run and one measured run), on in-process moto: quick,
no server, so handy while changing storage code; CPU figures need `make bench` (moto's own work
would count here). Besides the table's paths, the two requests that lead a returning user to
POST /login. "cold": the first request of a path (per-container caches empty); "warm": the next.
Then issue 12's self-service paths (bench/self_service.py), issue 13's second-factor paths
(bench/second_factor.py), issue 15's federation and logout paths (bench/federation.py), issue 14's
delegation paths (bench/delegation.py) and issue 16's sender-constrained paths
(bench/sender_constrained.py), with their
KMS calls, SES SendEmail calls, SQS and Secrets Manager calls, outbound HTTP requests and argon2id
evaluations.
--json prints the figures as one JSON line instead (tests/integration/test_self_service_bench.py,
test_second_factor_bench.py, test_federation_bench.py, test_delegation_bench.py and
test_sender_constrained_bench.py run it so the bench's paths cannot rot).
Run: .venv/bin/python bench/dynamodb_calls.py [--json]
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.update({"STAGE": "local", "ISSUER": "http://localhost:8000", "TABLE_PREFIX": "idp-bench",
                   "SECRET_PREFIX": "idp/bench/", "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                   "AWS_DEFAULT_REGION": "us-east-1", "LOG_LEVEL": "ERROR"})
os.environ.pop("AWS_ENDPOINT_URL", None)
from bench import delegation, federation, second_factor, self_service, sender_constrained  # noqa: E402  (after the path)

os.environ.update({**self_service.ENV, **second_factor.ENV, **federation.ENV, **delegation.ENV,
                   **sender_constrained.ENV})


def sign_in_steps(http, scenario) -> dict:
    """GET /authorize without a session, then GET /login: what precedes POST /login."""
    from bench.scenario import SCOPE, WEB_APP
    from tests.routes.flow import Browser, authorize_query

    authorize = "/authorize?" + authorize_query(scenario.public.client_id, scope=SCOPE, redirect_uri=WEB_APP)

    def login_page():
        visitor = Browser(http)
        return visitor, visitor.get(authorize).headers["Location"]

    return {"GET /authorize (no session)": (lambda: Browser(http), lambda visitor: visitor.get(authorize)),
            "GET /login": (login_page, lambda page: page[0].get(page[1]))}


def main() -> None:
    from moto import mock_aws

    from tools import chalice_compat

    chalice_compat.install()
    with mock_aws():
        from chalice.test import Client

        from app import app
        from bench.request_cpu import measure
        from bench.scenario import paths, seed

        scenario = seed()
        self_service.seed(scenario)
        second_factor.seed(scenario)
        federation.seed(scenario)
        delegation.seed(scenario)
        sender_constrained.seed(scenario)
        with Client(app, stage_name="local") as client:
            results = measure({**paths(client.http, scenario), **sign_in_steps(client.http, scenario)}, runs=1)
            accounts = measure(self_service.paths(client.http, scenario), runs=1)
            factors = measure(second_factor.paths(client.http, scenario), runs=1)
            federated = measure(federation.paths(client.http, scenario), runs=1)
            delegated = measure(delegation.paths(client.http, scenario), runs=1)
            constrained = measure(sender_constrained.paths(client.http, scenario), runs=1)

    if "--json" in sys.argv:
        print(json.dumps({table: {label: {"cold": m.first_calls, "warm": m.calls, "kms": m.kms, "emails": m.emails,
                                          "aws": m.aws, "outbound": m.outbound, "argon2id": m.argon2_ms > 0}
                                  for label, m in measured.items()}
                          for table, measured in (("oauth", results), ("self_service", accounts),
                                                  ("second_factor", factors), ("federation", federated),
                                                  ("delegation", delegated),
                                                  ("sender_constrained", constrained))}))
        return
    every = {**results, **accounts, **factors, **federated, **delegated, **constrained}
    width = max(map(len, every))
    print(f"{'request':{width}s}  {'cold':>4s}  {'warm':>4s}  {'KMS':>3s}  {'emails':>6s}  {'HTTP':>4s}  "
          f"warm, by operation")
    for label, measured in every.items():
        print(f"{label:{width}s}  {sum(measured.first_calls.values()):4d}  {sum(measured.calls.values()):4d}  "
              f"{sum(measured.kms.values()):3d}  {measured.emails:6d}  {measured.outbound:4d}  "
              f"{', '.join(f'{k}={v}' for k, v in sorted({**measured.calls, **measured.kms, **measured.aws}.items()))}"
              f"{'  + argon2id' if measured.argon2_ms else ''}")


if __name__ == "__main__":
    main()
