"""Password hashing with argon2id (RFC 9106), via `cryptography`.

Parameters follow OWASP's current minimum for argon2id (19 MiB memory, 2 passes, 1 lane): memory
hard, and about 30 ms on one Lambda vCPU, which also bounds online guessing cost per request.
Hashes are PHC strings, so parameters can be raised later without invalidating stored hashes.
"""
from __future__ import annotations

import os

MEMORY_KIB = 19 * 1024
ITERATIONS = 2
LANES = 1

# A fixed hash verified when the account does not exist, so a login attempt for an unknown email
# costs the same time as one for a known email (no user enumeration by timing).
_DUMMY_HASH = None


def hash_password(password: str) -> str:
    from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

    kdf = Argon2id(salt=os.urandom(16), length=32, iterations=ITERATIONS, lanes=LANES, memory_cost=MEMORY_KIB)
    return kdf.derive_phc_encoded(password.encode("utf-8"))


def verify_password(password: str, phc_hash: str | None) -> bool:
    """True when `password` matches; always spends one argon2id evaluation."""
    from cryptography.exceptions import InvalidKey
    from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

    global _DUMMY_HASH
    if not phc_hash:
        if _DUMMY_HASH is None:
            _DUMMY_HASH = hash_password(os.urandom(16).hex())
        phc_hash, password = _DUMMY_HASH, ""
        expected = False
    else:
        expected = True
    try:
        Argon2id.verify_phc_encoded(password.encode("utf-8"), phc_hash)
    except (InvalidKey, ValueError):
        return False
    return expected
