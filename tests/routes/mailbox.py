"""The local outbox as a test's mailbox: SES (moto) takes the messages, chalicelib/mail.py writes
each as an .eml file under OUTBOX_DIR, and tests read them back like a user reads their email."""
from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    text: str
    html: str

    def link(self, path: str) -> str:
        """The issuer-relative URL of the first link to `path` in the plain-text part."""
        match = re.search(rf"https?://[^\s/]+(?P<rel>{re.escape(path)}\?\S+)", self.text)
        assert match, f"no {path} link in {self.text!r}"
        return match.group("rel")


class Mailbox:
    def __init__(self, directory: Path):
        self.directory = directory

    def messages(self, to: str | None = None) -> list[Mail]:
        from chalicelib import mail

        found = []
        for path in mail.outbox(self.directory):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            found.append(Mail(to=str(message["To"]), subject=str(message["Subject"]),
                              text=message.get_body(("plain",)).get_content(),
                              html=message.get_body(("html",)).get_content()))
        return [m for m in found if to is None or m.to == to]


@pytest.fixture
def mailbox(aws, tmp_path, monkeypatch) -> Mailbox:
    """SES accepts mail from the configured sender (moto refuses unverified senders), and every
    message lands in a fresh outbox."""
    from chalicelib.aws import client
    from chalicelib.config import settings

    monkeypatch.setenv("OUTBOX_DIR", str(tmp_path / "outbox"))
    settings.cache_clear()
    client("sesv2").create_email_identity(EmailIdentity=settings().email_from)
    yield Mailbox(tmp_path / "outbox")
    monkeypatch.delenv("OUTBOX_DIR")
    settings.cache_clear()
