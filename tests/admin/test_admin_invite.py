"""`idp-admin users invite`: an invitation email with a link, refused for an address with an account."""
from __future__ import annotations

import json
import os

import pytest

from chalicelib.storage.models import LinkModel
from tests.routes.mailbox import mailbox  # noqa: F401 - fixture
from tools import admin


@pytest.fixture
def run(aws, capsys):
    def run(*argv):
        status = admin.main(list(argv), environ=dict(os.environ))
        out, err = capsys.readouterr()
        return status, out, err
    return run


def links_stored() -> int:
    from chalicelib.aws import client

    return client("dynamodb").scan(TableName=LinkModel.Meta.table_name, ConsistentRead=True)["Count"]


def test_invite_sends_the_link_and_prints_it(run, mailbox):
    from chalicelib.log import now
    from chalicelib.storage import links

    status, out, err = run("users", "invite", "--email", "Dana@Example.com", "--name", "Dana")
    assert status == 0, err
    result = json.loads(out)
    assert result["email"] == "dana@example.com" and result["expires_in"] == 7 * 86400
    assert result["invitation_link"].startswith("http://localhost:8000/invitation?token=")
    mail, = mailbox.messages("dana@example.com")
    assert mail.link("/invitation") == result["invitation_link"].removeprefix("http://localhost:8000")
    token = result["invitation_link"].split("token=", 1)[1]
    link = links.peek(token, "invitation", now())
    assert link.email == "dana@example.com" and link.data == {"name": "Dana"} and link.sub is None
    assert "works once" in err


def test_invite_refuses_an_address_that_has_an_account(run, mailbox, alice):
    status, out, err = run("users", "invite", "--email", "ALICE@example.com")
    assert status == 2 and out == ""
    assert err == "error: alice@example.com already has an account: nothing was sent\n"
    assert mailbox.messages() == [] and links_stored() == 0


@pytest.mark.parametrize("argv", [["--email", "not-an-email"], ["--email", "e@example.com", "--name", "x" * 201]])
def test_invite_refuses_bad_input(run, mailbox, argv):
    status, _, err = run("users", "invite", *argv)
    assert status == 2 and err.startswith("error: ")
    assert mailbox.messages() == [] and links_stored() == 0


def test_invite_says_so_when_ses_refuses(run):
    status, out, err = run("users", "invite", "--email", "erin@example.com")  # no verified sender identity
    assert status == 1 and out == ""
    # The last line: mail.py's warning is logged before it.
    assert err.splitlines()[-1] == ("error: the email could not be sent (ses:MessageRejected); nothing was sent, "
                                    "run the command again")
