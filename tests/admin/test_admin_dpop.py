"""`./idp-admin clients create|update --dpop-bound-access-tokens / --no-dpop-bound-access-tokens`
(RFC 9449 §5.2): the client's token requests then need a DPoP proof."""
from __future__ import annotations

import json
import os

import pytest

from chalicelib.storage.clients import get_client
from tools import admin

APP = "https://app.example.com/cb"


@pytest.fixture
def run(aws, capsys):
    def run(*argv):
        status = admin.main(list(argv), environ=dict(os.environ))
        out, err = capsys.readouterr()
        return status, out, err
    return run


def test_a_client_is_created_and_updated_with_dpop_bound_access_tokens(run):
    status, out, _ = run("clients", "create", "--name", "Agent", "--public", "--redirect-uri", APP,
                         "--dpop-bound-access-tokens")
    assert status == 0
    created = json.loads(out)
    assert created["dpop_bound_access_tokens"] is True and get_client(created["client_id"]).dpop_bound_access_tokens
    status, out, _ = run("clients", "update", created["client_id"], "--no-dpop-bound-access-tokens")
    assert status == 0 and "dpop_bound_access_tokens" not in json.loads(out)
    assert not get_client(created["client_id"]).dpop_bound_access_tokens
    assert run("clients", "update", created["client_id"], "--dpop-bound-access-tokens")[0] == 0
    assert get_client(created["client_id"]).dpop_bound_access_tokens


def test_an_unknown_client_is_refused(run):
    status, _, err = run("clients", "update", "no-such-client", "--dpop-bound-access-tokens")
    assert status == 2 and "no client" in err
