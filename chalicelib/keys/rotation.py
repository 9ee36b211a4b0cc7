"""Key rotation as one idempotent step, run daily by the schedule and on demand by the admin CLI.

Each run moves the key ring at most one step forward and is safe to repeat or to run twice at once:

1. (schedule only) bootstrap: make sure a current and a next key exist;
2. (schedule only) stop here while the current key has signed for less than KEY_ROTATION_INTERVAL;
3. promote next -> current and retire the old current (keyring.rotate), which refuses while the
   next key has been published for less than JWKS_MAX_AGE. The promotion is one DynamoDB
   transaction conditioned on both keys' states, so of two concurrent runs exactly one promotes;
4. prune retired keys once KEY_RETIRE_AFTER has passed (their secret or KMS key is scheduled for
   deletion with a 7-day recovery window).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..config import settings as get_settings
from ..errors import KeyRingChanged, KeyRingError
from ..log import get_logger, now
from . import keyring

if TYPE_CHECKING:
    from ..storage.signing_keys import SigningKey

log = get_logger("idp.keys.rotation")


@dataclass(frozen=True)
class RotationResult:
    #: "rotated", "not_due" (current key younger than KEY_ROTATION_INTERVAL), "waiting" (next key not
    #: yet published for JWKS_MAX_AGE) or "lost_race" (a concurrent run promoted first).
    outcome: str
    current: SigningKey | None
    pruned: tuple[str, ...] = ()
    detail: str = ""


def rotate_keys(*, when_due: bool = False, force: bool = False, at: int | None = None) -> RotationResult:
    """One rotation step. `when_due` (the schedule): bootstrap missing keys, rotate only once the
    current key is KEY_ROTATION_INTERVAL old, and report "waiting"/"lost_race" instead of raising.
    Without it (the admin CLI), rotate now and let KeyRingError tell the operator why not.
    `force` skips the JWKS_MAX_AGE wait (verifiers holding an older /jwks will fail until they refetch)."""
    settings = get_settings()
    at = now() if at is None else at
    if when_due:
        keyring.ensure_keys()
        current = _current()
        age = at - (current.activated_at or current.created_at)
        if age < settings.key_rotation_interval and not force:
            pruned = tuple(keyring.prune(at=at))
            log.info("signing key rotation not due", extra={"kid": current.kid, "age": age, "pruned": pruned,
                                                            "interval": settings.key_rotation_interval})
            return RotationResult("not_due", current, pruned)
    before = {k.kid for k in keyring.all_keys() if k.state == "retired"}
    try:
        promoted = keyring.rotate(force=force, at=at)
    except KeyRingChanged as exc:
        if not when_due:
            raise
        log.info("signing key rotation lost the race to a concurrent run", extra={"error": str(exc)})
        return RotationResult("lost_race", _current(), (), str(exc))
    except KeyRingError as exc:
        if not when_due:
            raise
        log.info("signing key rotation waiting", extra={"reason": str(exc)})
        return RotationResult("waiting", _current(), (), str(exc))
    pruned = tuple(sorted(before - {k.kid for k in keyring.all_keys()}))
    return RotationResult("rotated", promoted, pruned)


def _current() -> SigningKey | None:
    keys = [k for k in keyring.all_keys() if k.state == "current"]
    return max(keys, key=lambda k: (k.activated_at or 0, k.created_at)) if keys else None

