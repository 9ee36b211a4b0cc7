"""A sustained concurrency run: many workers mixing every token path at once for a while, then proof
from the tables that nothing was lost or spent twice.

    make bench-load [DURATION=60] [WORKERS=64]
    .venv/bin/python bench/concurrency.py [--duration 60] [--workers 64] [--json]

The app runs in this process, called as Lambda calls it (app(event, context), events built by
chalice's local gateway), against the moto server `make run` uses (tools/moto_server.py, which makes
each DynamoDB action atomic as DynamoDB's conditional writes are) in another process. A worker is a
Lambda container with one request in flight: Chalice keeps the current request on the app object,
so this process keeps it per thread (`serve_threads_as_containers`); everything else a container
keeps (AWS clients, caches) is shared by the workers, as it would be by the requests of one warm
container.

Each worker has a user and an address of its own (sign-in limits count per account and address),
and draws its next operation from a fixed mix: a password sign-in (GET /authorize, GET
/login, POST /login; argon2id), a signed-in GET /authorize (a code), a code redemption, a refresh,
client_credentials, introspection and revocation. Codes go to a pool all workers redeem from, and
some codes and refresh tokens are handed to a second worker on purpose, so that two redemptions of
one code, or two rotations of one token, really do race.

Afterwards the tables are read and checked against what the clients were told:
- every code was redeemed successfully at most once, every code a client redeemed is consumed, and
  every code nobody presented is not;
- every refresh family is linear: each token was rotated successfully at most once, every success
  returned a distinct successor, the successes form one chain from the family's first token, and
  the grant's current token is the chain's last (unless the last attempt's outcome is unknown
  because it failed with a 5xx);
- every grant a redemption succeeded for exists, and every family a client revoked, or whose
  token was presented twice, is revoked.
Exit status 1 when any check fails. Latencies are wall time per operation in this process (a
sign-in is its three requests), so they include waiting for the GIL and the moto server's lock.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import random
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
ENV = {"STAGE": "local", "ISSUER": "http://localhost:8000", "TABLE_PREFIX": "idp-loadbench",
       "SECRET_PREFIX": "idp/loadbench/", "KEY_BACKEND": "secretsmanager", "SIGNING_ALG": "ES256",
       "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
       "AWS_REGION": "us-east-1", "LOG_LEVEL": "CRITICAL",
       # As the local stage: a moto server serialising 64 workers is slow, and no Lambda timeout applies.
       "AWS_DEADLINE_SECONDS": "0"}

#: Operation -> weight in the mix.
MIX = {"sign-in": 3, "authorize": 12, "redeem": 12, "refresh": 30, "client_credentials": 20, "introspect": 15,
       "revoke": 4}
#: Chance that a worker hands the code it redeems, or the refresh token it rotates, to a second worker.
CONTEST = 0.08
#: Codes per signed-in session before the worker signs in afresh (a session lists its grants).
CODES_PER_SESSION = 50
FAMILIES_PER_WORKER = 4


def serve_threads_as_containers() -> None:
    """Chalice keeps the request being served (and its Lambda context) on the app object: one
    request at a time, as in a Lambda container. Keep them per thread instead, so each worker
    thread is a container of its own."""
    from chalice.app import Chalice

    state = threading.local()
    for name in ("current_request", "lambda_context"):
        setattr(Chalice, name, property(lambda self, n=name: getattr(state, n, None),
                                        lambda self, value, n=name: setattr(state, n, value)))


def gateway_client(app, config, source_ip: str):
    """chalice.test's HTTP client without its per-request swap of os.environ (not thread-safe; the
    environment is set once, before the app is imported), its requests coming from `source_ip`."""
    import contextlib

    from chalice.test import TestHTTPClient

    class FromAddress:
        """The app, seeing each event as sent from `source_ip` (chalice's gateway says 127.0.0.1)."""

        def __getattr__(self, name):
            return getattr(app, name)

        def __call__(self, event, context):
            event["requestContext"].setdefault("identity", {})["sourceIp"] = source_ip
            return app(event, context)

    class Client(TestHTTPClient):
        @contextlib.contextmanager
        def _patched_env_vars(self, environment_variables):
            yield

    return Client(FromAddress(), config)


def user_of(index: int) -> tuple[str, str]:
    """Worker `index`'s user (email) and address: sign-in limits count per account and per
    address, and one user signing in from one address 64 times at once is an attack, not load."""
    return f"worker{index}@example.com", f"198.18.{index % 256}.{1 + index // 256}"


@dataclass
class Log:
    """What the clients were told, for the checks; appended to from every worker."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    timings: dict = field(default_factory=lambda: collections.defaultdict(list))  # kind -> [(ms, status)]
    issued_codes: list = field(default_factory=list)
    redemptions: list = field(default_factory=list)  # (code, status, refresh_token or None)
    rotations: list = field(default_factory=list)  # (presented, status, successor or None)
    revocations: list = field(default_factory=list)  # (token, status)
    #: Redirects back to the app that carried an error instead of a code: "kind: error" -> count.
    error_redirects: collections.Counter = field(default_factory=collections.Counter)

    def time(self, kind: str, started: float, status: int) -> None:
        with self.lock:
            self.timings[kind].append(((time.perf_counter() - started) * 1000, status))


class Shared:
    """Codes waiting to be redeemed and tokens handed over for a second presentation."""

    def __init__(self):
        self.lock = threading.Lock()
        self.codes: collections.deque = collections.deque()
        self.contested_tokens: collections.deque = collections.deque()

    def put_code(self, code: str) -> None:
        with self.lock:
            self.codes.append(code)

    def take_code(self) -> str | None:
        with self.lock:
            return self.codes.popleft() if self.codes else None

    def contest_token(self, token: str) -> None:
        with self.lock:
            self.contested_tokens.append(token)

    def take_contested_token(self) -> str | None:
        with self.lock:
            return self.contested_tokens.popleft() if self.contested_tokens else None


class Worker:
    def __init__(self, index: int, http, scenario, log: Log, shared: Shared, deadline: float):
        from bench.scenario import API, SCOPE, WEB_APP, basic
        from tests.routes.flow import authorize_query

        self.rng = random.Random(index)
        self.email = user_of(index)[0]
        self.http, self.scenario, self.log, self.shared, self.deadline = http, scenario, log, shared, deadline
        self.authorize_path = "/authorize?" + authorize_query(scenario.public.client_id, scope=SCOPE, redirect_uri=WEB_APP)
        self.web_app = WEB_APP
        self.cc_body = urlencode({"grant_type": "client_credentials", "resource": API}).encode()
        self.service_auth = basic(scenario.service.client_id, scenario.service_secret)
        self.rs_auth = basic(scenario.api.client_id, scenario.api_secret)
        self.browser, self.codes_in_session = None, 0
        self.families: list[str] = []
        self.access_token = None
        self.kinds, self.weights = list(MIX), list(MIX.values())

    def run(self) -> None:
        while time.perf_counter() < self.deadline:
            contested = self.shared.take_contested_token()
            if contested is not None:
                self.refresh(contested, keep=False)
                continue
            getattr(self, self.rng.choices(self.kinds, self.weights)[0].replace("-", "_"))()

    # Operations -----------------------------------------------------------------------------

    def sign_in(self) -> None:
        from bench.scenario import PASSWORD
        from tests.routes.flow import Browser, hidden

        started = time.perf_counter()
        browser = Browser(self.http)
        login = browser.get(self.authorize_path).headers["Location"]
        page = browser.get(login)
        response = browser.post("/login", {"request_id": hidden(page.body, "request_id"),
                                           "csrf_token": hidden(page.body, "csrf_token"),
                                           "username": self.email, "password": PASSWORD})
        self.log.time("sign-in", started, response.status_code)
        if self._issued("sign-in", response):
            self.browser, self.codes_in_session = browser, 0

    def authorize(self) -> None:
        if self.browser is None or self.codes_in_session >= CODES_PER_SESSION:
            return self.sign_in()
        started = time.perf_counter()
        response = self.browser.get(self.authorize_path)
        self.log.time("authorize (signed in)", started, response.status_code)
        if self._issued("authorize (signed in)", response):
            self.codes_in_session += 1

    def _issued(self, kind: str, response) -> bool:
        """Pool the code the app was sent back with; False (and the error counted) without one."""
        from tests.routes.flow import query_of

        location = response.headers.get("Location", "")
        if response.status_code != 302 or not location.startswith(self.web_app):
            return False
        query = query_of(location)
        with self.log.lock:
            if "code" not in query:
                self.log.error_redirects[f"{kind}: {query.get('error')}"] += 1
                return False
            self.log.issued_codes.append(query["code"])
        self.shared.put_code(query["code"])
        return True

    def redeem(self) -> None:
        from tests.routes.flow import redeem

        code = self.shared.take_code()
        if code is None:
            return self.authorize()
        if self.rng.random() < CONTEST:
            self.shared.put_code(code)  # a second worker presents it too
        started = time.perf_counter()
        response = redeem(self.http, self.scenario.public.client_id, code, redirect_uri=self.web_app)
        self.log.time("redeem code", started, response.status_code)
        refresh_token = json.loads(response.body).get("refresh_token") if response.status_code == 200 else None
        with self.log.lock:
            self.log.redemptions.append((code, response.status_code, refresh_token))
        if refresh_token:
            self.access_token = json.loads(response.body)["access_token"]
            self.families.append(refresh_token)
            if len(self.families) > FAMILIES_PER_WORKER:
                self.families.pop(0)  # left as it is: still a family to check

    def refresh(self, token: str | None = None, keep: bool = True) -> None:
        from tests.routes.flow import FORM

        if token is None:
            if not self.families:
                return self.redeem()
            token = self.families.pop(self.rng.randrange(len(self.families)))
            if self.rng.random() < CONTEST:
                self.shared.contest_token(token)
        started = time.perf_counter()
        response = self.http.post("/token", headers=FORM, body=urlencode(
            {"grant_type": "refresh_token", "refresh_token": token,
             "client_id": self.scenario.public.client_id}).encode())
        self.log.time("refresh", started, response.status_code)
        successor = json.loads(response.body).get("refresh_token") if response.status_code == 200 else None
        with self.log.lock:
            self.log.rotations.append((token, response.status_code, successor))
        if successor and keep:
            self.families.append(successor)

    def client_credentials(self) -> None:
        started = time.perf_counter()
        response = self.http.post("/token", body=self.cc_body, headers=self.service_auth)
        self.log.time("client_credentials", started, response.status_code)
        if response.status_code == 200 and (self.access_token is None or self.rng.random() < 0.5):
            self.access_token = json.loads(response.body)["access_token"]

    def introspect(self) -> None:
        if self.access_token is None:
            return self.client_credentials()
        started = time.perf_counter()
        response = self.http.post("/introspect", body=urlencode({"token": self.access_token}).encode(),
                                  headers=self.rs_auth)
        self.log.time("introspect", started, response.status_code)

    def revoke(self) -> None:
        from tests.routes.flow import FORM

        if not self.families:
            return self.redeem()
        token = self.families.pop(self.rng.randrange(len(self.families)))
        started = time.perf_counter()
        response = self.http.post("/revoke", headers=FORM, body=urlencode(
            {"token": token, "token_type_hint": "refresh_token",
             "client_id": self.scenario.public.client_id}).encode())
        self.log.time("revoke", started, response.status_code)
        with self.log.lock:
            self.log.revocations.append((token, response.status_code))


# The checks ------------------------------------------------------------------------------------

def check(log: Log) -> tuple[list[str], dict]:
    """Read the codes and grants tables; return (what is wrong, what was checked)."""
    from chalicelib.hashing import sha256_hex
    from chalicelib.oauth import refresh_tokens
    from chalicelib.storage.models import AuthorizationCodeModel, GrantModel

    problems: list[str] = []
    codes = {item.code_hash: item for item in AuthorizationCodeModel.scan(consistent_read=True)}
    grants = {(item.sub, item.grant_id): item for item in GrantModel.scan(consistent_read=True)}

    successes = collections.Counter(code for code, status, _ in log.redemptions if status == 200)
    presented = {code for code, _, _ in log.redemptions}
    for code, count in successes.items():
        if count > 1:
            problems.append(f"code {code[:8]}… redeemed {count} times")
    for code in log.issued_codes:
        item = codes.get(sha256_hex(code))
        if item is None:
            problems.append(f"code {code[:8]}… issued but not stored")
        elif code in successes and item.consumed_at is None:
            problems.append(f"code {code[:8]}… redeemed but not consumed")
        elif code not in presented and item.consumed_at is not None:
            problems.append(f"code {code[:8]}… consumed though nobody presented it")

    first_tokens = [token for _, status, token in log.redemptions if status == 200]
    for token in first_tokens:
        sub, grant_id, _ = refresh_tokens.parse(token)
        if (sub, grant_id) not in grants:
            problems.append(f"grant {grant_id} of a successful redemption is missing")

    rotated = collections.defaultdict(list)  # presented -> [status, ...]
    successor_of = {}
    for token, status, successor in log.rotations:
        rotated[token].append(status)
        if successor:
            successor_of.setdefault(token, []).append(successor)
    all_successors = [s for successors in successor_of.values() for s in successors]
    if len(all_successors) != len(set(all_successors)):
        problems.append("a successor token was handed out twice")
    for token, successors in successor_of.items():
        if len(successors) > 1:
            problems.append(f"refresh token {token[:12]}… rotated {len(successors)} times: family forked")
    # A family is revoked by its client's revocation, by a second presentation of a token it rotated
    # (reuse), or by a second redemption of its code (replay).
    revoked_by_client = {refresh_tokens.parse(token)[:2] for token, status in log.revocations if status == 200}
    reused = {refresh_tokens.parse(token)[:2] for token, statuses in rotated.items()
              if len(statuses) > 1 and 200 in statuses}
    replayed = {refresh_tokens.parse(token)[:2] for code, status, token in log.redemptions
                if status == 200 and sum(1 for c, _, _ in log.redemptions if c == code) > 1}
    rotations_per_family = collections.Counter(refresh_tokens.parse(token)[:2] for token in successor_of
                                               for _ in successor_of[token])
    families = 0
    for first in first_tokens:
        families += 1
        key = refresh_tokens.parse(first)[:2]
        chain = [first]
        while len(successor_of.get(chain[-1], [])) == 1:
            chain.append(successor_of[chain[-1]][0])
        if rotations_per_family[key] != len(chain) - 1:
            problems.append(f"family {key[1]}: {rotations_per_family[key]} rotations, but a chain of {len(chain) - 1}")
        grant = grants.get(key)
        if grant is None:
            continue
        tail = chain[-1]
        unknown = any(status >= 500 for status in rotated.get(tail, []))
        if grant.token_hash != sha256_hex(tail) and not unknown:
            problems.append(f"family {key[1]}: the grant's current token is not the last one handed out")
        if [refresh_tokens.parse(t)[2] for t in chain] != list(range(len(chain))):
            problems.append(f"family {key[1]}: rotation numbers skip")
        if key in (revoked_by_client | reused | replayed) and grant.status != "revoked":
            problems.append(f"family {key[1]}: revoked by its client, reused or replayed, yet still active")
    summary = {"codes issued": len(log.issued_codes), "codes presented": len(presented),
               "codes redeemed": len(successes),
               "code presentations refused": sum(1 for _, status, _ in log.redemptions if status != 200),
               "families": families, "rotations": len(all_successors),
               "tokens presented twice": sum(1 for statuses in rotated.values() if len(statuses) > 1),
               "families revoked by their client": len(revoked_by_client),
               "families revoked for reuse or replay": len((reused | replayed) - revoked_by_client)}
    return problems, summary


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def report(log: Log, seconds: float, workers: int) -> dict:
    rows = {}
    for kind, samples in sorted(log.timings.items()):
        ms = [m for m, _ in samples]
        statuses = collections.Counter(status for _, status in samples)
        rows[kind] = {"count": len(ms), "per_s": len(ms) / seconds, "p50_ms": statistics.median(ms),
                      "p99_ms": percentile(ms, 0.99), "statuses": dict(sorted(statuses.items()))}
    total = sum(row["count"] for row in rows.values())
    return {"seconds": seconds, "workers": workers, "operations": total, "per_s": total / seconds, "kinds": rows,
            "error_redirects": dict(log.error_redirects)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=float(os.environ.get("DURATION", 60)))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WORKERS", 64)))
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = parser.parse_args(argv)

    from bench.cold_start import start_moto, stop

    server, moto_url = start_moto()
    try:
        os.environ.update(ENV, AWS_ENDPOINT_URL=moto_url)
        from chalice.test import Client

        from tools import chalice_compat

        chalice_compat.install()
        serve_threads_as_containers()
        from app import app
        from bench.scenario import PASSWORD, SCOPE, WEB_APP, seed
        from chalicelib.storage.users import create_user
        from tests.routes.flow import Browser, sign_in_and_consent

        scenario = seed()
        config = Client(app, stage_name="local")._chalice_config
        clients = [gateway_client(app, config, user_of(i)[1]) for i in range(args.workers)]
        for i, http in enumerate(clients):
            # Each worker's user consents once, so every later sign-in and /authorize answers with a code.
            create_user(user_of(i)[0], PASSWORD)
            sign_in_and_consent(Browser(http), scenario.public.client_id, email=user_of(i)[0], password=PASSWORD,
                                scope=SCOPE, redirect_uri=WEB_APP)
        log, shared = Log(), Shared()
        deadline = time.perf_counter() + args.duration
        workers = [Worker(i, http, scenario, log, shared, deadline) for i, http in enumerate(clients)]
        failures: list[BaseException] = []

        def run(worker):
            try:
                worker.run()
            except BaseException as exc:  # a worker's crash is a failed run, not a silent thread death
                failures.append(exc)

        started = time.perf_counter()
        threads = [threading.Thread(target=run, args=(w,), name=f"worker-{i}") for i, w in enumerate(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
        result = report(log, seconds, args.workers)
        problems, summary = check(log)
        problems += [f"worker crashed: {exc!r}" for exc in failures]
        result.update(checked=summary, problems=problems)
    finally:
        stop(server)

    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.workers} workers for {result['seconds']:.1f} s: {result['operations']} operations, "
              f"{result['per_s']:.0f}/s")
        print(f"{'operation':24} {'count':>7} {'per s':>7} {'p50 ms':>8} {'p99 ms':>8}  statuses")
        for kind, row in result["kinds"].items():
            print(f"{kind:24} {row['count']:7d} {row['per_s']:7.1f} {row['p50_ms']:8.1f} {row['p99_ms']:8.1f}  "
                  f"{row['statuses']}")
        if result["error_redirects"]:
            print("redirected with an error instead of a code: " + ", ".join(
                f"{k} {v}" for k, v in result["error_redirects"].items()))
        print("checked: " + ", ".join(f"{k} {v}" for k, v in summary.items()))
        print("problems: " + ("none" if not problems else "\n  " + "\n  ".join(problems)))
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
