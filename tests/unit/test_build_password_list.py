"""tools/build_password_list.py: the bundled list is rebuilt from a small sample (no network) exactly
as the docstring says, and the lookup finds every kept entry, first and last records included."""
from __future__ import annotations

import hashlib
import unicodedata

import pytest

from chalicelib import password_policy
from tools import build_password_list
from tools.build_password_list import build, main

SAMPLE = [
    "123456",            # shorter than 8: the length rule refuses it already, not kept
    "password",
    "12345678",
    "Password",          # the same record as "password" once case folded: not counted twice
    "\uff49\uff4c\uff4f\uff56\uff45\uff59\uff4f\uff55",  # fullwidth "iloveyou": NFKC + casefold
    "with space",
    "qwertyuiop",
    "sunshine1",         # past the 5 entries asked for below: not kept
    "football",
]


def expected_records(passwords: list[str]) -> bytes:
    """The documented format, derived independently: sorted 5-byte SHA-256 prefixes of NFKC + casefold."""
    def record(p):
        folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", p).casefold())
        return hashlib.sha256(folded.encode("utf-8")).digest()[:5]
    return b"".join(sorted(record(p) for p in passwords))


def test_the_build_keeps_the_first_distinct_entries_of_at_least_8_characters_sorted():
    assert build(SAMPLE, entries=5) == expected_records(
        ["password", "12345678", "iloveyou", "with space", "qwertyuiop"])


def test_the_build_is_reproducible_byte_for_byte():
    assert build(SAMPLE, entries=5) == build(list(SAMPLE), entries=5)


def test_a_source_too_small_for_the_entries_asked_is_an_error():
    with pytest.raises(ValueError, match="only 7 usable passwords, 8 wanted"):
        build(SAMPLE, entries=8)


def test_main_writes_the_file_from_a_source_file_and_the_lookup_finds_every_entry(tmp_path, monkeypatch, capsys):
    source = tmp_path / "list.txt"
    source.write_bytes("\r\n".join(SAMPLE).encode("utf-8") + b"\n")
    output = tmp_path / "common_passwords.bin"
    assert main([str(source), "--output", str(output), "--entries", "5", "--any-source"]) == 0
    assert output.read_bytes() == build(SAMPLE, entries=5)
    assert "5 records, 25 bytes" in capsys.readouterr().out

    monkeypatch.setattr(password_policy, "COMMON_PASSWORDS", output)
    password_policy._common_passwords.cache_clear()
    try:
        for kept in ["password", "PASSWORD", "12345678", "iloveyou", "with space", "qwertyuiop"]:
            assert password_policy.is_common(kept), kept
        for not_kept in ["sunshine1", "football", "with  space", "qwertyuio", ""]:
            assert not password_policy.is_common(not_kept), not_kept
    finally:
        password_policy._common_passwords.cache_clear()


def test_main_refuses_a_source_other_than_the_documented_one(tmp_path, capsys):
    source = tmp_path / "list.txt"
    source.write_text("\n".join(SAMPLE))
    output = tmp_path / "common_passwords.bin"
    assert main([str(source), "--output", str(output), "--entries", "5"]) == 2
    assert "not the documented source's" in capsys.readouterr().err
    assert not output.exists()


def test_the_bundled_file_is_the_documented_builds_output():
    data = password_policy.COMMON_PASSWORDS.read_bytes()
    assert hashlib.sha256(data).hexdigest() == build_password_list.OUTPUT_SHA256
    assert len(data) == build_password_list.ENTRIES * password_policy.RECORD_BYTES
