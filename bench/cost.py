"""Cost per monthly active user, from measured DynamoDB request units and handler CPU.

Units, not calls: a botocore hook sizes every item each DynamoDB call reads or writes (a write's item
read back after it, outside the request) and prices it as on-demand DynamoDB does. A strongly
consistent read is 1 read request unit (RRU) per 4 KB, and a missing item costs one too. A write is
1 write request unit (WRU) per 1 KB of the larger item, before or after. Every item of a transaction
costs double, condition checks included. A keys-only index adds a write when an item it covers is
put. The paths run on in-process moto, like bench/dynamodb_calls.py: moto's own ConsumedCapacity is
not accurate (it prices an UpdateItem at 0.5), so it is not used.

A user-month is 4 sign-ins and 60 refreshes. A sign-in is GET /authorize (no session), GET /login,
POST /login, the code redemption and GET /userinfo. Lambda duration is the handler CPU measured by
`make bench` (bench/request_cpu.py passes it in; the CPU ms below are the README's figures when run
alone), scaled to the memory's share of a vCPU, plus an assumed DynamoDB round trip per call.
Key backends: only `kms` costs per token (a kms:Sign per signature); kms-envelope and
secretsmanager sign in-process and read each key once per container (a kms:Decrypt at $0.03 per
10,000, a GetSecretValue at $0.05 per 10,000), which is per cold start, not per user.

Run: .venv/bin/python bench/cost.py   (make bench prints it after the main table)
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: us-east-1 list prices, checked against the AWS pricing pages (November 2026; see docs/deploy.md).
PRICES = {
    "api_rest_per_million": 3.50,
    "api_http_per_million": 1.00,
    "lambda_request_per_million": 0.20,
    "lambda_gb_second_arm64": 0.0000133334,
    "dynamodb_rru_per_million": 0.125,
    "dynamodb_wru_per_million": 0.625,
    "logs_per_gb": 0.50,
    "kms_ecc_sign_per_10k": 0.15,
}
PRICES_CHECKED = "2026-11"
MEMORY_MB = 512
VCPU_MB = 1769  # Lambda gives a full vCPU at 1,769 MB
ROUND_TRIP_MS = 6  # assumed DynamoDB latency per call from Lambda in the same region
LOG_KB_PER_REQUEST = 1.3  # our JSON line, Lambda's START/END/REPORT and an access-log line
SIGN_INS, REFRESHES = 4, 60  # per monthly active user

SIGN_IN = ("GET /authorize (no session)", "GET /login", "POST /login (returning user, consent remembered)",
           "POST /token authorization_code", "GET /userinfo")
REFRESH = ("POST /token refresh_token",)
#: Signatures per request (access token + ID token for these openid requests).
SIGNATURES = {"POST /token authorization_code": 2, "POST /token refresh_token": 2}
#: Handler CPU (ms) of the paths when request_cpu.py does not pass its own: the README's table.
DEFAULT_CPU_MS = {"GET /authorize (no session)": 3.0, "GET /login": 5.0,
                  "POST /login (returning user, consent remembered)": 17.2 + 33,
                  "POST /token authorization_code": 7.7, "GET /userinfo": 3.9, "POST /token refresh_token": 4.5}


def item_size(attributes: dict) -> int:
    """An item's size as DynamoDB bills it: attribute names plus values (strings by their UTF-8
    length, numbers about one byte per two digits, sets, lists and maps their elements)."""
    def value_size(value: dict) -> int:
        (kind, raw), = value.items()
        if kind in ("S", "B"):
            return len(raw.encode() if isinstance(raw, str) else raw)
        if kind == "N":
            return len(raw) // 2 + 1
        if kind in ("BOOL", "NULL"):
            return 1
        if kind in ("SS", "NS", "BS"):
            return sum(len(str(v).encode()) for v in raw)
        if kind == "L":
            return 3 + sum(1 + value_size(v) for v in raw)
        if kind == "M":
            return 3 + sum(len(k.encode()) + 1 + value_size(v) for k, v in raw.items())
        raise ValueError(kind)
    return sum(len(name.encode()) + value_size(value) for name, value in attributes.items())


class UnitCounter:
    """Registered on the app's DynamoDB client: adds up the units of every call."""

    def __init__(self, client):
        self.client, self.rru, self.wru, self.calls, self._busy = client, 0, 0, 0, False
        client.meta.events.register("before-parameter-build.dynamodb", self._remember)
        client.meta.events.register("after-call.dynamodb", self._count)

    def reset(self):
        self.rru = self.wru = self.calls = 0

    @staticmethod
    def _remember(params, context, **_):
        context["unit_params"] = params

    def _stored(self, table: str, key: dict) -> int:
        """The size of an item as it is now (read outside the request's accounting)."""
        self._busy = True
        try:
            item = self.client.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
        finally:
            self._busy = False
        return item_size(item) if item else 0

    def _count(self, model, parsed, context, **_):
        if self._busy:
            return
        params, op = context.get("unit_params", {}), model.name
        self.calls += 1
        reads, writes = _reads, _writes
        if op == "GetItem":
            self.rru += reads(item_size(parsed.get("Item") or {}))
        elif op == "BatchGetItem":
            for table, request in params["RequestItems"].items():
                found = parsed.get("Responses", {}).get(table, [])
                self.rru += sum(reads(item_size(i)) for i in found) + (len(request["Keys"]) - len(found))
        elif op == "Query":
            self.rru += reads(sum(item_size(i) for i in parsed.get("Items", [])))
        elif op == "PutItem":
            self.wru += writes(item_size(params["Item"])) + _index_writes(params["TableName"])
        elif op in ("UpdateItem", "DeleteItem"):
            self.wru += writes(max(self._stored(params["TableName"], params["Key"]),
                                   item_size(parsed.get("Attributes") or {})))
        elif op == "TransactWriteItems":
            for entry in params["TransactItems"]:
                (kind, item), = entry.items()
                if kind == "Put":
                    size, extra = item_size(item["Item"]), _index_writes(item["TableName"])
                else:
                    size, extra = self._stored(item["TableName"], item["Key"]), 0
                self.wru += 2 * writes(size) + extra
        elif op == "TransactGetItems":
            self.rru += 2 * len(params["TransactItems"])


def _reads(size: int) -> int:
    return max(1, math.ceil(size / 4096))


def _writes(size: int) -> int:
    return max(1, math.ceil(size / 1024))


def _index_writes(table: str) -> int:
    """A keys-only index is written when an item it covers is put: the grants' by_client."""
    return 1 if table.endswith("-grants") else 0


def measure_units() -> dict:
    """Warm (RRU, WRU, calls) per path, on in-process moto."""
    os.environ.update({"STAGE": "local", "ISSUER": "http://localhost:8000", "TABLE_PREFIX": "idp-cost",
                       "SECRET_PREFIX": "idp/cost/", "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                       "AWS_DEFAULT_REGION": "us-east-1", "LOG_LEVEL": "ERROR"})
    os.environ.pop("AWS_ENDPOINT_URL", None)
    from moto import mock_aws

    from tools import chalice_compat

    chalice_compat.install()
    with mock_aws():
        from chalice.test import Client

        from app import app
        from bench.dynamodb_calls import sign_in_steps
        from bench.request_cpu import measure
        from bench.scenario import paths, seed
        from chalicelib import aws

        scenario = seed()
        counter = UnitCounter(aws.client("dynamodb"))
        units = {}
        with Client(app, stage_name="local") as client:
            every = {**paths(client.http, scenario), **sign_in_steps(client.http, scenario)}
            for label, path in every.items():
                if label not in SIGN_IN + REFRESH:
                    continue
                measure({label: path}, runs=1)  # warms the caches
                make_input, request = path
                value = make_input() if make_input else None
                counter.reset()
                request(value)
                units[label] = {"rru": counter.rru, "wru": counter.wru, "calls": counter.calls}
    return units


def cost_per_mau(units: dict, cpu_ms: dict, *, front_door: str, key_backend: str) -> dict:
    """Dollars per monthly active user, by item."""
    def per_request(label: str) -> dict:
        measured = units[label]
        seconds = (cpu_ms[label] * VCPU_MB / MEMORY_MB + measured["calls"] * ROUND_TRIP_MS) / 1000
        signatures = SIGNATURES.get(label, 0) if key_backend == "kms" else 0
        return {"api": PRICES[f"api_{front_door}_per_million"] / 1e6,
                "lambda": PRICES["lambda_request_per_million"] / 1e6
                + seconds * MEMORY_MB / 1024 * PRICES["lambda_gb_second_arm64"],
                "dynamodb": measured["rru"] * PRICES["dynamodb_rru_per_million"] / 1e6
                + measured["wru"] * PRICES["dynamodb_wru_per_million"] / 1e6,
                "logs": LOG_KB_PER_REQUEST / 1024 / 1024 * PRICES["logs_per_gb"],
                "kms": signatures * PRICES["kms_ecc_sign_per_10k"] / 1e4}

    total: dict = {}
    for labels, times in ((SIGN_IN, SIGN_INS), (REFRESH, REFRESHES)):
        for label in labels:
            for item, dollars in per_request(label).items():
                total[item] = total.get(item, 0.0) + times * dollars
    total["total"] = sum(total.values())
    return total


def print_table(units: dict, cpu_ms: dict) -> None:
    print(f"cost per monthly active user ({SIGN_INS} sign-ins, {REFRESHES} refreshes; us-east-1 prices checked "
          f"{PRICES_CHECKED}; {MEMORY_MB} MB arm64; DynamoDB units measured per path)")
    for label in SIGN_IN + REFRESH:
        print(f"  {label:52s} RRU {units[label]['rru']:3d}  WRU {units[label]['wru']:3d}  "
              f"calls {units[label]['calls']}")
    print(f"  {'front door / key backend':34s} {'API':>9s} {'Lambda':>9s} {'DynamoDB':>9s} {'logs':>9s} "
          f"{'KMS':>9s} {'total':>9s}")
    for front_door in ("http", "rest"):
        for key_backend in ("kms-envelope", "secretsmanager", "kms"):
            cost = cost_per_mau(units, cpu_ms, front_door=front_door, key_backend=key_backend)
            print(f"  {front_door + ' / ' + key_backend:34s} " + " ".join(
                f"{cost[k]:9.6f}" for k in ("api", "lambda", "dynamodb", "logs", "kms", "total")))


def units_in_a_child() -> dict:
    """measure_units() in a fresh interpreter: in-process moto must not meet a caller that talks to
    a moto server (bench/request_cpu.py)."""
    out = subprocess.run([sys.executable, str(Path(__file__)), "--units-json"], capture_output=True, text=True,
                         check=True, cwd=ROOT, env={k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    if "--units-json" in sys.argv:
        print(json.dumps(measure_units()))
        return
    print_table(units_in_a_child(), DEFAULT_CPU_MS)


if __name__ == "__main__":
    main()
