"""Hosted HTML pages: Jinja2 templates (autoescaped, every string translatable) and the security headers
every page carries. What the pages may say when something goes wrong is in `messages`."""
from __future__ import annotations

import functools
from pathlib import Path

from .. import caches

TEMPLATES = Path(__file__).parent / "templates"


@functools.lru_cache(maxsize=1)
def _environment():
    # Imported on first render only: discovery, token and JWKS requests never pay for Jinja2.
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.i18n"])
    # Every visible string goes through gettext (`_()`, `{% trans %}`), English for now; a Babel
    # catalog can replace the null translations later. New-style gettext escapes the values
    # formatted into a translated string, like any other autoescaped output.
    env.install_null_translations(newstyle=True)
    return env


caches.register("pages", _environment.cache_clear, kind="memo")


def security_headers(form_targets: list[str] | None = None) -> dict:
    """Headers for every hosted page.

    `form-action` lists where our forms may lead: Chromium applies it to the redirect that follows
    a form post too, so the client's redirect origin must be named when a form ends in a redirect.
    `Referrer-Policy: no-referrer` keeps request ids out of every Referer; it also makes browsers
    post `Origin: null` from our own forms, which is why the form check reads Sec-Fetch-Site first
    (chalicelib/blueprints/authorize.py).
    """
    form_action = " ".join(["'self'", *(form_targets or [])])
    return {
        "Content-Type": "text/html; charset=utf-8",
        "Content-Security-Policy": (
            "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; "
            f"form-action {form_action}; frame-ancestors 'none'"
        ),
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
        "Pragma": "no-cache",
    }


def render(template: str, *, locale: str | None = None, **context) -> str:
    """Render `template` (an .html page or an email's .html/.txt part). `locale`: the language to
    render in; None is the request's (English until the message catalog lands)."""
    return _environment().get_template(template).render(**context)


def translate(text: str, *, locale: str | None = None) -> str:
    """One fixed string (marked N_) in `locale`, e.g. an email's subject line."""
    return text  # null translations until the message catalog lands


def stylesheet() -> str:
    return (TEMPLATES / "idp.css").read_text()
