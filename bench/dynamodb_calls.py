"""DynamoDB calls per request, counted with a botocore event hook (`before-call.dynamodb`).

Runs the real app through chalice.test.Client on in-process moto, warms each path once, then counts
the calls one more request makes. Run: make bench  (or .venv/bin/python bench/dynamodb_calls.py)
"""
from __future__ import annotations

import collections
import json
import os
import sys
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.update({"STAGE": "local", "ISSUER": "http://127.0.0.1:8000", "TABLE_PREFIX": "idp-bench",
                   "SECRET_PREFIX": "idp/bench/", "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                   "AWS_DEFAULT_REGION": "us-east-1", "LOG_LEVEL": "ERROR"})
os.environ.pop("AWS_ENDPOINT_URL", None)

calls: collections.Counter = collections.Counter()


def count(event_name: str, **_kwargs) -> None:
    calls[event_name.rsplit(".", 1)[-1]] += 1


def hook_every_dynamodb_client() -> None:
    """Every model and transaction goes through the container's one DynamoDB client."""
    from chalicelib import aws

    aws.client("dynamodb").meta.events.register("before-call.dynamodb", count)


def measure(label: str, request) -> tuple[str, int, dict]:
    calls.clear()
    response = request()
    assert response.status_code in (200, 302), (label, response.status_code, response.body[:300])
    return label, sum(calls.values()), dict(calls)


def main() -> None:
    from moto import mock_aws

    from tools import chalice_compat

    chalice_compat.install()
    with mock_aws():
        from chalice.test import Client

        from app import app
        from bench.scenario import API, EMAIL, PASSWORD, SCOPE, WEB_APP, basic, seed
        from tests.routes.flow import (FORM, Browser, authorize_query, hidden, query_of, redeem,
                                       sign_in_and_consent)

        scenario = seed()
        public = scenario.public
        hook_every_dynamodb_client()

        rows = []
        with Client(app, stage_name="local") as client:
            http = client.http
            browser = Browser(http)
            scope = SCOPE

            def new_code():
                return query_of(sign_in_and_consent(browser, public.client_id, scope=scope,
                                                    redirect_uri=WEB_APP))["code"]

            def redeem_code(code):
                return redeem(http, public.client_id, code, redirect_uri=WEB_APP)

            def new_refresh_token():
                return json.loads(redeem_code(new_code()).body)["refresh_token"]

            cc = urlencode({"grant_type": "client_credentials", "resource": API}).encode()
            service_auth = basic(scenario.service.client_id, scenario.service_secret)
            rs_auth = basic(scenario.api.client_id, scenario.api_secret)
            requests = {
                "GET /authorize (signed in, consented)": lambda: browser.get(
                    "/authorize?" + authorize_query(public.client_id, scope=scope, redirect_uri=WEB_APP)),
                "POST /token authorization_code": redeem_code,
                "POST /token refresh_token": lambda token: http.post("/token", headers=FORM, body=urlencode(
                    {"grant_type": "refresh_token", "refresh_token": token, "client_id": public.client_id}).encode()),
                "POST /token client_credentials": lambda: http.post("/token", body=cc, headers=service_auth),
                "POST /introspect (access token)": lambda token: http.post(
                    "/introspect", body=urlencode({"token": token}).encode(), headers=rs_auth),
                "GET /userinfo": lambda token: http.get("/userinfo", headers={"Authorization": f"Bearer {token}"}),
            }
            inputs = {
                "POST /token authorization_code": new_code,
                "POST /token refresh_token": new_refresh_token,
                "POST /introspect (access token)":
                    lambda: json.loads(http.post("/token", body=cc, headers=service_auth).body)["access_token"],
                "GET /userinfo": lambda: json.loads(redeem_code(new_code()).body)["access_token"],
            }
            sign_in_and_consent(browser, public.client_id, scope=scope, redirect_uri=WEB_APP)  # session + consent
            for label, request in requests.items():
                make_input = inputs.get(label)
                for run in ("cold", "warm"):  # the first run fills the per-container caches
                    args = (make_input(),) if make_input else ()
                    rows.append(measure(f"{label} [{run}]", lambda: request(*args)))

            # A returning user signing in (no session yet, consent remembered): the three browser requests.
            for run in ("cold", "warm"):
                visitor = Browser(http)
                start = measure(f"GET /authorize (no session) [{run}]", lambda: visitor.get(
                    "/authorize?" + authorize_query(public.client_id, scope=scope, redirect_uri=WEB_APP)))
                location = visitor.get("/authorize?" + authorize_query(public.client_id, scope=scope,
                                                                       redirect_uri=WEB_APP)).headers["Location"]
                page_row = measure(f"GET /login [{run}]", lambda: visitor.get(location))
                page = visitor.get(location)
                form = {"request_id": hidden(page.body, "request_id"), "csrf_token": hidden(page.body, "csrf_token"),
                        "username": EMAIL, "password": PASSWORD}
                rows.extend([start, page_row, measure(f"POST /login (consent remembered) [{run}]",
                                                      lambda: visitor.post("/login", form))])

    width = max(len(r[0]) for r in rows)
    print(f"{'request':{width}s}  calls  by operation")
    for label, total, detail in rows:
        print(f"{label:{width}s}  {total:5d}  {', '.join(f'{k}={v}' for k, v in sorted(detail.items()))}")


if __name__ == "__main__":
    main()
