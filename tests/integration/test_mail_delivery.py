"""chalicelib/mail.py against a moto server over HTTP (SES v2, as deployed): a verified sender's
message is sent, copied to the outbox as an .eml that parses back into both parts; an unverified
sender's is refused with EmailNotSent and leaves no copy behind."""
from __future__ import annotations

from email.utils import parseaddr

import pytest

from tools import outbox

pytestmark = pytest.mark.integration

LINK = "http://localhost:8000/verify?token=0123456789ABCDEFGHJKMNPQRS"


@pytest.fixture
def mail_outbox(aws_server, monkeypatch, tmp_path):
    from tests.conftest import reset_process_state

    directory = tmp_path / "outbox"
    monkeypatch.setenv("OUTBOX_DIR", str(directory))
    reset_process_state(endpoint_changed=False)
    yield directory
    monkeypatch.delenv("OUTBOX_DIR")
    reset_process_state(endpoint_changed=False)


def verify_sender() -> str:
    from chalicelib.aws import client
    from chalicelib.config import settings

    address = parseaddr(settings().email_from)[1]
    client("sesv2").create_email_identity(EmailIdentity=address)
    return address


def send():
    from chalicelib import mail

    mail.send("bob@example.org", "verify_email", link=LINK, code="01234-56789", minutes=30)


def test_a_verified_sender_sends_and_the_outbox_copy_parses_back_into_both_parts(mail_outbox):
    sender = verify_sender()

    send()

    (path,) = outbox.newest_first(mail_outbox)
    message = outbox.read(path)
    assert parseaddr(str(message["From"]))[1] == sender
    assert str(message["To"]) == "bob@example.org"
    assert str(message["Subject"]) == "Confirm your email address"
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    assert LINK in text and "01234-56789" in text
    assert f'href="{LINK}"' in html
    assert LINK in outbox.details(1, path)["links"]


def test_an_unverified_sender_raises_email_not_sent_and_writes_nothing(mail_outbox):
    from chalicelib.errors import EmailNotSent

    with pytest.raises(EmailNotSent):
        send()

    assert outbox.newest_first(mail_outbox) == []
    assert not mail_outbox.exists() or list(mail_outbox.iterdir()) == []
