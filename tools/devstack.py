"""`make run`: the whole IdP on loopback, with no AWS account, and a demo app that signs in with it.

    moto server (127.0.0.1:MOTO_PORT)  <-  tables, signing keys, the verified email sender and the
                                           demo app's client (bootstrapped here, idempotently)
    chalice local (127.0.0.1:PORT)     ->  talks to moto through AWS_ENDPOINT_URL; every email it
                                           sends is also an .eml in <state dir>/outbox (OUTBOX_DIR)
    demo app (127.0.0.1:DEMO_PORT)     ->  a relying party of the IdP (tools/demo_app.py)

State survives restarts through moto's request recorder: moto appends every request it serves to
<state dir>/moto-recording.jsonl, and the next start replays the writes. The state dir is
LOCAL_STATE_DIR (default .local/; `make reset-local` deletes it). KMS calls cannot be replayed (moto
gives replayed keys new ids and new key material). The symmetric keys (FACTOR_KMS_KEY_ID, which
seals TOTP secrets, and KEY_BACKEND=kms-envelope's ENVELOPE_KMS_KEY_ID) are therefore made again at
every start with the id and the 256-bit material kept in <state dir>/kms-keys.json (mode 0600,
written once per alias), so whatever was sealed before a restart still opens. KEY_BACKEND=kms's
asymmetric signing keys are not importable like that: the key ring replaces them at start-up, so
prefer the default Secrets Manager key backend locally, whose keys (and kids) survive restarts.

Sent emails are not replayed (see REPLAY_WORTHLESS_PATHS); the sender identity is, and the bootstrap
verifies it again if it is missing, so mail works after every start.

Ctrl-C or SIGTERM stops every server and exits 0; if one dies on its own, the others are stopped and
the exit status is 1.
"""
from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

from tools import demo_app
from tools.stage_env import DEFAULT_STATE_DIR, ROOT, local_defaults, local_state_dir, stage_environment

RECORDING = "moto-recording.jsonl"
#: The local symmetric KMS keys' ids and material, by alias (see ensure_symmetric_key).
KMS_KEYS = "kms-keys.json"
MOTO_LOG = "moto.log"
STARTUP_TIMEOUT = 60
STOP_TIMEOUT = 5
#: Settings ./idp-admin must share with the stack to reach the same tables and keys.
SHARED_WITH_ADMIN = ("PORT", "MOTO_PORT", "ISSUER", "TABLE_PREFIX", "SECRET_PREFIX", "KEY_BACKEND",
                     "LOCAL_STATE_DIR", "PROFILE")

#: Requests that change nothing, by X-Amz-Target operation: replaying them only costs time.
READ_ONLY_OPERATIONS = {
    "DynamoDB_20120810": {"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems", "DescribeTable",
                          "ListTables", "DescribeTimeToLive"},
    "secretsmanager": {"GetSecretValue", "DescribeSecret", "ListSecrets"},
    "TrentService": {"Sign", "GetPublicKey", "DescribeKey", "ListKeys"},
}
#: Requests by path (the REST-style protocols) that change nothing worth replaying: SES v2 SendEmail.
#: A replayed send would only resend old mail to moto, and the recording should not keep messages
#: (they hold one-time links); the outbox has them.
REPLAY_WORTHLESS_PATHS = {"/v2/email/outbound-emails"}
#: Services whose replayed resources are unusable: moto gives replayed KMS keys new ids and new key
#: material, so nothing can refer to them; dropping their calls keeps orphans from piling up (the
#: bootstrap makes the symmetric keys again from KMS_KEYS).
#: SQS too (the logout queue): the bootstrap makes the queue again, and a replayed SendMessage would
#: send relying parties logout tokens for sign-outs long past (receipts replayed would be stale).
UNREPLAYABLE_SERVICES = {"TrentService", "AmazonSQS"}
#: The local logout queue's visibility timeout: a failed back-channel delivery is retried this soon.
LOGOUT_RETRY_SECONDS = 10


class StackError(Exception):
    """The stack cannot start or a server stopped on its own; the message says which and why."""


class Stopped(Exception):
    """SIGINT or SIGTERM arrived: stop cleanly."""


def main() -> int:
    shell = dict(os.environ)  # bootstrap() exports the stack's settings into os.environ
    env = stage_environment("local", shell)
    env["PYTHONUNBUFFERED"] = "1"
    state_dir = local_state_dir(shell)
    env.setdefault("DEMO_PORT", str(demo_app.DEFAULT_PORT))
    port, moto_port, demo_port = int(env["PORT"]), int(env["MOTO_PORT"]), int(env["DEMO_PORT"])
    base_url, moto_url = f"http://localhost:{port}", f"http://127.0.0.1:{moto_port}"
    demo_url = f"http://127.0.0.1:{demo_port}"
    for name, number in (("PORT", port), ("MOTO_PORT", moto_port), ("DEMO_PORT", demo_port)):
        if port_in_use(number):
            print(f"devstack: {name}={number} is already in use on 127.0.0.1 (another `make run`?). "
                  f"Stop that process or choose another, e.g. `{name}={number + 1} make run`.", file=sys.stderr)
            return 2
    state_dir.mkdir(parents=True, exist_ok=True)
    recording = state_dir / RECORDING
    replay = recording.exists() and compact_recording(recording, moto_url) > 0

    children = Children()
    signal.signal(signal.SIGINT, _raise_stopped)
    signal.signal(signal.SIGTERM, _raise_stopped)
    try:
        with open(state_dir / MOTO_LOG, "wb") as moto_log:
            children.start("moto server",
                           # moto's server with DynamoDB's atomic conditional writes (see tools/moto_server.py)
                           [sys.executable, "-m", "tools.moto_server", "-H", "127.0.0.1", "-p", str(moto_port)],
                           env={**env, "MOTO_ENABLE_RECORDING": "True", "MOTO_RECORDER_FILEPATH": str(recording)},
                           output=moto_log)
        # Answered by moto's control API, which is never recorded; recording is already on.
        wait_until("moto server", children, lambda: _post(f"{moto_url}/moto-api/recorder/start-recording"))
        if replay:
            _post(f"{moto_url}/moto-api/recorder/replay-recording", timeout=300)
        bootstrap(env, state_dir / KMS_KEYS)
        # --no-autoreload: chalice's file watcher polls the whole project (.venv included) and would
        # restart the server whenever moto appends to its recording under .local/.
        children.start("chalice local", [sys.executable, "-m", "tools.chalice_local", "local", "--stage", "local",
                                         "--host", "127.0.0.1", "--port", str(port), "--no-autoreload"], env=env)
        discovery = wait_until("chalice local", children, lambda: _discovery(base_url))
        children.start("demo app", [sys.executable, "-m", "tools.demo_app", "--port", str(demo_port)], env=env)
        # Back-channel logout: what the queue's event source mapping does in AWS (tools/logout_poller.py).
        children.start("logout poller", [sys.executable, "-m", "tools.logout_poller"], env=env)
        wait_until("demo app", children, lambda: _request("GET", demo_url, 5))
        print(banner(env, shell, base_url, discovery, state_dir, moto_url, demo_url), flush=True)
        children.watch()
    except Stopped:
        print("\ndevstack: stopping", file=sys.stderr, flush=True)
        return 0
    except (StackError, ConnectionError) as exc:
        print(f"devstack: {exc}", file=sys.stderr, flush=True)
        if (state_dir / MOTO_LOG).exists():
            print(f"devstack: the moto server's output is in {state_dir / MOTO_LOG}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        children.stop()


def _raise_stopped(signum, frame):
    raise Stopped()


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        # SO_REUSEADDR, like the servers themselves: a TIME_WAIT left by the last run is no conflict.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def compact_recording(path: Path, moto_url: str) -> int:
    """Rewrite moto's recording without read-only calls, aimed at `moto_url`. Returns entries kept.

    The recording only ever grows (every start-up reads the key ring, every request reads tables);
    dropping reads keeps replay fast. Hosts are rewritten so a changed MOTO_PORT still replays.
    """
    netloc = urlsplit(moto_url).netloc
    kept = []
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a line cut short when moto was killed mid-write
        if _is_read_only(entry):
            continue
        url = urlsplit(entry["url"])
        entry["url"] = url._replace(scheme="http", netloc=netloc).geturl()
        headers = entry.get("headers") or {}
        for name in list(headers):
            if name.lower() == "host":
                headers[name] = netloc
        kept.append(json.dumps(entry))
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(f"{line}\n" for line in kept))
    tmp.replace(path)
    return len(kept)


def _is_read_only(entry: dict) -> bool:
    if entry.get("method") in ("GET", "HEAD", "OPTIONS"):
        return True  # moto's control API, health probes and REST-style reads; the AWS JSON protocols only POST
    if urlsplit(entry.get("url", "")).path in REPLAY_WORTHLESS_PATHS:
        return True
    headers = {k.lower(): v for k, v in (entry.get("headers") or {}).items()}
    service, _, operation = headers.get("x-amz-target", "").partition(".")
    return service in UNREPLAYABLE_SERVICES or operation in READ_ONLY_OPERATIONS.get(service, ())


def bootstrap(env: dict[str, str], kms_keys: Path) -> None:
    """Symmetric KMS keys (their ids and material kept in `kms_keys`), tables, signing keys, the email
    sender and the demo app's client, in this process, against the moto server. Safe to repeat."""
    os.environ.update(env)  # before the first chalicelib import: models read TABLE_PREFIX when defined
    from chalicelib.keys import keyring
    from chalicelib.storage.tables import bootstrap_tables

    from chalicelib import logout_queue, profiles
    from chalicelib.config import settings

    if os.environ.get("KEY_BACKEND") == "kms-envelope":
        ensure_symmetric_key(os.environ["ENVELOPE_KMS_KEY_ID"], "local stack: encrypts the signing keys", kms_keys)
    ensure_symmetric_key(settings().factor_kms_key_id, "local stack: seals TOTP secrets", kms_keys)
    tables, keys = bootstrap_tables(), keyring.ensure_keys()
    # The logout queue, with a short visibility timeout: a failed delivery comes back within seconds.
    logout_queue.ensure_queue(settings(), visibility_timeout=LOGOUT_RETRY_SECONDS)
    if tables or keys:
        print(f"devstack: created {len(tables)} tables and {len(keys)} signing keys", flush=True)
    sender = ensure_sender_identity()
    if sender:
        print(f"devstack: verified the email sender {sender} in SES (moto)", flush=True)
    if profiles.is_fapi2(settings()):
        # FAPI 2.0 admits only confidential private_key_jwt clients; the demo app is a public one.
        print("devstack: PROFILE=fapi2: the demo app's public client is not registered (FAPI 2.0 allows "
              "only private_key_jwt clients)", flush=True)
    elif demo_app.register_client(int(env["DEMO_PORT"])):
        print(f"devstack: registered the demo app's client {demo_app.CLIENT_ID}", flush=True)


def ensure_sender_identity() -> str | None:
    """EMAIL_FROM's address as a verified SES identity (moto verifies it at once; SES refuses mail
    from anything else). Returns the address when it had to be created, None when it was there."""
    from email.utils import parseaddr

    from botocore.exceptions import ClientError

    from chalicelib.aws import client
    from chalicelib.config import settings

    address = parseaddr(settings().email_from)[1]
    ses = client("sesv2")
    try:
        ses.get_email_identity(EmailIdentity=address)  # a GET: never recorded, never replayed
        return None
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "NotFoundException":
            raise
    ses.create_email_identity(EmailIdentity=address)
    return address


def ensure_symmetric_key(alias: str, description: str, kms_keys: Path | None = None) -> bool:
    """The symmetric key behind `alias` (KEY_BACKEND=kms-envelope's ENVELOPE_KMS_KEY_ID, and
    FACTOR_KMS_KEY_ID), made when missing; True when it was. Without `kms_keys` (tests, whose moto
    lives for one test) it is an ordinary key with moto's own id and material.

    KMS calls are not replayed (see UNREPLAYABLE_SERVICES), so after a restart moto has no key. It
    is made again the same: the key id and its 256-bit material come from `kms_keys` (chosen at
    random the first time), the id through moto's `_custom_id_` tag and the material through KMS's
    import of external key material (CreateKey Origin=EXTERNAL, GetParametersForImport,
    ImportKeyMaterial wrapped with RSAES_OAEP_SHA_256; tools/moto_kms.py adds what moto lacks). A
    ciphertext names its key by id and opens only under the same material, so TOTP secrets and
    kms-envelope signing keys sealed before a restart still open after it."""
    from botocore.exceptions import ClientError
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    from chalicelib.aws import client

    kms = client("kms")
    try:
        kms.describe_key(KeyId=alias)
        return False
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "NotFoundException":
            raise
    if kms_keys is None:
        kms.create_alias(AliasName=alias, TargetKeyId=kms.create_key(Description=description)["KeyMetadata"]["KeyId"])
        return True
    key_id, material = local_key(kms_keys, alias)
    kms.create_key(Description=description, Origin="EXTERNAL", Tags=[{"TagKey": "_custom_id_", "TagValue": key_id}])
    wrapping = kms.get_parameters_for_import(KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_256",
                                             WrappingKeySpec="RSA_2048")
    public_key = serialization.load_der_public_key(wrapping["PublicKey"])
    wrapped = public_key.encrypt(material, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(),
                                                        label=None))
    kms.import_key_material(KeyId=key_id, ImportToken=wrapping["ImportToken"], EncryptedKeyMaterial=wrapped,
                            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    kms.create_alias(AliasName=alias, TargetKeyId=key_id)
    return True


def local_key(path: Path, alias: str) -> tuple[str, bytes]:
    """The key id and 256-bit material kept in `path` for `alias`, chosen at random (uuid4, os.urandom)
    and written there the first time. The file holds key material: it is written owner-only (0600)
    and replaced atomically, so a crash never leaves it half-written."""
    import base64
    import uuid

    keys = json.loads(path.read_text()) if path.exists() else {}
    if alias not in keys:
        keys[alias] = {"key_id": str(uuid.uuid4()), "material": base64.b64encode(os.urandom(32)).decode("ascii")}
        tmp = path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
            json.dump(keys, out, indent=2)
        tmp.replace(path)
    return keys[alias]["key_id"], base64.b64decode(keys[alias]["material"])


def banner(env: dict[str, str], shell: dict[str, str], base_url: str, discovery: dict, state_dir: Path,
           moto_url: str, demo_url: str) -> str:
    reset = "make reset-local" if state_dir == DEFAULT_STATE_DIR.resolve() else f"rm -rf {state_dir}"
    # The admin CLI reads the same settings from its own shell; repeat any that are not the defaults.
    defaults = local_defaults({})
    admin = "".join(f"{name}={shlex.quote(shell[name])} " for name in SHARED_WITH_ADMIN
                    if shell.get(name) not in (None, "", defaults.get(name))) + "./idp-admin"
    demo = (f"Open {demo_url} and click Sign in.\n"
            f"  (the demo app, client {demo_app.CLIENT_ID}: sign in, or create an account; emails land in the outbox)"
            if env.get("PROFILE") != "fapi2" else
            "PROFILE=fapi2: the demo app cannot sign in here (FAPI 2.0 admits only private_key_jwt clients; see\n"
            "  README, FAPI 2.0 profile).")
    return f"""
{demo}

Local IdP is running (Ctrl-C stops it; state survives restarts).
  issuer     {discovery.get("issuer", env["ISSUER"])}
  discovery  {base_url}/.well-known/openid-configuration
  jwks       {discovery.get("jwks_uri", base_url + "/jwks")}
  outbox     {env["OUTBOX_DIR"]} (every email sent; also {demo_url}/emails)
  AWS (moto) {moto_url}   key backend: {env.get("KEY_BACKEND", "secretsmanager")}
  state      {state_dir} (moto's log: {state_dir / MOTO_LOG})

Try, in another terminal:
  {admin} users create --email alice@example.com --verified
  {admin} outbox list        ({admin} outbox show: the newest email and its links)
  {admin} clients create --name "My app" --redirect-uri http://127.0.0.1:3000/callback
  {admin} keys list

Forget every client, user and key: stop the stack, then `{reset}`.
"""


class Children:
    """The stack's servers, each in its own process group so the terminal's Ctrl-C reaches only us."""

    def __init__(self):
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str], *, env: dict[str, str], output=None) -> None:
        self.processes[name] = subprocess.Popen(
            argv, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=output, stderr=output,
            process_group=0, preexec_fn=_die_with_parent,
        )

    def check(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise StackError(f"{name} exited unexpectedly with status {process.returncode}")

    def watch(self) -> NoReturn:
        """Return only by raising: StackError when a server exits, Stopped on a signal."""
        while True:
            self.check()
            time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM every group, then SIGKILL whatever is still running after STOP_TIMEOUT."""
        for process in self.processes.values():
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(process, signal.SIGKILL)
            process.wait()


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass


def _die_with_parent() -> None:
    # Runs in the child before exec. Linux only: if devstack is SIGKILLed, its servers follow
    # instead of holding the ports.
    if sys.platform == "linux":
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def wait_until(name: str, children: Children, probe):
    """Call `probe` until it returns a value; fail if a server exits or STARTUP_TIMEOUT passes."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        children.check()
        try:
            return probe()
        except ConnectionError:
            if time.monotonic() > deadline:
                raise StackError(f"{name} did not answer within {STARTUP_TIMEOUT}s") from None
            time.sleep(0.1)


def _post(url: str, timeout: float = 5):
    return _request("POST", url, timeout)


def _discovery(base_url: str) -> dict:
    return _request("GET", f"{base_url}/.well-known/openid-configuration", 5).json()


def _request(method: str, url: str, timeout: float):
    """One HTTP call: refused or timed out means "not up yet"; any answer but 200 is an error."""
    import requests

    try:
        response = requests.request(method, url, timeout=timeout)
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise ConnectionError(str(exc)) from exc
    if response.status_code != 200:
        raise StackError(f"{method} {url} answered {response.status_code}: {response.text[:500]}")
    return response


if __name__ == "__main__":
    sys.exit(main())
