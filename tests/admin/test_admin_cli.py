"""The admin CLI: JSON out, one-line errors, exit 2 for bad input with storage unchanged, secrets shown once."""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from chalicelib.hashing import matches_hash
from chalicelib.passwords import verify_password
from chalicelib.storage.clients import get_client
from chalicelib.storage.models import ClientModel, UserModel
from chalicelib.storage.users import find_user_by_email, get_user
from tools import admin

ROOT = Path(__file__).resolve().parents[2]
APP = "https://app.example.com/cb"


@pytest.fixture
def run(aws, capsys):
    """Run the CLI in-process; returns (exit status, stdout, stderr)."""
    def run(*argv):
        # A scratch environment: this process is already wired to in-process moto and the test tables.
        status = admin.main(list(argv), environ=dict(os.environ))
        out, err = capsys.readouterr()
        return status, out, err
    return run


def item_count(model) -> int:
    from chalicelib.aws import client

    return client("dynamodb").scan(TableName=model.Meta.table_name, ConsistentRead=True)["Count"]


def stdin(monkeypatch, text: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(text))


# clients

def test_create_confidential_client_prints_the_secret_once(run):
    status, out, err = run("clients", "create", "--name", "App", "--redirect-uri", APP,
                           "--redirect-uri", "http://127.0.0.1:9000/cb", "--scope", "openid", "--scope", "email")

    assert status == 0
    assert err == "note: client_secret is shown only once; store it now.\n"
    created = json.loads(out)
    secret = created.pop("client_secret")
    stored = get_client(created["client_id"])
    assert matches_hash(secret, stored.secret_hash)
    assert created == {
        "client_id": stored.client_id, "client_name": "App", "client_type": "confidential",
        "token_endpoint_auth_method": "client_secret_basic",
        "redirect_uris": [APP, "http://127.0.0.1:9000/cb"], "grant_types": ["authorization_code"],
        "response_types": ["code"], "scopes": ["openid", "email"], "resources": [], "introspection": False, "introspects": [],
        "require_mfa": False, "disabled": False, "created_at": stored.created_at, "updated_at": stored.updated_at,
        "connections": [],
        "post_logout_redirect_uris": [], "backchannel_logout_uri": None, "backchannel_logout_session_required": False,
        "require_pushed_authorization_requests": False,
    }

    for argv in (("clients", "show", stored.client_id), ("clients", "list")):
        status, out, err = run(*argv)
        assert status == 0 and err == ""
        assert secret not in out and stored.secret_hash not in out and '"secret_hash"' not in out
        shown = json.loads(out)
        assert [c["client_id"] for c in (shown if isinstance(shown, list) else [shown])] == [stored.client_id]
        assert '"client_secret"' not in out


def test_public_client_has_no_secret(run):
    status, out, err = run("clients", "create", "--name", "SPA", "--public", "--redirect-uri", APP)
    assert status == 0 and err == ""
    created = json.loads(out)
    assert "client_secret" not in created
    assert created["client_type"] == "public" and created["token_endpoint_auth_method"] == "none"


def test_bad_redirect_uri_exits_2_and_writes_nothing(run):
    status, out, err = run("clients", "create", "--name", "App", "--redirect-uri", "http://app.example.com/cb")
    assert (status, out) == (2, "")
    assert err == "error: http redirect URIs are allowed only for loopback hosts: 'http://app.example.com/cb'\n"
    assert item_count(ClientModel) == 0


def test_public_client_credentials_client_is_refused(run):
    status, _, err = run("clients", "create", "--name", "Batch", "--public", "--grant-type", "client_credentials")
    assert status == 2
    assert err == "error: public clients cannot use the client_credentials grant\n"
    assert item_count(ClientModel) == 0


def test_delete_client_and_unknown_client(run):
    _, out, _ = run("clients", "create", "--name", "App", "--redirect-uri", APP)
    client_id = json.loads(out)["client_id"]

    assert run("clients", "delete", client_id) == (0, json.dumps({"deleted": client_id}, indent=2) + "\n", "")
    assert item_count(ClientModel) == 0
    for command in ("show", "delete"):
        assert run("clients", command, client_id) == (2, "", f"error: no client with client_id {client_id!r}\n")


def test_require_mfa_is_set_at_creation_and_changed_by_update(run):
    status, out, _ = run("clients", "create", "--name", "Payroll", "--redirect-uri", APP, "--require-mfa")
    client_id = json.loads(out)["client_id"]
    assert status == 0 and json.loads(out)["require_mfa"] is True and get_client(client_id).require_mfa is True

    status, out, _ = run("clients", "update", client_id, "--no-require-mfa")
    assert status == 0 and json.loads(out)["require_mfa"] is False and get_client(client_id).require_mfa is False
    assert json.loads(run("clients", "update", client_id, "--require-mfa")[1])["require_mfa"] is True

    assert run("clients", "update", "no-such-client", "--require-mfa") == \
        (2, "", "error: no client with client_id 'no-such-client'\n")


def test_require_par_is_set_at_creation_and_changed_by_update(run):
    status, out, _ = run("clients", "create", "--name", "Bank", "--redirect-uri", APP, "--require-par")
    client_id = json.loads(out)["client_id"]
    assert status == 0 and json.loads(out)["require_pushed_authorization_requests"] is True
    assert get_client(client_id).require_pushed_authorization_requests is True

    status, out, _ = run("clients", "update", client_id, "--no-require-par")
    assert status == 0 and json.loads(out)["require_pushed_authorization_requests"] is False
    assert get_client(client_id).require_pushed_authorization_requests is False
    assert json.loads(run("clients", "update", client_id, "--require-par")[1])[
        "require_pushed_authorization_requests"] is True
    assert run("clients", "update", "no-such-client", "--require-par") == \
        (2, "", "error: no client with client_id 'no-such-client'\n")


# users

def test_create_user_reads_the_password_from_stdin(run, monkeypatch):
    stdin(monkeypatch, "correct horse\nsecond line is ignored\n")
    status, out, err = run("users", "create", "--email", "Alice@Example.com", "--name", "Alice", "--password-stdin")

    assert status == 0 and err == ""
    created = json.loads(out)
    user = get_user(created["sub"])
    assert created == {"sub": user.pk, "email": "alice@example.com", "email_verified": False}
    assert user.name == "Alice" and user.email_verified is False
    assert verify_password("correct horse", user.password_hash)


def test_create_user_verified_marks_the_email_verified(run, monkeypatch):
    """The operator vouches for the address: REQUIRE_VERIFIED_EMAIL then asks the user nothing."""
    stdin(monkeypatch, "correct horse\n")
    status, out, _ = run("users", "create", "--email", "bob@example.com", "--verified", "--password-stdin")
    assert status == 0 and json.loads(out)["email_verified"] is True
    assert get_user(json.loads(out)["sub"]).email_verified is True


def test_short_password_exits_2_and_writes_nothing(run, monkeypatch):
    stdin(monkeypatch, "seven77\n")
    status, out, err = run("users", "create", "--email", "alice@example.com", "--password-stdin")
    assert (status, out, err) == (2, "", "error: The password must be at least 8 characters long.\n")
    assert item_count(UserModel) == 0


def test_a_common_password_exits_2_and_writes_nothing(run, monkeypatch):
    stdin(monkeypatch, "Password123\n")
    status, out, err = run("users", "create", "--email", "alice@example.com", "--password-stdin")
    assert (status, out, err) == (
        2, "", "error: This password is too common: it is on a list of passwords that attackers try first.\n")
    assert item_count(UserModel) == 0


@pytest.mark.parametrize("argv", [
    ("--password", "correct horse"),
    ("--password=correct horse",),
    ("--password",),  # must not be taken as an abbreviation of --password-stdin
])
def test_there_is_no_password_option(run, monkeypatch, capsys, argv):
    stdin(monkeypatch, "correct horse\n")
    with pytest.raises(SystemExit) as exited:
        admin.main(["users", "create", "--email", "alice@example.com", *argv], environ=dict(os.environ))
    assert exited.value.code == 2
    assert "error: unrecognized arguments: --password" in capsys.readouterr().err
    assert item_count(UserModel) == 0


def test_password_prompt_must_be_repeated_identically(run, monkeypatch):
    answers = iter(["correct horse", "correct h0rse"])
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(answers))
    assert run("users", "create", "--email", "alice@example.com") == (2, "", "error: passwords do not match\n")
    assert item_count(UserModel) == 0

    answers = iter(["correct horse", "correct horse"])
    status, out, _ = run("users", "create", "--email", "alice@example.com")
    assert status == 0
    assert verify_password("correct horse", get_user(json.loads(out)["sub"]).password_hash)


def test_duplicate_email_exits_2(run, monkeypatch):
    stdin(monkeypatch, "correct horse\n")
    assert run("users", "create", "--email", "alice@example.com", "--password-stdin")[0] == 0
    stdin(monkeypatch, "battery staple\n")
    status, out, err = run("users", "create", "--email", "ALICE@example.com", "--password-stdin")
    assert (status, out, err) == (2, "", "error: a user with email 'alice@example.com' already exists\n")
    assert item_count(UserModel) == 2  # the first user and its email claim


def test_invalid_email_exits_2(run, monkeypatch):
    stdin(monkeypatch, "correct horse\n")
    assert run("users", "create", "--email", "alice", "--password-stdin") == (
        2, "", "error: invalid email address: 'alice'\n")
    assert item_count(UserModel) == 0


def test_disable_and_enable_by_email_or_sub(run, monkeypatch):
    stdin(monkeypatch, "correct horse\n")
    sub = json.loads(run("users", "create", "--email", "alice@example.com", "--password-stdin")[1])["sub"]

    status, out, _ = run("users", "disable", "Alice@example.com")
    assert status == 0 and json.loads(out) == {"sub": sub, "email": "alice@example.com", "disabled": True}
    assert get_user(sub).disabled is True

    status, out, _ = run("users", "enable", sub)
    assert status == 0 and json.loads(out)["disabled"] is False
    assert find_user_by_email("alice@example.com").disabled is False

    for who in ("bob@example.com", "u_missing"):
        assert run("users", "disable", who) == (2, "", f"error: no user with sub or email {who!r}\n")
    assert item_count(UserModel) == 2


def test_users_signout_by_email_or_sub_and_unknown_users(run, monkeypatch):
    """Each sign-out moves the user's session generation on (what ends every session and grant,
    see tests/routes/test_sign_out_everywhere.py); an unknown user exits 2 and changes nothing."""
    stdin(monkeypatch, "correct horse\n")
    sub = json.loads(run("users", "create", "--email", "alice@example.com", "--password-stdin")[1])["sub"]

    assert run("users", "signout", "Alice@Example.com") == (
        0, json.dumps({"sub": sub, "email": "alice@example.com", "signed_out": True}, indent=2) + "\n", "")
    assert run("users", "signout", sub)[0] == 0
    assert get_user(sub).session_generation == 2

    before = get_user(sub).updated_at
    for who in ("bob@example.com", "u_missing", "email#alice@example.com", ""):
        assert run("users", "signout", who) == (2, "", f"error: no user with sub or email {who!r}\n")
    assert get_user(sub).session_generation == 2 and get_user(sub).updated_at == before
    assert item_count(UserModel) == 2


def test_users_list_never_shows_password_hashes(run, monkeypatch):
    stdin(monkeypatch, "correct horse\n")
    sub = json.loads(run("users", "create", "--email", "alice@example.com", "--password-stdin")[1])["sub"]

    status, out, _ = run("users", "list")
    assert status == 0
    [listed] = json.loads(out)
    assert listed["sub"] == sub and listed["email"] == "alice@example.com"
    assert "argon2" not in out and "password" not in out


# keys

def test_keys_ensure_list_and_rotate(run):
    assert run("keys", "rotate") == (2, "", "error: no next key to promote; run the bootstrap (keys ensure) first\n")

    status, out, _ = run("keys", "ensure")
    assert status == 0
    assert sorted(k["state"] for k in json.loads(out)["created"]) == ["current", "next"]
    assert json.loads(run("keys", "ensure")[1]) == {"created": []}

    status, out, _ = run("keys", "list")
    keys = {k["state"]: k for k in json.loads(out)}
    assert set(keys) == {"current", "next"}
    assert set(keys["next"]) == {"kid", "alg", "backend", "state", "created_at", "publish_until"}
    assert (keys["next"]["alg"], keys["next"]["backend"]) == ("ES256", "secretsmanager")

    # The next key was published just now: verifiers may not know it yet.
    status, out, err = run("keys", "rotate")
    assert (status, out) == (2, "")
    assert re.fullmatch(rf"error: next key {keys['next']['kid']} has been published for less than JWKS_MAX_AGE; "
                        r"retry in \d+s\n", err)
    assert {k["state"] for k in json.loads(run("keys", "list")[1])} == {"current", "next"}

    status, out, _ = run("keys", "rotate", "--force")
    assert status == 0
    assert json.loads(out)["current"]["kid"] == keys["next"]["kid"]
    states = {k["kid"]: k["state"] for k in json.loads(run("keys", "list")[1])}
    assert states[keys["current"]["kid"]] == "retired"
    assert sorted(states.values()) == ["current", "next", "retired"]


# the wrapper script, as an operator runs it

def wrapper(*argv, cwd, env=None, script=ROOT / "idp-admin"):
    return subprocess.run([str(script), *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def test_wrapper_help_works_from_any_directory(tmp_path):
    result = wrapper("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: idp-admin [-h] [--stage {local,dev,prod}]")


def test_wrapper_explains_a_missing_virtualenv(tmp_path):
    script = tmp_path / "idp-admin"
    shutil.copy(ROOT / "idp-admin", script)
    result = wrapper("--help", cwd=tmp_path, script=script)
    assert result.returncode == 1
    assert result.stderr == f"idp-admin: no virtualenv at {tmp_path}/.venv; run `make venv` (or `make run`) first\n"


def local_shell(tmp_path, moto_port) -> dict:
    """A shell with nothing AWS-related set up: the local stage must derive the endpoint itself."""
    return {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "MOTO_PORT": str(moto_port), "TABLE_PREFIX": "idp-test"}


@pytest.mark.integration
def test_wrapper_exports_the_local_stage_environment(aws_server, tmp_path):
    # Only MOTO_PORT and TABLE_PREFIX come from the shell; endpoint, credentials and region come from
    # the exported local stage environment, before any model is defined.
    port = urlsplit(aws_server).port
    result = wrapper("clients", "create", "--name", "App", "--redirect-uri", APP, cwd=tmp_path,
                     env=local_shell(tmp_path, port))
    assert result.returncode == 0, result.stderr
    assert get_client(json.loads(result.stdout)["client_id"]).client_name == "App"


def test_unreachable_aws_is_one_line_with_a_hint(tmp_path):
    from tests.conftest import free_port

    port = free_port()
    result = wrapper("clients", "list", cwd=tmp_path, env=local_shell(tmp_path, port))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == f"error: cannot reach AWS at http://127.0.0.1:{port} (is `make run` running?)\n"


def test_registration_token_prints_the_token_and_only_the_hash_to_configure(run):
    from chalicelib.hashing import sha256_hex

    status, out, err = run("registration", "token")
    assert status == 0 and "configure only its hash" in err
    made = json.loads(out)
    assert made["REGISTRATION_TOKEN_SHA256"] == sha256_hex(made["initial_access_token"])
    assert made["REGISTRATION_MODE"] == "token"


def test_resources_register_list_and_delete(run):
    status, out, _ = run("resources", "register", "--uri", "https://api.example.com/v1", "--name", "API",
                         "--scope", "api:read")
    assert status == 0 and json.loads(out)["scopes"] == ["api:read"] and json.loads(out)["public"] is False
    assert [r["resource"] for r in json.loads(run("resources", "list")[1])] == ["https://api.example.com/v1"]
    status, _, err = run("resources", "register", "--uri", "https://api.example.com/v1#frag", "--name", "API")
    assert status == 2 and "fragment" in err
    assert run("resources", "delete", "https://api.example.com/v1")[0] == 0
    assert run("resources", "delete", "https://api.example.com/v1")[0] == 2


def test_resources_register_public_opens_a_resource_to_unverified_clients(run):
    status, out, _ = run("resources", "register", "--uri", "https://mcp.example.com/mcp", "--name", "MCP",
                         "--scope", "mcp:read", "--public")
    assert status == 0 and json.loads(out)["public"] is True
    assert [r["public"] for r in json.loads(run("resources", "list")[1])] == [True]
    status, out, _ = run("resources", "register", "--uri", "https://mcp.example.com/mcp", "--name", "MCP")
    assert json.loads(out)["public"] is False, "re-registering without --public closes it again"


def test_disabling_a_client_from_the_cli(run):
    created = json.loads(run("clients", "create", "--name", "App", "--redirect-uri", APP)[1])
    status, out, _ = run("clients", "disable", created["client_id"])
    assert status == 0 and json.loads(out) == {"client_id": created["client_id"], "disabled": True}
    assert get_client(created["client_id"]).disabled is True
    assert run("clients", "disable", "no-such-client")[0] == 2


# document clients (client ID metadata documents): nothing stored to disable, so the URL is blocked

PHISH = "https://phish.example/oauth/client.json"


@pytest.fixture
def phishing_document(monkeypatch):
    """A document client anyone may publish; records every fetch of its document."""
    from chalicelib.oauth import client_documents

    fetched = []

    def fetch(url, _settings):
        fetched.append(url)
        return {"client_id": url, "client_name": "Totally Legit", "redirect_uris": ["http://127.0.0.1/cb"],
                "grant_types": ["authorization_code", "refresh_token"]}, 300

    monkeypatch.setattr(client_documents, "fetch", fetch)
    return fetched


def _refresh(http, token):
    from urllib.parse import urlencode

    from tests.routes.flow import FORM

    body = {"grant_type": "refresh_token", "refresh_token": token, "client_id": PHISH}
    return http.post("/token", body=urlencode(body).encode(), headers=FORM)


def test_disabling_a_document_client_url_blocks_it_before_any_fetch_and_ends_its_grants(
        run, browser, http, alice, phishing_document):
    from chalicelib.storage.models import ClientDocumentModel
    from tests.routes.flow import authorize_query, query_of, redeem, sign_in_and_consent

    code = query_of(sign_in_and_consent(browser, PHISH, scope="openid offline_access"))["code"]
    tokens = json.loads(redeem(http, PHISH, code).body)

    assert run("clients", "disable", PHISH) == (
        0, json.dumps({"client_id": PHISH, "disabled": True, "grants_revoked": 1}, indent=2) + "\n", "")
    response = browser.get("/authorize?" + authorize_query(PHISH, scope="openid"))
    assert response.status_code == 400 and "Location" not in response.headers
    assert b"unknown client" in response.body
    refreshed = _refresh(http, tokens["refresh_token"])
    assert refreshed.status_code == 401 and json.loads(refreshed.body)["error"] == "invalid_client"
    assert phishing_document == [PHISH], "a blocked URL is never fetched"
    assert ClientDocumentModel.get(PHISH).expires_at is None, "no TTL lifts the block"

    assert run("clients", "enable", PHISH) == (
        0, json.dumps({"client_id": PHISH, "disabled": False}, indent=2) + "\n", "")
    assert browser.get("/authorize?" + authorize_query(PHISH, scope="openid")).status_code == 302
    assert phishing_document == [PHISH, PHISH], "fetched afresh once unblocked"
    assert json.loads(_refresh(http, tokens["refresh_token"]).body)["error"] == "invalid_grant", \
        "grants revoked by the block stay revoked"


def test_a_document_client_url_never_fetched_can_be_blocked_in_advance(run, browser, phishing_document):
    from tests.routes.flow import authorize_query

    assert run("clients", "disable", PHISH)[0] == 0
    response = browser.get("/authorize?" + authorize_query(PHISH, scope="openid"))
    assert response.status_code == 400 and b"unknown client" in response.body
    assert phishing_document == []


def test_deleting_a_document_client_url_is_refused_with_the_command_that_blocks_it(run, phishing_document):
    from chalicelib.storage.models import ClientDocumentModel

    assert run("clients", "delete", PHISH) == (
        2, "", f"error: {PHISH!r} is a client_id metadata document URL, not a stored client: "
               f"block it with `clients disable {PHISH}`\n")
    assert run("clients", "enable", PHISH) == (2, "", f"error: the document client {PHISH!r} is not blocked\n")
    assert item_count(ClientDocumentModel) == 0


def test_create_registers_the_logout_metadata_and_refuses_a_back_channel_uri_that_is_not_allowed(run):
    status, out, _ = run("clients", "create", "--name", "App", "--redirect-uri", APP,
                         "--post-logout-redirect-uri", "https://app.example.com/bye",
                         "--backchannel-logout-uri", "https://app.example.com/bc",
                         "--backchannel-logout-session-required")
    assert status == 0
    created = json.loads(out)
    assert created["post_logout_redirect_uris"] == ["https://app.example.com/bye"]
    assert (created["backchannel_logout_uri"], created["backchannel_logout_session_required"]) == (
        "https://app.example.com/bc", True)
    status, _, err = run("clients", "create", "--name", "App", "--redirect-uri", APP,
                         "--backchannel-logout-uri", "http://app.example.com/bc")
    assert status == 2 and "backchannel_logout_uri must use https" in err
