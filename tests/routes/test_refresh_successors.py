"""Refresh-token successors are random and only the server can give one back (RFC 9700 §4.14.2):
an old token of a family yields nothing offline, the grace-window seal opens only for the token it
was made for, and a token nobody issued is reported without revoking the family."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging

import pytest

from tests.routes.test_refresh import first_tokens, refresh, refreshing_client  # noqa: F401 - fixture


def old_derivation(token: str) -> str:
    """The successor as this server once derived it: HMAC(presented secret, label), here with the
    next rotation number. Anyone holding the token can compute it; that is the attack."""
    family, secret = token.split(".", 1)
    sub, grant_id, n = family.split("~")
    mac = hmac.new(secret.encode("ascii"), b"refresh-token-successor", hashlib.sha256).digest()
    return f"{sub}~{grant_id}~{int(n) + 1}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode('ascii')}"


def family(token: str) -> tuple[str, str]:
    """(sub, grant_id): the grant item's key a refresh token names."""
    sub, grant_id, _ = token.split(".", 1)[0].split("~")
    return sub, grant_id


def grant_item(token: str):
    from chalicelib.storage.models import GrantModel

    return GrantModel.get(*family(token), consistent_read=True)


def forged(token: str, n: int = 0) -> str:
    """A well-formed token of `token`'s family that was never issued."""
    from chalicelib.hashing import new_secret

    sub, grant_id = family(token)
    return f"{sub}~{grant_id}~{n}.{new_secret()}"


def rotations(http, client_id, token, times):
    chain = [token]
    for _ in range(times):
        response = refresh(http, client_id, chain[-1])
        assert response.status_code == 200, response.body
        chain.append(json.loads(response.body)["refresh_token"])
    return chain


@pytest.fixture
def grace(monkeypatch):
    from chalicelib.config import settings

    monkeypatch.setenv("REFRESH_GRACE_SECONDS", "30")
    settings.cache_clear()
    yield
    settings.cache_clear()


@pytest.fixture
def warnings_of_refresh(monkeypatch, caplog):
    """The idp loggers do not propagate (they write JSON lines themselves); let caplog see them."""
    monkeypatch.setattr(logging.getLogger("idp"), "propagate", True)
    caplog.set_level(logging.WARNING, logger="idp.refresh")
    return lambda: [r for r in caplog.records if r.name == "idp.refresh" and r.levelno == logging.WARNING]


def unrecognised_count(grant_id: str) -> int:
    from chalicelib.oauth import refresh_tokens, throttle

    return throttle.count(throttle.window_key("refresh-unknown", grant_id, refresh_tokens.UNRECOGNISED_WINDOW))


def test_an_old_consumed_token_does_not_yield_the_family_s_current_token_offline(
        browser, http, refreshing_client, alice):
    first = first_tokens(browser, http, refreshing_client)["refresh_token"]
    chain = rotations(http, refreshing_client.client_id, first, times=3)
    stolen, current = chain[0], chain[-1]
    candidates = [old_derivation(stolen)]
    for _ in range(9):
        candidates.append(old_derivation(candidates[-1]))

    # Walk down from far ahead: a token that does not exist revokes nothing, so the first that
    # works would be the current one.
    for candidate in reversed(candidates):
        response = refresh(http, refreshing_client.client_id, candidate)
        assert response.status_code == 400 and json.loads(response.body)["error"] == "invalid_grant"
    assert not set(candidates) & set(chain[1:])
    # Guesses revoke nothing: the legitimate client keeps refreshing.
    assert refresh(http, refreshing_client.client_id, current).status_code == 200


def test_the_successor_is_not_a_function_of_the_presented_token(browser, http, refreshing_client, alice):
    from chalicelib.config import settings
    from chalicelib.hashing import sha256_hex
    from chalicelib.oauth import refresh_tokens
    from chalicelib.storage.models import GrantModel

    token = first_tokens(browser, http, refreshing_client)["refresh_token"]
    first = refresh_tokens.rotate(settings(), token, refreshing_client.client_id)[1]
    # Put the family back exactly as it was before the rotation, and rotate again.
    grant_item(token).update(actions=[GrantModel.token_hash.set(sha256_hex(token)), GrantModel.previous_hash.remove(),
                                      GrantModel.consumed.set({})])
    second = refresh_tokens.rotate(settings(), token, refreshing_client.client_id)[1]

    assert first != second
    assert old_derivation(token) not in (first, second)
    assert family(first) == family(second) == family(token), "the family is still named"


def test_a_retry_within_the_grace_window_gets_the_successor_back_from_its_seal(
        browser, http, refreshing_client, alice, grace):
    token = first_tokens(browser, http, refreshing_client)["refresh_token"]
    successor = json.loads(refresh(http, refreshing_client.client_id, token).body)["refresh_token"]
    retry = refresh(http, refreshing_client.client_id, token)
    assert retry.status_code == 200 and json.loads(retry.body)["refresh_token"] == successor
    assert successor != old_derivation(token)


def test_a_tampered_seal_does_not_open_and_the_retry_is_reuse(browser, http, refreshing_client, alice, grace):
    from chalicelib.storage.models import GrantModel

    token = first_tokens(browser, http, refreshing_client)["refresh_token"]
    successor = json.loads(refresh(http, refreshing_client.client_id, token).body)["refresh_token"]
    record = grant_item(successor)
    seal = record.retry_seal
    altered = seal[:20] + ("A" if seal[20] != "A" else "B") + seal[21:]
    record.update(actions=[GrantModel.retry_seal.set(altered)])

    retry = refresh(http, refreshing_client.client_id, token)
    assert retry.status_code == 400 and json.loads(retry.body)["error"] == "invalid_grant"
    assert json.loads(refresh(http, refreshing_client.client_id, successor).body)["error"] == "invalid_grant", \
        "a retry that cannot be answered is reuse: the family is revoked"


def test_the_table_and_an_old_token_open_no_seal_of_the_family(browser, http, refreshing_client, alice, grace):
    """The grant keeps one seal, the current token's (replaced at every rotation), so a table dump
    plus any older token opens nothing; only its immediate predecessor opens it."""
    from chalicelib import sealing
    from chalicelib.oauth.refresh_tokens import RETRY_SEAL_PURPOSE
    from chalicelib.storage.models import GrantModel

    first = first_tokens(browser, http, refreshing_client)["refresh_token"]
    chain = rotations(http, refreshing_client.client_id, first, times=3)
    sealed = [r for r in GrantModel.scan() if r.retry_seal]
    assert len(sealed) == 1

    def opens(token):
        return [sealing.unseal(token, r.retry_seal, purpose=RETRY_SEAL_PURPOSE, bound_to=r.token_hash) for r in sealed]

    for old in chain[:-2]:
        assert opens(old) == [None]
    assert opens(chain[-2]) == [chain[-1]]


def test_no_seal_is_stored_while_the_grace_window_is_off(browser, http, refreshing_client, alice):
    from chalicelib.storage.models import GrantModel

    first = first_tokens(browser, http, refreshing_client)["refresh_token"]
    rotations(http, refreshing_client.client_id, first, times=2)
    assert [r.retry_seal for r in GrantModel.scan()] == [None]


def test_an_unknown_token_of_a_known_family_is_warned_about_and_counted_without_revoking(
        browser, http, refreshing_client, alice, warnings_of_refresh):
    token = first_tokens(browser, http, refreshing_client)["refresh_token"]
    grant_id = family(token)[1]
    for attempt in (1, 2):
        response = refresh(http, refreshing_client.client_id, forged(token, n=attempt))
        assert response.status_code == 400
        assert json.loads(response.body) == {"error": "invalid_grant",
                                           "error_description": "the refresh token is invalid, expired or revoked"}
        assert unrecognised_count(grant_id) == attempt

    records = warnings_of_refresh()
    assert [r.getMessage() for r in records] == ["refresh token of a known family not recognised"] * 2
    assert (records[-1].grant_id, records[-1].client_id, records[-1].count) == \
        (grant_id, refreshing_client.client_id, 2)
    # sub and grant_id are in every access token, so a guess must not be able to revoke the family.
    assert refresh(http, refreshing_client.client_id, token).status_code == 200


def test_an_unknown_token_naming_no_live_family_of_this_client_is_not_reported(
        browser, http, refreshing_client, alice, warnings_of_refresh):
    from chalicelib.hashing import new_secret
    from chalicelib.oauth.clients import create_client

    other, _ = create_client(client_name="Other", client_type="public", redirect_uris=["http://127.0.0.1/cb"],
                             grant_types=["authorization_code", "refresh_token"], scopes=["openid", "offline_access"])
    token = first_tokens(browser, http, refreshing_client)["refresh_token"]
    sub, grant_id = family(token)
    for client_id, presented in ((refreshing_client.client_id, f"{sub}~no-such-grant~0.{new_secret()}"),
                                 (other.client_id, forged(token))):
        response = refresh(http, client_id, presented)
        assert response.status_code == 400 and json.loads(response.body)["error"] == "invalid_grant"
    assert warnings_of_refresh() == []
    assert unrecognised_count(grant_id) == unrecognised_count("no-such-grant") == 0


def test_an_unknown_token_of_a_family_idle_past_its_lifetime_is_not_reported(
        browser, http, refreshing_client, alice, warnings_of_refresh, monkeypatch):
    """Every token of such a family has expired (its record may be gone through TTL): a client
    coming back late is not an attack."""
    import chalicelib.oauth.refresh_tokens as module
    from chalicelib.config import settings

    token = first_tokens(browser, http, refreshing_client)["refresh_token"]
    real_now = module.now
    monkeypatch.setattr(module, "now", lambda: real_now() + settings().refresh_token_idle_ttl + 1)
    response = refresh(http, refreshing_client.client_id, forged(token))
    assert response.status_code == 400 and json.loads(response.body)["error"] == "invalid_grant"
    assert warnings_of_refresh() == []
