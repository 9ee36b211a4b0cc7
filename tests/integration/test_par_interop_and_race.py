"""Pushed authorization requests (RFC 9126) against `make run` over real HTTP.

Interop: requests-oauth2client (a maintained client implementing RFC 9126) pushes its authorization
request, with private_key_jwt (its assertion's `aud` is the PAR endpoint's URL, which RFC 9126 §2
makes us accept) and with client_secret_basic; the browser carries only client_id and request_uri;
the library validates the callback (state, iss) and redeems the code with its own PKCE verifier.

Races: 32 browsers opening /authorize with the same request_uri at once, and 32 threads calling the
conditional consume against the stack's moto server: exactly one gets the request (the moto server
of `make run` makes each DynamoDB action atomic: tests/integration/test_concurrency.py).
"""
from __future__ import annotations

from urllib.parse import urlencode

import pytest
import requests

from tests.integration.hosted_flow import REDIRECT_URI, TIMEOUT, HostedPages, new_client, new_user, query_of
from tests.integration.test_concurrency import RACERS, race
from tests.integration.moto_recording import update_items

pytestmark = pytest.mark.integration

SCOPE = "openid email"


def library_client(stack, auth, discovered):
    from requests_oauth2client import OAuth2Client

    document = {k: v for k, v in discovered.items() if k != "jwks"}
    return OAuth2Client.from_discovery_document(
        document, issuer=stack.base_url, auth=auth, redirect_uri=REDIRECT_URI, testing=True,
        authorization_server_jwks=discovered["jwks"],
        id_token_signed_response_alg=discovered["id_token_signing_alg_values_supported"][0])


@pytest.fixture
def discovered(idp, use_stack):
    use_stack(idp)
    document = requests.get(f"{idp.base_url}/.well-known/openid-configuration", timeout=TIMEOUT).json()
    document["jwks"] = requests.get(document["jwks_uri"], timeout=TIMEOUT).json()
    return document


def keyed_client():
    from jwskate import Jwk

    from chalicelib.oauth.clients import create_client

    key = Jwk.generate(alg="ES256", kid="par-interop")
    client, _ = create_client(client_name="PAR key client", redirect_uris=[REDIRECT_URI], scopes=SCOPE.split(),
                              token_endpoint_auth_method="private_key_jwt",
                              jwks={"keys": [dict(key.public_jwk())]}, require_pushed_authorization_requests=True)
    return client, key


@pytest.mark.parametrize("method", ["private_key_jwt", "client_secret_basic"])
def test_requests_oauth2client_pushes_and_completes_the_code_flow(idp, discovered, method):
    from requests_oauth2client import ClientSecretBasic, PrivateKeyJwt

    assert discovered["pushed_authorization_request_endpoint"] == f"{idp.base_url}/par"
    if method == "private_key_jwt":
        client, key = keyed_client()
        auth = PrivateKeyJwt(client.client_id, key)  # aud: the endpoint it calls, /par then /token
    else:
        client, secret = new_client("confidential")
        auth = ClientSecretBasic(client.client_id, secret)
    _, email = new_user()
    oauth = library_client(idp, auth, discovered)

    request = oauth.authorization_request(scope=SCOPE)
    pushed = oauth.pushed_authorization_request(request)
    assert pushed.request_uri.startswith("urn:ietf:params:oauth:request_uri:")
    assert set(query_of(pushed.uri)) == {"client_id", "request_uri"}, "nothing else on the front channel"

    callback = HostedPages(idp.base_url).authorize(pushed.uri, email)
    response = request.validate_callback(callback)  # state and iss checked by the library
    token = oauth.authorization_code(response)  # the library validates the ID token too
    assert token.access_token and token.id_token is not None
    assert set(token.scope.split()) == set(SCOPE.split())


def test_the_library_sees_a_spent_request_uri_refused(idp, discovered):
    from requests_oauth2client import ClientSecretBasic

    client, secret = new_client("confidential")
    _, email = new_user()
    oauth = library_client(idp, ClientSecretBasic(client.client_id, secret), discovered)
    pushed = oauth.pushed_authorization_request(oauth.authorization_request(scope=SCOPE))
    HostedPages(idp.base_url).authorize(pushed.uri, email)
    again = requests.get(pushed.uri, allow_redirects=False, timeout=TIMEOUT)
    assert again.status_code == 400 and "invalid_request_uri" in again.text


def update_items_for(stack, request_uri: str) -> int:
    """How many UpdateItem requests on this pushed request's item the stack's moto server served."""
    from chalicelib.capabilities import PAR_REQUEST_URI_PREFIX
    from chalicelib.hashing import sha256_hex
    from chalicelib.storage.models import PushedRequestModel

    return update_items(stack, PushedRequestModel.Meta.table_name, {"request_id": {"S": "par#" + sha256_hex(request_uri[len(PAR_REQUEST_URI_PREFIX):])}})


def push(stack, client_id: str) -> str:
    from chalicelib.oauth import pkce

    body = {"client_id": client_id, "response_type": "code", "redirect_uri": REDIRECT_URI, "scope": SCOPE,
            "state": "s", "code_challenge": pkce.s256("v" * 43), "code_challenge_method": "S256"}
    response = requests.post(f"{stack.base_url}/par", data=body, timeout=TIMEOUT)
    assert response.status_code == 201, response.text
    return response.json()["request_uri"]


def test_32_browsers_opening_one_request_uri_over_http_exactly_one_gets_it(idp, use_stack):
    use_stack(idp)
    client, _ = new_client("public")
    # Warm the server's paths (a push and its use), and one kept-alive connection per racer: chalice
    # local's listen backlog would reset a burst of 32 connects (see test_concurrency.py).
    warm = push(idp, client.client_id)
    assert requests.get(f"{idp.base_url}/authorize?" + urlencode({"client_id": client.client_id, "request_uri": warm}),
                        allow_redirects=False, timeout=TIMEOUT).status_code == 302
    sessions = [requests.Session() for _ in range(RACERS)]
    for session in sessions:
        assert session.get(f"{idp.base_url}/jwks", timeout=TIMEOUT).status_code == 200
    request_uri = push(idp, client.client_id)
    url = f"{idp.base_url}/authorize?" + urlencode({"client_id": client.client_id, "request_uri": request_uri})

    results = race(lambda i: sessions[i].get(url, allow_redirects=False, timeout=TIMEOUT))

    winners = [r for r in results if r.status_code == 302]
    losers = [r for r in results if r.status_code != 302]
    assert len(winners) == 1 and winners[0].headers["Location"].startswith("/login"), [r.status_code for r in results]
    assert all(r.status_code == 400 and "invalid_request_uri" in r.text for r in losers)
    assert update_items_for(idp, request_uri) == RACERS, "every request raced the conditional write"
    for session in sessions:
        session.close()


def test_32_threads_consuming_one_pushed_request_against_the_moto_server_exactly_one_wins(idp, use_stack):
    from chalicelib.capabilities import PAR_REQUEST_URI_PREFIX
    from chalicelib.hashing import sha256_hex
    from chalicelib.log import now
    from chalicelib.storage import pushed_requests
    from chalicelib.storage.models import PushedRequestModel

    use_stack(idp)
    client, _ = new_client("public")
    request_uri = push(idp, client.client_id)
    secret_hash = sha256_hex(request_uri[len(PAR_REQUEST_URI_PREFIX):])
    PushedRequestModel._get_connection().connection.client  # noqa: B018  (built before the race)

    outcomes = race(lambda _: pushed_requests.consume(secret_hash, client.client_id, now()))

    won = [o for o in outcomes if o is not None]
    assert len(won) == 1 and won[0].params["client_id"] == client.client_id
    assert outcomes.count(None) == RACERS - 1
    assert update_items_for(idp, request_uri) == RACERS
