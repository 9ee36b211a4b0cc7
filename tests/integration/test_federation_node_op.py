"""Interop: our relying-party code (chalicelib/federation/upstream.py) against panva's oidc-provider,
a certified OpenID Provider in its own process: discovery, PKCE, the RFC 9207 iss parameter, the code
exchange with each client authentication method, an RS256 ID token, userinfo (where this OP puts the
email claims), and the OP's own refusals."""
from __future__ import annotations

from types import SimpleNamespace
from urllib.parse import parse_qsl, urlsplit

import jwt
import pytest

from chalicelib import errors
from chalicelib.config import load_settings
from chalicelib.federation import fetching, upstream
from tests.integration.upstreams import REDIRECT_URI

pytestmark = pytest.mark.integration

LOCAL = load_settings({"STAGE": "local", "ISSUER": "http://localhost:8000"})


@pytest.fixture(autouse=True)
def fresh_caches():
    fetching.documents.clear()
    upstream._refetched.clear()


def begin(node_upstream, login, *, client_id="rp-basic", cancel=False):
    conn = SimpleNamespace(**node_upstream.connection_fields(client_id))
    begun = upstream.start(conn, LOCAL, redirect_uri=REDIRECT_URI, login_hint=login)
    callback = node_upstream.sign_in(begun.url, login, cancel=cancel)
    assert callback.startswith(REDIRECT_URI + "?")
    return conn, begun, dict(parse_qsl(urlsplit(callback).query))


def finish(node_upstream, conn, begun, params, *, client_id="rp-basic", nonce=None):
    return upstream.finish(conn, LOCAL, params=params, state=begun.state, nonce=nonce or begun.nonce,
                           code_verifier=begun.code_verifier, redirect_uri=REDIRECT_URI,
                           secret=node_upstream.secret(client_id))


@pytest.mark.parametrize("client_id", ["rp-basic", "rp-post", "rp-jwt"])
def test_sign_in_through_the_node_op_returns_the_verified_profile(node_upstream, client_id):
    conn, begun, params = begin(node_upstream, "alice@acme.test", client_id=client_id)
    assert params["iss"] == node_upstream.issuer and params["state"] == begun.state
    result = finish(node_upstream, conn, begun, params, client_id=client_id)
    profile = result.profile
    assert (profile.subject, profile.email, profile.email_verified) == ("alice@acme.test", "alice@acme.test", True)
    assert (profile.issuer, profile.name, profile.locale) == (node_upstream.issuer, "Alice", "en")
    assert profile.claims["aud"] == client_id
    # This OP releases scoped claims through userinfo only: the email came from there, for the same sub.
    assert "email" not in jwt.decode(result.tokens["id_token"], options={"verify_signature": False})


def test_an_unverified_email_at_the_node_op_stays_unverified(node_upstream):
    conn, begun, params = begin(node_upstream, "bob+unverified@acme.test")
    profile = finish(node_upstream, conn, begun, params).profile
    assert (profile.email, profile.email_verified) == ("bob+unverified@acme.test", False)


def test_a_cancelled_sign_in_at_the_node_op_is_refused_with_its_error(node_upstream):
    conn, begun, params = begin(node_upstream, "alice@acme.test", cancel=True)
    with pytest.raises(errors.UpstreamRefused) as caught:
        finish(node_upstream, conn, begun, params)
    assert caught.value.upstream_error == "access_denied"


def test_the_node_op_refuses_a_replayed_code(node_upstream):
    conn, begun, params = begin(node_upstream, "alice@acme.test")
    finish(node_upstream, conn, begun, params)
    with pytest.raises(errors.UpstreamFailed) as caught:
        finish(node_upstream, conn, begun, params)
    assert caught.value.reason == "token_endpoint" and "invalid_grant" in caught.value.detail


def test_a_nonce_other_than_the_one_sent_is_refused(node_upstream):
    conn, begun, params = begin(node_upstream, "alice@acme.test")
    with pytest.raises(errors.UpstreamFailed) as caught:
        finish(node_upstream, conn, begun, params, nonce="another-browsers-nonce")
    assert caught.value.reason == "nonce"


def test_an_iss_parameter_of_another_issuer_is_refused_before_the_code_is_redeemed(node_upstream):
    conn, begun, params = begin(node_upstream, "alice@acme.test")
    with pytest.raises(errors.UpstreamFailed) as caught:
        finish(node_upstream, conn, begun, {**params, "iss": "https://accounts.example.com"})
    assert caught.value.reason == "iss"
    assert finish(node_upstream, conn, begun, params).profile.subject == "alice@acme.test"  # code still unspent
