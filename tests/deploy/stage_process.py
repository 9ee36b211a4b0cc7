"""One "Lambda container" of a deployed stage, against a moto server: run in a subprocess by
test_moto_cloudformation.py with exactly the stage's function environment (TABLE_PREFIX etc. are
read when the models are imported, so they cannot be switched inside the test process).

    python -m tests.deploy.stage_process <stage>     (env: the function's variables + AWS_ENDPOINT_URL)

Steps, each recording the AWS calls it makes (service, operation, parameters):
- rotation: the scheduled function's handler with an EventBridge event (bootstraps the key ring);
- rotation_due / rotation_prune: the same step 31 days later (promotes) and after KEY_RETIRE_AFTER (prunes);
- admin: what the operator does with ./idp-admin: register a client_credentials client;
- api: POST /token and GET /jwks through chalice.test.Client on the app, as API Gateway would call it;
- mail: one email through chalicelib/mail.py, as the API function sends them (the test verified the
  sender's domain in SES first, as docs/deploy.md tells the operator to).
Prints one JSON document on stdout.
"""
from __future__ import annotations

import base64
import json
import sys
from urllib.parse import urlencode

CALLS: list[dict] = []


def record_aws_calls() -> None:
    """Every botocore client (boto3's and pynamodb's) goes through BaseClient._make_api_call."""
    from botocore.client import BaseClient

    original = BaseClient._make_api_call

    def recording(self, operation_name, api_params):
        CALLS.append({"service": self.meta.service_model.service_name, "operation": operation_name,
                      "params": json.loads(json.dumps(api_params, default=lambda value: "<binary>"))})
        return original(self, operation_name, api_params)

    BaseClient._make_api_call = recording


def step(name: str, steps: dict, func):
    CALLS.clear()
    result = func()
    steps[name] = {"result": result, "calls": list(CALLS)}


def main(stage: str) -> None:
    record_aws_calls()
    from chalice.test import Client

    from app import app
    from chalicelib.blueprints.rotation import rotate_signing_keys
    from chalicelib.config import settings
    from chalicelib.keys.rotation import rotate_keys
    from chalicelib.log import now
    from chalicelib.oauth.clients import create_client

    s = settings()
    event = {"version": "0", "id": "test", "detail-type": "Scheduled Event", "source": "aws.events",
             "account": "123456789012", "time": "2026-01-01T00:00:00Z", "region": s.region, "resources": [],
             "detail": {}}
    due = now() + s.key_rotation_interval + 1

    def summary(result):
        return {"outcome": result.outcome, "current": result.current.kid, "pruned": list(result.pruned)}

    steps: dict = {}
    step("rotation", steps, lambda: rotate_signing_keys(event, None))
    step("rotation_due", steps, lambda: summary(rotate_keys(when_due=True, at=due)))
    step("rotation_prune", steps, lambda: summary(rotate_keys(when_due=True, at=due + s.key_retire_after + 1)))

    def register():
        client, secret = create_client(client_name="Deploy test job", grant_types=["client_credentials"], scopes=[])
        return {"client_id": client.client_id, "client_secret": secret}

    step("admin", steps, register)
    credentials = steps["admin"]["result"]
    basic = base64.b64encode(f"{credentials['client_id']}:{credentials['client_secret']}".encode()).decode()

    def api():
        with Client(app, stage_name=stage) as client:
            responses = {
                "discovery": client.http.get("/.well-known/openid-configuration"),
                "token": client.http.post("/token", body=urlencode({"grant_type": "client_credentials"}).encode(),
                                          headers={"Content-Type": "application/x-www-form-urlencoded",
                                                   "Authorization": f"Basic {basic}"}),
                "jwks": client.http.get("/jwks"),
            }
        return {name: {"status": r.status_code, "body": json.loads(r.body)} for name, r in responses.items()}

    step("api", steps, api)

    def mail():
        from chalicelib import mail as email

        email.send("new.user@example.org", "verify_email", link=f"{s.issuer}/verify?t=x", code="ABCDE-FGHIJ",
                   minutes=30)
        return {"sent": True}

    step("mail", steps, mail)
    json.dump(steps, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
