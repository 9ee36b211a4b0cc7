"""The key ring: which keys exist, which one signs, what /jwks publishes, and rotation.

Lifecycle (state in storage.signing_keys.SigningKey): next -> current -> retired.
- "next" is published in /jwks before it ever signs, so a verifier that cached /jwks for up to
  JWKS_MAX_AGE already knows its kid when it is promoted.
- "current" signs. Promotion happens only after the next key was published for JWKS_MAX_AGE.
- "retired" stays published for KEY_RETIRE_AFTER so tokens it signed keep verifying, then is pruned.
State changes are one DynamoDB transaction conditioned on the states they expect, so two rotations
running at once cannot both promote (one fails its condition and changes nothing). The same
transaction updates the key-ring summary item (chalicelib/storage/signing_keys.py), which is all a
request reads: one GetItem per KEY_CACHE_SECONDS per container for the current key and /jwks together.
"""
from __future__ import annotations

import json
import time

from .. import caches
from ..config import settings as get_settings
from ..errors import KeyRingChanged, KeyRingError
from ..log import get_logger, now
from ..storage import signing_keys
from ..storage.signing_keys import SigningKey
from .backends import Signer, backend_for
from .jwk import public_jwk

log = get_logger("idp.keys")

PUBLISHED_STATES = ("next", "current")


def all_keys() -> list[SigningKey]:
    """The key items, for the rotation and the admin CLI (a consistent Scan of a handful of items).
    Requests read the summary instead (request_keys)."""
    return signing_keys.scan_keys()


def is_published(key: SigningKey, at: int) -> bool:
    if key.state in PUBLISHED_STATES:
        return True
    return key.state == "retired" and (key.publish_until or 0) > at


def jwks(keys: list[SigningKey] | None = None, at: int | None = None) -> dict:
    """RFC 7517 §5 JWK Set of every published key, current first."""
    at = now() if at is None else at
    keys = signing_keys.request_keys() if keys is None else keys
    order = {"current": 0, "next": 1, "retired": 2}
    published = sorted((k for k in keys if is_published(k, at)), key=lambda k: (order[k.state], -k.created_at))
    return {"keys": [json.loads(k.public_jwk) for k in published]}


def create_key(state: str, *, alg: str | None = None, backend: str | None = None) -> SigningKey:
    settings = get_settings()
    alg = alg or settings.signing_alg
    store = backend_for(backend or settings.key_backend, settings)
    created = store.create(alg, lambda public_key: public_jwk(public_key, alg)["kid"])
    jwk = public_jwk(created.public_key, alg)
    at = now()
    record = SigningKey(
        kid=jwk["kid"], alg=alg, backend=store.name, key_ref=created.key_ref, public_jwk=json.dumps(jwk),
        state=state, created_at=at, activated_at=at if state == "current" else None,
    )
    committed = False
    try:
        committed = signing_keys.change_keys(lambda change: change.create(record))
    finally:
        if not committed:
            store.destroy(created.key_ref)  # nothing refers to it: the transaction wrote nothing
    if not committed:
        raise KeyRingChanged(f"the key ring changed while key {record.kid} was created: its transaction was "
                             "cancelled; retry")
    log.info("signing key created", extra={"kid": record.kid, "state": state, "backend": store.name, "alg": alg})
    return record


def ensure_keys() -> list[SigningKey]:
    """Bootstrap: make sure a usable current key and a next key exist, and the DPoP nonce key.
    Idempotent; returns the signing keys it created.

    A key whose backing secret or KMS key has vanished (e.g. moto replay gives KMS keys new ids)
    is retired immediately and replaced, so a restarted local stack always has a working key.
    """
    settings = get_settings()
    created = []
    signing_keys.ensure_key_ring()  # before any change: a deployment from before the summary
    keys = all_keys()
    for key in keys:
        if key.state in PUBLISHED_STATES and not backend_for(key.backend, settings).exists(key.key_ref):
            log.warning("signing key material missing; retiring", extra={"kid": key.kid})
            if not signing_keys.change_keys(lambda change, key=key: change.change(
                    key, expected_state=key.state, state="retired", retired_at=now(), publish_until=now())):
                raise KeyRingChanged(f"key {key.kid} changed state while the bootstrap retired it; run it again")
    states = {k.state for k in all_keys()}
    if "current" not in states:
        created.append(create_key("current"))
    if "next" not in states:
        created.append(create_key("next"))
    _ensure_dpop_nonce_key(settings)
    return created


def _ensure_dpop_nonce_key(settings) -> None:
    """The bootstrap's other secret: the DPoP nonce key (chalicelib/oauth/dpop_binding.py), made once."""
    from ..oauth.dpop_binding import ensure_nonce_key

    ensure_nonce_key(settings)


def rotate(*, force: bool = False, at: int | None = None) -> SigningKey:
    """Promote next -> current, retire the old current, create a new next. Returns the new current.

    Refuses (unless `force`) while the next key has been published for less than JWKS_MAX_AGE,
    because a verifier may still hold a JWKS without it.
    """
    settings = get_settings()
    at = now() if at is None else at
    keys = all_keys()
    # The next key published longest: a concurrent run's spare (created a moment ago) is never it.
    nxt = _oldest(keys, "next")
    current = _newest(keys, "current")
    if nxt is None:
        raise KeyRingError("no next key to promote; run the bootstrap (keys ensure) first")
    if not force and at - nxt.created_at < settings.jwks_max_age:
        wait = settings.jwks_max_age - (at - nxt.created_at)
        raise KeyRingError(f"next key {nxt.kid} has been published for less than JWKS_MAX_AGE; retry in {wait}s")
    new_next = create_key("next")
    promoted = []

    def promote(change):
        promoted.append(change.change(nxt, expected_state="next", state="current", activated_at=at))
        if current is not None:
            change.change(current, expected_state="current", state="retired", retired_at=at,
                          publish_until=at + settings.key_retire_after)

    committed = False
    try:
        committed = signing_keys.change_keys(promote)
    finally:
        # Another rotation won the race (or DynamoDB failed): drop the spare key we just made,
        # unless a concurrent forced rotation has promoted it meanwhile.
        if not committed and _delete_if_next(new_next):
            backend_for(new_next.backend, settings).destroy(new_next.key_ref)
    if not committed:
        raise KeyRingChanged(f"a concurrent rotation changed the key ring first: the promotion of {nxt.kid} "
                             "was cancelled by its transaction's conditions and wrote nothing")
    prune(at=at)
    clear_caches()
    log.info("signing key rotated", extra={"kid": nxt.kid, "retired": current.kid if current else None})
    return promoted[0]


def prune(*, at: int | None = None) -> list[str]:
    """Delete retired keys no longer published, and schedule deletion of their key material."""
    settings = get_settings()
    at = now() if at is None else at
    pruned = []
    for key in all_keys():
        if key.state == "retired" and (key.publish_until or 0) <= at:
            if not signing_keys.change_keys(lambda change, key=key: change.delete(key, expected_state="retired")):
                continue  # a concurrent prune took it
            if backend_for(key.backend, settings).exists(key.key_ref):
                backend_for(key.backend, settings).destroy(key.key_ref)
            pruned.append(key.kid)
    return pruned


def _delete_if_next(key: SigningKey) -> bool:
    return signing_keys.change_keys(lambda change: change.delete(key, expected_state="next"))


def _oldest(keys, state):
    matching = [k for k in keys if k.state == state]
    return min(matching, key=lambda k: (k.created_at, k.kid)) if matching else None


def _newest(keys, state):
    matching = [k for k in keys if k.state == state]
    return max(matching, key=lambda k: (k.activated_at or 0, k.created_at)) if matching else None


# Per-container caches: the key ring and the JWKS made from it (for KEY_CACHE_SECONDS: one GetItem
# serves the token endpoints and /jwks), and signers by kid (for the container's life: a Secrets
# Manager key is fetched once per cold start).
_current_cache: dict = {}
_signer_cache: dict[str, Signer] = {}
caches.register("keyring.current", _current_cache.clear)
caches.register("keyring.signers", _signer_cache.clear)


def _cached_key_ring(refresh: bool = False) -> tuple[SigningKey | None, dict]:
    """(current key, JWKS) as this container last read them, read again after KEY_CACHE_SECONDS."""
    cached = _current_cache.get("ring")
    if refresh or cached is None or time.monotonic() - cached[0] > get_settings().key_cache_seconds:
        keys = signing_keys.request_keys()
        cached = (time.monotonic(), _newest(keys, "current"), jwks(keys))
        _current_cache["ring"] = cached
    return cached[1], cached[2]


def current_signer() -> Signer:
    settings = get_settings()
    key, _ = _cached_key_ring()
    if key is None:
        raise KeyRingError("no current signing key; run the bootstrap (keys ensure)")
    if key.kid not in _signer_cache:
        _signer_cache[key.kid] = backend_for(key.backend, settings).signer(key.kid, key.alg, key.key_ref)
    return _signer_cache[key.kid]


def cached_jwks(*, refresh: bool = False) -> dict:
    """/jwks as this container last read it; refreshed after KEY_CACHE_SECONDS or on demand
    (a verifier that meets an unknown kid asks once, see chalicelib/blueprints/userinfo.py)."""
    return _cached_key_ring(refresh)[1]


def clear_caches() -> None:
    _current_cache.clear()
    _signer_cache.clear()
