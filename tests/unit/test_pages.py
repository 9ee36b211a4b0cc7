"""Hosted pages: every visible string is translatable, and error pages say only fixed text."""
from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from jinja2 import Environment, FileSystemLoader

from chalicelib import pages
from chalicelib.errors import UntrustedRequest
from chalicelib.pages.messages import MESSAGES, Message

DYNAMIC = "@@"  # every value the views pass in; whatever remains besides it must be translated

CONTEXTS = [
    ("error.html", {"message": message, "error": DYNAMIC, "reference": DYNAMIC}) for message in MESSAGES.values()
] + [
    ("login.html", {"password_allowed": True, "client_name": DYNAMIC, "unverified": True, "message": "Incorrect email or password.",
                    "request_id": DYNAMIC, "csrf_token": DYNAMIC, "login_hint": DYNAMIC}),
    ("consent.html", {"client_name": DYNAMIC, "unverified": True, "client_host": DYNAMIC,
                      "scopes": [("openid", "Sign you in and know who you are"), (DYNAMIC, None)],
                      "apis": [(DYNAMIC, [("notes:read", None)]), (DYNAMIC, [])], "redirect_host": DYNAMIC, "email": DYNAMIC,
                      "request_id": DYNAMIC, "csrf_token": DYNAMIC}),
    ("logout.html", {"signed_out": False, "csrf_token": DYNAMIC}),
    ("device.html", {"csrf_token": DYNAMIC, "user_code": DYNAMIC, "email": DYNAMIC,
                     "message": "Enter the 8 letters your device shows, like BCDF-GHJK."}),
    ("device_consent.html", {"client_name": DYNAMIC, "unverified": True, "user_code": DYNAMIC,
                             "scopes": [("openid", "Sign you in and know who you are"), (DYNAMIC, None)],
                             "apis": [(DYNAMIC, [("notes:read", None)]), (DYNAMIC, [])], "email": DYNAMIC,
                             "csrf_token": DYNAMIC}),
    ("device_done.html", {"approved": True, "client_name": DYNAMIC}),
    ("device_done.html", {"approved": False, "client_name": DYNAMIC}),
    ("redirect_notice.html", {"host": DYNAMIC, "error": DYNAMIC, "location": DYNAMIC}),
    ("logout.html", {"signed_out": True}),
    ("signup.html", {"message": "Enter a valid email address, like name@example.com.", "request_id": DYNAMIC, "csrf_token": DYNAMIC,
                     "email": DYNAMIC, "name": DYNAMIC, "min_length": DYNAMIC, "login_url": DYNAMIC}),
    ("check_email.html", {"message": "That code is not valid, was already used or has expired.", "email": DYNAMIC,
                          "request_id": DYNAMIC, "csrf_token": DYNAMIC}),
    ("verify_email.html", {"token": DYNAMIC, "email": DYNAMIC, "csrf_token": DYNAMIC}),
    ("verify_email.html", {"token": DYNAMIC, "email": DYNAMIC, "csrf_token": DYNAMIC, "password_required": True,
                           "message": "That is not the password of this account."}),
    ("email_confirmed.html", {}),
    ("login.html", {"password_allowed": True, "client_name": DYNAMIC, "request_id": DYNAMIC, "csrf_token": DYNAMIC, "signup_url": DYNAMIC}),
    ("link_refused.html", {"message": MESSAGES["link_used"], "ask_again": DYNAMIC}),
    ("forgot_password.html", {"csrf_token": DYNAMIC, "request_id": DYNAMIC}),
    ("forgot_sent.html", {"back": DYNAMIC}),
    ("mfa.html", {"methods": ["passkey", "totp", "recovery"], "passkey_options": {"challenge": DYNAMIC},
                  "request_id": DYNAMIC, "csrf_token": DYNAMIC, "step_up": True, "continuation": "?continue=device",
                  "message": "Too many wrong codes. Wait a few minutes and try again."}),
    ("forgot_sent.html", {"back": None, "message": "Too many attempts. Wait a few minutes and try again."}),
    ("reset_password.html", {"token": DYNAMIC, "email": DYNAMIC, "csrf_token": DYNAMIC,
                             "message": "This password is too common: it is on a list of passwords that attackers "
                                        "try first."}),
    ("password_changed.html", {"sign_in": DYNAMIC}),
    ("password_changed.html", {"sign_in": None}),
    ("invitation.html", {"token": DYNAMIC, "email": DYNAMIC, "name": DYNAMIC, "csrf_token": DYNAMIC,
                         "message": "Names can have at most 200 characters and no control characters."}),
    ("account_ready.html", {"email": DYNAMIC, "signed_in": True, "home": DYNAMIC}),
    ("account_ready.html", {"email": DYNAMIC, "signed_in": False, "home": None}),
    ("account.html", {"user": SimpleNamespace(email=DYNAMIC, name=DYNAMIC, given_name=DYNAMIC, family_name=DYNAMIC,
                                              locale=DYNAMIC),
                      "apps": [SimpleNamespace(client_id=DYNAMIC, client_name=DYNAMIC, last_used=DYNAMIC,
                                               access=((DYNAMIC, [DYNAMIC]),))],
                      "csrf_token": DYNAMIC, "section": "password", "message": "That is not your current password.",
                      "notice": "Your profile was saved."}),
    ("account.html", {"user": SimpleNamespace(email=DYNAMIC, name=None, given_name=None, family_name=None,
                                              locale=None), "apps": [], "csrf_token": DYNAMIC}),
    ("account_login.html", {"csrf_token": DYNAMIC, "username": DYNAMIC, "message": "Incorrect email or password.",
                            "notice": "Your profile was saved."}),
    ("account_notice.html", {"message": "Your profile was saved.", "account_link": True}),
    ("account_passkeys.html", {"user": SimpleNamespace(email=DYNAMIC), "csrf_token": DYNAMIC, "passkey_options": {},
                               "passkeys": [SimpleNamespace(credential_id=DYNAMIC, name=DYNAMIC, created=DYNAMIC,
                                                            last_used=DYNAMIC),
                                            SimpleNamespace(credential_id=DYNAMIC, name=DYNAMIC, created=DYNAMIC,
                                                            last_used=None)],
                               "section": "passkeys", "message": "Your passkey was renamed."}),
    ("account_passkeys.html", {"user": SimpleNamespace(email=DYNAMIC), "csrf_token": DYNAMIC, "passkeys": [],
                               "passkey_options": None}),
    ("passkey_sign_in.html", {"passkey_action": DYNAMIC, "request_id": DYNAMIC, "csrf_token": DYNAMIC,
                              "passkey_options": {}}),
    ("passkey_script.html", {"passkey_options": {}}),
    ("login.html", {"password_allowed": True, "client_name": DYNAMIC, "request_id": DYNAMIC, "csrf_token": DYNAMIC, "passkey_options": {}}),
    ("account.html", {"user": SimpleNamespace(email=DYNAMIC, name=None, given_name=None, family_name=None,
                                              locale=None), "apps": [], "csrf_token": DYNAMIC, "passkeys_on": True,
                      "passkeys": [], "passkey_options": {}}),
    ("account_email_confirm.html", {"new_email": DYNAMIC, "token": DYNAMIC, "csrf_token": DYNAMIC}),
    ("account_sign_in_methods.html", {"user": SimpleNamespace(email=DYNAMIC), "csrf_token": DYNAMIC,
                                      "methods": SimpleNamespace(totp="active", recovery_left=3, has_factor=True),
                                      "section": "totp", "message": "That is not your current password."}),
    ("account_sign_in_methods.html", {"user": SimpleNamespace(email=DYNAMIC), "csrf_token": DYNAMIC,
                                      "methods": SimpleNamespace(totp="pending", recovery_left=None, has_factor=False),
                                      "section": "recovery", "message": "That is not your current password."}),
    ("account_sign_in_methods.html", {"user": SimpleNamespace(email=DYNAMIC), "csrf_token": DYNAMIC,
                                      "methods": SimpleNamespace(totp=None, recovery_left=1, has_factor=False)}),
    ("account.html", {"user": SimpleNamespace(email=DYNAMIC, name=None, given_name=None, family_name=None,
                                              locale=None), "apps": [], "csrf_token": DYNAMIC,
                      "methods": SimpleNamespace(totp=None, recovery_left=None, has_factor=False)}),
    ("account_totp.html", {"enrolment": SimpleNamespace(svg=DYNAMIC, secret=DYNAMIC, uri=DYNAMIC),
                           "csrf_token": DYNAMIC, "message": "That code is not right. Check that the app's clock is "
                                                            "correct and enter the newest code."}),
    ("account_totp.html", {"enrolment": SimpleNamespace(svg=DYNAMIC, secret=DYNAMIC, uri=DYNAMIC),
                           "csrf_token": DYNAMIC, "request_id": DYNAMIC}),
    ("account_recovery_codes.html", {"codes": [DYNAMIC] * 10, "csrf_token": DYNAMIC,
                                     "notice": "The authenticator app was removed from your account."}),
    ("account_recovery_codes.html", {"codes": [DYNAMIC], "csrf_token": DYNAMIC, "request_id": DYNAMIC}),
    ("account_security.html", {"csrf_token": DYNAMIC, "request_id": DYNAMIC, "email": DYNAMIC,
                               "message": "That is not your current password."}),
    ("account_security.html", {"csrf_token": DYNAMIC, "request_id": DYNAMIC, "ready": True}),
    # Federation (issue 15): the sign-in page's buttons, the link page, the account page's linked sign-ins.
    ("login.html", {"password_allowed": True, "client_name": DYNAMIC, "request_id": DYNAMIC, "csrf_token": DYNAMIC,
                    "connections": [SimpleNamespace(connection_id=DYNAMIC, display_name=DYNAMIC)]}),
    ("login.html", {"password_allowed": False, "home_realm": True, "client_name": DYNAMIC, "request_id": DYNAMIC,
                    "csrf_token": DYNAMIC, "message": "This app asks you to sign in with one of the options below.",
                    "connections": [SimpleNamespace(connection_id=DYNAMIC, display_name=DYNAMIC,
                                                    icon_url="https://cdn.example/" + DYNAMIC)]}),
    ("federation_link.html", {"provider": DYNAMIC, "email": DYNAMIC, "has_password": True, "code": DYNAMIC,
                              "csrf_token": DYNAMIC, "message": "That is not the password of this account.",
                              "notice": "We sent a link to your email address. Open it in this browser, or type "
                                        "its code here."}),
    ("federation_link.html", {"provider": DYNAMIC, "email": DYNAMIC, "has_password": False, "code": "",
                              "csrf_token": DYNAMIC}),
    ("account_identities.html", {"user": SimpleNamespace(email=DYNAMIC, password_hash=DYNAMIC), "csrf_token": DYNAMIC,
                                 "identities": [SimpleNamespace(value=DYNAMIC, provider=DYNAMIC, email=DYNAMIC,
                                                                linked=DYNAMIC)],
                                 "linkable": [SimpleNamespace(connection_id=DYNAMIC, display_name=DYNAMIC)],
                                 "section": "identities", "message": "That sign-in is not linked to your account "
                                                                     "any more. Reload the page."}),
    ("account_identities.html", {"user": SimpleNamespace(email=DYNAMIC, password_hash=None), "csrf_token": DYNAMIC,
                                 "identities": [], "linkable": []}),
]


def _pseudo_translated(template: str, context: dict) -> str:
    """Render with a gettext that brackets what it translates, as a translation catalog would see it."""
    env = Environment(loader=FileSystemLoader(pages.TEMPLATES), autoescape=True, extensions=["jinja2.ext.i18n"])
    env.install_gettext_callables(lambda s: f"[[{s}]]", lambda s, p, n: f"[[{s if n == 1 else p}]]", newstyle=True)
    return env.get_template(template).render(base="", **context)


@pytest.mark.parametrize("template, context", CONTEXTS, ids=[t for t, _ in CONTEXTS])
def test_every_visible_string_of_every_template_goes_through_gettext(template, context):
    html = _pseudo_translated(template, context)
    untranslated = re.sub(r"\[\[.*?\]\]", "", html, flags=re.S)
    # A script element's content is never shown (the pages' only ones carry JSON data for passkeys.js).
    untranslated = re.sub(r"<script\b[^>]*>.*?</script>", "", untranslated, flags=re.S)
    text = re.sub(r"<[^>]*>", "", untranslated).replace(DYNAMIC, "")
    assert re.fullmatch(r"[\s,]*", text), f"text outside gettext: {text.split()}"


def test_every_template_is_covered():
    assert {t for t, _ in CONTEXTS} == {p.name for p in pages.TEMPLATES.glob("*.html")} - {"base.html"}


def test_every_kind_of_untrusted_request_has_a_fixed_message():
    assert set(UntrustedRequest.KINDS) <= set(MESSAGES)
    assert all(isinstance(m, Message) and m.title and m.body for m in MESSAGES.values())


def test_fixed_messages_have_no_format_markers():
    """New-style gettext formats every string it translates: a stray % would break the page."""
    assert not any("%" in m.title + m.body for m in MESSAGES.values())
