"""`./idp-admin outbox list|show`: the local stack's emails, read back from the .eml files
chalicelib/mail.py wrote, newest first; refused for deployed stages."""
from __future__ import annotations

import os
from email.utils import parseaddr

import pytest

from tools import admin

ISSUER = "http://localhost:8000"


@pytest.fixture
def state_dir(aws, monkeypatch, tmp_path):
    """mail.send writes where the admin CLI looks: <LOCAL_STATE_DIR>/outbox (tools/stage_env.py)."""
    from chalicelib.aws import client
    from chalicelib.config import settings
    from tests.conftest import reset_process_state

    monkeypatch.setenv("OUTBOX_DIR", str(tmp_path / "outbox"))
    reset_process_state(endpoint_changed=False)
    client("sesv2").create_email_identity(EmailIdentity=parseaddr(settings().email_from)[1])
    yield tmp_path
    reset_process_state(endpoint_changed=False)


@pytest.fixture
def run(state_dir, capsys):
    def run(*argv):
        status = admin.main(list(argv), environ={**os.environ, "LOCAL_STATE_DIR": str(state_dir)})
        out, err = capsys.readouterr()
        return status, out, err
    return run


def send(to: str, token: str) -> None:
    from chalicelib import mail

    mail.send(to, "verify_email", link=f"{ISSUER}/verify?token={token}", code=token, minutes=30)


def test_list_numbers_the_messages_newest_first_with_date_recipient_and_subject(run):
    send("first@example.org", "AAAA")
    send("second@example.org", "BBBB")

    status, out, err = run("outbox", "list")

    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[0].split()[0] == "1" and "second@example.org" in lines[0]
    assert lines[1].split()[0] == "2" and "first@example.org" in lines[1]
    assert all(line.endswith("Confirm your email address") for line in lines)
    assert all(line.split()[1].startswith("20") for line in lines), "an ISO 8601 date"


def test_show_prints_the_newest_by_default_with_headers_text_and_each_link_on_its_own_line(run):
    send("first@example.org", "AAAA")
    send("second@example.org", "BBBB")

    status, out, _ = run("outbox", "show")

    assert status == 0
    assert "To: second@example.org" in out.splitlines()
    assert "Subject: Confirm your email address" in out.splitlines()
    assert "<html" not in out, "the plain-text part only"
    links = out.split("\nLinks:\n", 1)[1].splitlines()
    assert f"{ISSUER}/verify?token=BBBB" in links
    assert not any("AAAA" in line for line in out.splitlines())


def test_show_n_picks_the_message_list_numbered_n(run):
    send("first@example.org", "AAAA")
    send("second@example.org", "BBBB")

    status, out, _ = run("outbox", "show", "2")

    assert status == 0
    assert "To: first@example.org" in out.splitlines()
    assert f"{ISSUER}/verify?token=AAAA" in out.splitlines()


def test_an_empty_outbox_says_so_and_an_unknown_number_exits_2(run, state_dir):
    assert run("outbox", "list") == (0, f"no messages in {state_dir / 'outbox'}\n", "")
    status, out, err = run("outbox", "show", "3")
    assert (status, out) == (2, "")
    assert err.startswith("error: no message 3:")


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_deployed_stages_have_no_outbox(run, stage):
    status, out, err = run("--stage", stage, "outbox", "list")
    assert (status, out) == (2, "")
    assert "Amazon SES" in err and "local" in err
