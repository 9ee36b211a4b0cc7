"""The hosted pages speak the user's language: the app's ui_locales (OIDC Core §3.1.2.1) for the whole
sign-in it started, else the browser's Accept-Language (RFC 9110 §12.5.4), else English; `<html lang>`
and Content-Language say which."""
from __future__ import annotations

import pytest

from tests.routes.flow import authorize_query, hidden

GERMAN_SIGN_IN = "<title>Anmelden</title>"


def page_language(response) -> str:
    body = response.body.decode()
    lang = body.split('<html lang="', 1)[1].split('"', 1)[0]
    assert response.headers["Content-Language"] == lang
    return lang


def sign_in_page(browser, client_id, *, accept_language=None, **params):
    response = browser.get("/authorize?" + authorize_query(client_id, **params))
    assert response.status_code == 302 and response.headers["Location"].startswith("/login?")
    headers = {"Accept-Language": accept_language} if accept_language is not None else None
    return browser.get(response.headers["Location"], extra=headers)


def test_ui_locales_de_renders_the_sign_in_page_in_german(browser, public_client):
    page = sign_in_page(browser, public_client.client_id, ui_locales="de")
    assert page.status_code == 200 and page_language(page) == "de"
    body = page.body.decode()
    assert GERMAN_SIGN_IN in body and "weiter zu <strong>Notes App</strong>" in body
    assert ">E-Mail-Adresse</label>" in body and ">Passwort</label>" in body and "Sign in" not in body


def test_accept_language_de_renders_the_sign_in_page_in_german(browser, public_client):
    page = sign_in_page(browser, public_client.client_id, accept_language="fr-FR, de-AT;q=0.8, en;q=0.5")
    assert page_language(page) == "de" and GERMAN_SIGN_IN in page.body.decode()


def test_without_a_preference_the_pages_are_english(browser, public_client):
    page = sign_in_page(browser, public_client.client_id)
    assert page_language(page) == "en" and "<title>Sign in</title>" in page.body.decode()


@pytest.mark.parametrize("ui_locales, accept_language, lang", [
    ("de", "en", "de"),              # the app's wish beats the browser's
    ("en", "de", "en"),
    ("fr de-CH", "en", "de"),
    ("fr", "de", "de"),              # nothing ui_locales names is offered: the browser decides
])
def test_ui_locales_comes_before_accept_language(browser, public_client, ui_locales, accept_language, lang):
    page = sign_in_page(browser, public_client.client_id, ui_locales=ui_locales, accept_language=accept_language)
    assert page_language(page) == lang


@pytest.mark.parametrize("header", ["de;q=abc, ;;,", "*;q=nonsense", "x" * 4000, "\u00e9\u00e9", "de;q=2"])
def test_a_malformed_accept_language_never_breaks_a_page(browser, public_client, header):
    page = sign_in_page(browser, public_client.client_id, accept_language=header)
    assert page.status_code == 200 and page_language(page) in ("en", "de")


def test_the_language_ui_locales_chose_holds_for_every_page_of_that_sign_in(browser, public_client, alice):
    """Stored on the pending request at /authorize: the failed sign-in and the consent page speak it
    too, even when the browser asks for English."""
    english = {"Accept-Language": "en"}
    page = sign_in_page(browser, public_client.client_id, ui_locales="de", accept_language="en")
    form = {"request_id": hidden(page.body, "request_id"), "csrf_token": hidden(page.body, "csrf_token"),
            "username": "alice@example.com"}
    failed = browser.post("/login", {**form, "password": "wrong"}, extra=english)
    assert failed.status_code == 401 and page_language(failed) == "de"
    assert "E-Mail-Adresse oder Passwort ist falsch." in failed.body.decode()

    signed_in = browser.post("/login", {**form, "password": "correct horse battery"}, extra=english)
    assert signed_in.status_code == 302 and signed_in.headers["Location"].startswith("/consent?")
    consent = browser.get(signed_in.headers["Location"], extra=english)
    assert consent.status_code == 200 and page_language(consent) == "de"
    body = consent.body.decode()
    assert "Zugriff für Notes App erlauben?" in body and "Ihre E-Mail-Adresse sehen" in body
    assert ">Erlauben</button>" in body and ">Ablehnen</button>" in body


def test_another_sign_in_in_the_same_browser_is_not_affected(browser, public_client):
    sign_in_page(browser, public_client.client_id, ui_locales="de")
    assert page_language(sign_in_page(browser, public_client.client_id)) == "en"


def test_error_pages_speak_the_requested_language(browser, public_client):
    unknown = browser.get("/authorize?" + authorize_query("nope", ui_locales="de"))
    assert unknown.status_code == 400 and page_language(unknown) == "de"
    assert "Unbekannte App" in unknown.body.decode() and "Fehlercode: <code>invalid_request</code>" \
        in unknown.body.decode()
    expired = browser.get("/login?request_id=unknown", extra={"Accept-Language": "de"})
    assert page_language(expired) == "de" and "Diese Anmeldeanfrage ist abgelaufen" in expired.body.decode()


def test_sign_out_follows_accept_language(browser):
    page = browser.get("/logout", extra={"Accept-Language": "de-DE,de;q=0.9"})
    assert page_language(page) == "de" and "<h1>Abmelden?</h1>" in page.body.decode()
