"""The OAuth error hierarchy renders RFC 6749 §5.2 / RFC 6750 §3 responses."""
from __future__ import annotations

import json

import pytest

from chalicelib import errors


@pytest.mark.parametrize("cls, code, status", [
    (errors.InvalidRequest, "invalid_request", 400),
    (errors.InvalidClient, "invalid_client", 401),
    (errors.InvalidGrant, "invalid_grant", 400),
    (errors.UnauthorizedClient, "unauthorized_client", 400),
    (errors.UnsupportedGrantType, "unsupported_grant_type", 400),
    (errors.InvalidScope, "invalid_scope", 400),
    (errors.InvalidTarget, "invalid_target", 400),
    (errors.AuthorizationPending, "authorization_pending", 400),
    (errors.SlowDown, "slow_down", 400),
    (errors.ExpiredToken, "expired_token", 400),
    (errors.DeviceAccessDenied, "access_denied", 400),
    (errors.ServerError, "server_error", 500),
    (errors.InvalidToken, "invalid_token", 401),
    (errors.InsufficientScope, "insufficient_scope", 403),
    (errors.InvalidDpopProofChallenge, "invalid_dpop_proof", 401),
])
def test_each_error_has_its_rfc_code_and_status(cls, code, status):
    status_, body, headers = cls("why").to_response()
    assert (status_, json.loads(body)) == (status, {"error": code, "error_description": "why"})
    assert headers["Cache-Control"] == "no-store" and headers["Pragma"] == "no-cache"


def test_detail_is_never_rendered():
    _, body, _ = errors.InvalidGrant("invalid grant", detail="code hash abc expired").to_response()
    assert "abc" not in body


def test_invalid_client_with_basic_auth_sends_www_authenticate():
    _, _, headers = errors.InvalidClient(scheme="Basic").to_response()
    assert headers["WWW-Authenticate"] == 'Basic realm="token"'
    _, _, headers = errors.InvalidClient().to_response()
    assert "WWW-Authenticate" not in headers


def test_bearer_errors_carry_error_and_scope_in_www_authenticate():
    _, _, headers = errors.InsufficientScope("needs more", scope="openid email").to_response()
    assert headers["WWW-Authenticate"] == (
        'Bearer realm="idp", error="insufficient_scope", error_description="needs more", scope="openid email"')


def test_resource_server_dpop_errors_answer_a_dpop_challenge_naming_the_algs():
    """RFC 9449 §7.1 and §9: the error goes in a DPoP challenge with `algs`; use_dpop_nonce also
    carries the nonce to use."""
    _, _, headers = errors.InvalidDpopProofChallenge("bad proof", algs="ES256 PS256").to_response()
    assert headers["WWW-Authenticate"] == (
        'DPoP realm="idp", error="invalid_dpop_proof", error_description="bad proof", algs="ES256 PS256"')
    status, body, headers = errors.UseDpopNonceChallenge(nonce="n-1", algs="ES256").to_response()
    assert status == 401 and json.loads(body)["error"] == "use_dpop_nonce"
    assert headers["DPoP-Nonce"] == "n-1"
    assert headers["WWW-Authenticate"].startswith('DPoP realm="idp", error="use_dpop_nonce", error_description="')
    # Bearer challenges never name algs; several schemes give several challenges (RFC 9110 §11.6.1).
    _, _, headers = errors.MissingToken("x", schemes=("Bearer", "DPoP"), algs="ES256").to_response()
    assert headers["WWW-Authenticate"] == 'Bearer realm="idp", DPoP realm="idp", algs="ES256"'


def test_bearer_header_values_cannot_break_out_of_quotes():
    _, _, headers = errors.InvalidToken('bad "token"').to_response()
    assert 'error_description="bad \'token\'"' in headers["WWW-Authenticate"]


@pytest.mark.parametrize("value, quoted", [
    ("scope", "scope"),
    ("x" * 41, "x" * 40 + "..."),
    ('say "hi"\\', "say ?hi??"),
    ("caf\u00e9\n\x00", "caf???"),
])
def test_echoes_of_the_request_are_short_and_in_the_rfc6749_description_charset(value, quoted):
    assert errors.echo(value) == quoted


def test_no_error_description_is_longer_than_the_cap():
    """Whatever a description quotes, the response never carries an unbounded copy of the request."""
    _, body, _ = errors.InvalidRequest("parameter " + "a" * 100_000 + " is bad").to_response()
    description = json.loads(body)["error_description"]
    assert len(description) == errors.MAX_DESCRIPTION and description.endswith("...")


#: Exceptions that may live outside errors.py, and why: none is an OAuth error or reaches a client.
#: ConfigError stops a container at start-up; the storage ones are an operator's bad input to the
#: admin CLI (storage outcomes, which the core turns into protocol errors where one applies).
OUTSIDE_ERRORS_PY = {
    "chalicelib/config.py": {"ConfigError"},
    "chalicelib/storage/users.py": {"InvalidUser", "UserExists"},
    "chalicelib/storage/resources.py": {"InvalidResource"},
}


def test_every_error_class_of_the_lambda_is_defined_in_errors_py():
    import ast
    import builtins
    import pathlib

    exception_names = {name for name, value in {**vars(builtins), **vars(errors)}.items()
                       if isinstance(value, type) and issubclass(value, BaseException)}
    root = pathlib.Path(__file__).resolve().parents[2]
    found = {}
    for path in [root / "app.py", *(root / "chalicelib").rglob("*.py")]:
        name = path.relative_to(root).as_posix()
        if name == "chalicelib/errors.py":
            continue
        classes = {node.name for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.ClassDef)
                   and any(getattr(base, "id", getattr(base, "attr", None)) in exception_names for base in node.bases)}
        if classes:
            found[name] = classes
    assert found == OUTSIDE_ERRORS_PY
