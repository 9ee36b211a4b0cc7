"""The device authorization grant (RFC 8628) against `make run` over real HTTP: Authlib's
OAuth2Session polls the token endpoint and gets authorization_pending, slow_down, then the tokens;
and 32 polls race on one approved device code, through HTTP and straight at the moto server,
exactly one getting the tokens."""
from __future__ import annotations

import time
from urllib.parse import urljoin, urlsplit

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session, OAuthError

from chalicelib.capabilities import DEVICE_CODE
from tests.integration.hosted_flow import PASSWORD, TIMEOUT, hidden_inputs, new_client, new_user
from tests.integration.test_concurrency import RACERS, race
from tests.integration.moto_recording import update_items

pytestmark = pytest.mark.integration


@pytest.fixture
def discovered(idp, use_stack):
    use_stack(idp)
    return requests.get(f"{idp.base_url}/.well-known/openid-configuration", timeout=TIMEOUT).json()


def device_client():
    client, _ = new_client("public", scopes=("openid", "email", "offline_access"),
                           grant_types=(DEVICE_CODE, "refresh_token"))
    return client


def approve(base_url: str, verification_uri_complete: str, email: str, decision: str = "allow") -> requests.Response:
    """What the user does on their phone: open the link, sign in, confirm the code, allow."""
    http = requests.Session()
    path = urlsplit(verification_uri_complete)
    response = http.get(f"{base_url}{path.path}?{path.query}", allow_redirects=False, timeout=TIMEOUT)
    assert response.status_code == 302, response.text
    login = urljoin(base_url, response.headers["Location"])
    page = http.get(login, timeout=TIMEOUT)
    action = urlsplit(login).path + "?" + urlsplit(login).query
    response = http.post(login, data={**hidden_inputs(page.text, action), "username": email, "password": PASSWORD},
                         allow_redirects=False, timeout=TIMEOUT)
    assert response.status_code == 302, response.text
    page = http.get(urljoin(base_url, response.headers["Location"]), timeout=TIMEOUT)
    fields = hidden_inputs(page.text, "/device")
    user_code = path.query.split("=", 1)[1].replace("-", "")
    consent = http.post(f"{base_url}/device", data={**fields, "user_code": user_code}, timeout=TIMEOUT)
    assert consent.status_code == 200, consent.text
    return http.post(f"{base_url}/device/consent", data={**hidden_inputs(consent.text, "/device/consent"),
                                                         "decision": decision}, timeout=TIMEOUT)


def test_authlib_polls_through_pending_and_slow_down_to_tokens(discovered, idp):
    client = device_client()
    _, email = new_user()
    session = OAuth2Session(client_id=client.client_id, scope="openid email offline_access",
                            token_endpoint_auth_method="none")
    started = session.post(discovered["device_authorization_endpoint"], timeout=TIMEOUT, withhold_token=True,
                           data={"client_id": client.client_id, "scope": "openid email offline_access"}).json()
    assert started["interval"] == 5 and started["verification_uri"] == f"{idp.base_url}/device"

    def fetch():
        return session.fetch_token(discovered["token_endpoint"], grant_type=DEVICE_CODE,
                                   device_code=started["device_code"], timeout=TIMEOUT)

    with pytest.raises(OAuthError) as pending:
        fetch()
    assert pending.value.error == "authorization_pending"
    with pytest.raises(OAuthError) as slow:
        fetch()
    assert slow.value.error == "slow_down", "polled again at once"

    done = approve(idp.base_url, started["verification_uri_complete"], email)
    assert done.status_code == 200 and "return to your device" in done.text
    # The device waits out the grown interval (5 + 5 seconds), as a client following RFC 8628 §3.5 does.
    time.sleep(started["interval"] + 5)
    token = fetch()
    assert {"access_token", "id_token", "refresh_token"} <= set(token)
    assert session.get(discovered["userinfo_endpoint"], timeout=TIMEOUT).json()["email"] == email
    refreshed = session.refresh_token(discovered["token_endpoint"], timeout=TIMEOUT)
    assert refreshed["access_token"] != token["access_token"]


def update_items_for_device(stack, user_code: str) -> int:
    from chalicelib.storage.device_codes import key
    from chalicelib.storage.models import DeviceAuthorizationModel

    return update_items(stack, DeviceAuthorizationModel.Meta.table_name, {"code_hash": {"S": key(user_code)}})


def approved_device(discovered, idp):
    client = device_client()
    _, email = new_user()
    started = requests.post(discovered["device_authorization_endpoint"], timeout=TIMEOUT,
                            data={"client_id": client.client_id, "scope": "openid offline_access"}).json()
    assert approve(idp.base_url, started["verification_uri_complete"], email).status_code == 200
    return client, started


def test_32_concurrent_polls_of_one_approved_device_code_over_http_exactly_one_gets_tokens(discovered, idp):
    client, started = approved_device(discovered, idp)
    sessions = [requests.Session() for _ in range(RACERS)]
    for session in sessions:  # one kept-alive connection each (see test_concurrency)
        assert session.get(f"{idp.base_url}/jwks", timeout=TIMEOUT).status_code == 200
    body = {"grant_type": DEVICE_CODE, "device_code": started["device_code"], "client_id": client.client_id}

    results = race(lambda i: sessions[i].post(discovered["token_endpoint"], data=body, timeout=30))

    winners = [r.json() for r in results if r.status_code == 200]
    assert len(winners) == 1, [r.text for r in results]
    assert sorted(r.json()["error"] for r in results if r.status_code != 200) == ["slow_down"] * (RACERS - 1)
    user_code = started["user_code"].replace("-", "")
    assert update_items_for_device(idp, user_code) >= RACERS, "every request raced the conditional write"
    for session in sessions:
        session.close()


def test_32_threads_polling_one_approved_device_code_against_the_moto_server_exactly_one_redeems(discovered, idp):
    from chalicelib.log import now
    from chalicelib.oauth.device_flow import SLOW_DOWN_STEP, parse_device_code
    from chalicelib.storage import device_codes
    from chalicelib.storage.models import DeviceAuthorizationModel

    client, started = approved_device(discovered, idp)
    user_code, secret = parse_device_code(started["device_code"])
    DeviceAuthorizationModel._get_connection().connection.client  # noqa: B018 (built before the race)
    # Each thread polls after the interval, so no racer loses to the clock: only to the others.
    at = now() + 60

    outcomes = race(lambda _: device_codes.poll(user_code, secret, client.client_id, at, slow_down_step=SLOW_DOWN_STEP))

    redeemed = [o for o in outcomes if isinstance(o, device_codes.Redeemed)]
    assert len(redeemed) == 1, outcomes
    assert all(isinstance(o, (device_codes.SlowDown, device_codes.Refused)) for o in outcomes if o not in redeemed)
    item = DeviceAuthorizationModel.get(device_codes.key(user_code), consistent_read=True)
    assert item.claim == redeemed[0].claim, "the winner's claim is the one stored"
    assert update_items_for_device(idp, user_code) >= RACERS
