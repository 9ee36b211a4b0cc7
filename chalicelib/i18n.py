"""Which language a hosted page or an email speaks, and its translations.

The choice, in order (a pure function, `negotiate`):
1. OIDC Core §3.1.2.1 `ui_locales`: the app's wish, "space-separated list of BCP47 language tag
   values, ordered by preference". /authorize keeps the locale it picks on the pending request, so
   every later page of that sign-in (login, consent, errors) speaks it too.
2. RFC 9110 §12.5.4 `Accept-Language`: the browser's list, weighted by q-values.
3. English, the language the messages are written in (the msgids of the catalog).

A tag matches a supported locale by RFC 4647 §3.4 lookup: the tag, then the tag with its last
subtag dropped, and so on (de-AT-1996 -> de-AT -> de). Both inputs come from strangers, so a
malformed tag or weight is skipped, never an error, and only the first MAX_RANGES entries are read.

Why no library for the parsing: Babel's negotiate_locale matches but parses no q-values, and Babel
with its CLDR data is far too big for the Lambda (it is a development tool here: catalog
extraction and compilation, `make messages`); werkzeug's parser would bring a web framework along
for twenty lines; the small dedicated packages are unmaintained. At run time the compiled catalogs
(locales/<lang>/LC_MESSAGES/messages.mo) are read by the standard library's gettext.

The locale of the request being handled lives in a context variable: chalicelib/web.py's wrapper
starts each request with its Accept-Language (`begin_request`), a view that knows better (the
pending request's ui_locales) calls `prefer`, and pages read `current()`.
"""
from __future__ import annotations

import contextvars
import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING

from . import caches
from .capabilities import UI_LOCALES

if TYPE_CHECKING:
    import gettext

#: The language of the msgids; no catalog of its own.
SOURCE_LOCALE = "en"
LOCALES_DIR = Path(__file__).parent / "locales"
DOMAIN = "messages"
#: Language ranges read from one header or parameter: a real browser sends a handful.
MAX_RANGES = 20

#: RFC 5646 §2.1 shape, loosely: alphanumeric subtags of 1-8 characters (the first alphabetic)
#: joined by "-"; "_" is read as "-" since some clients send POSIX-style "de_DE".
_TAG = re.compile(r"[a-z]{1,8}(?:-[a-z0-9]{1,8})*")
#: RFC 9110 §12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
_QVALUE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")


def _lookup(tag: str, supported: tuple[str, ...]) -> str | None:
    """RFC 4647 §3.4 lookup of one well-formed, lower-cased tag: progressively truncated."""
    while tag:
        if tag in supported:
            return tag
        tag = tag.rpartition("-")[0]
        # §3.4: a single-character subtag (an extension or private-use singleton) goes with the next.
        if len(tag) >= 2 and tag[-2] == "-":
            tag = tag[:-2]
    return None


def _normalized(tag: str) -> str | None:
    tag = tag.strip().lower().replace("_", "-")
    return tag if _TAG.fullmatch(tag) else None


def from_ui_locales(value: str | None, supported: tuple[str, ...] = UI_LOCALES) -> str | None:
    """The first supported locale of an OIDC `ui_locales` value (OIDC Core §3.1.2.1: space-separated
    BCP47 tags, most preferred first), or None when it names none: a hint, never an error."""
    if not value or not isinstance(value, str):
        return None
    for raw in [tag for tag in value.split(" ") if tag][:MAX_RANGES]:
        tag = _normalized(raw)
        found = _lookup(tag, supported) if tag else None
        if found:
            return found
    return None


def from_accept_language(header: str | None, supported: tuple[str, ...] = UI_LOCALES) -> str | None:
    """The supported locale an RFC 9110 §12.5.4 Accept-Language header prefers, or None.

    Ranges are taken by descending weight, ties in header order (§12.4.2); `q=0` means "not
    acceptable" and is never chosen; "*" stands for any language, so it picks the source locale when
    that is supported. An entry with a malformed tag or weight is skipped."""
    if not header or not isinstance(header, str):
        return None
    # RFC 9110 §5.6.1: empty list elements are ignored (and not counted).
    entries = [entry for entry in header.split(",") if entry.strip(" \t")][:MAX_RANGES]
    ranges = []
    for position, entry in enumerate(entries):
        tag, *params = entry.split(";")
        tag = tag.strip()
        tag = "*" if tag == "*" else _normalized(tag)
        weight = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                value = value.strip()
                weight = float(value) if _QVALUE.fullmatch(value) else -1.0
        if tag and weight > 0:
            ranges.append((-weight, position, tag))
    for _, _, tag in sorted(ranges):
        found = (SOURCE_LOCALE if SOURCE_LOCALE in supported else None) if tag == "*" else _lookup(tag, supported)
        if found:
            return found
    return None


def negotiate(ui_locales: str | None, accept_language: str | None, supported: tuple[str, ...] = UI_LOCALES) -> str:
    """The locale to speak: `ui_locales` first, then `Accept-Language`, else the source locale."""
    return from_ui_locales(ui_locales, supported) or from_accept_language(accept_language, supported) \
        or SOURCE_LOCALE


# The request being handled ------------------------------------------------------------------------

#: (locale preferred by the authorization request or None, the request's Accept-Language header).
_request: contextvars.ContextVar[tuple[str | None, str | None]] = contextvars.ContextVar(
    "request_language", default=(None, None))


def begin_request(accept_language: str | None) -> contextvars.Token:
    """Start a request (chalicelib/web.py): only the header is kept; it is parsed when a page needs it,
    so API requests pay nothing. Pass the token to `end_request`."""
    return _request.set((None, accept_language))


def end_request(token: contextvars.Token) -> None:
    _request.reset(token)


def prefer(locale: str | None) -> None:
    """Speak `locale` (a supported one, e.g. a pending request's ui_locale) for the rest of this
    request, whatever its Accept-Language says; None changes nothing."""
    if locale in UI_LOCALES:
        _request.set((locale, _request.get()[1]))


def current() -> str:
    """The locale of the request being handled."""
    preferred, accept_language = _request.get()
    return preferred or from_accept_language(accept_language) or SOURCE_LOCALE


def resolve(locale: str | None) -> str:
    """The supported locale to use for `locale`, any BCP47 tag (a user's `locale` claim): its best
    match, else the source locale; None means the current request's."""
    return negotiate(locale, None) if locale else current()


# Catalogs -----------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def translations(locale: str) -> "gettext.NullTranslations":
    """The compiled catalog of a supported locale (the source locale translates to itself). A
    missing .mo file raises: it is a packaging fault, and tests/unit/test_i18n_catalogs.py checks it."""
    if locale not in UI_LOCALES:
        raise ValueError(f"unsupported locale {locale!r}; supported: {UI_LOCALES}")
    import gettext  # on the first page only: API requests never pay for it
    if locale == SOURCE_LOCALE:
        return gettext.NullTranslations()
    with open(LOCALES_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.mo", "rb") as mo:
        return gettext.GNUTranslations(mo)


caches.register("i18n", translations.cache_clear, kind="memo")
