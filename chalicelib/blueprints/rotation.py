"""The daily signing-key rotation: a scheduled Lambda (EventBridge rate) with its own IAM role.

All the logic is chalicelib/keys/rotation.py, which `./idp-admin keys rotate` runs too. With
KEY_BACKEND=kms the schedule does nothing: creating a KMS key needs kms:CreateKey, which IAM cannot
limit to a resource, so the Lambda is never given it and the operator rotates with the admin CLI.
"""
from __future__ import annotations

from chalice import Blueprint, Rate

bp = Blueprint(__name__)

#: Daily: the next key is always published (JWKS_MAX_AGE) long before KEY_ROTATION_INTERVAL ends,
#: so a rotation is at most a day late, and a failed run is simply retried the next day.
SCHEDULE = Rate(1, unit=Rate.DAYS)


@bp.schedule(SCHEDULE, name="rotate_signing_keys", description="Signing-key rotation (chalicelib/keys/rotation.py)")
def rotate_signing_keys(event) -> dict:
    from ..config import settings
    from ..keys.rotation import rotate_keys
    from ..log import get_logger

    log = get_logger("idp.keys.rotation")
    if settings().key_backend == "kms":
        log.info("scheduled rotation skipped: KEY_BACKEND=kms keys are rotated by the operator "
                 "(./idp-admin --stage <stage> keys rotate), since kms:CreateKey cannot be scoped to a resource")
        return {"outcome": "skipped", "reason": "KEY_BACKEND=kms"}
    result = rotate_keys(when_due=True)
    return {"outcome": result.outcome, "current": result.current.kid if result.current else None,
            "pruned": list(result.pruned), "detail": result.detail}
