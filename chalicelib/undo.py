"""Undo what a request spent when the answer it was spent for cannot be made.

RFC 6749 §4.1.2 and RFC 9700 §4.14.2 make a second use of a code or refresh token revoke what was
issued from it: a replay is an attack. The same second use is also what a client does after a
failed response, so a fault that strikes after the artefact was consumed (KMS refusing a
signature, DynamoDB throttling the write after the consume) must not leave it consumed, or the
client's retry revokes the user's sign-in or the whole family. The handlers acquire everything that
can fail before consuming (the signer: with Secrets Manager keys that loads the private key), and
what still can fail afterwards runs inside `undone_on_failure`, which puts the artefact back with
one conditional write before the fault becomes a 503 (chalicelib/faults.py).

OAuth errors raised after the consume are refusals by design (a wrong redirect_uri or PKCE
verifier, an audience gone): those keep the artefact spent and revoke as they always did.

Sign-in counts an attempt before checking the password (chalicelib/oauth/login.py) and takes it
back when the sign-in succeeds: an attempt a fault cut short is taken back the same way, or a
DynamoDB bad minute would count as failed guesses and lock the user out for the window.
"""
from __future__ import annotations

from contextlib import contextmanager

from .errors import OAuthError
from .log import get_logger

log = get_logger("idp.grants.undo")


@contextmanager
def undone_on_failure(undo, *, what: str, grant_id: str | None = None, refusals: tuple = (OAuthError,)):
    """Run the block; if it raises anything but one of `refusals` (answers by design), call `undo()`
    (a storage function returning whether it put the artefact back) and re-raise the original
    exception. A failing undo (DynamoDB still down) is logged and the original fault still
    answered: the artefact then stays spent, as it would have without the undo."""
    try:
        yield
    except refusals:
        raise
    except Exception as exc:
        try:
            restored = undo()
        except Exception:
            log.exception(f"{what} stays consumed: undoing it failed too", extra={"grant_id": grant_id})
            restored = None
        if restored:
            log.warning(f"{what} put back after a failure", extra={"grant_id": grant_id, "fault": repr(exc)})
        elif restored is not None:
            log.error(f"{what} could not be put back: its state changed meanwhile", extra={"grant_id": grant_id})
        raise
