"""One-time links sent by email, and the code typed in their place: verification, password reset,
invitation, email change (issue 12).

A token is 128 bits from `secrets`, written in Crockford base32 (26 characters, no I/L/O/U): it goes
into the link and, grouped by `display_code`, can be typed on another device, where `normalise`
forgives case, spaces, dashes and the letters people confuse with digits. Only its SHA-256 is stored.

- `issue` writes the link (PutItem, key not taken);
- `peek` reads it for the page a GET shows. A GET never consumes: mail scanners and link previewers
  fetch links, and the user would find theirs spent;
- `consume` is the POST's single read-and-write: one conditional UpdateItem (exists, this purpose,
  unused, unexpired) with ReturnValues ALL_NEW, so two concurrent POSTs of one link have exactly one
  winner; on refusal one consistent read says why;
- `restore` puts a consumed link back when what it was consumed for could not be done (a fault),
  conditioned on this very use, so the user's retry works (chalicelib/undo.py).

Expiry is checked in the condition, not left to the TTL, which deletes expired items only eventually.
"""
from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from ..hashing import new_secret, sha256_hex
from .models import LinkModel, conditionally

PURPOSES = ("verify_email", "reset_password", "invitation", "email_change", "link_identity")
#: Crockford's base32 alphabet: digits and letters, without I, L, O and U.
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CONFUSABLE = str.maketrans({"I": "1", "L": "1", "O": "0"})
TOKEN_BITS = 130  # 26 symbols of 5 bits; at least the 128 bits issue 12 asks for
TOKEN_LENGTH = TOKEN_BITS // 5


@dataclass(frozen=True)
class Link:
    purpose: str
    email: str
    sub: str | None
    request_id: str | None
    data: dict
    created_at: int
    expires_at: int
    used_at: int | None = None


@dataclass(frozen=True)
class Refused:
    """Why a link could not be consumed: "unknown" (never issued, or another purpose's),
    "used" or "expired". `link` is what was read, for the page (None when unknown)."""

    reason: str
    link: Link | None = None


def new_token() -> str:
    number = secrets.randbits(TOKEN_BITS)
    return "".join(_ALPHABET[(number >> (5 * i)) & 31] for i in range(TOKEN_LENGTH))


def normalise(typed: str) -> str:
    """The token a user meant: upper case, separators dropped, confusable letters mapped."""
    return "".join(c for c in (typed or "").upper() if c.isalnum()).translate(_CONFUSABLE)[:64]


def display_code(token: str) -> str:
    """The token grouped for reading aloud or typing: XXXXX-XXXXX-..."""
    return "-".join(token[i:i + 5] for i in range(0, len(token), 5))


def _hash(token: str) -> str:
    return sha256_hex(normalise(token))


def _from_model(item: LinkModel) -> Link:
    return Link(purpose=item.purpose, email=item.email, sub=item.sub, request_id=item.request_id,
                data=json.loads(item.data) if item.data else {}, created_at=int(item.created_at),
                expires_at=int(item.expires_at), used_at=int(item.used_at) if item.used_at is not None else None)


def issue(purpose: str, *, email: str, at: int, ttl: int, sub: str | None = None, request_id: str | None = None,
          data: dict | None = None) -> str:
    """Store a new link; returns its token (the only copy)."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown link purpose {purpose!r}")
    token = new_token()
    item = LinkModel(link_hash=_hash(token), purpose=purpose, email=email, sub=sub, request_id=request_id,
                     data=json.dumps(data, separators=(",", ":")) if data else None, created_at=at, expires_at=at + ttl)
    # Refused only when an item has this hash already: with 130 random bits that is this very write,
    # sent again by botocore after its answer was lost, not someone else's link.
    conditionally(lambda: item.save(condition=LinkModel.link_hash.does_not_exist()))
    return token


def peek(token: str, purpose: str, at: int) -> Link | Refused:
    """The link behind `token` if it could be consumed now (for the confirmation page); nothing
    is written."""
    try:
        link = _from_model(LinkModel.get(_hash(token), consistent_read=True))
    except LinkModel.DoesNotExist:
        return Refused("unknown")
    return _judge(link, purpose, at) or link


def _judge(link: Link, purpose: str, at: int) -> Refused | None:
    if link.purpose != purpose:
        return Refused("unknown")
    if link.used_at is not None:
        return Refused("used", link)
    if link.expires_at <= at:
        return Refused("expired", link)
    return None


def consume(token: str, purpose: str, at: int) -> tuple[Link, str] | Refused:
    """Use the link: one conditional UpdateItem. Returns (link, use_id) for `restore`, or why not."""
    link_hash = _hash(token)
    use_id = new_secret(12)
    item = LinkModel(link_hash=link_hash)
    if conditionally(lambda: item.update(
            actions=[LinkModel.used_at.set(at), LinkModel.use_id.set(use_id)],
            condition=(LinkModel.link_hash.exists() & (LinkModel.purpose == purpose)
                       & LinkModel.used_at.does_not_exist() & (LinkModel.expires_at > at)))):
        return _from_model(item), use_id
    try:
        existing = LinkModel.get(link_hash, consistent_read=True)
    except LinkModel.DoesNotExist:
        return Refused("unknown")
    if existing.use_id == use_id:
        return _from_model(existing), use_id  # our own write, retried by botocore after a lost answer
    return _judge(_from_model(existing), purpose, at) or Refused("used", _from_model(existing))


def restore(token: str, use_id: str) -> bool:
    """Make a consumed link usable again, if `use_id` consumed it (the undo of a failed use)."""
    item = LinkModel(link_hash=_hash(token))
    return conditionally(lambda: item.update(actions=[LinkModel.used_at.remove(), LinkModel.use_id.remove()],
                                             condition=LinkModel.use_id == use_id))
