"""Reading the local outbox: the .eml copies chalicelib/mail.py writes when OUTBOX_DIR is set (`make run`
points it at <state dir>/outbox).

Parsed with the stdlib `email` package (policy.default: headers decoded, RFC 2047 encoded words
included), so what is shown is what a mail client would show. Used by `./idp-admin outbox list|show`
and the demo app's "Emails" page. Messages are numbered newest first: 1 is the latest.
"""
from __future__ import annotations

import re
from email import policy
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from pathlib import Path

#: Links in a plain-text body: http(s) URLs up to whitespace or a closing bracket/quote.
_LINK = re.compile(r"https?://[^\s<>\"')\]]+")


def newest_first(directory: Path) -> list[Path]:
    from chalicelib.mail import outbox

    return list(reversed(outbox(directory)))


def read(path: Path):
    with open(path, "rb") as handle:
        return BytesParser(policy=policy.default).parse(handle)


def summary(number: int, path: Path) -> dict:
    """One line of `outbox list`: number, date (ISO 8601, UTC as sent), to, subject."""
    message = read(path)
    return {"number": number, "date": _iso_date(message["Date"]), "to": str(message["To"] or ""),
            "subject": str(message["Subject"] or "")}


def details(number: int, path: Path) -> dict:
    """`outbox show`: the headers a reader cares about, the text/plain part, and every link in it."""
    message = read(path)
    part = message.get_body(preferencelist=("plain",))
    text = part.get_content() if part is not None else ""
    return {"number": number, "file": str(path), "date": _iso_date(message["Date"]),
            "from": str(message["From"] or ""), "to": str(message["To"] or ""),
            "subject": str(message["Subject"] or ""), "text": text, "links": links(text)}


def links(text: str) -> list[str]:
    """The URLs in a plain-text body, in order, each once (a trailing full stop is the sentence's)."""
    return list(dict.fromkeys(link.rstrip(".,;:") for link in _LINK.findall(text)))


def _iso_date(value) -> str:
    try:
        return parsedate_to_datetime(str(value)).isoformat()
    except (TypeError, ValueError):
        return str(value or "")
