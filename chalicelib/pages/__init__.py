"""Hosted HTML pages: Jinja2 templates (autoescaped, every string translatable) and the security headers
every page carries. What the pages may say when something goes wrong is in `messages`.

Every template is rendered in one locale (chalicelib/i18n.py): by default the current request's, or
the one a caller names, `render("email/verify.txt", locale="de", ...)`, as an email to a user is
written in the user's language, not that of whoever's request sends it. Templates get `lang` (the
locale, for `<html lang>`); templates ending in .html are autoescaped, others (plain-text email
bodies) are not."""
from __future__ import annotations

import functools
from pathlib import Path

from .. import caches, i18n
from ..capabilities import UI_LOCALES

TEMPLATES = Path(__file__).parent / "templates"


#: The Environment options that matter to the text of a {% trans %} block: babel.cfg's Jinja2
#: extraction uses the same, so the msgids extracted are the ones looked up.
ENVIRONMENT_OPTIONS = {"trim_blocks": True, "lstrip_blocks": True, "extensions": ["jinja2.ext.i18n"]}


@functools.lru_cache(maxsize=None)
def _environment(locale: str):
    """One Environment per locale, its catalog installed once: rendering in two languages at once
    (threads of `chalice local`) never switches a shared Environment's translations under another."""
    # Imported on first render only: discovery, token and JWKS requests never pay for Jinja2.
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                      **ENVIRONMENT_OPTIONS)
    # Every visible string goes through gettext (`_()`, `{% trans %}`). New-style gettext escapes the
    # values formatted into a translated string, like any other autoescaped output.
    env.install_gettext_translations(i18n.translations(locale), newstyle=True)
    return env


caches.register("pages", _environment.cache_clear, kind="memo")


def security_headers(form_targets: list[str] | None = None, *, locale: str | None = None,
                     scripts: bool = False, image_sources: list[str] | None = None) -> dict:
    """Headers for every hosted page, `Content-Language` (RFC 9110 §8.5) naming the locale it is
    rendered in (by default the current request's, as `render`'s).

    `form-action` lists where our forms may lead: Chromium applies it to the redirect that follows
    a form post too, so the client's redirect origin must be named when a form ends in a redirect.
    `Referrer-Policy: no-referrer` keeps request ids out of every Referer; it also makes browsers
    post `Origin: null` from our own forms, which is why the form check reads Sec-Fetch-Site first
    (chalicelib/blueprints/authorize.py).

    `scripts`: the page runs the passkey ceremony (static/passkeys.js), so `script-src 'self'`: our
    own static files only, never inline script, so injected markup cannot run. Data for it travels
    in `<script type="application/json">`, which browsers do not execute. Every other page allows
    no script at all (default-src 'none').

    `image_sources`: origins of images the page shows besides our own (an upstream connection's
    icon on its sign-in button), each named exactly rather than any https image.
    """
    form_action = " ".join(["'self'", *(form_targets or [])])
    return {
        "Content-Type": "text/html; charset=utf-8",
        "Content-Security-Policy": (
            "default-src 'none'; " + ("script-src 'self'; " if scripts else "")
            + "style-src 'self'; img-src " + " ".join(["'self'", *(image_sources or [])]) + "; base-uri 'none'; "
            f"form-action {form_action}; frame-ancestors 'none'"
        ),
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
        "Pragma": "no-cache",
        "Content-Language": i18n.resolve(locale),
    }


def render(template: str, *, locale: str | None = None, **context) -> str:
    """`template` rendered with `context` in `locale`, by default the current request's
    (i18n.current()). `locale` may be any BCP47 tag (a user's `locale` claim, "de-AT"): the best
    supported match is used, else English. The template sees the locale used as `lang`."""
    locale = i18n.resolve(locale)
    return _environment(locale).get_template(template).render(lang=locale, **context)


def translate(text: str, *, locale: str | None = None) -> str:
    """One fixed string (marked N_) in `locale` (as `render`'s), e.g. an email's subject line. Plain
    text, not markup: a caller that puts it into a page lets autoescaping escape it."""
    locale = i18n.resolve(locale)
    return i18n.translations(locale).gettext(text)


def compile_templates() -> None:
    """Compile every template (pages and emails, .html and .txt) in every locale: a SnapStart init
    (chalicelib/runtime.py) keeps them all in the snapshot."""
    for locale in UI_LOCALES:
        environment = _environment(locale)
        for path in TEMPLATES.rglob("*"):
            if path.suffix in (".html", ".txt"):
                environment.get_template(path.relative_to(TEMPLATES).as_posix())


def stylesheet() -> str:
    return (TEMPLATES / "idp.css").read_text()


STATIC = Path(__file__).parent / "static"


def script(name: str) -> str:
    """A static script of the pages (static/<name>), e.g. passkeys.js."""
    return (STATIC / name).read_text()
