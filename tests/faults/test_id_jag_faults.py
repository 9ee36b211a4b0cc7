"""Fault injection for the jwt-bearer grant with an ID-JAG (chalicelib/grants/jwt_bearer.py), the way
tests/faults/test_fault_injection.py does it for the other grants: every AWS call of a redemption
(on a cold container: the connections Scan, the identity claim, the user, the used-jti PutItem, and
the signing key's reads), failed one at a time with each error class, answers 503 with Retry-After,
never 500; and the client's retry with the same ID-JAG then gets its access token, since a fault
never spends the ID-JAG's `jti`. A lost PutItem answer, re-sent by botocore, is recognised as our own
write (the normal answer), and the ID-JAG is spent after it."""
from __future__ import annotations

import json

import pytest

from tests.faults import test_fault_injection as injection
from tests.faults.test_fault_injection import Endpoint, Injector, _assert_fault_answer, error_kinds
from tests.routes.test_jwt_bearer_id_jag import Idp, agent as agent_fixture, link, redeem, trusted_connection

agent = agent_fixture


class OwnInjector(Injector):
    """The Injector under hooks of its own: pytest may have loaded test_fault_injection under another
    module name, whose hooks (same unique_id) would otherwise keep answering for its own injector."""

    def install(self):
        from chalicelib import aws

        injection._current[:] = [self]
        for service in ("dynamodb", "secretsmanager", "kms", "sesv2", "sqs"):
            client = aws.client(service)
            client.meta.events.register("before-call", injection._hook(client),
                                        unique_id=f"id-jag-fault-injector-{service}")


@pytest.fixture
def key_backend(request, aws, monkeypatch):
    from chalicelib.keys import keyring
    from tests.conftest import select_key_backend

    select_key_backend(monkeypatch, request.param)
    keyring.ensure_keys()
    return request.param


@pytest.fixture
def http(key_backend):
    from chalice.test import Client

    from app import app

    with Client(app, stage_name="local") as client:
        yield client.http


@pytest.mark.parametrize("key_backend", ["secretsmanager", "kms"], indirect=True)
def test_no_fault_of_a_redemption_answers_500_or_spends_the_id_jag(http, alice, agent, key_backend):
    idp = Idp()
    trusted_connection()
    link(alice.pk)

    def send(assertion):
        idp.publish()  # the issuer's documents, as a warm fetch cache has them (no AWS call)
        return redeem(http, agent, assertion)

    endpoint = Endpoint(make_input=None, send=None, expect=200)
    injector = OwnInjector()
    baseline = injector.run(lambda: send(idp.id_jag(agent[0].client_id)))
    assert baseline.status_code == 200, baseline.body
    calls = list(injector.calls)
    assert "dynamodb.PutItem" in calls and "dynamodb.Scan" in calls, calls
    for index, call in enumerate(calls):
        for kind in error_kinds(call):
            assertion = idp.id_jag(agent[0].client_id)
            response = injector.run(lambda: send(assertion), fail_at=index, kind=kind)
            assert injector.calls[index] == call
            _assert_fault_answer("POST /token jwt-bearer", response, endpoint, kind, call)
            if response.status_code == 503:
                retry = injector.run(lambda: send(assertion))
                assert retry.status_code == 200, f"retry after {call} {kind}: {retry.body[:300]!r}"
            replay = injector.run(lambda: send(assertion))
            assert json.loads(replay.body)["error"] == "invalid_grant", f"{call} {kind}: the ID-JAG was not spent"
