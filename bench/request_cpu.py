"""`make bench`: per warm request path, DynamoDB calls and median handler CPU next to issue 10's
targets and next to the floor; then the cold-first ratio (bench/cold_start.py). One table.

The real app, DynamoDB and Secrets Manager on the project's moto server in another process (so the
CPU measured is the handler's own, not moto's). Requests go through chalice.test.Client, and the CPU
is time.process_time() around Chalice.__call__ (app.app(event, context), the handler's entry); the
median of N warm invocations per path (inputs such as codes are made outside the timing; a first,
unmeasured run fills the per-container caches).

The floor: a bare Chalice route doing what any token endpoint must (HTTP Basic client
authentication, a SHA-256 constant-time compare of the secret, a pyjwt ES256 signature; no
DynamoDB), measured by the same loop. Its CPU is this machine's speed: "x floor" reads a path's CPU
in units of it, which carries over between machines better than milliseconds do.
The bare call: the app's own botocore client doing one consistent GetItem against the same moto
server, timed around the call alone. Each row's "beyond calls" is its CPU minus its calls times
that: the handler's own work, which the storage layout cannot remove.
POST /login: argon2id (chalicelib.passwords.verify_password) is timed on its own and subtracted, so
the figure is the handler's CPU without the password hash; the hash's median is printed beside it.
Issue 12's self-service paths (bench/self_service.py) follow as a second table, and issue 13's
second-factor paths (bench/second_factor.py: TOTP, recovery codes, passkeys) as a third, without
targets: their DynamoDB calls, KMS calls (kms:Encrypt/Decrypt of a TOTP secret, chalicelib/secret_box.py)
and SES SendEmail calls (whose botocore CPU is part of the handler's figure, and also shown apart),
and the handler's CPU with argon2id subtracted as for POST /login.
Issue 15's federation and logout paths (bench/federation.py: signing in through an upstream identity
provider, home-realm discovery, RP-initiated logout, the back-channel logout delivery function) follow
as a fourth, the same way, with their SQS and Secrets Manager calls and their outbound HTTP requests
(to a loopback upstream and relying party in another process), whose CPU in this process is part of
the handler's and also shown apart. The delivery function is a Lambda fed by SQS: its CPU is timed
around Chalice's event handler (EventSourceHandler.__call__), as Chalice.__call__ for the API.
Issue 14's delegation paths (bench/delegation.py: private_key_jwt, token exchange with `act` chains,
the ID-JAG issued and redeemed from a trusted issuer on loopback, the device authorization grant)
follow as a fifth, the same way as the fourth.
Issue 16's sender-constrained paths (bench/sender_constrained.py: DPoP at /token and /userinfo, each
next to its Bearer twin, and pushed authorization requests) follow as a sixth, the same way, with
each twin's difference below it.
Run: make bench   (or .venv/bin/python bench/request_cpu.py [N] [cold runs] [self-service runs]
[second-factor runs] [federation runs] [delegation runs] [sender-constrained runs], defaults 200, 15,
50 and the self-service runs for the rest; cold runs 0 skips the cold start, self-service runs 0 the
second table, second-factor runs 0 the third, federation runs 0 the fourth, delegation runs 0 the
fifth, sender-constrained runs 0 the sixth)
One of the later tables alone, on a moto server of its own, with this machine's floor and bare call:
.venv/bin/python bench/request_cpu.py --table {self_service,second_factor,federation,delegation,sender_constrained} N
(its last line: the figures as JSON, for `make bench`)
"""
from __future__ import annotations

import collections
import os
import statistics
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FLOOR = "floor: Basic auth + SHA-256 compare + ES256 sign"
BARE_CALL = "one bare DynamoDB call: botocore GetItem, no handler"


@dataclass
class Measured:
    first_calls: dict  # DynamoDB calls by operation of the first (unmeasured) run: the cold caches
    calls: dict  # ... of a warm run
    cpu_ms: float  # median handler CPU of the warm runs, argon2id excluded
    argon2_ms: float  # median argon2id CPU of the warm runs (0 where no password is checked)
    emails: int = 0  # SES SendEmail calls of a warm run
    ses_ms: float = 0.0  # median botocore CPU of those calls, part of cpu_ms
    kms: dict = field(default_factory=dict)  # KMS calls by operation of a warm run
    kms_ms: float = 0.0  # median botocore CPU of kms:Encrypt/Decrypt, part of cpu_ms
    aws: dict = field(default_factory=dict)  # SQS and Secrets Manager calls as "service:Operation" of a warm run
    outbound: int = 0  # outbound HTTP requests (chalicelib/outbound.send: an upstream IdP, a relying party)
    outbound_ms: float = 0.0  # median CPU of those requests in this process (the client's side), part of cpu_ms


#: The separate accounts tables: name -> (module, the child's flag); each runs on a moto server of its own.
TABLES = {"self_service": "bench.self_service", "second_factor": "bench.second_factor",
          "federation": "bench.federation", "delegation": "bench.delegation",
          "sender_constrained": "bench.sender_constrained"}

#: Where argon2id is reached from, as (module, name): the modules that bind it at import, and
#: chalicelib.passwords itself for the callers that import it when called.
ARGON2 = (("chalicelib.passwords", "hash_password"), ("chalicelib.passwords", "verify_password"),
          ("chalicelib.oauth.login", "verify_password"), ("chalicelib.storage.users", "hash_password"))


#: Services whose calls are counted by operation besides DynamoDB, KMS and SES (Measured.aws).
COUNTED = ("sqs", "secretsmanager")


@contextmanager
def instrumented():
    """Count DynamoDB and KMS calls by operation, SQS and Secrets Manager calls (COUNTED), SES
    SendEmail calls and outbound HTTP requests, and time Chalice.__call__ (and a Lambda function's
    event handler: the back-channel logout delivery), argon2id, SendEmail and kms:Encrypt/Decrypt,
    while inside."""
    import importlib

    from chalice import Chalice
    from chalice.app import EventSourceHandler

    from chalicelib import aws, outbound

    probe = {"calls": collections.Counter(), "kms": collections.Counter(), "cpu": [], "argon2": [], "ses": [],
             "kms_cpu": [], "aws": collections.Counter(), "outbound": []}
    depth = [0]  # verify_password may hash (its dummy hash, once): count the outer call only

    def count(event_name, **_):
        probe["calls"][event_name.rsplit(".", 1)[-1]] += 1

    def count_kms(event_name, **_):
        probe["kms"][event_name.rsplit(".", 1)[-1]] += 1

    def count_aws(event_name, **_):  # before-call.<service>.<Operation>
        probe["aws"][":".join(event_name.split(".")[1:3])] += 1

    def timed(function, samples, outermost=False):
        def wrapper(*args, **kwargs):
            if outermost and depth[0]:
                return function(*args, **kwargs)
            depth[0] += outermost
            start = time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                samples.append(time.process_time() - start)
                depth[0] -= outermost
        return wrapper

    events = aws.client("dynamodb").meta.events
    events.register("before-call.dynamodb", count)
    original_call, original_event_call = Chalice.__call__, EventSourceHandler.__call__
    Chalice.__call__ = timed(original_call, probe["cpu"])
    EventSourceHandler.__call__ = timed(original_event_call, probe["cpu"])
    hashing = [(importlib.import_module(module), name) for module, name in ARGON2]
    originals = [getattr(module, name) for module, name in hashing]
    for (module, name), original in zip(hashing, originals):
        setattr(module, name, timed(original, probe["argon2"], outermost=True))
    ses = aws.client("sesv2")
    ses.send_email = timed(ses.send_email, probe["ses"])  # on the instance: the class keeps its own
    kms = aws.client("kms")
    kms.meta.events.register("before-call.kms", count_kms)
    kms.encrypt, kms.decrypt = timed(kms.encrypt, probe["kms_cpu"]), timed(kms.decrypt, probe["kms_cpu"])
    for service in COUNTED:
        aws.client(service).meta.events.register(f"before-call.{service}", count_aws)
    original_send = outbound.send
    outbound.send = timed(original_send, probe["outbound"])  # callers reach it as outbound.send
    try:
        yield probe
    finally:
        outbound.send = original_send
        for service in COUNTED:
            aws.client(service).meta.events.unregister(f"before-call.{service}", count_aws)
        del kms.encrypt, kms.decrypt
        kms.meta.events.unregister("before-call.kms", count_kms)
        del ses.send_email
        for (module, name), original in zip(hashing, originals):
            setattr(module, name, original)
        Chalice.__call__, EventSourceHandler.__call__ = original_call, original_event_call
        events.unregister("before-call.dynamodb", count)


def measure(paths: dict, runs: int) -> dict[str, Measured]:
    """The measuring loop: for each path, one run to warm the caches, then `runs` measured runs."""
    results = {}
    with instrumented() as probe:
        for label, (make_input, request) in paths.items():
            cpu, hashes, calls, sends, kms, kms_cpu, others, requests, request_cpu = ([] for _ in range(9))
            for _ in range(runs + 1):
                value = make_input() if make_input else None
                for samples in probe.values():
                    samples.clear()
                response = request(value)
                # 303: where the next request must be a GET (to an upstream identity provider); 201: a
                # pushed authorization request (RFC 9126 §2.2).
                assert response.status_code in (200, 201, 302, 303), (label, response.status_code,
                                                                      response.body[:300])
                calls.append(dict(probe["calls"]))
                # The request's own invocation is the last one (an input may have made others).
                cpu.append(probe["cpu"][-1] - sum(probe["argon2"]))
                hashes.append(sum(probe["argon2"]))
                sends.append(list(probe["ses"]))
                kms.append(dict(probe["kms"]))
                kms_cpu.append(sum(probe["kms_cpu"]))
                others.append(dict(probe["aws"]))
                requests.append(len(probe["outbound"]))
                request_cpu.append(sum(probe["outbound"]))
            warm = slice(1, None) if runs else slice(0, None)
            results[label] = Measured(calls[0], calls[-1], statistics.median(cpu[warm]) * 1000,
                                      statistics.median(hashes[warm]) * 1000, len(sends[-1]),
                                      statistics.median([sum(s) for s in sends[warm]]) * 1000, kms[-1],
                                      statistics.median(kms_cpu[warm]) * 1000, others[-1], requests[-1],
                                      statistics.median(request_cpu[warm]) * 1000)
    return results


def floor_paths() -> dict:
    """The floor as a path of its own: a bare Chalice app, one route, the token endpoint's minimum."""
    import base64
    import hashlib
    import hmac
    import secrets

    import jwt
    from chalice import Chalice, Response
    from chalice.test import Client
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    client_id, secret = "job", secrets.token_urlsafe(32)
    stored = hashlib.sha256(secret.encode()).hexdigest()
    floor = Chalice(app_name="floor")

    @floor.route("/token", methods=["POST"], content_types=["application/x-www-form-urlencoded"])
    def token():
        header = floor.current_request.headers.get("authorization", "")
        presented_id, _, presented = base64.b64decode(header.removeprefix("Basic ")).decode().partition(":")
        if presented_id != client_id or not hmac.compare_digest(
                hashlib.sha256(presented.encode()).hexdigest(), stored):
            return Response({"error": "invalid_client"}, status_code=401)
        now = int(time.time())
        access_token = jwt.encode({"iss": "https://floor", "sub": client_id, "aud": "https://api.example.com",
                                   "iat": now, "exp": now + 300, "jti": secrets.token_urlsafe(16)},
                                  key, algorithm="ES256", headers={"kid": "floor"})
        return {"access_token": access_token, "token_type": "Bearer", "expires_in": 300}

    http = Client(floor, stage_name="local").http  # as the app's requests are made
    auth = {"Content-Type": "application/x-www-form-urlencoded",
            "Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}
    return {FLOOR: (None, lambda _: http.post("/token", body=b"grant_type=client_credentials", headers=auth))}


def measure_requests(runs: int, *, table: str | None = None) -> dict[str, Measured]:
    """The app's paths (bench/scenario.py) and the floor, on a moto server in another process; or,
    with `table` (a name of TABLES), issue 12's paths (bench/self_service.py), issue 13's
    (bench/second_factor.py), issue 15's (bench/federation.py), issue 14's (bench/delegation.py) or issue 16's
    (bench/sender_constrained.py) alone, on a moto server of their
    own (a moto server slows down as items pile up: after the OAuth paths' runs a sign-up's
    transactions outlasted the request's AWS deadline). Either way the floor (FLOOR) and the bare
    call (BARE_CALL) come last, so that a table's child can print its table by itself."""
    import importlib

    from bench.cold_start import ENV, start_moto, stop

    accounts = importlib.import_module(TABLES[table]) if table else None
    server, url = start_moto()
    try:
        os.environ.update({**ENV, **(accounts.ENV if accounts else {}), "TABLE_PREFIX": "idp-cpubench",
                           "SECRET_PREFIX": "idp/cpubench/"}, AWS_ENDPOINT_URL=url)
        from chalice.test import Client

        from tools import chalice_compat

        chalice_compat.install()
        from app import app
        from bench.scenario import paths, seed

        scenario = seed()
        if accounts:
            accounts.seed(scenario)
        with Client(app, stage_name="local") as client:
            results = measure((accounts.paths if accounts else paths)(client.http, scenario), runs)
        results.update(measure(floor_paths(), runs))
        results[BARE_CALL] = Measured({}, {}, bare_call_ms(runs), 0.0)
        return results
    finally:
        stop(server)


def table_in_a_child(table: str, runs: int) -> dict[str, Measured]:
    """measure_requests(runs, table=table) in a fresh interpreter (the app reads its environment
    once), as JSON on its last line (the floor and the bare call, which the child measures to print
    its table, left out: the parent's own are used)."""
    import json
    import subprocess

    run = subprocess.run([sys.executable, __file__, "--table", table, str(runs)], cwd=ROOT, capture_output=True,
                         text=True, check=False)
    if run.returncode:
        raise SystemExit(f"the {table} table failed:\n{run.stderr[-5000:]}")
    return {label: Measured(**fields) for label, fields in json.loads(run.stdout.splitlines()[-1]).items()}


def bare_call_ms(runs: int) -> float:
    """Median CPU of one consistent GetItem through the app's own DynamoDB client (its config,
    its connection pool), with no handler around it."""
    from chalicelib import aws
    from chalicelib.storage.models import ClientModel

    dynamodb = aws.client("dynamodb")
    cpu = []
    for _ in range(runs + 1):
        start = time.process_time()
        dynamodb.get_item(TableName=ClientModel.Meta.table_name, Key={"client_id": {"S": "bench-absent"}},
                          ConsistentRead=True)
        cpu.append(time.process_time() - start)
    return statistics.median(cpu[1:]) * 1000


def print_self_service(results: dict[str, Measured], runs: int, floor: float, bare: float) -> None:
    """Issue 12's table: no targets. "emails" are SES SendEmail calls; their botocore CPU ("SES ms")
    is inside "CPU ms", as on Lambda; argon2id is not (bench/self_service.HASHES says where it runs).
    "beyond calls": CPU ms minus the DynamoDB calls at the bare call's CPU and minus SES ms."""
    from bench.self_service import HASHES

    print()
    print(f"issue 12 self-service paths (no targets): median handler CPU of {runs} in-process invocations, "
          f"argon2id excluded, SES SendEmail's botocore CPU included")
    print(f"{'request':52s} {'calls':>5s} {'emails':>6s} {'CPU ms':>7s} {'SES ms':>6s} {'x floor':>7s} "
          f"{'beyond calls':>12s}  by operation")
    for label, measured in results.items():
        calls = sum(measured.calls.values())
        detail = ", ".join(f"{k}={v}" for k, v in sorted(measured.calls.items()))
        extra = f"   (+ argon2id {measured.argon2_ms:.0f} ms: {HASHES[label]})" if label in HASHES else ""
        print(f"{label:52s} {calls:5d} {measured.emails:6d} {measured.cpu_ms:7.2f} {measured.ses_ms:6.2f} "
              f"{measured.cpu_ms / floor:7.1f} {measured.cpu_ms - calls * bare - measured.ses_ms:12.2f}  "
              f"{detail}{extra}")


def print_second_factor(results: dict[str, Measured], runs: int, floor: float, bare: float) -> None:
    """Issue 13's table: no targets. "KMS" are kms:Encrypt/Decrypt calls (a TOTP secret sealed or
    opened), "emails" SES SendEmail calls; the botocore CPU of both ("KMS+SES ms") is inside "CPU
    ms", as on Lambda; argon2id is not (bench/second_factor.HASHES says where it runs).
    "beyond calls": CPU ms minus the DynamoDB calls at the bare call's CPU and minus KMS+SES ms."""
    from bench.second_factor import HASHES

    print()
    print(f"issue 13 second-factor paths (no targets): median handler CPU of {runs} in-process invocations, "
          f"argon2id excluded, the botocore CPU of KMS and SES calls included")
    print(f"{'request':52s} {'calls':>5s} {'KMS':>3s} {'emails':>6s} {'CPU ms':>7s} {'KMS+SES ms':>10s} "
          f"{'x floor':>7s} {'beyond calls':>12s}  by operation")
    for label, measured in results.items():
        calls = sum(measured.calls.values())
        detail = ", ".join(f"{k}={v}" for k, v in sorted({**measured.calls, **measured.kms}.items()))
        extra = f"   (+ argon2id {measured.argon2_ms:.0f} ms: {HASHES[label]})" if label in HASHES else ""
        aside = measured.kms_ms + measured.ses_ms
        print(f"{label:52s} {calls:5d} {sum(measured.kms.values()):3d} {measured.emails:6d} {measured.cpu_ms:7.2f} "
              f"{aside:10.2f} {measured.cpu_ms / floor:7.1f} {measured.cpu_ms - calls * bare - aside:12.2f}  "
              f"{detail}{extra}")


def print_federation(results: dict[str, Measured], runs: int, floor: float, bare: float) -> None:
    """Issue 15's table: no targets. "AWS" counts the calls besides DynamoDB: SQS (the sign-out's one
    SendMessage, the fan-out's SendMessageBatch), Secrets Manager (the connection's secret, cached),
    KMS and SES SendEmail; "HTTP" the outbound requests (the upstream's token and userinfo endpoints,
    the relying party's back-channel URI). Their CPU in this process is inside "CPU ms", as on Lambda;
    "HTTP ms" shows the outbound requests' apart. "beyond calls": CPU ms minus the DynamoDB, SQS and
    Secrets Manager calls at the bare call's CPU each, KMS+SES ms and HTTP ms."""
    print()
    print(f"issue 15 federation and logout paths (no targets): median handler CPU of {runs} in-process invocations, "
          f"steady state (connections, secret, upstream discovery and JWKS cached), the CPU of AWS calls and "
          f"outbound HTTP included")
    _print_rows(results, floor, bare)


def print_delegation(results: dict[str, Measured], runs: int, floor: float, bare: float) -> None:
    """Issue 14's table: no targets; the columns of issue 15's (print_federation). "AWS" counts the
    calls besides DynamoDB (none once warm: the signing key and the clients are cached), "HTTP" the
    outbound requests (a trusted issuer's discovery document and JWK Set, cached once fetched)."""
    print()
    print(f"issue 14 delegation paths (no targets): median handler CPU of {runs} in-process invocations, "
          f"steady state (clients, policies, resources, connections, the trusted issuer's discovery and JWKS "
          f"cached), the CPU of AWS calls and outbound HTTP included")
    _print_rows(results, floor, bare)


def print_sender_constrained(results: dict[str, Measured], runs: int, floor: float, bare: float) -> None:
    """Issue 16's table: no targets; the columns of issue 15's (print_federation), then what each
    DPoP (or pushed) row adds to its twin (bench/sender_constrained.TWINS): DynamoDB calls, other AWS
    calls and CPU."""
    from bench.sender_constrained import TWINS

    print()
    print(f"issue 16 sender-constrained paths (no targets): median handler CPU of {runs} in-process invocations, "
          f"steady state (clients, signing key and the DPoP nonce key cached, except in the \"cold nonce\" row), "
          f"the CPU of AWS calls included")
    _print_rows(results, floor, bare)
    print(f"{'difference to the twin':52s} {'calls':>5s} {'AWS':>3s} {'':4s} {'CPU ms':>7s}")
    for label, twin in TWINS.items():
        if label in results and twin in results:
            row, base = results[label], results[twin]
            print(f"{label:52s} {sum(row.calls.values()) - sum(base.calls.values()):+5d} "
                  f"{sum(row.aws.values()) - sum(base.aws.values()):+3d} {'':4s} "
                  f"{row.cpu_ms - base.cpu_ms:+7.2f}  vs {twin}")


def _print_rows(results: dict[str, Measured], floor: float, bare: float) -> None:
    """The rows of print_federation's, print_delegation's and print_sender_constrained's tables."""
    print(f"{'request':52s} {'calls':>5s} {'AWS':>3s} {'HTTP':>4s} {'CPU ms':>7s} {'HTTP ms':>7s} {'x floor':>7s} "
          f"{'beyond calls':>12s}  by operation")
    for label, measured in results.items():
        calls = sum(measured.calls.values())
        billed = calls + sum(measured.aws.values())
        others = sum(measured.aws.values()) + sum(measured.kms.values()) + measured.emails
        detail = {**measured.calls, **measured.kms, **measured.aws}
        if measured.emails:
            detail["ses:SendEmail"] = measured.emails
        detail = ", ".join(f"{k}={v}" for k, v in sorted(detail.items()))
        beyond = measured.cpu_ms - billed * bare - measured.kms_ms - measured.ses_ms - measured.outbound_ms
        print(f"{label:52s} {calls:5d} {others:3d} {measured.outbound:4d} {measured.cpu_ms:7.2f} "
              f"{measured.outbound_ms:7.2f} {measured.cpu_ms / floor:7.1f} {beyond:12.2f}  {detail}")


#: TABLES' print functions.
PRINTERS = {"self_service": print_self_service, "second_factor": print_second_factor,
            "federation": print_federation, "delegation": print_delegation,
            "sender_constrained": print_sender_constrained}


def main() -> None:
    if sys.argv[1:2] == ["--table"]:  # the child of table_in_a_child
        import dataclasses
        import json

        table, runs = sys.argv[2], int(sys.argv[3])
        measured = measure_requests(runs, table=table)
        floor, bare = measured.pop(FLOOR).cpu_ms, measured.pop(BARE_CALL).cpu_ms
        # The table as `make bench` prints it (this child's own floor and bare call), then the figures
        # for the parent on the last line.
        PRINTERS[table](measured, runs, floor, bare)
        print(json.dumps({label: dataclasses.asdict(m) for label, m in measured.items()}))
        return
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    cold_runs = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    self_service_runs = int(sys.argv[3]) if len(sys.argv) > 3 else 50
    second_factor_runs = int(sys.argv[4]) if len(sys.argv) > 4 else self_service_runs
    federation_runs = int(sys.argv[5]) if len(sys.argv) > 5 else self_service_runs
    delegation_runs = int(sys.argv[6]) if len(sys.argv) > 6 else self_service_runs
    sender_constrained_runs = int(sys.argv[7]) if len(sys.argv) > 7 else self_service_runs
    from bench import cold_start
    from bench.scenario import TARGETS

    cold = cold_start.measure_apart(cold_runs) if cold_runs else None  # first: fresh interpreters on a quiet moto
    results = measure_requests(runs)
    accounts = table_in_a_child("self_service", self_service_runs) if self_service_runs else {}
    second_factors = table_in_a_child("second_factor", second_factor_runs) if second_factor_runs else {}
    federated = table_in_a_child("federation", federation_runs) if federation_runs else {}
    delegated = table_in_a_child("delegation", delegation_runs) if delegation_runs else {}
    constrained = table_in_a_child("sender_constrained", sender_constrained_runs) if sender_constrained_runs else {}
    floor = results[FLOOR].cpu_ms
    bare = results[BARE_CALL].cpu_ms
    print(f"issue 10 benchmark: warm requests, median handler CPU of {runs} in-process invocations "
          f"(moto server in another process)")
    print(f"{'request':52s} {'calls':>5s} {'target':>6s} {'CPU ms':>7s} {'target':>7s} {'x floor':>7s} "
          f"{'beyond calls':>12s}  by operation")
    for label, measured in results.items():
        calls = sum(measured.calls.values()) + (label == BARE_CALL)
        target_calls, target_cpu = TARGETS.get(label, ("", ""))
        target_calls = f"≤ {target_calls}" if target_calls != "" else "—"
        target_cpu = f"≤ {target_cpu}" if target_cpu != "" else "—"
        detail = ", ".join(f"{k}={v}" for k, v in sorted(measured.calls.items()))
        extra = f"   (+ argon2id {measured.argon2_ms:.0f} ms)" if measured.argon2_ms else ""
        print(f"{label:52s} {calls:5d} {target_calls:>6s} {measured.cpu_ms:7.2f} {target_cpu:>7s} "
              f"{measured.cpu_ms / floor:7.1f} {measured.cpu_ms - calls * bare:12.2f}  {detail}{extra}")
    if cold:
        print(f"{'cold first client_credentials token, app / floor':52s} {'':5s} {'':6s} {'':7s} {'≤ 1.25':>7s} "
              f"{cold.ratio:7.2f}  {cold.describe()}")
    if accounts:
        print_self_service(accounts, self_service_runs, floor, bare)
    if second_factors:
        print_second_factor(second_factors, second_factor_runs, floor, bare)
    if federated:
        print_federation(federated, federation_runs, floor, bare)
    if delegated:
        print_delegation(delegated, delegation_runs, floor, bare)
    if constrained:
        print_sender_constrained(constrained, sender_constrained_runs, floor, bare)

    # Cost per MAU from this run's CPU (argon2id included) and the units measured in a child process.
    from bench import cost

    cpu = {**cost.DEFAULT_CPU_MS, **{label: m.cpu_ms + m.argon2_ms for label, m in results.items()}}
    print()
    cost.print_table(cost.units_in_a_child(), cpu)


if __name__ == "__main__":
    main()
