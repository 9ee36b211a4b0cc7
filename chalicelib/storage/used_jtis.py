"""JWTs that may be used once: client assertions (RFC 7523 §3 item 7: "the authorization server MAY
ensure that JWTs are not replayed"; we do), ID-JAGs redeemed with the JWT bearer grant, and later DPoP
proofs (RFC 9449 §11.1).

Using one is one conditional PutItem, never a read first: of 32 requests racing with the same JWT
exactly one writes the item. The key hashes the issuer with the `jti`, since two issuers may pick the
same `jti` (RFC 7519 §4.1.7 makes it unique per issuer only); the item lives until the JWT expires,
after which its `exp` refuses it anyway, and TTL removes it.
"""
from __future__ import annotations

import hashlib

from ..hashing import new_secret
from .models import UsedJtiModel, conditionally

#: What a used JWT was; part of the key, so one kind's `jti` never blocks another's.
KINDS = ("client_assertion", "id_jag", "dpop")


def key(kind: str, issuer: str, jti: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}")
    digest = hashlib.sha256(f"{issuer}\0{jti}".encode("utf-8")).hexdigest()
    return f"used#{kind}#{digest}"


def use(kind: str, issuer: str, jti: str, expires_at: int) -> bool:
    """True when this is the first use of (issuer, jti) of this kind; False for a replay.

    The condition also accepts the item this very call wrote: botocore resends a PutItem whose answer
    was lost, and the resend must not call the original a replay."""
    claim = new_secret(16)
    item = UsedJtiModel(jti=key(kind, issuer, jti), claim=claim, expires_at=int(expires_at))
    return conditionally(lambda: item.save(
        condition=UsedJtiModel.jti.does_not_exist() | (UsedJtiModel.claim == claim)))
