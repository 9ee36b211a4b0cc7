"""The authorization endpoint and hosted pages, attacked through the HTTP layer."""
from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest

from chalicelib.errors import LoginFailed, LoginThrottled, echo
from tests.routes.flow import (
    FORM,
    REDIRECT_URI,
    authorize_query,
    error_page_logs,
    hidden,
    query_of,
    reference,
    sign_in_and_consent,
)

ISS = "http://localhost:8000"
MALFORMED = b"The link or form that brought you here is malformed."
#: What an attacker wants our domain to say; none of it may appear on our pages.
ATTACKER_TEXT = "<script>Buy now at evil.example</script>"
LONG_ATTACKER_TEXT = "Your account is locked. Call +1 555 0100 to unlock it. " * 40
ATTACKER_FRAGMENTS = ("Buy now", "evil.example", "+1 555 0100", "account is locked")


def shows_attacker_text(body: bytes) -> bool:
    # Escaping would not help: these fragments read the same escaped or not.
    return any(fragment in body.decode() for fragment in ATTACKER_FRAGMENTS)


def test_full_flow_returns_code_state_and_iss(browser, public_client, alice):
    location = sign_in_and_consent(browser, public_client.client_id)
    assert location.startswith(REDIRECT_URI + "?")
    params = query_of(location)
    assert set(params) == {"code", "state", "iss"}
    assert params["state"] == "xyz-state" and params["iss"] == ISS
    assert len(params["code"]) >= 43, "codes carry at least 256 bits"


def test_unregistered_redirect_uri_is_shown_not_redirected(browser, public_client):
    response = browser.get("/authorize?" + authorize_query(public_client.client_id,
                                                           redirect_uri="https://evil.example/cb"))
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert b"redirect_uri is not registered" in response.body
    assert response.headers["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("overrides, message", [
    ({"client_id": "nope"}, b"unknown client"),
    ({"client_id": None}, b"client_id is required"),
    ({"redirect_uri": None}, b"redirect_uri is required"),
])
def test_errors_before_the_redirect_uri_is_trusted_render_a_page(browser, public_client, overrides, message):
    response = browser.get("/authorize?" + authorize_query(public_client.client_id, **overrides))
    assert response.status_code == 400 and "Location" not in response.headers
    assert message in response.body


def test_repeated_parameters_are_refused_on_the_error_page(browser, public_client):
    query = authorize_query(public_client.client_id) + "&redirect_uri=https://evil.example/cb"
    response = browser.get("/authorize?" + query)
    assert response.status_code == 400 and "Location" not in response.headers
    assert MALFORMED in response.body and b"evil.example" not in response.body


@pytest.mark.parametrize("name", [ATTACKER_TEXT, LONG_ATTACKER_TEXT], ids=["markup", "long"])
def test_a_parameter_name_chosen_by_an_attacker_never_appears_on_the_error_page(browser, public_client, idp_log,
                                                                                name):
    """The page once said "parameter <name> is repeated": any text, on our domain. It now says a
    fixed sentence and a reference; the log has the detail under that reference."""
    query = authorize_query(public_client.client_id) + "&" + urlencode([(name, "1"), (name, "2")])
    response = browser.get("/authorize?" + query)
    assert response.status_code == 400 and "Location" not in response.headers
    assert response.headers["Content-Type"].startswith("text/html")
    assert not shows_attacker_text(response.body)
    assert MALFORMED in response.body and b"Error code: <code>invalid_request</code>" in response.body
    [entry] = error_page_logs(idp_log())
    assert entry["request_id"] == reference(response.body)
    assert entry["page"] == "malformed_request" and entry["error"] == "invalid_request"
    assert entry["description"] == f"parameter {echo(name)} is repeated"


@pytest.mark.parametrize("path", ["/login?request_id=x", "/consent?request_id=x"])
def test_hosted_pages_answer_a_malformed_query_with_the_error_page_not_quoting_it(browser, idp_log, path):
    """A browser shows a JSON error as text: on a page URL it would quote the attacker too."""
    response = browser.get(path + "&" + urlencode([(ATTACKER_TEXT, "1"), (ATTACKER_TEXT, "2")]))
    assert response.status_code == 400 and response.headers["Content-Type"].startswith("text/html")
    assert not shows_attacker_text(response.body) and MALFORMED in response.body
    [entry] = error_page_logs(idp_log())
    assert entry["request_id"] == reference(response.body) and "Buy now" in entry["description"]


@pytest.mark.parametrize("path", ["/login", "/consent", "/logout"])
def test_hosted_pages_answer_a_malformed_form_with_the_error_page_not_quoting_it(browser, path):
    body = urlencode([("csrf_token", "x"), (ATTACKER_TEXT, "1"), (ATTACKER_TEXT, "2")]).encode()
    response = browser.http.post(path, body=body, headers={**FORM, "Origin": ISS})
    assert response.status_code == 400 and response.headers["Content-Type"].startswith("text/html")
    assert not shows_attacker_text(response.body) and MALFORMED in response.body


def test_a_login_hint_that_is_not_an_email_address_is_not_put_on_the_sign_in_page(browser, public_client):
    """login_hint prefills the form: only an address is kept, never free text from a crafted link."""
    def prefilled(login_hint):
        location = browser.get("/authorize?" + authorize_query(public_client.client_id, login_hint=login_hint))
        page = browser.get(location.headers["Location"])
        return re.search(r'name="username"[^>]* value="([^"]*)"', page.body.decode()).group(1), page.body

    value, body = prefilled("Your account is locked. Call +1 555 0100 to unlock it.")
    assert value == "" and not shows_attacker_text(body)
    assert prefilled("alice@example.com")[0] == "alice@example.com"


def test_a_scope_without_a_description_is_named_escaped_inside_a_fixed_sentence(browser, alice):
    """Translated strings are trusted markup: a scope name must be a value formatted into one."""
    from chalicelib.oauth.clients import create_client
    from chalicelib.storage.resources import register_resource

    register_resource("https://notes.example.com/api", "Notes API", ["notes:<b>"])
    client, _ = create_client(client_name="Web", client_type="public", redirect_uris=[REDIRECT_URI],
                              scopes=["openid", "notes:<b>"])
    location = browser.get("/authorize?" + authorize_query(client.client_id, scope="openid notes:<b>"))
    page = browser.get(location.headers["Location"])
    signed_in = browser.post("/login", {"request_id": hidden(page.body, "request_id"),
                                        "csrf_token": hidden(page.body, "csrf_token"),
                                        "username": "alice@example.com", "password": "correct horse battery"})
    consent = browser.get(signed_in.headers["Location"]).body.decode()
    assert '<li data-scope="notes:&lt;b&gt;">Access “notes:&lt;b&gt;”</li>' in consent
    assert "<b>" not in consent


@pytest.mark.parametrize("overrides, error", [
    ({"code_challenge": None}, "invalid_request"),
    ({"code_challenge_method": "plain"}, "invalid_request"),
    ({"code_challenge_method": None}, "invalid_request"),
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"scope": "openid admin"}, "invalid_scope"),
    ({"prompt": "none login"}, "invalid_request"),
    ({"max_age": "-5"}, "invalid_request"),
    ({"request": "eyJ..."}, "request_not_supported"),
    ({"response_mode": "fragment"}, "invalid_request"),
])
def test_errors_after_trust_redirect_with_error_state_and_iss(browser, public_client, overrides, error):
    response = browser.get("/authorize?" + authorize_query(public_client.client_id, **overrides))
    assert response.status_code == 302
    params = query_of(response.headers["Location"])
    assert response.headers["Location"].startswith(REDIRECT_URI)
    assert params["error"] == error
    assert params["state"] == "xyz-state" and params["iss"] == ISS
    assert "code" not in params


def test_prompt_none_without_session_is_login_required(browser, public_client):
    response = browser.get("/authorize?" + authorize_query(public_client.client_id, prompt="none"))
    assert query_of(response.headers["Location"])["error"] == "login_required"


WEB_APP = "https://app.example.com/cb"  # an https redirect: consent to it can be remembered


def test_sso_session_and_remembered_consent_skip_both_pages(browser, public_client, alice):
    sign_in_and_consent(browser, public_client.client_id, redirect_uri=WEB_APP)
    response = browser.get("/authorize?" + authorize_query(public_client.client_id, prompt="none",
                                                           redirect_uri=WEB_APP))
    assert response.status_code == 302
    assert "code" in query_of(response.headers["Location"])


def test_public_client_with_a_loopback_redirect_is_asked_every_time(browser, public_client, alice):
    """RFC 8252 §8.6: any local program can claim a loopback redirect, so remembered consent would
    hand it a code silently."""
    sign_in_and_consent(browser, public_client.client_id)
    again = browser.get("/authorize?" + authorize_query(public_client.client_id))
    assert again.headers["Location"].startswith("/consent")
    silent = browser.get("/authorize?" + authorize_query(public_client.client_id, prompt="none"))
    assert query_of(silent.headers["Location"])["error"] == "consent_required"


def test_consent_is_asked_again_for_new_scopes_and_with_prompt_consent(browser, public_client, alice):
    sign_in_and_consent(browser, public_client.client_id)
    wider = browser.get("/authorize?" + authorize_query(public_client.client_id, scope="openid email profile"))
    assert wider.headers["Location"].startswith("/consent")
    again = browser.get("/authorize?" + authorize_query(public_client.client_id, prompt="consent"))
    assert again.headers["Location"].startswith("/consent")
    silent = browser.get("/authorize?" + authorize_query(public_client.client_id, scope="openid email profile",
                                                         prompt="none"))
    assert query_of(silent.headers["Location"])["error"] == "consent_required"


def test_prompt_login_forces_a_new_sign_in(browser, public_client, alice):
    sign_in_and_consent(browser, public_client.client_id)
    response = browser.get("/authorize?" + authorize_query(public_client.client_id, prompt="login"))
    assert response.headers["Location"].startswith("/login")


def test_max_age_zero_forces_a_new_sign_in(browser, public_client, alice, monkeypatch):
    sign_in_and_consent(browser, public_client.client_id)
    import chalicelib.oauth.authorization as authorization

    monkeypatch.setattr(authorization, "now", lambda: 10**10)
    response = browser.get("/authorize?" + authorize_query(public_client.client_id, max_age="0"))
    assert response.headers["Location"].startswith("/login")


def test_deny_redirects_access_denied_with_state_and_iss(browser, public_client, alice):
    location = sign_in_and_consent(browser, public_client.client_id, consent=False)
    params = query_of(location)
    assert params["error"] == "access_denied" and params["state"] == "xyz-state" and params["iss"] == ISS


def _login_page(browser, client_id):
    location = browser.get("/authorize?" + authorize_query(client_id)).headers["Location"]
    return browser.get(location)


def test_wrong_password_and_unknown_account_look_the_same(browser, public_client, alice):
    page = _login_page(browser, public_client.client_id)
    form = {"request_id": hidden(page.body, "request_id"), "csrf_token": hidden(page.body, "csrf_token")}
    wrong = browser.post("/login", {**form, "username": "alice@example.com", "password": "nope nope"})
    unknown = browser.post("/login", {**form, "username": "bob@example.com", "password": "nope nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert b"Incorrect email or password." in wrong.body and b"Incorrect email or password." in unknown.body
    assert b"bob@example.com" in unknown.body  # the typed email is kept for the user, nothing more


def test_repeated_failures_are_throttled_per_account(browser, public_client, alice):
    page = _login_page(browser, public_client.client_id)
    form = {"request_id": hidden(page.body, "request_id"), "csrf_token": hidden(page.body, "csrf_token"),
            "username": "alice@example.com"}
    for _ in range(5):
        assert browser.post("/login", {**form, "password": "bad password"}).status_code == 401
    blocked = browser.post("/login", {**form, "password": "correct horse battery"})
    assert blocked.status_code == 429, "even the right password waits out the throttle"


def test_repeated_failures_are_throttled_per_ip(browser, public_client, alice, monkeypatch):
    monkeypatch.setenv("LOGIN_MAX_FAILURES_PER_IP", "3")
    from chalicelib.config import settings

    settings.cache_clear()
    page = _login_page(browser, public_client.client_id)
    form = {"request_id": hidden(page.body, "request_id"), "csrf_token": hidden(page.body, "csrf_token")}
    for i in range(3):
        browser.post("/login", {**form, "username": f"user{i}@example.com", "password": "x" * 10})
    blocked = browser.post("/login", {**form, "username": "alice@example.com", "password": "correct horse battery"})
    assert blocked.status_code == 429


def test_login_post_without_valid_csrf_token_is_refused(browser, public_client, alice):
    page = _login_page(browser, public_client.client_id)
    form = {"request_id": hidden(page.body, "request_id"), "username": "alice@example.com",
            "password": "correct horse battery"}
    assert browser.post("/login", {**form, "csrf_token": "forged"}).status_code == 403
    assert browser.post("/login", form).status_code == 403


def test_csrf_token_is_bound_to_the_browser_session(browser, http, public_client, alice):
    from tests.routes.flow import Browser

    page = _login_page(browser, public_client.client_id)
    attacker = Browser(http)
    _login_page(attacker, public_client.client_id)
    # The attacker's own cookie with the victim's token (or vice versa) does not pass.
    response = attacker.post("/login", {"request_id": hidden(page.body, "request_id"),
                                        "csrf_token": hidden(page.body, "csrf_token"),
                                        "username": "alice@example.com", "password": "correct horse battery"})
    assert response.status_code == 403


def test_fetch_metadata_decides_over_a_null_origin(browser, public_client, alice):
    """Under no-referrer a browser posts our own forms with `Origin: null` and
    `Sec-Fetch-Site: same-origin`: accepted. A null origin without Fetch Metadata is not."""
    page = _login_page(browser, public_client.client_id)
    form = {"request_id": hidden(page.body, "request_id"), "csrf_token": hidden(page.body, "csrf_token"),
            "username": "alice@example.com", "password": "correct horse battery"}
    browser.headers = {}
    assert browser.post("/login", form, extra={"Origin": "null"}).status_code == 403
    same_origin = browser.post("/login", form, extra={"Origin": "null", "Sec-Fetch-Site": "same-origin"})
    assert same_origin.status_code == 302


def test_cross_site_form_posts_are_refused(browser, public_client, alice):
    page = _login_page(browser, public_client.client_id)
    form = {"request_id": hidden(page.body, "request_id"), "csrf_token": hidden(page.body, "csrf_token"),
            "username": "alice@example.com", "password": "correct horse battery"}
    assert browser.post("/login", form, extra={"Origin": "https://evil.example"}).status_code == 403
    browser.headers = {}
    assert browser.post("/login", form, extra={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    # Another port or subdomain of our site is "same-site", not "same-origin": still refused.
    assert browser.post("/login", form, extra={"Sec-Fetch-Site": "same-site"}).status_code == 403


def test_consent_post_needs_its_csrf_token(browser, public_client, alice):
    location = browser.get("/authorize?" + authorize_query(public_client.client_id)).headers["Location"]
    page = browser.get(location)
    response = browser.post("/login", {"request_id": hidden(page.body, "request_id"),
                                       "csrf_token": hidden(page.body, "csrf_token"),
                                       "username": "alice@example.com", "password": "correct horse battery"})
    consent = browser.get(response.headers["Location"])
    forged = browser.post("/consent", {"request_id": hidden(consent.body, "request_id"),
                                       "csrf_token": hidden(page.body, "csrf_token"), "decision": "allow"})
    assert forged.status_code == 403, "the pre-login token is not valid after the session rotated"


def test_session_cookie_is_rotated_at_sign_in_and_flagged(browser, public_client, alice):
    _login_page(browser, public_client.client_id)
    before = dict(browser.cookies)
    sign_in_and_consent(browser, public_client.client_id)
    assert browser.cookies["idp_session"] != before["idp_session"]


def test_https_issuer_uses_host_prefixed_secure_cookie(monkeypatch):
    from chalicelib.config import load_settings
    from chalicelib.oauth import sessions

    s = load_settings({"STAGE": "prod", "ISSUER": "https://login.example.com"})
    header = sessions.cookie_header(s, "abc")
    assert header.startswith("__Host-idp_session=abc;")
    assert all(flag in header for flag in ("Path=/", "HttpOnly", "SameSite=Lax", "Secure"))
    assert "Domain" not in header


def test_expired_or_unknown_request_shows_an_error_page(browser, public_client, alice, monkeypatch):
    location = browser.get("/authorize?" + authorize_query(public_client.client_id)).headers["Location"]
    import chalicelib.storage.authorization_requests as authorization_requests

    monkeypatch.setattr(authorization_requests, "now", lambda: 10**10)
    page = browser.get(location)
    assert page.status_code == 400 and b"expired" in page.body
    assert browser.get("/login?request_id=made-up").status_code == 400


@pytest.mark.parametrize("path", ["/login?request_id=x", "/logout", "/consent?request_id=x"])
def test_pages_forbid_framing_and_referrers(browser, path):
    response = browser.get(path)
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert b'<meta name="referrer" content="no-referrer">' in response.body
    assert "Access-Control-Allow-Origin" not in response.headers


def test_authorize_has_no_cors(browser, public_client):
    response = browser.get("/authorize?" + authorize_query(public_client.client_id),
                           extra={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in response.headers


def test_sign_out_ends_the_session(browser, public_client, alice):
    sign_in_and_consent(browser, public_client.client_id)
    page = browser.get("/logout")
    assert browser.post("/logout", {"csrf_token": "forged"}).status_code == 403
    done = browser.post("/logout", {"csrf_token": hidden(page.body, "csrf_token")})
    assert done.status_code == 200 and b"signed out" in done.body
    response = browser.get("/authorize?" + authorize_query(public_client.client_id, prompt="none"))
    assert query_of(response.headers["Location"])["error"] == "login_required"


def test_disabled_user_cannot_sign_in(browser, public_client, alice):
    from chalicelib.storage.users import set_user_disabled

    set_user_disabled(alice.pk, True)
    page = _login_page(browser, public_client.client_id)
    response = browser.post("/login", {"request_id": hidden(page.body, "request_id"),
                                       "csrf_token": hidden(page.body, "csrf_token"),
                                       "username": "alice@example.com", "password": "correct horse battery"})
    assert response.status_code == 401


def test_post_authorize_is_supported(browser, public_client):
    from urllib.parse import parse_qsl

    body = dict(parse_qsl(authorize_query(public_client.client_id)))
    response = browser.post("/authorize", body)
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_loopback_redirect_may_use_any_port(browser, public_client, alice):
    location = sign_in_and_consent(browser, public_client.client_id, redirect_uri="http://127.0.0.1:61999/cb")
    assert location.startswith("http://127.0.0.1:61999/cb?code=")


def test_disabling_a_user_ends_their_sso_session(browser, public_client, alice):
    from chalicelib.storage.users import set_user_disabled

    sign_in_and_consent(browser, public_client.client_id)
    set_user_disabled(alice.pk, True)
    response = browser.get("/authorize?" + authorize_query(public_client.client_id, prompt="none"))
    assert query_of(response.headers["Location"])["error"] == "login_required"


def test_requests_answered_at_once_leave_nothing_stored(browser, public_client, alice):
    from chalicelib.storage.models import AuthorizationRequestModel

    sign_in_and_consent(browser, public_client.client_id, redirect_uri=WEB_APP)
    before = AuthorizationRequestModel.count()
    fast = browser.get("/authorize?" + authorize_query(public_client.client_id, redirect_uri=WEB_APP))
    assert "code" in query_of(fast.headers["Location"])
    silent_error = browser.get("/authorize?" + authorize_query(public_client.client_id, prompt="none",
                                                               scope="openid profile", redirect_uri=WEB_APP))
    assert query_of(silent_error.headers["Location"])["error"] == "consent_required"
    assert AuthorizationRequestModel.count() == before


def test_prompt_login_cannot_be_skipped_through_the_consent_page(browser, public_client, alice):
    """An old session must not approve a prompt=login request by going straight to /consent."""
    sign_in_and_consent(browser, public_client.client_id)
    login = browser.get("/authorize?" + authorize_query(public_client.client_id, prompt="login"))
    request_id = query_of(login.headers["Location"])["request_id"]
    page = browser.get(f"/consent?request_id={request_id}")
    assert page.status_code == 302 and page.headers["Location"].startswith("/login")
    other = browser.get("/authorize?" + authorize_query(public_client.client_id))
    consent_page = browser.get(other.headers["Location"])
    forged = browser.post("/consent", {"request_id": request_id, "decision": "allow",
                                       "csrf_token": hidden(consent_page.body, "csrf_token")})
    assert forged.status_code == 302 and forged.headers["Location"].startswith("/login")


def test_max_age_cannot_be_skipped_through_the_consent_page(browser, public_client, alice, monkeypatch):
    sign_in_and_consent(browser, public_client.client_id)
    import chalicelib.oauth.authorization as authorization

    real_now = authorization.now
    monkeypatch.setattr(authorization, "now", lambda: real_now() + 3600)
    login = browser.get("/authorize?" + authorize_query(public_client.client_id, max_age="60"))
    request_id = query_of(login.headers["Location"])["request_id"]
    assert browser.get(f"/consent?request_id={request_id}").headers["Location"].startswith("/login")


def test_consent_covers_resources_too(browser, http, alice, api_resources):
    from chalicelib.oauth.clients import create_client

    client, _ = create_client(client_name="Web", client_type="public", redirect_uris=[WEB_APP],
                              scopes=["openid", "notes:read", "billing:read"])
    sign_in_and_consent(browser, client.client_id, redirect_uri=WEB_APP, scope="openid notes:read",
                        resource="https://notes.example.com/api")
    same = browser.get("/authorize?" + authorize_query(client.client_id, redirect_uri=WEB_APP, scope="openid",
                                                       resource="https://notes.example.com/api"))
    assert "code" in query_of(same.headers["Location"])
    other = browser.get("/authorize?" + authorize_query(client.client_id, redirect_uri=WEB_APP, scope="openid",
                                                        resource="https://billing.example.com/api"))
    assert other.headers["Location"].startswith("/consent")
    page = browser.get(other.headers["Location"])
    assert b"Billing API" in page.body


def test_parallel_guesses_cannot_outrun_the_throttle(aws, alice):
    """Counted before the password check: 12 simultaneous wrong guesses get at most 5 verdicts."""
    from concurrent.futures import ThreadPoolExecutor

    from chalicelib.config import settings
    from chalicelib.oauth import login

    def guess(i):
        try:
            attempt = login.begin(settings(), "alice@example.com", f"198.51.100.{i}", request_id=None)
            login.authenticate(settings(), attempt, f"wrong guess {i}")
        except LoginFailed:
            return "failed"
        except LoginThrottled:
            return "throttled"
        return "signed in"

    with ThreadPoolExecutor(max_workers=12) as pool:
        outcomes = list(pool.map(guess, range(12)))
    assert outcomes.count("failed") <= 5 and outcomes.count("throttled") >= 7, outcomes


DOCS, PHOTOS = "https://docs.example.com/api", "https://photos.example.com/api"


@pytest.fixture
def overlapping_apis(aws):
    """Two APIs that both name their scopes plainly `read` and `write`."""
    from chalicelib.oauth.clients import create_client
    from chalicelib.storage.resources import register_resource

    register_resource(DOCS, "Docs API", ["read", "write"])
    register_resource(PHOTOS, "Photos API", ["read", "write"])
    client, _ = create_client(client_name="Web", client_type="public", redirect_uris=[WEB_APP],
                              scopes=["openid", "read", "write"])
    return client


def test_consent_to_write_at_one_api_is_not_consent_to_write_at_another(browser, alice, overlapping_apis):
    """Consent is remembered as (audience, scope) pairs: `read write` for Docs plus `read` for Photos
    must not add up to `write` for Photos."""
    client_id = overlapping_apis.client_id
    sign_in_and_consent(browser, client_id, redirect_uri=WEB_APP, scope="openid read write", resource=DOCS)
    sign_in_and_consent(browser, client_id, redirect_uri=WEB_APP, scope="openid read", resource=PHOTOS)
    remembered = browser.get("/authorize?" + authorize_query(client_id, redirect_uri=WEB_APP, prompt="none",
                                                             scope="openid read", resource=PHOTOS))
    assert "code" in query_of(remembered.headers["Location"])
    silent = browser.get("/authorize?" + authorize_query(client_id, redirect_uri=WEB_APP, prompt="none",
                                                         scope="openid read write", resource=PHOTOS))
    params = query_of(silent.headers["Location"])
    assert params["error"] == "consent_required" and "code" not in params


def test_consent_remembered_before_pairs_is_not_trusted(browser, alice, overlapping_apis):
    """An item from the scopes-plus-resources era cannot say which scope went to which API, so it
    covers nothing: the user is asked once more."""
    from chalicelib.aws import client
    from chalicelib.storage.models import ConsentModel

    client_id = overlapping_apis.client_id
    sign_in_and_consent(browser, client_id, redirect_uri=WEB_APP, scope="openid read", resource=DOCS)
    client("dynamodb").put_item(TableName=ConsentModel.Meta.table_name, Item={  # the old shape of the item
        "pk": {"S": f"{alice.pk}#{client_id}"}, "scopes": {"SS": ["openid", "read", "write"]},
        "resources": {"SS": [DOCS, PHOTOS]}, "updated_at": {"N": "1"}})
    silent = browser.get("/authorize?" + authorize_query(client_id, redirect_uri=WEB_APP, prompt="none",
                                                         scope="openid read", resource=DOCS))
    assert query_of(silent.headers["Location"])["error"] == "consent_required"
    sign_in_and_consent(browser, client_id, redirect_uri=WEB_APP, scope="openid read", resource=DOCS)
    again = browser.get("/authorize?" + authorize_query(client_id, redirect_uri=WEB_APP, prompt="none",
                                                        scope="openid read", resource=DOCS))
    assert "code" in query_of(again.headers["Location"])


def test_consent_page_says_which_scopes_go_to_which_api(browser, alice, overlapping_apis):
    from chalicelib.storage.resources import register_resource

    register_resource(PHOTOS, "Photos API", ["read"])
    response = browser.get("/authorize?" + authorize_query(overlapping_apis.client_id, redirect_uri=WEB_APP,
                                                           scope="openid read write", resource=[DOCS, PHOTOS]))
    page = browser.get(browser.post("/login", _login_form(browser, response.headers["Location"])).headers["Location"])
    body = page.body.decode()
    docs, photos = body.index("<strong>Docs API</strong>"), body.index("<strong>Photos API</strong>")
    assert 'data-scope="openid"' in body[:docs]
    assert 'data-scope="read"' in body[docs:photos] and 'data-scope="write"' in body[docs:photos]
    assert 'data-scope="read"' in body[photos:] and 'data-scope="write"' not in body[photos:]


def _login_form(browser, location):
    page = browser.get(location)
    return {"request_id": hidden(page.body, "request_id"), "csrf_token": hidden(page.body, "csrf_token"),
            "username": "alice@example.com", "password": "correct horse battery"}


def test_an_api_cannot_ride_along_in_a_request_without_a_scope_for_it(browser, http, alice, api_resources):
    """Consent to Billing alone must not let a silent request add Notes to the token's audience by
    asking only for Billing's scope: every named API needs a scope of its own, and so the user's."""
    from chalicelib.oauth.clients import create_client

    client, _ = create_client(client_name="Web", client_type="public", redirect_uris=[WEB_APP],
                              scopes=["notes:read", "billing:read"])
    notes, billing = "https://notes.example.com/api", "https://billing.example.com/api"
    sign_in_and_consent(browser, client.client_id, redirect_uri=WEB_APP, scope="billing:read", resource=billing)
    silent = browser.get("/authorize?" + authorize_query(client.client_id, redirect_uri=WEB_APP, prompt="none",
                                                         scope="billing:read", resource=[notes, billing]))
    params = query_of(silent.headers["Location"])
    assert params["error"] == "invalid_scope" and "code" not in params


def test_a_resource_deleted_while_the_user_decides_ends_the_request(browser, alice, overlapping_apis):
    from chalicelib.storage.resources import delete_resource, forget_cached_resources

    response = browser.get("/authorize?" + authorize_query(overlapping_apis.client_id, redirect_uri=WEB_APP,
                                                           scope="openid read", resource=DOCS))
    consent_url = browser.post("/login", _login_form(browser, response.headers["Location"])).headers["Location"]
    page = browser.get(consent_url)
    delete_resource(DOCS)
    forget_cached_resources()  # a container whose copy has aged out
    allowed = browser.post("/consent", {"request_id": hidden(page.body, "request_id"), "decision": "allow",
                                        "csrf_token": hidden(page.body, "csrf_token")})
    assert query_of(allowed.headers["Location"])["error"] == "invalid_target"
    assert browser.get(consent_url).status_code == 400, "the request is finished"
