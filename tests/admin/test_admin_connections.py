"""`./idp-admin connections ...` (issue 15): upstream identity providers. JSON out; secrets only from
stdin or a file, stored in Secrets Manager and never printed; bad input exits 2 and writes nothing."""
from __future__ import annotations

import io
import json
import os

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from chalicelib.federation.connections import read_secret
from chalicelib.storage.clients import get_client
from chalicelib.storage.connections import get_connection, list_connections
from chalicelib.storage.models import ConnectionModel
from tools import admin

SECRET = "gOcSpX-very-secret-value"
REDIRECT_URI = "http://localhost:8000/federation/callback"
GOOGLE = ("connections", "create", "--preset", "google", "--id", "google", "--client-id", "123.apps.googleusercontent.com",
          "--client-secret-stdin")
ACME = ("connections", "create", "--preset", "oidc", "--id", "acme", "--client-id", "idp-client",
        "--issuer", "https://login.acme.example", "--display-name", "Acme SSO", "--domains", "acme.example,ACME.test",
        "--client-secret-stdin")


@pytest.fixture
def run(aws, capsys, monkeypatch):
    """Run the CLI in-process with `stdin` as standard input; returns (exit status, stdout, stderr)."""
    def run(*argv, stdin=""):
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        status = admin.main(list(argv), environ=dict(os.environ))
        out, err = capsys.readouterr()
        return status, out, err
    return run


def secret_names() -> list[str]:
    from chalicelib.aws import client

    return sorted(s["Name"] for s in client("secretsmanager").list_secrets()["SecretList"])


def item_count() -> int:
    from chalicelib.aws import client

    return client("dynamodb").scan(TableName=ConnectionModel.Meta.table_name, ConsistentRead=True)["Count"]


def pem_file(tmp_path, key, name="key.pem"):
    path = tmp_path / name
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return str(path)


def test_create_reads_the_secret_from_stdin_stores_it_in_secrets_manager_and_prints_the_redirect_uri(run):
    status, out, err = run(*GOOGLE, stdin=SECRET + "\nignored\n")

    assert status == 0
    assert err == f"note: register {REDIRECT_URI} as the redirect URI of your app at the provider.\n"
    created = json.loads(out)
    assert SECRET not in out
    assert created["redirect_uri"] == REDIRECT_URI
    assert created["secret_name"] == "idp/test/connections/google"
    assert (created["issuer"], created["display_name"], created["scopes"]) == (
        "https://accounts.google.com", "Google", ["openid", "email", "profile"])
    assert read_secret("idp/test/connections/google") == {"client_secret": SECRET}
    assert get_connection("google").client_id == "123.apps.googleusercontent.com"

    for argv in (("connections", "show", "google"), ("connections", "list")):
        status, out, err = run(*argv)
        assert status == 0 and err == "" and SECRET not in out
        shown = json.loads(out)
        assert [c["connection_id"] for c in (shown if isinstance(shown, list) else [shown])] == ["google"]


@pytest.mark.parametrize("argv", [("--client-secret", SECRET), ("--client-secret=" + SECRET,), ("--secret", SECRET)])
def test_there_is_no_option_that_takes_the_secret_on_the_command_line(run, capsys, argv):
    with pytest.raises(SystemExit) as exited:
        admin.main([*GOOGLE[:-1], *argv], environ=dict(os.environ))
    assert exited.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err
    assert item_count() == 0 and secret_names() == []


@pytest.mark.parametrize("argv, stdin, error", [
    (GOOGLE[:-1], "", "client_secret_basic needs the client secret (1 to 1024 printable ASCII characters), on stdin"),
    (GOOGLE, "\n", "client_secret_basic needs the client secret (1 to 1024 printable ASCII characters), on stdin"),
    (("connections", "create", "--preset", "oidc", "--id", "acme", "--client-id", "c", "--client-secret-stdin",
      "--display-name", "Acme"), SECRET, "the oidc preset needs the provider's issuer URL"),
    (("connections", "create", "--preset", "oidc", "--id", "acme", "--client-id", "c", "--client-secret-stdin",
      "--display-name", "Acme", "--issuer", "http://login.acme.example"), SECRET, "issuer must use https"),
    (("connections", "create", "--preset", "oidc", "--id", "acme", "--client-id", "c", "--client-secret-stdin",
      "--display-name", "Acme", "--issuer", "https://localhost:8000/"), SECRET,
     "issuer must not point at this server"),
    (("connections", "create", "--preset", "microsoft", "--id", "entra", "--client-id", "c", "--client-secret-stdin"),
     SECRET, "the microsoft preset needs a tenant: common, organizations, consumers or a tenant id (a GUID)"),
    (("connections", "create", "--preset", "google", "--id", "Google", "--client-id", "c", "--client-secret-stdin"),
     SECRET, "the connection id must be 1 to 32 lower-case letters, digits or hyphens, starting with a letter or "
             "digit"),
    (("connections", "create", "--preset", "google", "--id", "password", "--client-id", "c",
      "--client-secret-stdin"), SECRET,
     "the connection id 'password' is reserved: a client's connections use it for the password form"),
    (("connections", "create", "--preset", "google", "--id", "google", "--client-id", "c", "--client-secret-stdin",
      "--issuer", "https://evil.example"), SECRET, "issuer cannot be set for the google preset"),
    (("connections", "create", "--preset", "google", "--id", "google", "--client-id", "c", "--client-secret-stdin",
      "--acr", "http://upstream/mfa=urn:example:strong"), SECRET,
     "an upstream acr maps to one of urn:serverless-idp:acr:password, urn:serverless-idp:acr:mfa, phr, not "
     "'urn:example:strong'"),
    (("connections", "create", "--preset", "google", "--id", "google", "--client-id", "c", "--client-secret-stdin",
      "--claim", "sub=email"), SECRET,
     "claims that can be mapped are email, email_verified, name, given_name, family_name, locale, not 'sub'"),
    (("connections", "create", "--preset", "google", "--id", "google", "--client-id", "c", "--client-secret-stdin",
      "--domains", "acme..example"), SECRET, "domains: 'acme..example' is not a domain name (IDNs in their xn-- form)"),
])
def test_bad_input_exits_2_and_writes_nothing(run, argv, stdin, error):
    assert run(*argv, stdin=stdin) == (2, "", f"error: {error}\n")
    assert item_count() == 0 and secret_names() == []


def test_apple_needs_its_team_id_key_id_and_an_ec_p256_private_key(run, tmp_path):
    apple = ("connections", "create", "--preset", "apple", "--id", "apple", "--client-id", "com.example.web")
    ec_key = ec.generate_private_key(ec.SECP256R1())
    assert run(*apple, "--private-key-file", pem_file(tmp_path, ec_key)) == (
        2, "", "error: the apple preset needs its team id: ten upper-case letters or digits\n")
    ids = ("--team-id", "ABCDE12345", "--key-id", "KEY1234567")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert run(*apple, *ids, "--private-key-file", pem_file(tmp_path, rsa_key)) == (
        2, "", "error: the private key must be EC P-256\n")
    assert run(*apple, *ids, "--client-secret-stdin", stdin=SECRET) == (
        2, "", "error: apple_client_secret uses a private key, not a client secret\n")
    assert item_count() == 0 and secret_names() == []

    status, out, _ = run(*apple, *ids, "--private-key-file", pem_file(tmp_path, ec_key))
    assert status == 0
    created = json.loads(out)
    assert (created["response_mode"], created["auth_method"], created["scopes"]) == (
        "form_post", "apple_client_secret", ["openid", "email", "name"])
    stored = serialization.load_pem_private_key(read_secret(created["secret_name"])["private_key"].encode(), None)
    assert stored.private_numbers() == ec_key.private_numbers()
    assert "PRIVATE KEY" not in out


@pytest.mark.parametrize("key, error", [
    (lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024), "must be EC P-256 or RSA of at least 2048 bits"),
    (lambda: ec.generate_private_key(ec.SECP384R1()), "must be EC P-256 or RSA of at least 2048 bits"),
    (None, "must be an unencrypted PEM private key"),
])
def test_private_key_jwt_refuses_weak_and_unreadable_keys(run, tmp_path, key, error):
    path = pem_file(tmp_path, key()) if key else str(tmp_path / "garbage.pem")
    if key is None:
        (tmp_path / "garbage.pem").write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    status, out, err = run("connections", "create", "--preset", "oidc", "--id", "acme", "--client-id", "c",
                           "--display-name", "Acme", "--issuer", "https://login.acme.example",
                           "--auth-method", "private_key_jwt", "--private-key-file", path)
    assert (status, out, err) == (2, "", f"error: the private key {error}\n")
    assert item_count() == 0 and secret_names() == []


def test_microsoft_multi_tenant_uses_the_tenantid_issuer_template_and_tenant_discovery(run):
    status, out, _ = run("connections", "create", "--preset", "microsoft", "--id", "entra", "--client-id", "c",
                         "--tenant", "organizations", "--allowed-tenants",
                         "72F988BF-86F1-41AF-91AB-2D7CD011DB47", "--client-secret-stdin", stdin=SECRET)
    assert status == 0
    created = json.loads(out)
    assert created["issuer"] == "https://login.microsoftonline.com/{tenantid}/v2.0"
    assert created["discovery_url"] == \
        "https://login.microsoftonline.com/organizations/v2.0/.well-known/openid-configuration"
    assert created["allowed_tenants"] == ["72f988bf-86f1-41af-91ab-2d7cd011db47"]
    assert created["claim_mapping"]["email_verified"] == "xms_edov"

    # A single tenant of its own: its own issuer; allowed_tenants no longer applies and must go.
    single = ("connections", "update", "entra", "--tenant", "72f988bf-86f1-41af-91ab-2d7cd011db47")
    assert run(*single) == (2, "", "error: allowed_tenants applies only to the common and organizations tenants\n")
    status, out, _ = run(*single, "--allowed-tenants", "")
    assert status == 0
    assert json.loads(out)["issuer"] == "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0"
    assert get_connection("entra").discovery_url is None


def test_a_taken_id_or_home_realm_domain_is_refused_and_the_first_secret_stays(run):
    assert run(*ACME, stdin=SECRET)[0] == 0
    assert get_connection("acme").domains == ("acme.example", "acme.test")

    assert run(*ACME, stdin="another-secret") == (2, "", "error: a connection 'acme' exists (see `connections show`)\n")
    other = ("connections", "create", "--preset", "oidc", "--id", "acme-eu", "--client-id", "c",
             "--issuer", "https://eu.acme.example", "--display-name", "Acme EU", "--domains", "Acme.Test",
             "--client-secret-stdin")
    assert run(*other, stdin="eu-secret") == (
        2, "", "error: the domain 'acme.test' already signs in through the connection 'acme'\n")
    assert read_secret("idp/test/connections/acme") == {"client_secret": SECRET}
    assert [c.connection_id for c in list_connections()] == ["acme"]
    assert secret_names() == ["idp/test/connections/acme"]


def test_update_changes_only_what_is_given_and_rotates_the_secret_from_stdin(run):
    run(*ACME, "--claim", "name=display_name", "--acr", "urn:acme:mfa=urn:serverless-idp:acr:mfa", stdin=SECRET)
    before = get_connection("acme")

    status, out, err = run("connections", "update", "acme", "--domains", "", "--disable", "--client-secret-stdin",
                           "--acr", "urn:acme:hwk=phr", stdin="rotated-secret\n")
    assert (status, err) == (0, "")
    after = get_connection("acme")
    assert json.loads(out)["enabled"] is False and "rotated-secret" not in out
    assert (after.domains, after.enabled, after.issuer, after.display_name) == ((), False, before.issuer, "Acme SSO")
    assert after.claim_mapping["name"] == "display_name"
    assert after.acr_mapping == {"urn:acme:mfa": "urn:serverless-idp:acr:mfa", "urn:acme:hwk": "phr"}
    assert read_secret("idp/test/connections/acme") == {"client_secret": "rotated-secret"}

    # Changing the kind of secret needs the new one; nothing changes without it.
    assert run("connections", "update", "acme", "--auth-method", "private_key_jwt") == (
        2, "", "error: this connection signs with a private key: give its PEM file\n")
    assert get_connection("acme") == after
    assert run("connections", "update", "acme", "--auth-method", "client_secret_post")[0] == 0
    assert run("connections", "update", "nope", "--disable") == (2, "", "error: no connection 'nope'\n")


def test_delete_removes_the_connection_and_its_secret_unless_a_client_still_names_it(run):
    run(*ACME, stdin=SECRET)
    status, out, _ = run("clients", "create", "--name", "Portal", "--redirect-uri", "https://app.example.com/cb",
                         "--connections", "acme,password")
    client_id = json.loads(out)["client_id"]
    assert status == 0 and get_client(client_id).connections == ("acme", "password")

    assert run("connections", "delete", "acme") == (
        2, "", f"error: clients {client_id} name the connection 'acme': change their --connections first "
               "(`clients update`)\n")
    assert get_connection("acme") is not None

    assert json.loads(run("clients", "update", client_id, "--connections", "password")[1])["connections"] == ["password"]
    assert run("connections", "delete", "acme") == (0, json.dumps({"deleted": "acme"}, indent=2) + "\n", "")
    assert get_connection("acme") is None and secret_names() == []
    assert run("connections", "delete", "acme") == (2, "", "error: no connection 'acme'\n")
    # Created again at once: no recovery window holds the name.
    assert run(*ACME, stdin=SECRET)[0] == 0


def test_a_client_may_name_only_connections_that_exist(run):
    argv = ("clients", "create", "--name", "Portal", "--redirect-uri", "https://app.example.com/cb")
    assert run(*argv, "--connections", "google") == (
        2, "", "error: no connection 'google' (see `connections list`; 'password' is the password form)\n")
    assert run(*argv, "--connections", "Not An Id") == (
        2, "", "error: connections are connection ids or 'password', not 'Not'\n")
    assert list_clients_count() == 0

    status, out, _ = run(*argv, "--connections", "password")
    client_id = json.loads(out)["client_id"]
    run(*GOOGLE, stdin=SECRET)
    assert json.loads(run("clients", "update", client_id, "--connections", "google")[1])["connections"] == ["google"]
    assert run("clients", "update", client_id, "--connections", "nope")[0] == 2
    assert get_client(client_id).connections == ("google",)
    assert json.loads(run("clients", "update", client_id, "--connections", "")[1])["connections"] == []
    assert run("clients", "update", client_id) == (
        2, "", "error: nothing to change: give --require-mfa, --no-require-mfa, --connections, --auth-method, "
           "--jwks-file, --jwks-uri, --require-par, --no-require-par or --[no-]dpop-bound-access-tokens\n")


def list_clients_count() -> int:
    from chalicelib.storage.clients import list_clients

    return len(list_clients())


@pytest.mark.integration
def test_through_the_wrapper_on_the_local_stack_the_api_finds_the_connection_and_reads_its_secret(aws_server, tmp_path):
    """`make run`'s path: ./idp-admin writes to the moto server's table and Secrets Manager, and the
    API side (this process, on the same server) lists the connection and reads the secret."""
    import subprocess
    from urllib.parse import urlsplit

    from chalicelib.federation.connections import secret
    from chalicelib.storage.connections import enabled_connections
    from tests.admin.test_admin_cli import ROOT, local_shell

    result = subprocess.run([str(ROOT / "idp-admin"), *ACME], input=SECRET + "\n", cwd=tmp_path, capture_output=True,
                            text=True, timeout=60, env=local_shell(tmp_path, urlsplit(aws_server).port))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["redirect_uri"].endswith("/federation/callback")
    assert SECRET not in result.stdout + result.stderr
    (acme,) = enabled_connections(60)
    assert (acme.connection_id, acme.domains) == ("acme", ("acme.example", "acme.test"))
    assert secret(acme) == {"client_secret": SECRET}


# Trusted issuers (issue 14: ID-JAGs, draft-ietf-oauth-identity-assertion-authz-grant) -------------

def test_trust_and_subject_mapping_are_set_and_changed_by_create_and_update(run):
    status, out, _ = run(*ACME, "--trust", "id-jag,subject-token", "--trusted-email-domains", "acme.example",
                         "--subject-mapping", "email", stdin=SECRET + "\n")
    assert status == 0, out
    assert (json.loads(out)["trust"], json.loads(out)["subject_mapping"]) == (["id-jag", "subject-token"], "email")
    assert (get_connection("acme").trust, get_connection("acme").subject_mapping) == (
        ("id-jag", "subject-token"), "email")

    status, out, _ = run("connections", "update", "acme", "--trust", "id-jag", "--subject-mapping", "identity")
    assert status == 0, out
    assert (get_connection("acme").trust, get_connection("acme").subject_mapping) == (("id-jag",), "identity")
    status, out, _ = run("connections", "update", "acme", "--display-name", "Acme")
    assert status == 0 and get_connection("acme").trust == ("id-jag",), "an absent option keeps its value"
    status, out, _ = run("connections", "update", "acme", "--trust", "")
    assert status == 0 and get_connection("acme").trust == ()


@pytest.mark.parametrize("extra, message", [
    (("--trust", "everything"), "trust values are id-jag, subject-token"),
    (("--trust", "id-jag", "--subject-mapping", "email"), "name them"),
])
def test_bad_trust_is_refused_and_nothing_is_written(run, extra, message):
    status, out, err = run(*ACME, *extra, stdin=SECRET + "\n")
    assert status == 2 and message in err and out == ""
    assert item_count() == 0


def test_github_and_this_server_itself_cannot_be_trusted(run):
    status, _, err = run("connections", "create", "--preset", "github", "--id", "gh", "--client-id", "Iv1.abc",
                         "--trust", "id-jag", "--client-secret-stdin", stdin=SECRET + "\n")
    assert status == 2 and "OpenID Provider" in err
    own = [a if a != "https://login.acme.example" else "http://localhost:8000" for a in ACME]
    status, _, err = run(*own, "--trust", "id-jag", stdin=SECRET + "\n")
    assert status == 2 and "must not point at this server" in err
    assert item_count() == 0
