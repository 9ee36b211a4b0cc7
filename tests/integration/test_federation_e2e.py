"""Federation end to end (issue 15) through real running stacks: a relying party signs its user in at
the DOWNSTREAM IdP, whose sign-in page sends them to the UPSTREAM (a second instance of this IdP, or
panva's oidc-provider) and back: upstream sign-in and consent, our callback, the just-in-time account
or the linked one, our consent, the code, and tokens whose ID token the downstream signed.

Everything runs over plain HTTP, one requests session per browser (federation_stacks.Browser);
the stacks and their registrations are made by the `federated` fixture with ./idp-admin, as README
has an operator do. The protocol's refusals (nonce, iss, aud, signature...) are attacked in
tests/unit and tests/integration/test_federation_node_op.py; here the browser binding is attacked
through the stack.
"""
from __future__ import annotations

from urllib.parse import quote, urlsplit

import pytest

from tests.integration.federation_stacks import (CONNECTION, CONNECTION_NAME, CORP_DOMAIN, NODE_CONNECTION, PASSWORD,
                                                 Browser, Federated, new_user, page_path, unique)
from tests.integration.hosted_flow import hidden_inputs, query_of

pytestmark = pytest.mark.integration

# Steps of a browser ---------------------------------------------------------------------------------

def open_sign_in(fed: Federated, browser: Browser, **extra):
    """The relying party's authorization request; (request, the downstream sign-in page)."""
    request = fed.authorization_request(**extra)
    page = browser.follow(browser.get(request.url))
    assert page_path(page) == "/login" and page.url.startswith(fed.downstream.base_url), page
    return request, page


def press(browser: Browser, sign_in_page, connection: str = CONNECTION):
    """The sign-in page's "Sign in with ..." button of `connection`."""
    started = browser.submit(sign_in_page, "/federation/start", {"connection": connection})
    assert started.status_code == 303, started.text
    return started


def through_upstream(fed: Federated, browser: Browser, response, email: str, *, decision: str = "allow") -> str:
    """From a redirect to the upstream IdP: its sign-in and consent pages as `email`; returns the
    URL it sends the browser back to (the downstream's callback)."""
    callback = f"{fed.downstream.base_url}/federation/callback"
    assert response.headers["Location"].startswith(f"{fed.upstream.base_url}/authorize?"), response.headers
    page = browser.follow(response, until=callback)
    if not isinstance(page, str) and page_path(page) == "/login":
        assert page.url.startswith(fed.upstream.base_url), page.url
        page = browser.follow(browser.submit(page, "/login", {"username": email, "password": PASSWORD}),
                              until=callback)
    if not isinstance(page, str) and page_path(page) == "/consent":
        assert "Allow Downstream IdP?" in page.text
        page = browser.follow(browser.submit(page, "/consent", {"decision": decision}), until=callback)
    assert isinstance(page, str), f"{page.status_code} {page.url}\n{page.text}"
    return page


def back_at_downstream(fed: Federated, browser: Browser, callback_url: str) -> str:
    """The callback, then our consent if asked; returns the redirect to the relying party."""
    page = browser.follow(browser.get(callback_url))
    if not isinstance(page, str):
        assert page_path(page) == "/consent", f"{page.status_code} {page.url}\n{page.text}"
        page = browser.follow(browser.submit(page, "/consent", {"decision": "allow"}))
    assert isinstance(page, str) and page.startswith(fed.redirect_uri + "?"), page
    return page


def sign_in_through_upstream(fed: Federated, email: str, browser: Browser | None = None) -> dict:
    """A whole sign-in in a fresh browser by the button; the verified ID token's claims."""
    browser = browser or Browser()
    request, page = open_sign_in(fed, browser)
    callback = through_upstream(fed, browser, press(browser, page), email)
    return fed.redeem(request, back_at_downstream(fed, browser, callback))


def linked_sign_ins(fed: Federated, email: str, password: str = PASSWORD) -> str:
    """The downstream account page's "Linked sign-ins" section, seen by signing in there with the password."""
    browser = Browser()
    page = browser.follow(browser.get(f"{fed.downstream.base_url}/account"))
    assert page_path(page) == "/account/login"
    page = browser.follow(browser.submit(page, "/account/login", {"username": email, "password": password}))
    assert page_path(page) == "/account", page.text
    return page.text.split('id="identities-heading"', 1)[1].split("</section>", 1)[0]


# Tests ------------------------------------------------------------------------------------------------

def test_first_sign_in_creates_the_account_just_in_time_and_a_returning_one_finds_it(federated):
    fed = federated
    email = unique("alice", CORP_DOMAIN)
    upstream_sub = new_user(fed.upstream, email)
    browser = Browser()

    request, page = open_sign_in(fed, browser)
    assert f"Sign in with {CONNECTION_NAME}" in page.text and "Sign in with Node OP" in page.text
    started = press(browser, page)
    to_upstream = query_of(started.headers["Location"])
    assert to_upstream["redirect_uri"] == f"{fed.downstream.base_url}/federation/callback"
    assert to_upstream["code_challenge_method"] == "S256" and to_upstream["nonce"] and to_upstream["state"]
    callback = through_upstream(fed, browser, started, email)
    assert query_of(callback)["iss"] == fed.upstream.base_url
    claims = fed.redeem(request, back_at_downstream(fed, browser, callback))

    assert "fed" in claims["amr"]
    assert claims["email"] == email and claims["email_verified"] is True
    assert claims["sub"] != upstream_sub, "the downstream's own account, not the upstream's subject"
    # The account page of the new account lists where it signs in from.
    assert browser.signed_in_at(fed.downstream)
    account = browser.follow(browser.get(f"{fed.downstream.base_url}/account"))
    assert page_path(account) == "/account"
    section = account.text.split('id="identities-heading"', 1)[1]
    assert CONNECTION_NAME in section and email in section

    # Returning, in another browser: the upstream signs in again, the same account is found.
    again = sign_in_through_upstream(fed, email)
    assert again["sub"] == claims["sub"] and "fed" in again["amr"]


def test_an_address_of_the_connections_domain_on_the_sign_in_form_goes_straight_to_the_upstream(federated):
    fed = federated
    email = unique("dave", CORP_DOMAIN)
    new_user(fed.upstream, email)
    browser = Browser()
    request, page = open_sign_in(fed, browser)

    routed = browser.submit(page, "/login", {"username": email.upper(), "password": ""})

    assert routed.status_code in (302, 303), routed.text
    assert query_of(routed.headers["Location"])["login_hint"].lower() == email
    claims = fed.redeem(request, back_at_downstream(fed, browser, through_upstream(fed, browser, routed, email)))
    assert claims["email"] == email and "fed" in claims["amr"]


@pytest.mark.parametrize("hint", ["login_hint", "idp_hint"])
def test_a_hint_at_authorize_skips_our_sign_in_page(federated, hint):
    fed = federated
    email = unique("erin", CORP_DOMAIN)
    new_user(fed.upstream, email)
    browser = Browser()
    request = fed.authorization_request(**{hint: email if hint == "login_hint" else CONNECTION})

    response = browser.get(request.url)

    assert response.is_redirect and response.headers["Location"].startswith(f"{fed.upstream.base_url}/authorize?")
    assert query_of(response.headers["Location"]).get("login_hint") == (email if hint == "login_hint" else None)
    claims = fed.redeem(request, back_at_downstream(fed, browser, through_upstream(fed, browser, response, email)))
    assert claims["email"] == email


def test_an_existing_account_with_the_address_is_linked_only_after_its_password(federated):
    """The upstream asserts a verified address that a downstream password account has, in a domain
    the connection is not trusted for: nothing is linked until the owner proves the account."""
    fed = federated
    email = unique("frank", "untrusted.test")
    new_user(fed.upstream, email)
    local_sub = new_user(fed.downstream, email)

    browser = Browser()
    request, page = open_sign_in(fed, browser)
    link_page = browser.follow(browser.get(through_upstream(fed, browser, press(browser, page), email)))
    assert page_path(link_page) == "/federation/link", link_page.text
    assert "Link your sign-in" in link_page.text and email in link_page.text
    assert "No other sign-in is linked" in linked_sign_ins(fed, email)

    # Another browser, the same upstream identity: still not linked, so the link page again, not a session.
    other = Browser()
    _, other_page = open_sign_in(fed, other)
    other_link = other.follow(other.get(through_upstream(fed, other, press(other, other_page), email)))
    assert page_path(other_link) == "/federation/link"
    assert not other.signed_in_at(fed.downstream)

    wrong = browser.submit(link_page, "/federation/link", {"password": "not the password"})
    assert wrong.status_code == 401 and "No other sign-in is linked" in linked_sign_ins(fed, email)

    linked = browser.follow(browser.submit(link_page, "/federation/link", {"password": PASSWORD}))
    if not isinstance(linked, str):
        assert page_path(linked) == "/consent", linked.text
        linked = browser.follow(browser.submit(linked, "/consent", {"decision": "allow"}))
    claims = fed.redeem(request, linked)
    assert claims["sub"] == local_sub
    section = linked_sign_ins(fed, email)
    assert CONNECTION_NAME in section and "No other sign-in is linked" not in section
    # From now on the upstream alone signs the owner in, to the same account.
    assert sign_in_through_upstream(fed, email)["sub"] == local_sub


def test_a_signed_in_user_links_an_upstream_sign_in_from_the_account_page_and_removes_it(federated):
    fed = federated
    local_email, upstream_email = unique("henry", "example.org"), unique("henry", CORP_DOMAIN)
    local_sub = new_user(fed.downstream, local_email)
    new_user(fed.upstream, upstream_email)
    browser = Browser()
    page = browser.follow(browser.get(f"{fed.downstream.base_url}/account"))
    account = browser.follow(browser.submit(page, "/account/login", {"username": local_email, "password": PASSWORD}))
    assert page_path(account) == "/account"

    started = browser.submit(account, "/account/identities/link", {"connection": CONNECTION,
                                                                        "current_password": PASSWORD})
    assert started.status_code == 303, started.text
    linked = browser.follow(browser.get(through_upstream(fed, browser, started, upstream_email)))
    assert linked.url == f"{fed.downstream.base_url}/account?done=identity_linked", linked.url
    assert "The sign-in was linked to your account." in linked.text
    assert upstream_email in linked.text.split('id="identities-heading"', 1)[1]
    assert sign_in_through_upstream(fed, upstream_email)["sub"] == local_sub

    removed = browser.follow(browser.submit(linked, "/account/identities/remove", {"current_password": PASSWORD}))
    assert removed.url == f"{fed.downstream.base_url}/account?done=identity_removed", removed.url
    assert "No other sign-in is linked" in removed.text
    # The upstream identity is nobody's now: its verified address, which no account has, makes a new one.
    assert sign_in_through_upstream(fed, upstream_email)["sub"] != local_sub


def test_a_callback_url_opened_in_another_browser_or_twice_is_refused(federated):
    """The upstream's answer is bound to the browser that started the sign-in (the idp_fed cookie,
    RFC 9700 §4.7 login CSRF) and works once."""
    fed = federated
    email = unique("mallory", CORP_DOMAIN)
    new_user(fed.upstream, email)

    # The attacker's own upstream sign-in, its callback URL pushed into a victim's browser.
    attacker = Browser()
    _, page = open_sign_in(fed, attacker)
    callback = through_upstream(fed, attacker, press(attacker, page), email)
    victim = Browser()
    refused = victim.get(callback)
    assert refused.status_code == 403 and not refused.is_redirect
    assert "This sign-in was already finished, has expired, or was started in another browser." in refused.text
    assert not victim.signed_in_at(fed.downstream)

    # A callback used once is spent.
    browser = Browser()
    request, page = open_sign_in(fed, browser)
    callback = through_upstream(fed, browser, press(browser, page), email)
    fed.redeem(request, back_at_downstream(fed, browser, callback))
    replayed = browser.get(callback)
    assert replayed.status_code == 400 and not replayed.is_redirect
    assert "This sign-in was already finished, has expired, or was started in another browser." in replayed.text


def test_an_answer_naming_another_issuer_is_shown_as_an_error_and_signs_nobody_in(federated):
    """RFC 9207: the upstream's `iss` parameter, changed on the way back (a mix-up attack), is
    refused on our error page before the code is redeemed."""
    fed = federated
    email = unique("trent", CORP_DOMAIN)
    new_user(fed.upstream, email)
    browser = Browser()
    _, page = open_sign_in(fed, browser)
    callback = through_upstream(fed, browser, press(browser, page), email)
    assert f"iss={quote(fed.upstream.base_url, safe='')}" in callback

    refused = browser.get(callback.replace(quote(fed.upstream.base_url, safe=""),
                                           quote(fed.node.issuer, safe="")))

    assert refused.status_code == 400 and not refused.is_redirect
    assert "The answer from the service you chose to sign in with could not be accepted." in refused.text
    assert not browser.signed_in_at(fed.downstream)


def test_cancelling_at_the_upstream_returns_to_our_sign_in_page_with_a_message(federated):
    fed = federated
    email = unique("gina", CORP_DOMAIN)
    new_user(fed.upstream, email)
    browser = Browser()
    request, page = open_sign_in(fed, browser)

    callback = through_upstream(fed, browser, press(browser, page), email, decision="deny")
    assert query_of(callback)["error"] == "access_denied"
    back = browser.follow(browser.get(callback))

    # The sign-in page of the same request, at its own URL, with the notice.
    assert back.status_code == 200 and back.url.startswith(fed.downstream.base_url)
    assert "Signing in with the other provider was cancelled. Choose how to sign in." in back.text
    assert f"Sign in with {CONNECTION_NAME}" in back.text
    assert hidden_inputs(back.text, "/federation/start")["request_id"] == hidden_inputs(page.text, "/login")[
        "request_id"]
    # ... and its button works again.
    claims = fed.redeem(request, back_at_downstream(fed, browser, through_upstream(fed, browser, press(browser, back),
                                                                                   email)))
    assert claims["email"] == email


def test_sign_in_through_panvas_oidc_provider_with_a_connection_made_by_the_admin_cli(federated):
    fed = federated
    login = unique("grace", "node.test")
    browser = Browser()
    request, page = open_sign_in(fed, browser)
    started = press(browser, page, NODE_CONNECTION)
    assert started.headers["Location"].startswith(fed.node.issuer + "/")

    callback = fed.node.sign_in(started.headers["Location"], login)

    assert urlsplit(callback).path == "/federation/callback" and query_of(callback)["iss"] == fed.node.issuer
    claims = fed.redeem(request, back_at_downstream(fed, browser, callback))
    assert claims["email"] == login and "fed" in claims["amr"]
    assert sign_in_through_node(fed, login)["sub"] == claims["sub"]


def sign_in_through_node(fed: Federated, login: str) -> dict:
    browser = Browser()
    request, page = open_sign_in(fed, browser)
    callback = fed.node.sign_in(press(browser, page, NODE_CONNECTION).headers["Location"], login)
    return fed.redeem(request, back_at_downstream(fed, browser, callback))
