"""Client registration: metadata rules (RFC 6749, RFC 8252), secrets stored only as a hash, deletion."""
from __future__ import annotations

import dataclasses
import json

import pytest

from chalicelib.capabilities import GRANT_TYPES, TOKEN_EXCHANGE
from chalicelib.hashing import matches_hash, sha256_hex
from chalicelib.storage import clients
from chalicelib.errors import InvalidClientMetadata
from chalicelib.oauth.client_metadata import validate_client_metadata
from chalicelib.oauth.clients import create_client
from chalicelib.storage.models import ClientModel

APP = "https://app.example.com/cb"


def stored_items() -> list[dict]:
    from chalicelib.aws import client

    return client("dynamodb").scan(TableName=ClientModel.Meta.table_name, ConsistentRead=True)["Items"]


REJECTED = [
    ({"redirect_uris": ["https://app.example.com/cb#done"]},
     "redirect URI must not contain a fragment: 'https://app.example.com/cb#done'"),
    ({"redirect_uris": ["https://app.example.com/cb#"]},
     "redirect URI must not contain a fragment: 'https://app.example.com/cb#'"),
    ({"redirect_uris": ["/callback"]}, "redirect URI must be an absolute URI: '/callback'"),
    ({"redirect_uris": ["//app.example.com/cb"]}, "redirect URI must be an absolute URI: '//app.example.com/cb'"),
    ({"redirect_uris": ["https:/cb"]}, "redirect URI must be an absolute URI: 'https:/cb'"),
    ({"redirect_uris": ["https://user:pw@app.example.com/cb"]},
     "redirect URI must not contain credentials: 'https://user:pw@app.example.com/cb'"),
    ({"redirect_uris": ["http://app.example.com/cb"]},
     "http redirect URIs are allowed only for loopback hosts: 'http://app.example.com/cb'"),
    ({"redirect_uris": ["http://127.0.0.1.evil.example/cb"]},
     "http redirect URIs are allowed only for loopback hosts: 'http://127.0.0.1.evil.example/cb'"),
    ({"redirect_uris": ["https://*.example.com/cb"]},
     "redirect URI must not contain wildcards: 'https://*.example.com/cb'"),
    ({"redirect_uris": ["https://app.example.com/c b"]},
     "redirect URI must not contain whitespace or control characters: 'https://app.example.com/c b'"),
    ({"redirect_uris": ["myapp:/cb"]},
     "redirect URI must use https, http on a loopback host, or a reverse-domain private-use scheme: 'myapp:/cb'"),
    ({"redirect_uris": ["javascript:alert(1)"]},
     "redirect URI must use https, http on a loopback host, or a reverse-domain private-use scheme: "
     "'javascript:alert(1)'"),
    ({"redirect_uris": []}, "at least one redirect URI is required for the authorization_code grant"),
    ({"redirect_uris": [f"https://app.example.com/{i}" for i in range(11)]}, "at most 10 redirect URIs are allowed"),
    ({"client_type": "public", "grant_types": ["authorization_code", "client_credentials"]},
     "public clients cannot use the client_credentials grant"),
    ({"client_type": "public", "grant_types": ["authorization_code", TOKEN_EXCHANGE]},
     "public clients cannot use the token exchange grant"),
    # Every grant the token endpoint dispatches, in the capability table's order (it grows with each grant).
    ({"grant_types": ["password"]}, "unsupported grant type 'password'; supported: " + ", ".join(GRANT_TYPES)),
    ({"grant_types": []}, "at least one grant type is required"),
    ({"grant_types": ["client_credentials", "refresh_token"]},
     "the refresh_token grant requires the authorization_code or urn:ietf:params:oauth:grant-type:device_code grant"),
    ({"scopes": ["openid", "a b"]}, "invalid scope 'a b': not an RFC 6749 §3.3 scope-token"),
    ({"scopes": ['say"hi']}, "invalid scope 'say?hi': not an RFC 6749 §3.3 scope-token"),
    ({"scopes": ["back\\slash"]}, "invalid scope 'back?slash': not an RFC 6749 §3.3 scope-token"),
    ({"scopes": [""]}, "invalid scope '': not an RFC 6749 §3.3 scope-token"),
    ({"scopes": ["profil\u00e9"]}, "invalid scope 'profil?': not an RFC 6749 §3.3 scope-token"),
    ({"client_name": ""}, "client_name must be 1 to 200 characters"),
    ({"client_name": "   "}, "client_name must be 1 to 200 characters"),
    ({"client_name": "x" * 201}, "client_name must be 1 to 200 characters"),
    ({"client_name": "Bell\x07"}, "client_name must not contain control characters"),
    ({"client_type": "secret"}, "client_type must be one of confidential, public, got 'secret'"),
    ({"client_type": "public", "token_endpoint_auth_method": "client_secret_basic"},
     "public clients have no secret: token_endpoint_auth_method must be 'none'"),
    ({"token_endpoint_auth_method": "none"},
     "confidential clients authenticate: token_endpoint_auth_method must be client_secret_basic, "
     "client_secret_post or private_key_jwt"),
    ({"token_endpoint_auth_method": "client_secret_jwt"},
     "token_endpoint_auth_method must be one of client_secret_basic, client_secret_post, private_key_jwt, none, "
     "got 'client_secret_jwt'"),
    ({"token_endpoint_auth_method": "private_key_jwt"}, "private_key_jwt needs exactly one of jwks and jwks_uri"),
]


@pytest.mark.parametrize("change, message", REJECTED, ids=[m[:60] for _, m in REJECTED])
def test_invalid_metadata_is_rejected_with_a_clear_message(change, message):
    metadata = {"client_name": "App", "redirect_uris": [APP], **change}
    with pytest.raises(InvalidClientMetadata) as raised:
        validate_client_metadata(**metadata)
    assert str(raised.value) == message


@pytest.mark.parametrize("uri", [
    "https://app.example.com/cb?x=1",
    "http://127.0.0.1:51004/cb",  # RFC 8252 §7.3: any port on loopback
    "http://[::1]:8080/cb",
    "http://localhost/cb",
    "com.example.app:/oauth2redirect",  # RFC 8252 §7.1 private-use scheme
])
def test_accepted_redirect_uris(uri):
    assert validate_client_metadata(client_name="App", redirect_uris=[uri])["redirect_uris"] == [uri]


def test_defaults_and_deduplication():
    metadata = validate_client_metadata(client_name=" App ", redirect_uris=[APP, APP],
                                        scopes=["openid", "email", "openid"])
    assert metadata == {
        "client_name": "App", "client_type": "confidential", "token_endpoint_auth_method": "client_secret_basic",
        "grant_types": ["authorization_code"], "redirect_uris": [APP], "response_types": ["code"],
        "scopes": ["openid", "email"], "resources": [], "introspection": False, "introspects": [], "require_mfa": False,
        "connections": [],
        "post_logout_redirect_uris": [], "backchannel_logout_uri": None, "backchannel_logout_session_required": False,
        "jwks": None, "jwks_uri": None, "require_pushed_authorization_requests": False,
        "dpop_bound_access_tokens": False,
    }
    public = validate_client_metadata(client_name="SPA", client_type="public", redirect_uris=[APP])
    assert public["token_endpoint_auth_method"] == "none"
    assert public["scopes"] == ["openid"]


def test_client_credentials_only_client_needs_no_redirect_uri_and_has_no_response_type():
    metadata = validate_client_metadata(client_name="Batch", grant_types=["client_credentials"],
                                        token_endpoint_auth_method="client_secret_post")
    assert metadata["redirect_uris"] == [] and metadata["response_types"] == []
    assert metadata["token_endpoint_auth_method"] == "client_secret_post"


def test_confidential_client_secret_is_stored_only_as_its_hash(aws):
    client, secret = create_client(client_name="App", redirect_uris=[APP])

    assert len(secret) >= 43  # 256 bits, base64url
    [item] = stored_items()
    assert secret not in json.dumps(item)
    assert item["secret_hash"] == {"S": sha256_hex(secret)}
    stored = clients.get_client(client.client_id)
    assert matches_hash(secret, stored.secret_hash)
    assert not matches_hash(secret[:-1], stored.secret_hash)


def test_public_client_gets_no_secret(aws):
    client, secret = create_client(client_name="SPA", client_type="public", redirect_uris=[APP])
    assert secret is None
    assert clients.get_client(client.client_id).secret_hash is None


def test_invalid_client_writes_nothing(aws):
    with pytest.raises(InvalidClientMetadata):
        create_client(client_name="App", redirect_uris=["http://app.example.com/cb"])
    assert stored_items() == []


def test_client_ids_are_unique_and_all_clients_are_listed(aws):
    first, _ = create_client(client_name="One", redirect_uris=[APP])
    second, _ = create_client(client_name="Two", redirect_uris=[APP])
    assert first.client_id != second.client_id
    assert {c.client_id for c in clients.list_clients()} == {first.client_id, second.client_id}


def test_delete_removes_the_client_and_reports_a_missing_one(aws):
    client, _ = create_client(client_name="App", redirect_uris=[APP])
    assert clients.delete_client(client.client_id) is True
    assert clients.get_client(client.client_id) is None
    assert clients.delete_client(client.client_id) is False
    assert stored_items() == []


def test_clients_are_read_as_frozen_records_that_a_cache_can_share(aws):
    created, _ = create_client(client_name="App", redirect_uris=[APP], scopes=["openid", "email"])
    stored = clients.get_client(created.client_id)

    assert stored == created and isinstance(stored, clients.Client)
    assert stored.redirect_uris == (APP,) and stored.scopes == ("openid", "email")
    with pytest.raises(dataclasses.FrozenInstanceError):
        stored.disabled = True
    assert clients.list_clients() == [stored]


def test_adding_a_client_under_a_taken_client_id_writes_nothing(aws):
    first = clients.Client(client_id="taken", client_name="First", client_type="public",
                           token_endpoint_auth_method="none", created_at=1, updated_at=1)
    assert clients.add_client(first) is True
    assert clients.add_client(dataclasses.replace(first, client_name="Second")) is False
    assert clients.get_client("taken").client_name == "First"


def self_registered(token_hash: str = "hash-1") -> clients.Client:
    client = clients.Client(client_id="agent", client_name="Agent", client_type="public",
                            token_endpoint_auth_method="none", client_uri="https://agent.example.com",
                            registered_dynamically=True, registration_token_hash=token_hash,
                            redirect_uris=(APP,), created_at=1, updated_at=1)
    assert clients.add_client(client)
    return client


def test_rotating_the_registration_token_returns_the_client_as_written(aws):
    """RFC 7592: one conditional UpdateItem swaps the hash and applies the update; None removes."""
    self_registered()

    written = clients.rotate_registration_token("agent", expected_hash="hash-1", new_hash="hash-2",
                                                client_name="Agent 2", redirect_uris=("https://b.example.com/cb",),
                                                client_uri=None)

    assert written == clients.get_client("agent")
    assert (written.registration_token_hash, written.client_name, written.client_uri) == ("hash-2", "Agent 2", None)
    assert written.redirect_uris == ("https://b.example.com/cb",)
    assert written.updated_at > 1


@pytest.mark.parametrize("client_id", ["agent", "no-such-client"])
def test_a_registration_token_rotated_meanwhile_is_missing_and_nothing_is_written(aws, client_id):
    before = self_registered(token_hash="hash-2")

    assert clients.rotate_registration_token(client_id, expected_hash="hash-1", new_hash="hash-3",
                                             client_name="Hijacked") is None
    assert clients.get_client("agent") == before
    assert clients.get_client("no-such-client") is None


def test_the_record_has_every_attribute_of_the_item_and_no_other():
    """A new ClientModel attribute must reach the core, or it is silently dropped on every read."""
    assert {f.name for f in dataclasses.fields(clients.Client)} == set(ClientModel.get_attributes())
