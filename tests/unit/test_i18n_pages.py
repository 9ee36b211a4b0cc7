"""Pages and emails rendered in a locale (chalicelib/pages.render): the catalog's words, `<html lang>`,
Content-Language, and values formatted into a translated string still escaped."""
from __future__ import annotations

import threading

import pytest

from chalicelib import i18n, pages
from chalicelib.pages import messages

LOGIN = {"base": "", "client_name": "Notes", "request_id": "r", "csrf_token": "c", "unverified": False,
         "password_allowed": True}
ATTACK = '<script>alert("x")</script>'


def test_a_page_renders_in_the_locale_asked_for_with_html_lang():
    german = pages.render("login.html", locale="de", **LOGIN)
    assert '<html lang="de">' in german and "<title>Anmelden</title>" in german and ">Passwort</label>" in german
    english = pages.render("login.html", locale="en", **LOGIN)
    assert '<html lang="en">' in english and "<title>Sign in</title>" in english


@pytest.mark.parametrize("locale, lang", [("de-AT", "de"), ("DE", "de"), ("fr", "en"), ("en-GB", "en")])
def test_any_language_tag_renders_in_its_best_supported_match(locale, lang):
    """Emails are rendered for a user's stored locale, which may be any BCP47 tag."""
    assert f'<html lang="{lang}">' in pages.render("login.html", locale=locale, **LOGIN)
    assert pages.security_headers(locale=locale)["Content-Language"] == lang


def test_without_a_locale_the_page_speaks_the_current_request_language():
    token = i18n.begin_request("fr, de;q=0.5")
    try:
        assert '<html lang="de">' in pages.render("logout.html", base="", signed_out=True)
        assert pages.security_headers()["Content-Language"] == "de"
    finally:
        i18n.end_request(token)
    assert pages.security_headers()["Content-Language"] == "en"


def test_a_fixed_message_is_translated_on_the_page():
    html = pages.render("login.html", locale="de", message=messages.WRONG_CREDENTIALS, **LOGIN)
    assert "E-Mail-Adresse oder Passwort ist falsch." in html


def test_a_value_in_a_translated_string_is_still_escaped():
    """Translated strings are trusted markup: the values formatted into them must be escaped, in every
    language ("Zugriff für %(client_name)s erlauben?")."""
    html = pages.render("consent.html", locale="de", base="", client_name=ATTACK, unverified=False, client_host=None,
                        scopes=[], apis=[], redirect_host="app.example", email="a@example.com", request_id="r",
                        csrf_token="c")
    assert "Zugriff für &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; erlauben?" in html
    assert ATTACK not in html


def test_a_translated_string_keeps_its_markup_around_an_escaped_value():
    html = pages.render("redirect_notice.html", locale="de", base="", host=ATTACK, error="invalid_scope",
                        location="https://app.example/cb")
    assert "gehen Sie weiter zu <strong>&lt;script&gt;" in html and "<script>" not in html


def test_two_languages_rendered_at_once_never_mix():
    """One Environment per locale: no translations object is switched under a concurrent render."""
    seen, errors = [], []

    def render(locale, word):
        for _ in range(50):
            html = pages.render("logout.html", locale=locale, base="", signed_out=False, csrf_token="c")
            if word not in html:
                errors.append(locale)
        seen.append(locale)

    threads = [threading.Thread(target=render, args=args) for args in [("de", "Abmelden?"), ("en", "Sign out?")] * 4]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 8 and not errors


def test_an_unsupported_catalog_is_refused_not_guessed():
    with pytest.raises(ValueError):
        i18n.translations("fr")


def test_a_snapstart_init_compiles_every_template_in_every_locale():
    from chalicelib.capabilities import UI_LOCALES

    pages.compile_templates()
    templates = [p for p in pages.TEMPLATES.rglob("*") if p.suffix in (".html", ".txt")]
    for locale in UI_LOCALES:
        assert len(pages._environment(locale).cache) >= len(templates)


def test_an_email_is_written_in_the_locale_it_is_sent_in_whatever_the_request_speaks():
    """The user's language, not that of whoever's request sends the email (an invitation from the admin CLI)."""
    from chalicelib import mail

    token = i18n.begin_request("en")
    try:
        message = mail.build("alice@example.com", "verify_email", locale="de-DE", link="https://x.example/l?t=<T>",
                             code="ABCD-EFGH", minutes=30)
    finally:
        i18n.end_request(token)
    assert message["Subject"] == "Bestätigen Sie Ihre E-Mail-Adresse"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "Link und Code können einmal verwendet werden und sind 30 Minuten lang gültig." in text
    assert "ABCD-EFGH" in text and "https://x.example/l?t=<T>" in text, "plain text is not HTML-escaped"
    assert '<html lang="de">' in html and "E-Mail-Adresse bestätigen</a>" in html
    assert "t=&lt;T&gt;" in html, "the HTML part escapes values"
