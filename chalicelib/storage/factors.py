"""Second factors and passkeys: the `factors` table, and the summary of them on the user item.

A user's factors are items keyed (sub, factor_id) — "passkey#<credential id>", "totp", "recovery"
— and the user item's `factors` set names each one ("passkey#<id>", "totp", "recovery"). Every
write that adds or removes a factor changes both in one transaction, so the sign-in path, which
reads the user anyway, knows whether to ask for a second factor and which passkeys to allow
without a Query.

Using a factor is single-use by construction, each a conditional write in the transaction that
signs in or steps up (storage/sign_ins.py, storage/sessions.py), contributed as a TxItem:
- a TOTP code: `last_step` moves forward only (`totp_step`): a time step is accepted once
  (RFC 6238 §5.2), whoever sends it;
- a recovery code: its hash is removed from the set only if it is still there (`recovery_use`);
- a passkey: its signature counter is written only over the value read (`passkey_use`), and the
  WebAuthn challenge is marked used only if it was not (`challenge_used`).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..hashing import sha256_hex
from ..log import now
from .models import FactorModel, UsedChallengeModel, UserModel
from .transactions import Refused, TxItem, write

PASSKEY, TOTP, RECOVERY = "passkey", "totp", "recovery"
PASSKEY_PREFIX = PASSKEY + "#"
CHALLENGE_PREFIX = "challenge#"
#: At most this many passkeys per user: keeps the user item (which names each) small.
MAX_PASSKEYS = 20


@dataclass(frozen=True)
class Factor:
    sub: str
    factor_id: str
    kind: str
    created_at: int
    name: str | None = None
    last_used_at: int | None = None
    # passkey
    public_key: str | None = None  # COSE_Key, base64url
    sign_count: int = 0
    transports: tuple[str, ...] = ()
    backup_eligible: bool = False
    # totp
    sealed_secret: str | None = None
    pending: bool = False
    started_by: str | None = None
    last_step: int | None = None
    # recovery codes
    code_hashes: frozenset = frozenset()

    @property
    def credential_id(self) -> str | None:
        """A passkey's credential id (base64url)."""
        return self.factor_id[len(PASSKEY_PREFIX):] if self.kind == PASSKEY else None


def from_model(item: FactorModel | None) -> Factor | None:
    if item is None:
        return None
    return Factor(sub=item.sub, factor_id=item.factor_id, kind=item.kind, created_at=int(item.created_at),
                  name=item.name, last_used_at=int(item.last_used_at) if item.last_used_at is not None else None,
                  public_key=item.public_key, sign_count=int(item.sign_count or 0),
                  transports=tuple(item.transports or ()), backup_eligible=bool(item.backup_eligible),
                  sealed_secret=item.sealed_secret, pending=bool(item.pending), started_by=item.started_by,
                  last_step=int(item.last_step) if item.last_step is not None else None,
                  code_hashes=frozenset(item.code_hashes or ()))


def passkey_id(credential_id: str) -> str:
    return PASSKEY_PREFIX + credential_id


def kinds(entries) -> tuple[str, ...]:
    """The kinds of factor a user's `factors` set names, sorted ("passkey", "recovery", "totp")."""
    return tuple(sorted({entry.split("#", 1)[0] for entry in entries or ()}))


def passkey_ids(entries) -> list[str]:
    """The credential ids (base64url) of the passkeys a user's `factors` set names."""
    return sorted(entry[len(PASSKEY_PREFIX):] for entry in entries or () if entry.startswith(PASSKEY_PREFIX))


def of_user(sub: str) -> list[Factor]:
    """Every factor item of the user (enrolments in progress included): one consistent Query."""
    return [from_model(item) for item in FactorModel.query(sub, consistent_read=True)]


def passkeys(sub: str) -> list[Factor]:
    """The user's passkeys, oldest first (the account page's list): one strongly consistent Query of
    the "passkey#" range."""
    found = [from_model(item) for item in
             FactorModel.query(sub, FactorModel.factor_id.startswith(PASSKEY_PREFIX), consistent_read=True)]
    return sorted(found, key=lambda factor: (factor.created_at, factor.factor_id))


def get(sub: str, factor_id: str) -> Factor | None:
    try:
        return from_model(FactorModel.get(sub, factor_id, consistent_read=True))
    except FactorModel.DoesNotExist:
        return None


def _user_entry(sub: str, entry: str, *, add: bool, label: str = "user") -> TxItem:
    """Add `entry` to (or remove it from) the user's `factors` set, on condition the user exists and
    is enabled (a disabled or deleted user gains no factor; removing needs only that it exists)."""
    return _user_entries(sub, [entry], add=add, label=label)


def _user_entries(sub: str, entries, *, add: bool, label: str = "user") -> TxItem:
    """`_user_entry` for several entries in one update (a transaction may touch an item once)."""
    enabled = UserModel.disabled.does_not_exist() | (UserModel.disabled == False)  # noqa: E712
    condition = UserModel.pk.exists() & enabled if add else UserModel.pk.exists()
    action = UserModel.factors.add(set(entries)) if add else UserModel.factors.delete(set(entries))
    return TxItem("update", label, lambda tx: tx.update(
        UserModel(pk=sub), actions=[action, UserModel.updated_at.set(now())], condition=condition))


def write_with_session(items, session_item: TxItem) -> bool:
    """Write a factor change (`items`) together with the update of the session it was made in
    (storage/sessions.factors_item), in one transaction. False when the session is no longer live
    (nothing written); Refused naming the factor's own items when one of theirs refused."""
    try:
        write([*items, session_item])
    except Refused as refused:
        if refused.labels - {session_item.label}:
            raise Refused(refused.labels - {session_item.label}) from None
        return False
    return True


def challenge_used(challenge: str, expires_at: int) -> TxItem:
    """Mark a WebAuthn challenge answered, on condition it was not: each challenge works once."""
    item = UsedChallengeModel(session_hash=CHALLENGE_PREFIX + sha256_hex(challenge), expires_at=expires_at)
    return TxItem("put", "challenge",
                  lambda tx: tx.save(item, condition=UsedChallengeModel.session_hash.does_not_exist()))


# Passkeys ---------------------------------------------------------------------------------------

def add_passkey(sub: str, *, credential_id: str, public_key: str, sign_count: int, transports, backup_eligible: bool,
                name: str, challenge: str, challenge_expires_at: int, extra=()) -> bool:
    """Register a passkey: its item, its entry on the user, its registration challenge marked used,
    and `extra` items (the session's factor kinds), in one transaction. False when the credential
    is already registered, the challenge was used, the user is gone or disabled, or an `extra`
    item refused (nothing is written)."""
    at = now()
    item = FactorModel(sub=sub, factor_id=passkey_id(credential_id), kind=PASSKEY, name=name, created_at=at,
                       public_key=public_key, sign_count=sign_count, transports=list(transports) or None,
                       backup_eligible=backup_eligible)
    try:
        write([TxItem("put", "factor", lambda tx: tx.save(item, condition=FactorModel.sub.does_not_exist())),
               _user_entry(sub, passkey_id(credential_id), add=True),
               challenge_used(challenge, challenge_expires_at), *extra])
    except Refused:
        return False
    return True


def rename(sub: str, factor_id: str, name: str) -> bool:
    item = FactorModel(sub=sub, factor_id=factor_id)
    from .models import conditionally

    return conditionally(lambda: item.update(actions=[FactorModel.name.set(name)],
                                             condition=FactorModel.sub.exists()))


def passkey_use(sub: str, factor_id: str, *, read_count: int, new_count: int) -> TxItem:
    """Record a passkey's use: its new signature counter (WebAuthn §6.1.1), written only over the
    value the verification read, so two assertions racing with one counter value cannot both pass."""
    return TxItem("update", "passkey", lambda tx: tx.update(
        FactorModel(sub=sub, factor_id=factor_id),
        actions=[FactorModel.sign_count.set(new_count), FactorModel.last_used_at.set(now())],
        condition=FactorModel.sub.exists() & (FactorModel.sign_count == read_count)))


# TOTP -------------------------------------------------------------------------------------------

def start_totp(sub: str, sealed_secret: str, *, started_by: str | None = None) -> bool:
    """Begin a TOTP enrolment: a pending item with a new sealed secret, replacing an earlier pending
    one but never an active factor (that is removed first). `started_by`: the hash of the session
    that started it, the only one that may see and confirm it. False when one is active."""
    from .models import conditionally

    item = FactorModel(sub=sub, factor_id=TOTP, kind=TOTP, created_at=now(), sealed_secret=sealed_secret,
                       pending=True, started_by=started_by)
    return conditionally(lambda: item.save(condition=FactorModel.sub.does_not_exist()
                                           | (FactorModel.pending == True)))  # noqa: E712


def totp_activation(sub: str, step: int, *, recovery_code_hashes=(), started_by: str | None = None) -> list[TxItem]:
    """The items that activate a pending TOTP enrolment whose first code (time step `step`)
    verified: the factor, no longer pending, with `step` as its last accepted time step (so the
    enrolment code cannot sign in later), and the user's `factors` naming it; with
    `recovery_code_hashes`, the user's first recovery codes too; with `started_by`, only the
    enrolment that session started. Refused labels: "factor" (no such pending enrolment any more),
    "user" (gone or disabled)."""
    at = now()
    pending = FactorModel.sub.exists() & (FactorModel.pending == True)  # noqa: E712
    if started_by is not None:
        pending &= FactorModel.started_by == started_by
    items = [TxItem("update", "factor", lambda tx: tx.update(
        FactorModel(sub=sub, factor_id=TOTP),
        actions=[FactorModel.pending.set(False), FactorModel.last_step.set(step), FactorModel.last_used_at.set(at),
                 FactorModel.started_by.remove()],
        condition=pending))]
    entries = [TOTP]
    if recovery_code_hashes:
        item = FactorModel(sub=sub, factor_id=RECOVERY, kind=RECOVERY, created_at=at,
                           code_hashes=set(recovery_code_hashes))
        items.append(TxItem("put", "recovery", lambda tx: tx.save(item)))
        entries.append(RECOVERY)
    return [*items, _user_entries(sub, entries, add=True)]


def activate_totp(sub: str, step: int, *, recovery_code_hashes=()) -> bool:
    """`totp_activation` written in one transaction. False when there is no pending enrolment any
    more (or the user is gone)."""
    try:
        write(totp_activation(sub, step, recovery_code_hashes=recovery_code_hashes))
    except Refused:
        return False
    return True


def totp_step(sub: str, step: int) -> TxItem:
    """Accept TOTP time step `step` for the user, on condition no later or equal step was accepted
    before: a code works once, and an older one never after a newer (RFC 6238 §5.2)."""
    return TxItem("update", "totp", lambda tx: tx.update(
        FactorModel(sub=sub, factor_id=TOTP),
        actions=[FactorModel.last_step.set(step), FactorModel.last_used_at.set(now())],
        condition=FactorModel.sub.exists() & (FactorModel.pending == False)  # noqa: E712
        & (FactorModel.last_step.does_not_exist() | (FactorModel.last_step < step))))


# Recovery codes ---------------------------------------------------------------------------------

def set_recovery_codes(sub: str, code_hashes, *, extra=()) -> bool:
    """Replace the user's recovery codes (the SHA-256 of each; the codes are shown once and kept
    nowhere) and name them on the user, in one transaction (with `extra` items, e.g. the session's
    factor kinds). False when the user is gone or disabled or an `extra` item refused."""
    item = FactorModel(sub=sub, factor_id=RECOVERY, kind=RECOVERY, created_at=now(), code_hashes=set(code_hashes))
    try:
        write([TxItem("put", "factor", lambda tx: tx.save(item)), _user_entry(sub, RECOVERY, add=True), *extra])
    except Refused:
        return False
    return True


def recovery_use(sub: str, code_hash: str) -> TxItem:
    """Use one recovery code: its hash leaves the set, on condition it is still in it."""
    return TxItem("update", "recovery", lambda tx: tx.update(
        FactorModel(sub=sub, factor_id=RECOVERY),
        actions=[FactorModel.code_hashes.delete({code_hash}), FactorModel.last_used_at.set(now())],
        condition=FactorModel.code_hashes.contains(code_hash)))


# Removal ----------------------------------------------------------------------------------------

def remove(sub: str, factor_id: str, *, also=(), extra=()) -> bool:
    """Remove one factor (a passkey, the TOTP factor or its enrolment, the recovery codes) and its
    entry on the user, in one transaction; with `also`, more factor ids of the user whether or not
    they exist (TOTP's recovery codes when no other factor remains), and `extra` items (the
    session's factor kinds). False when there was no such factor; Refused names a refused `extra`."""
    items = [TxItem("delete", "factor", lambda tx: tx.delete(FactorModel(sub=sub, factor_id=factor_id),
                                                             condition=FactorModel.sub.exists()))]
    items += [TxItem("delete", f"also:{other}", lambda tx, other=other: tx.delete(FactorModel(sub=sub, factor_id=other)))
              for other in also]
    try:
        write([*items, _user_entries(sub, [factor_id, *also], add=False), *extra])
    except Refused as refused:
        if "factor" in refused.labels:
            return False
        raise
    return True


def reset(sub: str) -> int | None:
    """The operator's `users mfa reset`: the user's `factors` cleared in the write that ends every
    session and grant of the user (storage/users.end_all_sessions: half-done sign-ins die with the
    generation they recorded), then every factor item deleted. Returns how many were; None when
    there is no such user."""
    from .users import end_all_sessions

    if not end_all_sessions(sub, reason="second factors reset", actions=[UserModel.factors.remove()]):
        return None
    return remove_all(sub)


def remove_all(sub: str) -> int:
    """Delete every factor item of the user (after their entries on the user are gone). Returns how many."""
    items = list(FactorModel.query(sub, consistent_read=True))
    for item in items:  # a handful: one DeleteItem each (no BatchWriteItem grant for so few)
        item.delete()
    return len(items)
