"""Signing CPU per key backend: what a token signature costs the handler, and what loading the key costs
a cold container (issue 17 §2).

secretsmanager and kms-envelope both end in the same in-process signer (chalicelib.keys.backends.LocalSigner):
they differ only in how a container gets the private key (GetSecretValue + PEM parse, or Decrypt +
DER parse + the kid check). kms signs with a kms:Sign call per token, which no local figure describes.
In-process moto (mock_aws): "load" therefore includes moto's own handling of the one call, an upper
bound on the container's share. Medians of time.process_time() over N runs.

Run: .venv/bin/python bench/signing_cpu.py [N]   (default 300)
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.update({"STAGE": "local", "ISSUER": "http://localhost:8000", "TABLE_PREFIX": "idp-signbench",
                   "SECRET_PREFIX": "idp/signbench/", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                   "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1", "LOG_LEVEL": "WARNING"})
for leaked in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
    os.environ.pop(leaked, None)


def cpu_ms(fn, n: int) -> float:
    samples = []
    for _ in range(n):
        start = time.process_time()
        fn()
        samples.append((time.process_time() - start) * 1000)
    return statistics.median(samples)


def measure(backend: str, alg: str, n: int) -> tuple[float, float]:
    from moto import mock_aws

    from chalicelib import caches
    from chalicelib.aws import client
    from chalicelib.keys import keyring
    from chalicelib.storage.tables import bootstrap_tables
    from chalicelib.tokens import jwt as jwt_encode

    with mock_aws():
        caches.clear_all()
        os.environ.update({"KEY_BACKEND": backend, "SIGNING_ALG": alg})
        if backend == "kms-envelope":
            os.environ["ENVELOPE_KMS_KEY_ID"] = client("kms").create_key()["KeyMetadata"]["Arn"]
        caches.clear_all(("data",))
        bootstrap_tables()
        keyring.ensure_keys()
        keyring.current_signer()  # warm the key-ring read; the load below is the key alone
        key = next(k for k in keyring.all_keys() if k.state == "current")
        from chalicelib.config import settings
        from chalicelib.keys.backends import backend_for

        store = backend_for(backend, settings())
        load = cpu_ms(lambda: store.signer(key.kid, key.alg, key.key_ref), max(20, n // 10))
        signer = keyring.current_signer()
        claims = {"iss": "http://127.0.0.1:8000", "sub": "user", "aud": "rs", "scope": "openid email",
                  "iat": 1, "exp": 2, "jti": "x" * 22}
        sign = cpu_ms(lambda: jwt_encode.encode(claims, signer, typ="at+jwt"), n)
    return load, sign


def main() -> None:
    from chalicelib.capabilities import SIGNING_ALGS
    from tools import moto_kms

    moto_kms.install()
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    print(f"{'backend':<16}{'alg':<7}{'sign CPU ms (per token)':>25}{'key load CPU ms (per cold container)':>40}")
    for alg in SIGNING_ALGS:
        for backend in ("secretsmanager", "kms-envelope"):
            load, sign = measure(backend, alg, n)
            print(f"{backend:<16}{alg:<7}{sign:>25.3f}{load:>40.3f}")


if __name__ == "__main__":
    main()
