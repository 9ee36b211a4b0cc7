"""Cold first request: a fresh interpreter that imports the app and serves one client_credentials
token, next to the floor, a minimal function doing the same AWS and crypto work.

    app    `import app`, then app.app(event, context) with an API Gateway (REST) event for
           POST /token grant_type=client_credentials (Basic auth, one resource)
    floor  `import boto3, jwt`, one DynamoDB GetItem and one pyjwt ES256 sign

Both run against the same moto server in another process (tools/moto_server.py), so the time is the
interpreter's own: start-up, imports, client construction, the AWS round trips and the signature.
Each figure is the median over N fresh interpreters of "spawned -> response in hand" (the parent's
clock before the spawn, the child's after the response; both CLOCK_MONOTONIC). Bytecode is cached
first, as an image with compiled .pyc files would have it: the children run without
PYTHONDONTWRITEBYTECODE, so the warm-up writes the .pyc files of app.py and chalicelib (a shell that
sets it would otherwise have the app compile every module from source in every child, about 60 ms
here, while the floor's site-packages come compiled by pip). The issue's target: ratio <= 1.25.
Run: make bench (the last row of its table)   (or .venv/bin/python bench/cold_start.py [N], default 15)
"""
from __future__ import annotations

import base64
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESOURCE = "https://api.example.com"
ENV = {"STAGE": "local", "ISSUER": "http://localhost:8000", "TABLE_PREFIX": "idp-coldbench",
       "SECRET_PREFIX": "idp/coldbench/", "KEY_BACKEND": "secretsmanager", "SIGNING_ALG": "ES256",
       "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
       "AWS_REGION": "us-east-1", "LOG_LEVEL": "ERROR"}

# The child measures nothing itself: it prints its clock once the response is in hand.
APP = """
import json, os, time
import app
event = json.loads(os.environ["BENCH_EVENT"])
class Context:
    function_name, memory_limit_in_mb, aws_request_id = "api", 512, "bench"
    def get_remaining_time_in_millis(self):
        return 10000
response = app.app(event, Context())
print(time.monotonic_ns(), response["statusCode"])
"""

FLOOR = """
import os, time
import boto3, jwt
client = boto3.client("dynamodb")
item = client.get_item(TableName=os.environ["BENCH_TABLE"], Key={"client_id": {"S": os.environ["BENCH_KEY"]}},
                       ConsistentRead=True)["Item"]
token = jwt.encode({"sub": item["client_id"]["S"], "exp": 2000000000}, os.environ["BENCH_PEM"], algorithm="ES256")
print(time.monotonic_ns(), 200 if token else 500)
"""


def start_moto() -> tuple[subprocess.Popen, str]:
    from tests.conftest import free_port

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "tools.moto_server", "-H", "127.0.0.1", "-p", str(port)],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    import requests

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(f"{url}/moto-api/", timeout=1)
            return server, url
        except requests.ConnectionError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("cold_start: the moto server did not start within 60 s")


def set_up(moto_url: str) -> dict[str, str]:
    """Tables, a signing key, a resource and a client_credentials client; returns the children's env."""
    os.environ.update(ENV, AWS_ENDPOINT_URL=moto_url)
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from chalicelib.keys import keyring
    from chalicelib.oauth.clients import create_client
    from chalicelib.storage.models import ClientModel
    from chalicelib.storage.resources import register_resource
    from chalicelib.storage.tables import bootstrap_tables

    bootstrap_tables()
    keyring.ensure_keys()
    register_resource(RESOURCE, "API", ["api:read"])
    client, secret = create_client(client_name="Job", grant_types=["client_credentials"], scopes=["api:read"])
    basic = base64.b64encode(f"{client.client_id}:{secret}".encode()).decode()
    event = {
        "resource": "/token", "path": "/token", "httpMethod": "POST",
        "headers": {"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded",
                    "Host": "localhost:8000"},
        "multiValueHeaders": None, "queryStringParameters": None, "multiValueQueryStringParameters": None,
        "pathParameters": None, "stageVariables": None, "isBase64Encoded": True,
        "body": base64.b64encode(urlencode({"grant_type": "client_credentials", "resource": RESOURCE}).encode())
        .decode(),
        "requestContext": {"resourcePath": "/token", "httpMethod": "POST", "stage": "api", "requestId": "bench",
                           "identity": {"sourceIp": "127.0.0.1"}, "path": "/api/token"},
    }
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    # As Lambda without SnapStart: `import app` builds the clients at init (chalicelib/runtime.py).
    inherited = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE")}
    return {**inherited, "BENCH_EVENT": json.dumps(event),
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "BENCH_TABLE": ClientModel.Meta.table_name, "BENCH_KEY": client.client_id, "BENCH_PEM": pem}


def first_response_ms(code: str, env: dict[str, str]) -> float:
    start = time.monotonic_ns()
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, capture_output=True,
                         text=True).stdout.split()
    if out[1] != "200":
        raise SystemExit(f"cold_start: the first response was {out[1]}, not 200")
    return (int(out[0]) - start) / 1e6


def stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:  # a moto server holding many items can be slow to exit
        server.kill()
        server.wait()


@dataclasses.dataclass
class Cold:
    runs: int
    app_ms: float
    floor_ms: float

    @property
    def ratio(self) -> float:
        return self.app_ms / self.floor_ms

    def describe(self) -> str:
        return (f"app {self.app_ms:.0f} ms, floor {self.floor_ms:.0f} ms: spawn -> response, "
                f"median of {self.runs} fresh interpreters each")


def measure(runs: int) -> Cold:
    server, url = start_moto()
    try:
        env = set_up(url)
        for code in (APP, FLOOR):  # compile bytecode, fill the page cache
            first_response_ms(code, env)
        samples: dict[str, list[float]] = {"app": [], "floor": []}
        for _ in range(runs):  # interleaved, so drifting machine load hits both alike
            samples["app"].append(first_response_ms(APP, env))
            samples["floor"].append(first_response_ms(FLOOR, env))
    finally:
        stop(server)
    return Cold(runs, statistics.median(samples["app"]), statistics.median(samples["floor"]))


def measure_apart(runs: int) -> Cold:
    """`measure` in a process of its own: its set-up imports the app with its own tables and moto
    server, which a caller measuring other things in-process must not inherit."""
    out = subprocess.run([sys.executable, __file__, str(runs), "--json"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    return Cold(**json.loads(out))


def main() -> None:
    cold = measure(int(sys.argv[1]) if len(sys.argv) > 1 else 15)
    if "--json" in sys.argv:
        print(json.dumps(dataclasses.asdict(cold)))
        return
    print(f"cold first response, median of {cold.runs} fresh interpreters (moto server in another process)")
    print(f"  app   import app + POST /token client_credentials  {cold.app_ms:7.1f} ms")
    print(f"  floor import boto3 + GetItem + pyjwt ES256 sign     {cold.floor_ms:7.1f} ms")
    print(f"  ratio app / floor                                 {cold.ratio:7.2f}   (target <= 1.25)")


if __name__ == "__main__":
    main()
