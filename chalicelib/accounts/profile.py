"""The profile claims a user (or an operator) may set: OIDC Core §5.1 `name`, `given_name`,
`family_name` and `locale`. Pure checks, no I/O: the account page and `idp-admin users update` both
run them before anything is written.

Names are free text (people's names have no grammar we could check), bounded in length and free
of control characters, as storage/users.py already requires of `name`: a claim ends up in ID
tokens and on pages, where a newline or an escape sequence only does harm. `locale` is a BCP 47
language tag (RFC 5646 §2.1; OIDC Core §5.1 names BCP 47), checked for the tag's shape, not
against the IANA registry: a primary language subtag of 2-3 letters (or 5-8 for registered
ones), then subtags of 1-8 letters or digits, at most 35 characters (RFC 5646 §4.4.1's longest
useful tag). A tag is stored with the case RFC 5646 §2.1.1 recommends ("en-GB", "zh-Hant-TW").
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import InvalidProfile
from ..storage.users import MAX_NAME_LENGTH

MAX_LOCALE_LENGTH = 35
_LOCALE = re.compile(r"(?:[A-Za-z]{2,3}|[A-Za-z]{5,8})(?:-[A-Za-z0-9]{1,8})*")

#: The fields of a profile, in the order forms show them.
FIELDS = ("name", "given_name", "family_name", "locale")


@dataclass(frozen=True)
class Profile:
    """A checked profile; None is "not set"."""

    name: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    locale: str | None = None


def check_name(field: str, value: str | None) -> str | None:
    """`value` stripped, None when empty; InvalidProfile when too long or with control characters
    (storage/users.clean_name, the rule of every name field)."""
    from ..storage.users import clean_name

    try:
        return clean_name(value)
    except ValueError:
        raise InvalidProfile(field, f"{field} must be at most {MAX_NAME_LENGTH} characters, without control "
                                    "characters") from None


def check_locale(value: str | None) -> str | None:
    """The BCP 47 tag in its recommended case, None when empty; InvalidProfile when not a tag."""
    value = (value or "").strip().replace("_", "-")  # "en_GB" is what POSIX locales taught people
    if not value:
        return None
    if len(value) > MAX_LOCALE_LENGTH or not _LOCALE.fullmatch(value):
        raise InvalidProfile("locale", "locale must be a BCP 47 language tag such as en, en-GB or pt-BR")
    return canonical_case(value)


def canonical_case(tag: str) -> str:
    """RFC 5646 §2.1.1: language lower case, script title case, region upper case, the rest (and
    everything after a singleton: extensions, private use) lower case."""
    parts = tag.split("-")
    out = [parts[0].lower()]
    extension = False
    for part in parts[1:]:
        extension = extension or len(part) == 1
        if not extension and len(part) == 4 and part.isalpha():
            out.append(part.title())
        elif not extension and ((len(part) == 2 and part.isalpha()) or (len(part) == 3 and part.isdigit())):
            out.append(part.upper())
        else:
            out.append(part.lower())
    return "-".join(out)


def check(*, name=None, given_name=None, family_name=None, locale=None) -> Profile:
    """Every field checked (InvalidProfile for the first that breaks a rule)."""
    return Profile(name=check_name("name", name), given_name=check_name("given_name", given_name),
                   family_name=check_name("family_name", family_name), locale=check_locale(locale))
