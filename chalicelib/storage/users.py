"""End users: creation with a unique email, lookup by subject or email, disabling, signing out everywhere.

Email uniqueness is enforced by an EmailClaimModel item ("email#<email>" -> sub) written in the same
DynamoDB transaction as the user, each with attribute_not_exists: a duplicate fails as a whole and
leaves nothing behind.
"""
from __future__ import annotations

import unicodedata

from pynamodb.exceptions import DoesNotExist, TransactWriteError

from ..hashing import new_secret
from ..log import now
from ..password_policy import problem as password_problem
from ..passwords import hash_password
from .models import EmailClaimModel, UserModel, cancellation_codes, conditionally, transact_write

EMAIL_PREFIX = "email#"
MAX_EMAIL_LENGTH = 254  # RFC 5321 §4.5.3.1.3: a 256-octet path, minus its angle brackets
MAX_NAME_LENGTH = 200


class InvalidUser(ValueError):
    """User data breaks a rule; the message says which one. A refused password's message is one of
    the fixed texts of pages/messages.py (chalicelib/password_policy.py), never the input."""


class UserExists(Exception):
    """The email already belongs to a user."""


def _unprintable(value: str) -> bool:
    return any(c.isspace() or unicodedata.category(c) == "Cc" for c in value)


def normalise_email(email: str) -> str:
    """Strip and lowercase; never raises (sign-in uses it on whatever was typed).

    Lowercasing the local part is stricter than RFC 5321 but is what users expect:
    Alice@Example.com and alice@example.com are one account.
    """
    return (email or "").strip().lower()


def _check_email(email: str) -> None:
    local, at, domain = email.partition("@")
    valid = at and local and "@" not in domain and len(email) <= MAX_EMAIL_LENGTH and not _unprintable(email)
    # The domain needs a dot inside it, not at either end ("a@example.com", not "a@localhost" or "a@.com").
    if not valid or "." not in domain[1:-1]:
        raise InvalidUser(f"invalid email address: {email!r}")


def is_valid_email(email: str) -> bool:
    """Whether a (normalised) address is one a user may have."""
    try:
        _check_email(email)
    except InvalidUser:
        return False
    return True


def _check_password(password: str, email: str) -> None:
    """The password policy (NIST SP 800-63B-4 §3.1.1.2), applied here because every way of setting a
    password goes through this module (create_user today; reset, change and invitations will), so
    no caller can forget it. It is pure and costs no DynamoDB call."""
    refused = password_problem(password, email)
    if refused:
        raise InvalidUser(refused)


#: Unicode categories no name may contain: control and format characters (U+202E reverses the text
#: around it) and line and paragraph separators. Names go into ID tokens and onto other apps' pages.
_NOT_IN_NAMES = frozenset({"Cc", "Cf", "Zl", "Zp"})


def clean_name(name: str | None) -> str | None:
    """`name` stripped (None when empty) when it is an acceptable name: at most MAX_NAME_LENGTH
    characters, none of _NOT_IN_NAMES; else ValueError. The one rule for every name field: the
    display name here and the account page's profile names (accounts/profile.py)."""
    name = (name or "").strip()
    if len(name) > MAX_NAME_LENGTH or any(unicodedata.category(c) in _NOT_IN_NAMES for c in name):
        raise ValueError(f"at most {MAX_NAME_LENGTH} characters, without control characters")
    return name or None


def _display_name(name: str | None) -> str | None:
    try:
        return clean_name(name)
    except ValueError:
        raise InvalidUser(f"name must be at most {MAX_NAME_LENGTH} characters, without control characters") from None


def checked_email(email: str) -> str:
    """The normalised email, or InvalidUser when it is not one we would create a user with."""
    email = normalise_email(email)
    _check_email(email)
    return email


def checked_name(name: str | None) -> str | None:
    """The display name as it would be stored (stripped; None when empty), or InvalidUser."""
    return _display_name(name)


def check_new_user(email: str, password: str, name: str | None = None) -> tuple[str, str | None]:
    """(normalised email, display name) when they and the password may make a user; raises
    InvalidUser otherwise. Pure: sign-up checks the form with it before anything is counted."""
    email = checked_email(email)
    _check_password(password, email)
    return email, _display_name(name)


def create_user(email: str, password: str, name: str | None = None, *, password_hash: str | None = None,
                email_verified: bool = False) -> UserModel:
    """Create a user; raises InvalidUser for bad input and UserExists for a taken email.
    `password_hash`: the password's hash when the caller has already made it (sign-up hashes before
    it knows which case it is in, so that every case costs one argon2id). `email_verified`: the
    creator proved the mailbox (an accepted invitation: accounts/invitations.py)."""
    email, name = check_new_user(email, password, name)
    at = now()
    # An opaque, never-reassigned subject identifier (OIDC Core §2): not derived from the email.
    user = UserModel(pk="u_" + new_secret(16), email=email, name=name,
                     password_hash=password_hash or hash_password(password), email_verified=email_verified,
                     created_at=at, updated_at=at)
    claim = EmailClaimModel(pk=EMAIL_PREFIX + email, sub=user.pk)
    try:
        with transact_write() as tx:
            tx.save(user, condition=UserModel.pk.does_not_exist())
            tx.save(claim, condition=EmailClaimModel.pk.does_not_exist())
    except TransactWriteError as exc:
        reasons = cancellation_codes(exc)
        if reasons and reasons[-1] == "ConditionalCheckFailed":
            raise UserExists(f"a user with email {email!r} already exists") from None
        raise
    return user


def get_user(sub: str) -> UserModel | None:
    # Email claims share the table; their keys are never subjects.
    if not sub or sub.startswith(EMAIL_PREFIX):
        return None
    try:
        return UserModel.get(sub, consistent_read=True)
    except DoesNotExist:
        return None


#: Read instead of a user when there is no email claim: no item has this key (subjects are "u_...").
NO_SUCH_USER = "nobody#"


def find_user_by_email(email: str) -> UserModel | None:
    """The user with this email, or None.

    Always exactly two consistent GetItems on the users table, the email claim then the user,
    whether the email belongs to a user, to nobody, or is not an email at all: a missing second read
    would tell an attacker which emails have an account (an unknown email would answer one DynamoDB
    round trip sooner). Sign-in reads the claim together with its authorization request
    (storage/sign_ins.py) under the same rule: `claim_key`, then `get_user(claimed_sub(claim))`.
    """
    try:
        claim = EmailClaimModel.get(claim_key(email), consistent_read=True)
    except DoesNotExist:
        claim = None
    return get_user(claimed_sub(claim))


def claim_key(email: str) -> str:
    """The email claim's key to read for whatever was typed as an email."""
    email = normalise_email(email)
    # RFC 5321's limit also keeps the key small; "email#" alone is a claim no valid email makes.
    valid = email and len(email.encode("utf-8")) <= MAX_EMAIL_LENGTH
    return EMAIL_PREFIX + (email if valid else "")


def claimed_sub(claim: EmailClaimModel | None) -> str:
    """The subject to read for an email claim: its user's, or a key no user has when there is no
    claim, so that an unknown email costs the same read as a known one."""
    return claim.sub if claim is not None else NO_SUCH_USER


def _update_user(sub: str, actions: list, condition=None) -> bool:
    """One conditional update of an existing user (and `condition`, if given); False when there is
    no such user or `condition` does not hold."""
    required = UserModel.pk.exists() if condition is None else UserModel.pk.exists() & condition
    return bool(sub) and not sub.startswith(EMAIL_PREFIX) and conditionally(lambda: UserModel(pk=sub).update(
        actions=[*actions, UserModel.updated_at.set(now())], condition=required))


def end_all_sessions(sub: str, *, reason: str = "signed out everywhere", actions=(), condition=None) -> bool:
    """Sign the user out everywhere, for good: every SSO session and every grant (refresh-token
    family) ends. False when there is no such user (or `condition`, checked by the same write,
    does not hold: then nothing changes).

    The user's `session_generation` goes up by one (an atomic ADD, with `actions`, e.g. disabling,
    in the same write). Sessions record the generation they were made under and are refused when
    older, and nothing revives them (re-enabling leaves the count alone). Then every active grant of
    the user is revoked, found by a strongly consistent query (storage/grants.revoke_all_of_user):
    a grant committed before the update above is found, and one whose transaction comes after it
    fails, because issuing a code checks the user's generation in the same transaction
    (storage/codes.issue). So refresh and redemption need not read the user.
    """
    from .grants import revoke_all_of_user

    if not _update_user(sub, [*actions, UserModel.session_generation.add(1)], condition):
        return False
    revoke_all_of_user(sub, reason=reason)
    return True


def restart_unverified(sub: str, email: str, password_hash: str, name: str | None) -> UserModel | None:
    """Sign-up again for an address nobody has verified: the account belongs to whoever verifies
    it, so the new password hash and name replace the old ones and `session_generation` goes up in
    the same conditional write (whoever pre-registered the address, an attacker perhaps, is signed
    out for good, and every link sent before is void: storage/users.generation_is), then every
    grant and remembered consent of the user goes. The earlier sign-up's profile fields go too.
    Returns the user as written; None when the user is gone, is disabled, has another email or was
    verified meanwhile."""
    from .consents import forget_all
    from .grants import revoke_all_of_user

    item = UserModel(pk=sub)
    written = conditionally(lambda: item.update(
        actions=[UserModel.password_hash.set(password_hash),
                 UserModel.name.set(name) if name else UserModel.name.remove(),
                 # the earlier sign-up's profile is not the new owner's
                 UserModel.given_name.remove(), UserModel.family_name.remove(), UserModel.locale.remove(),
                 UserModel.session_generation.add(1), UserModel.updated_at.set(now())],
        condition=UserModel.pk.exists() & (UserModel.email == email) & (UserModel.email_verified == False)  # noqa: E712
        & (UserModel.disabled.does_not_exist() | (UserModel.disabled == False))))  # noqa: E712
    if not written:
        return None
    revoke_all_of_user(sub, reason="signed up again before verification")
    forget_all(sub)
    return item


def delete_unverified(sub: str, email: str) -> bool:
    """Remove a user that was just signed up and never verified, with its email claim, in one
    transaction: the undo of a sign-up whose verification email could not be sent, so the address
    is free again. False when the user was verified (or changed) meanwhile: nothing is deleted."""
    try:
        with transact_write() as tx:
            tx.delete(UserModel(pk=sub), condition=(UserModel.email == email)
                      & (UserModel.email_verified == False))  # noqa: E712
            tx.delete(EmailClaimModel(pk=EMAIL_PREFIX + email), condition=EmailClaimModel.sub == sub)
    except TransactWriteError as exc:
        if "ConditionalCheckFailed" in cancellation_codes(exc):
            return False
        raise
    return True


def generation_is(generation: int):
    """A condition: the user's `session_generation` is still `generation` (users written before the
    attribute existed have none, which counts as 0).

    A one-time link that acts on an account (verification, email change) records the generation
    it was issued under and acts only under this condition: whatever ends every session of the
    user (signing up again for an unverified address, a password change or reset, signing out
    everywhere, disabling) also voids every such link still in someone's mailbox or hands."""
    same = UserModel.session_generation == generation
    return (UserModel.session_generation.does_not_exist() | same) if generation == 0 else same


def mark_email_verified(sub: str, email: str, generation: int) -> UserModel | None:
    """Record that the owner of `email` proved it (OIDC Core §5.1 email_verified): one conditional
    update, only while `email` is still the user's address (a link for an address the user has
    since changed verifies nothing) and the user's generation is the link's (`generation_is`: a
    link sent before someone else signed up again for the unverified address does not verify the
    account that now has their password). Returns the user as written, else None."""
    item = UserModel(pk=sub)
    if not (sub and not sub.startswith(EMAIL_PREFIX) and conditionally(lambda: item.update(
            actions=[UserModel.email_verified.set(True), UserModel.updated_at.set(now())],
            condition=UserModel.pk.exists() & (UserModel.email == email) & generation_is(generation)))):
        return None
    return item


def set_password(sub: str, password: str, *, email: str, reason: str) -> bool:
    """Give user `sub` a new password and end every session and grant of the user
    (`end_all_sessions`), with the email marked verified. False, and nothing changed, when there is
    no such user, it is disabled, or its email is no longer `email`.

    For a password reset (accounts/recovery.py): the link went to `email`, so whoever holds it
    proved that mailbox, hence verified; the condition makes a link sent to an address the user has
    since left, or a user disabled since, worth nothing. The new hash, the verification and the
    generation bump are one UpdateItem: no session outlives a password it was not signed in with,
    and no password changes without them ending (NIST SP 800-63B-4 §4.1.3 leaves ending sessions
    on a reset to us; issue 12 asks for it). The password policy applies here too (`_check_password`).
    """
    _check_password(password, email)
    not_disabled = UserModel.disabled.does_not_exist() | (UserModel.disabled == False)  # noqa: E712
    return end_all_sessions(sub, reason=reason, condition=(UserModel.email == email) & not_disabled,
                            actions=[UserModel.password_hash.set(hash_password(password)),
                                     UserModel.email_verified.set(True)])


def set_user_disabled(sub: str, disabled: bool) -> bool:
    """Disable or re-enable a user; False when there is no such user. Disabling also ends every
    session and grant of the user (`end_all_sessions`); re-enabling brings none of them back. A
    deleted account's tombstone is no user: it is never re-enabled (False)."""
    if disabled:
        return end_all_sessions(sub, reason="user disabled", actions=[UserModel.disabled.set(True)])
    return _update_user(sub, [UserModel.disabled.set(False)], UserModel.deleted_at.does_not_exist())


def list_users() -> list[UserModel]:
    users = UserModel.scan(filter_condition=~UserModel.pk.startswith(EMAIL_PREFIX), consistent_read=True)
    return sorted(users, key=lambda u: (u.created_at, u.pk))
