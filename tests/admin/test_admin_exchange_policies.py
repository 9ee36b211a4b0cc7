"""`idp-admin exchange-policies add|list|remove`: a client's token-exchange and ID-JAG rules, stored on
its item; bad input exits 2 and changes nothing."""
from __future__ import annotations

import json
import os

import pytest

from chalicelib.capabilities import TOKEN_EXCHANGE
from chalicelib.oauth.exchange_policy import of, parse
from chalicelib.storage.clients import get_client
from tools import admin

NOTES, BILLING = "https://notes.example.com/api", "https://billing.example.com/api"


@pytest.fixture
def run(aws, capsys):
    def run(*argv):
        status = admin.main(list(argv), environ=dict(os.environ))
        out, err = capsys.readouterr()
        return status, out, err
    return run


@pytest.fixture
def gateway(aws, api_resources):
    from chalicelib.oauth.clients import create_client

    client, _ = create_client(client_name="Gateway", grant_types=[TOKEN_EXCHANGE])
    return client.client_id


def add(run, client_id, *options):
    return run("exchange-policies", "add", "--client", client_id, *options)


def test_an_access_token_policy_is_stored_on_the_client(run, gateway):
    status, out, err = add(run, gateway, "--id", "notes-to-billing", "--subject-audience", NOTES,
                           "--resource", BILLING, "--scope", "billing:read", "--max-depth", "2")

    assert status == 0, err
    expected = {"policy_id": "notes-to-billing", "kind": "access_token", "resources": [BILLING],
                "scopes": ["billing:read"], "subject_audiences": [NOTES], "max_depth": 2, "audience": None,
                "downstream_client_id": None}
    assert json.loads(out) == [expected]
    (policy,) = of(get_client(gateway), "access_token")
    assert policy.resources == (BILLING,) and policy.subject_audiences == (NOTES,) and policy.max_depth == 2
    assert json.loads(run("exchange-policies", "list", "--client", gateway)[1]) == [expected]


def test_an_id_jag_policy_names_the_downstream_server_and_our_client_there(run, gateway):
    status, out, err = add(run, gateway, "--kind", "id_jag", "--id", "crm", "--audience", "https://as.crm.example",
                           "--downstream-client-id", "crm-client-9", "--resource", "https://api.crm.example/mcp",
                           "--scope", "crm:read")

    assert status == 0, err
    (policy,) = of(get_client(gateway), "id_jag")
    assert (policy.audience, policy.downstream_client_id) == ("https://as.crm.example", "crm-client-9")
    assert policy.resources == ("https://api.crm.example/mcp",) and policy.scopes == ("crm:read",)


def test_policies_accumulate_and_are_removed_one_by_one(run, gateway):
    assert add(run, gateway, "--id", "a", "--subject-audience", NOTES, "--resource", BILLING)[0] == 0
    assert add(run, gateway, "--id", "b", "--subject-audience", BILLING, "--resource", NOTES)[0] == 0
    assert [p.policy_id for p in parse(get_client(gateway).exchange_policies)] == ["a", "b"]

    status, out, _ = run("exchange-policies", "remove", "--client", gateway, "--id", "a")

    assert status == 0 and [p["policy_id"] for p in json.loads(out)] == ["b"]
    assert run("exchange-policies", "remove", "--client", gateway, "--id", "b")[0] == 0
    assert get_client(gateway).exchange_policies is None


def test_a_generated_id_when_none_is_given(run, gateway):
    status, out, _ = add(run, gateway, "--subject-audience", NOTES, "--resource", BILLING)
    assert status == 0 and json.loads(out)[0]["policy_id"].startswith("access-token-")


@pytest.mark.parametrize("options", [
    ("--resource", BILLING),
    ("--subject-audience", NOTES),
    ("--subject-audience", NOTES, "--resource", "https://unknown.example.com/api"),
    ("--subject-audience", NOTES, "--resource", BILLING, "--max-depth", "0"),
    ("--subject-audience", NOTES, "--resource", BILLING, "--max-depth", "11"),
    ("--subject-audience", NOTES, "--resource", BILLING, "--scope", "bad scope"),
    ("--subject-audience", NOTES, "--resource", BILLING, "--audience", "https://as.example"),
    ("--subject-audience", NOTES, "--resource", BILLING, "--id", "has space"),
    ("--kind", "id_jag", "--audience", "https://as.example"),
    ("--kind", "id_jag", "--downstream-client-id", "x"),
    ("--kind", "id_jag", "--audience", "not a url", "--downstream-client-id", "x"),
    ("--kind", "id_jag", "--audience", "http://as.example", "--downstream-client-id", "x"),
    ("--kind", "id_jag", "--audience", "https://as.example", "--downstream-client-id", "x", "--max-depth", "2"),
], ids=["no-subject-audience", "no-resource", "unknown-resource", "depth-0", "depth-beyond-max", "bad-scope",
        "audience-on-access-token", "bad-id", "id-jag-no-client", "id-jag-no-audience", "id-jag-bad-audience",
        "id-jag-plain-http", "id-jag-depth"])
def test_bad_input_exits_2_and_changes_nothing(run, gateway, options):
    status, out, err = add(run, gateway, *options)
    assert status == 2 and out == "" and err.startswith("error: ")
    assert get_client(gateway).exchange_policies is None


def test_a_duplicate_id_is_refused(run, gateway):
    assert add(run, gateway, "--id", "a", "--subject-audience", NOTES, "--resource", BILLING)[0] == 0
    before = get_client(gateway).exchange_policies
    assert add(run, gateway, "--id", "a", "--subject-audience", BILLING, "--resource", NOTES)[0] == 2
    assert get_client(gateway).exchange_policies == before


def test_only_confidential_clients_with_the_grant_get_policies(run, aws, api_resources, public_client,
                                                               service_client):
    for client_id in (public_client.client_id, service_client[0].client_id, "no-such-client"):
        status, _, err = add(run, client_id, "--subject-audience", NOTES, "--resource", BILLING)
        assert status == 2, err
        assert get_client(client_id) is None or get_client(client_id).exchange_policies is None


def test_removing_an_unknown_policy_is_bad_input(run, gateway):
    assert run("exchange-policies", "remove", "--client", gateway, "--id", "nope")[0] == 2


def test_a_concurrent_change_is_not_overwritten(run, gateway, monkeypatch):
    """The write is conditional on the policies read: an operator's change made in between is read
    again and kept, not silently dropped."""
    from chalicelib.storage import clients

    assert add(run, gateway, "--id", "a", "--subject-audience", NOTES, "--resource", BILLING)[0] == 0
    write = clients.set_client_exchange_policies
    raced = []

    def racing(client_id, text, *, expected):
        if not raced:  # another operator removes "a" just before our write
            raced.append(write(client_id, None, expected=expected))
        return write(client_id, text, expected=expected)

    monkeypatch.setattr(clients, "set_client_exchange_policies", racing)
    assert add(run, gateway, "--id", "b", "--subject-audience", BILLING, "--resource", NOTES)[0] == 0
    assert raced == [True]
    assert [p.policy_id for p in parse(get_client(gateway).exchange_policies)] == ["b"]
