"""The message catalog (chalicelib/i18n.py, babel.cfg, `make messages`): every string the sources mark is
translated in every shipped language, the compiled .mo files the Lambda reads are exactly what their .po
files compile to, and no translation breaks a placeholder or the markup around one.

The strings are extracted from the sources here, at test time, with babel.cfg: a string added without a
translation fails this test, not a German user's page (which would silently show English).
"""
from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from chalicelib import i18n
from chalicelib.capabilities import UI_LOCALES

ROOT = Path(__file__).resolve().parents[2]
TRANSLATED = [locale for locale in UI_LOCALES if locale != i18n.SOURCE_LOCALE]


def extracted_msgids(root: Path = ROOT) -> set[str]:
    """Every msgid babel.cfg extracts under `root`, as `make messages` would (keywords from babel.cfg)."""
    with open(ROOT / "babel.cfg") as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    return {message if isinstance(message, str) else message[0]
            for _, _, message, _, _ in extract_from_dir(str(root), method_map, options_map)}


def po_path(locale: str) -> Path:
    return i18n.LOCALES_DIR / locale / "LC_MESSAGES" / f"{i18n.DOMAIN}.po"


def catalog(locale: str):
    with open(po_path(locale), "rb") as po:
        return read_po(po, locale=locale)


def untranslated(msgids: set[str], po_catalog) -> list[str]:
    """The msgids with no usable translation: absent, empty or fuzzy (fuzzy ones are not compiled)."""
    return sorted(msgid for msgid in msgids
                  if (m := po_catalog.get(msgid)) is None or not m.string or m.fuzzy)


@pytest.fixture(scope="module")
def msgids() -> set[str]:
    return extracted_msgids()


def test_the_sources_mark_the_strings_of_python_modules_and_templates(msgids):
    assert "Incorrect email or password." in msgids                        # N_ in pages/messages.py
    assert "See your email address" in msgids                              # N_ in oauth/scopes.py
    assert "Allow %(client_name)s?" in msgids                              # {% trans %} in consent.html
    assert "Password" in msgids                                            # _() in login.html


def test_each_translated_locale_has_a_catalog_and_each_catalog_is_offered():
    assert {p.name for p in i18n.LOCALES_DIR.iterdir() if p.is_dir()} == set(TRANSLATED)
    assert TRANSLATED, "English and at least one more language"


@pytest.mark.parametrize("locale", TRANSLATED)
def test_every_extracted_string_is_translated(locale, msgids):
    missing = untranslated(msgids, catalog(locale))
    assert not missing, f"untranslated in {po_path(locale)} (run `make messages`, then translate): {missing}"


@pytest.mark.parametrize("locale", TRANSLATED)
def test_the_catalog_header_is_not_fuzzy(locale):
    """pybabel compile skips a catalog whose header is fuzzy: the language would silently be English."""
    assert not catalog(locale).fuzzy


def test_a_string_added_without_a_translation_fails_the_check(tmp_path):
    template = tmp_path / "chalicelib" / "pages" / "templates" / "email" / "new.txt"
    template.parent.mkdir(parents=True)
    template.write_text('{{ _("A string nobody translated yet") }}\n{% trans %}Hello {{ name }}{% endtrans %}\n')
    module = tmp_path / "chalicelib" / "feature.py"
    module.write_text('from chalicelib.pages.messages import N_\nNOTICE = N_("Another new notice")\n')
    msgids = extracted_msgids(tmp_path)
    assert msgids == {"A string nobody translated yet", "Hello %(name)s", "Another new notice"}
    assert untranslated(msgids, catalog("de")) == sorted(msgids)


def test_a_template_that_does_not_parse_fails_extraction_rather_than_losing_its_strings(tmp_path):
    template = tmp_path / "chalicelib" / "pages" / "templates" / "broken.html"
    template.parent.mkdir(parents=True)
    template.write_text('{{ _("Sign in") }}{% if %}')
    with pytest.raises(Exception, match="(?i)expected an expression|syntax"):
        extracted_msgids(tmp_path)


@pytest.mark.parametrize("locale", TRANSLATED)
def test_the_compiled_catalog_is_exactly_what_its_po_compiles_to(locale):
    """The Lambda reads the committed .mo; it must never drift from the .po reviewers read."""
    compiled = io.BytesIO()
    write_mo(compiled, catalog(locale), use_fuzzy=False)
    committed = (i18n.LOCALES_DIR / locale / "LC_MESSAGES" / f"{i18n.DOMAIN}.mo").read_bytes()
    assert committed == compiled.getvalue(), f"stale .mo for {locale}: run `make messages` and commit both"


#: What a translation must keep exactly: new-style gettext %-formats every string (a stray "%" breaks
#: the page), and markup tags in a msgid wrap a placeholder the page relies on.
_PLACEHOLDER = re.compile(r"%(?:\([^)]*\))?[a-z%]")
_TAG = re.compile(r"<[^>]*>")


def source_and_translation_pairs(message) -> list[tuple[str, str]]:
    """(msgid, msgstr) to compare; a plural entry's forms each against the msgid form of the same index
    (msgid for the first, msgid_plural for the rest: languages with more forms than English)."""
    if not message.pluralizable:
        return [(message.id, message.string)]
    return [(message.id[min(index, 1)], form) for index, form in enumerate(message.string)]


@pytest.mark.parametrize("locale", TRANSLATED)
def test_translations_keep_every_placeholder_and_tag_of_their_msgid(locale):
    for message in catalog(locale):
        if not message.id:
            continue
        for source, string in source_and_translation_pairs(message):
            assert sorted(_PLACEHOLDER.findall(string)) == sorted(_PLACEHOLDER.findall(source)), source
            assert "%" not in _PLACEHOLDER.sub("", string), source
            assert sorted(_TAG.findall(string)) == sorted(_TAG.findall(source)), source


def test_a_plural_entry_is_checked_form_by_form():
    from babel.messages.catalog import Message

    plural = Message(("%(count)s day", "%(count)s days"), ("%(count)s Tag", "Tage"))
    assert source_and_translation_pairs(plural) == [("%(count)s day", "%(count)s Tag"),
                                                    ("%(count)s days", "Tage")]


@pytest.mark.parametrize("locale", TRANSLATED)
def test_the_runtime_reads_the_compiled_catalog(locale):
    import gettext

    translations = i18n.translations(locale)
    po_catalog = catalog(locale)
    plural_index = gettext.c2py(po_catalog.plural_expr)
    for message in po_catalog:
        if not message.id:
            continue
        if message.pluralizable:
            for n in range(0, 102):
                assert translations.ngettext(*message.id, n) == message.string[plural_index(n)], (message.id, n)
        else:
            assert translations.gettext(message.id) == message.string


def test_templates_are_extracted_with_the_whitespace_options_they_are_rendered_with():
    """trim_blocks/lstrip_blocks change a {% trans %} block's text: extracted and looked-up msgids must agree."""
    from chalicelib.pages import ENVIRONMENT_OPTIONS

    with open(ROOT / "babel.cfg") as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    templates = [pattern for pattern, method in method_map if method == "jinja2"]
    assert {"chalicelib/pages/templates/**.html", "chalicelib/pages/templates/**.txt"} <= set(templates)
    for pattern in templates:
        options = options_map[pattern]
        for name in ("trim_blocks", "lstrip_blocks"):
            assert (options.get(name, "false").lower() == "true") == ENVIRONMENT_OPTIONS[name], (pattern, name)
        assert options["extensions"] == ",".join(ENVIRONMENT_OPTIONS["extensions"])
