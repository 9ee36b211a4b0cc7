"""Transactional email: render a message from templates, send it through Amazon SES, keep a local copy.

One call, `send(to, template, locale=..., **context)`:
- renders `email/<template>.txt` and `email/<template>.html` (chalicelib/pages/templates/email/, the
  same Jinja2 environment, translations and look as the hosted pages) and the subject from SUBJECTS;
- builds one RFC 5322 message (stdlib `email`, multipart/alternative: plain text first, HTML last,
  RFC 2046 §5.1.4 "last is best");
- sends those exact bytes with SES v2 `SendEmail` (Content.Raw), from EMAIL_FROM, with
  SES_CONFIGURATION_SET when set;
- when OUTBOX_DIR is set (the local stage: `make run` points it at <state dir>/outbox) and SES took
  the message, also writes the same bytes as `<time>-<n>.eml` there, so a developer reads what a user would get
  (`./idp-admin outbox list|show`).

A message SES does not take (refused, throttled, unreachable) raises `EmailNotSent`, a
TemporarilyUnavailable: pages answer "we could not send the email, try again" (503) instead of a 500,
and callers send before they commit anything that only makes sense once the email is out, or undo it
(chalicelib/undo.py), so no half-made state is left behind.
"""
from __future__ import annotations

import itertools
import os
import threading
import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from .config import settings
from .errors import EmailNotSent
from .log import get_logger
from .pages.messages import N_

log = get_logger("idp.mail")

#: The subject line of each message, translated when sent. A template without one is a bug.
SUBJECTS: dict[str, str] = {
    "verify_email": N_("Confirm your email address"),
    "signup_existing": N_("Someone tried to create an account with your email address"),
    "reset_password": N_("Reset your password"),
    "password_changed": N_("Your password was changed"),
    "invitation": N_("You have been invited"),
    "email_change_verify": N_("Confirm your new email address"),
    "email_changed": N_("Your email address was changed"),
    "account_deleted": N_("Your account was deleted"),
    "factor_changed": N_("Your sign-in methods were changed"),
    "recovery_code_used": N_("A recovery code was used to sign in"),
    "link_identity": N_("Link a sign-in to your account"),
    "identity_linked": N_("A sign-in was linked to your account"),
}

_outbox_lock = threading.Lock()
_outbox_counter = itertools.count()


def build(to: str, template: str, *, locale: str | None = None, **context) -> EmailMessage:
    """The message `send` would send (pure apart from rendering): headers, text and HTML parts."""
    from . import pages

    if template not in SUBJECTS:
        raise KeyError(f"no subject for email template {template!r}")
    config = settings()
    context = {"issuer": config.issuer, **context}
    subject = pages.translate(SUBJECTS[template], locale=locale)
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = config.email_from
    message["To"] = to
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=config.email_from.rpartition("@")[2].strip(">") or None)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834 §5: no auto-replies to these
    message.set_content(pages.render(f"email/{template}.txt", locale=locale, subject=subject, **context))
    message.add_alternative(pages.render(f"email/{template}.html", locale=locale, subject=subject, **context),
                            subtype="html")
    return message


def send(to: str, template: str, *, locale: str | None = None, **context) -> None:
    """Send the `template` message to `to`; raises EmailNotSent when SES does not take it."""
    message = build(to, template, locale=locale, **context)
    data = message.as_bytes()
    config = settings()
    request = {"FromEmailAddress": config.email_from, "Destination": {"ToAddresses": [to]},
               "Content": {"Raw": {"Data": data}}}
    if config.ses_configuration_set:
        request["ConfigurationSetName"] = config.ses_configuration_set
    try:
        from .aws import client

        response = client("sesv2").send_email(**request)
    except Exception as exc:  # noqa: BLE001 - every SES failure is the user's "try again", logged here
        log.warning("email not sent", extra={"template": template, "error": type(exc).__name__,
                                             "detail": str(exc)[:300]})
        raise EmailNotSent("the email could not be sent; try again", detail=f"ses:{type(exc).__name__}") from exc
    log.info("email sent", extra={"template": template, "ses_message_id": response.get("MessageId")})
    # After SES took it: the outbox shows what was sent, never a message the user was told failed.
    if config.outbox_dir:
        _write_outbox(Path(config.outbox_dir), data)


def _write_outbox(directory: Path, data: bytes) -> Path:
    """Write one message as an .eml file whose name sorts by time (newest last)."""
    with _outbox_lock:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{time.time_ns():020d}-{next(_outbox_counter):04d}.eml"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)  # readers never see half a message
    return path


def outbox(directory: Path) -> list[Path]:
    """The .eml files of an outbox, oldest first."""
    return sorted(directory.glob("*.eml")) if directory.is_dir() else []
