"""Passkeys (WebAuthn Level 3 public-key credentials) with py_webauthn: the options the pages embed
for the browser, and the checks of what the browser sends back. Nothing here parses CBOR, COSE or
attestation statements itself: py_webauthn does (`verify_registration_response`,
`verify_authentication_response`).

Relying party. The RP ID is the issuer's host and the expected origin the issuer's origin
(WebAuthn §5.1.4.1 / §7.1 step 9, §7.2 step 13): a credential made for us works nowhere else, and
an assertion made on a phishing site (another origin, another RP ID hash) is refused here.

Stateless challenges (§13.4.3 asks for challenges the RP generated, used once). A GET page writes
nothing, so the challenge carries its own proof:

    challenge = random(16) || expiry (8 bytes, big-endian) || HMAC-SHA256(key, purpose|sub|random|expiry)

keyed by the browser's cookie value (the anonymous browser secret, or the session cookie once
signed in; the same idea as oauth/sessions.csrf_token). Another browser cannot use a challenge
minted for this one, a challenge minted for registration cannot sign anyone in, and one bound to a
subject works for that subject only. It is single-use because the transaction that relies on it
also puts `challenge#<hash>` with attribute_not_exists (storage/factors.challenge_used).

User verification (§6.2.3) is required where the passkey is the only factor (sign-in) and at
registration (the credential will be used that way), preferred where it is a second factor. New
credentials must be discoverable (resident keys), so "Sign in with a passkey" needs no username.

amr (RFC 8176, DESIGN13.md): a passkey proves possession of a key, "hwk" or "swk": "swk" when the
credential is backup eligible (§6.1 flag BE: a synced passkey, the key can leave the device), else
"hwk" — a heuristic without attestation, documented as one. "user" when the authenticator
verified the user (UV). A passkey with UV is two factors by itself ("mfa").
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import struct
from dataclasses import dataclass
from typing import Sequence
from urllib.parse import urlsplit

from ..config import settings
from ..errors import PasskeyRefused
from ..log import get_logger, now
from ..storage import factors
from ..storage.transactions import TxItem

log = get_logger("idp.passkeys")

#: How long a challenge minted for a page stays good (seconds). A sign-in page may sit open while
#: the user types (conditional UI); past this the POST fails once and the re-rendered page carries
#: a fresh one. Also how long its used-challenge marker is kept.
CHALLENGE_TTL = 600
#: What the browser is told (milliseconds): a hint, within the challenge's life.
CEREMONY_TIMEOUT_MS = 300_000
NONCE_BYTES, EXPIRY_BYTES, MAC_BYTES = 16, 8, 32
CHALLENGE_BYTES = NONCE_BYTES + EXPIRY_BYTES + MAC_BYTES
#: The credential JSON a form may post (a registration with an RSA key and its attestation fits easily).
MAX_CREDENTIAL_JSON = 16_384
#: Longest passkey name a user may give.
MAX_NAME_LENGTH = 100
#: The purpose a registration challenge is bound to (sign-in purposes are the callers' own).
REGISTER = "register"
#: COSE algorithms offered (RFC 9053): ES256, EdDSA, RS256, in this order of preference.
ALGORITHMS = (-7, -8, -257)


@dataclass(frozen=True)
class PasskeyUse:
    """A verified assertion, not yet recorded. `amr`: what the passkey proved by itself ([k] or
    [k, "user"], k = "hwk"/"swk"; see `combined_amr`). `items`: the writes that make it count
    once (the passkey's counter, the challenge marked used), for the transaction that signs in or
    steps up."""

    amr: list[str]
    items: list[TxItem]
    credential_id: str
    user_verified: bool


@dataclass(frozen=True)
class NewPasskey:
    """A verified registration, for storage.factors.add_passkey."""

    credential_id: str
    public_key: str  # COSE_Key, base64url
    sign_count: int
    transports: tuple[str, ...]
    backup_eligible: bool
    challenge: str
    challenge_expires_at: int


# Relying party ------------------------------------------------------------------------------------

def rp_id(issuer: str | None = None) -> str:
    """The RP ID: the issuer's host (a registrable domain suffix of the origin, §5.1.4.1)."""
    return urlsplit(issuer or settings().issuer).hostname or ""


def expected_origin(issuer: str | None = None) -> str:
    """The origin the browser reports in clientDataJSON: the issuer's scheme://host[:port]."""
    parts = urlsplit(issuer or settings().issuer)
    return f"{parts.scheme}://{parts.netloc}".lower()


# Challenges ---------------------------------------------------------------------------------------

def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(browser_value: str, purpose: str, sub: str | None, nonce: bytes, expiry: bytes) -> bytes:
    message = b"|".join([b"webauthn", purpose.encode(), (sub or "").encode(), nonce, expiry])
    return hmac.new(browser_value.encode("utf-8"), message, hashlib.sha256).digest()


def new_challenge(browser_value: str, *, purpose: str, sub: str | None = None, at: int | None = None) -> bytes:
    """A challenge for this browser, purpose and subject, good for CHALLENGE_TTL (see the module
    docstring). Pure apart from the randomness."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    expiry = struct.pack(">Q", (now() if at is None else at) + CHALLENGE_TTL)
    return nonce + expiry + _mac(browser_value, purpose, sub, nonce, expiry)


def checked_challenge(browser_value: str | None, challenge: bytes, *, purpose: str, sub: str | None,
                      at: int | None = None) -> int:
    """The challenge's expiry when it is one we minted for this browser, purpose and subject and
    it has not expired; PasskeyRefused otherwise. The MAC is compared in constant time."""
    if not browser_value or len(challenge) != CHALLENGE_BYTES:
        raise PasskeyRefused("challenge malformed")
    nonce, expiry = challenge[:NONCE_BYTES], challenge[NONCE_BYTES:NONCE_BYTES + EXPIRY_BYTES]
    if not hmac.compare_digest(_mac(browser_value, purpose, sub, nonce, expiry), challenge[-MAC_BYTES:]):
        raise PasskeyRefused("challenge not ours (browser, purpose or subject)")
    expires_at = struct.unpack(">Q", expiry)[0]
    if expires_at <= (now() if at is None else at):
        raise PasskeyRefused("challenge expired")
    return expires_at


# Options for the browser --------------------------------------------------------------------------

def _descriptors(credential_ids: Sequence[str]):
    from webauthn.helpers.structs import PublicKeyCredentialDescriptor

    found = []
    for credential_id in credential_ids:
        try:
            found.append(PublicKeyCredentialDescriptor(id=_unb64(credential_id)))
        except (binascii.Error, ValueError):
            continue  # never stored like that; skip rather than break the page
    return found


def authentication_options(browser_value: str, *, purpose: str, sub: str | None = None,
                           credential_ids: list[str] | None = None, user_verification: str = "required") -> dict:
    """PublicKeyCredentialRequestOptions as JSON (WebAuthn L3 §5.5, the form
    `PublicKeyCredential.parseRequestOptionsFromJSON` takes), challenge included. Without
    `credential_ids` (passwordless sign-in) the authenticator offers its discoverable credentials
    for our RP ID; with them (a known user's second factor), only those.

    A plain dict, the same py_webauthn's generate_authentication_options + options_to_json_dict
    give: every sign-in page carries one, and importing py_webauthn (~0.2 s cold) for five keys
    would be paid by the first sign-in page of every container; the checks use the library."""
    if user_verification not in ("required", "preferred", "discouraged"):
        raise ValueError(f"user_verification {user_verification!r}")
    allowed = [{"type": "public-key", "id": credential_id} for credential_id in credential_ids or ()
               if _base64url_field(credential_id) is not None]
    return {"challenge": _b64(new_challenge(browser_value, purpose=purpose, sub=sub)),
            "timeout": CEREMONY_TIMEOUT_MS, "rpId": rp_id(), "allowCredentials": allowed,
            "userVerification": user_verification}


def registration_options(browser_value: str, *, sub: str, email: str, display_name: str | None,
                         existing_ids: Sequence[str]) -> dict:
    """PublicKeyCredentialCreationOptions as JSON (§5.4) for adding a passkey to `sub`'s account:
    user.id is the subject's bytes (opaque, no personal data: §14.6.1), user.name the email,
    excludeCredentials the passkeys the user has (one authenticator, one passkey), a discoverable
    credential with user verification, no attestation (we trust no vendor list: "none")."""
    from webauthn import generate_registration_options
    from webauthn.helpers import options_to_json_dict
    from webauthn.helpers.structs import (
        AttestationConveyancePreference,
        AuthenticatorSelectionCriteria,
        ResidentKeyRequirement,
        UserVerificationRequirement,
    )

    options = generate_registration_options(
        rp_id=rp_id(), rp_name=rp_id(), user_id=sub.encode("utf-8"), user_name=email,
        user_display_name=display_name or email,
        challenge=new_challenge(browser_value, purpose=REGISTER, sub=sub), timeout=CEREMONY_TIMEOUT_MS,
        attestation=AttestationConveyancePreference.NONE,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED, user_verification=UserVerificationRequirement.REQUIRED),
        exclude_credentials=_descriptors(existing_ids), supported_pub_key_algs=list(_algorithms()))
    return options_to_json_dict(options)



def _algorithms():
    from webauthn.helpers.cose import COSEAlgorithmIdentifier

    return [COSEAlgorithmIdentifier(alg) for alg in ALGORITHMS]


# What the browser sent ----------------------------------------------------------------------------

def _json_object(credential_json: str | None) -> dict | None:
    if not credential_json or len(credential_json) > MAX_CREDENTIAL_JSON:
        return None
    try:
        value = json.loads(credential_json)
    except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested past the parser's depth
        return None
    return value if isinstance(value, dict) else None


#: The longest credential id we store, in base64url characters: it keys the passkey's item as
#: "passkey#<id>" and a DynamoDB sort key holds at most 1024 bytes. WebAuthn allows ids up to 1023
#: bytes (§5.8.3), but authenticators make ids of 16 to a few hundred bytes; a longer one is refused at
#: registration (and never looked up), rather than failing a read.
MAX_CREDENTIAL_ID = 1024 - len(factors.PASSKEY_PREFIX)


def _base64url_field(value, *, max_length: int = MAX_CREDENTIAL_ID) -> str | None:
    """`value` when it is base64url text of at most `max_length` characters that decodes."""
    if not isinstance(value, str) or not value or len(value) > max_length or not value.isascii():
        return None
    try:
        _unb64(value)
    except (binascii.Error, ValueError):
        return None
    return value if "=" not in value and "+" not in value and "/" not in value else None


def credential_id_of(credential_json: str) -> str | None:
    """The credential id (base64url) of a posted PublicKeyCredential JSON, to read its factor item;
    None when the JSON is malformed."""
    value = _json_object(credential_json)
    return _base64url_field(value.get("id")) if value else None


def user_handle_of(credential_json: str) -> str | None:
    """The subject a discoverable credential's assertion names (response.userHandle: the user.id we
    registered, the sub's bytes), or None."""
    value = _json_object(credential_json)
    response = value.get("response") if value else None
    handle = _base64url_field(response.get("userHandle"), max_length=128) if isinstance(response, dict) else None
    if handle is None:
        return None
    try:
        sub = _unb64(handle).decode("utf-8")
    except UnicodeDecodeError:
        return None
    return sub if sub.isascii() and sub.isprintable() else None


def _client_challenge(client_data_json: str) -> bytes:
    """The challenge the browser signed over, from clientDataJSON (py_webauthn's parser): we check
    its MAC before asking the library to compare it."""
    from webauthn.helpers import parse_client_data_json

    try:
        return parse_client_data_json(_unb64(client_data_json)).challenge
    except Exception as exc:  # noqa: BLE001 - any malformed input is a refusal
        raise PasskeyRefused(f"clientDataJSON malformed ({type(exc).__name__})") from None


def _key_kind(backup_eligible: bool) -> str:
    return "swk" if backup_eligible else "hwk"


def combined_amr(previous: Sequence[str], use: PasskeyUse) -> list[str]:
    """The session's amr after this passkey (oauth/acr.combined): with user verification a passkey
    alone is two factors; after a password, the password and the key are."""
    from ..oauth import acr

    return acr.combined(previous, use.amr)


def verify_assertion(browser_value: str, credential_json: str, factor: factors.Factor, *, purpose: str,
                     sub: str | None, require_uv: bool) -> PasskeyUse:
    """Check an assertion (navigator.credentials.get) against the passkey `factor` (WebAuthn §7.2),
    for a challenge minted by `authentication_options` with the same browser, purpose and `sub`
    (None: passwordless, the user not known until the assertion names them). PasskeyRefused for
    anything wrong; the returned items must be written in the transaction that relies on it."""
    from webauthn import verify_authentication_response
    from webauthn.helpers.structs import CredentialDeviceType

    value = _json_object(credential_json)
    response = value.get("response") if value else None
    if not isinstance(response, dict) or factor is None or factor.kind != factors.PASSKEY:
        raise PasskeyRefused("credential malformed or unknown")
    if credential_id_of(credential_json) != factor.credential_id:
        raise PasskeyRefused("credential is not the passkey read")
    # §7.2 step 6: the credential must belong to the user. The factor item was read under the
    # user's sub; the assertion's userHandle, when present (always for a discoverable credential),
    # must name that same user, and a known user (second factor) must be the factor's owner.
    handle = user_handle_of(credential_json)
    if sub is not None and factor.sub != sub:
        raise PasskeyRefused("passkey of another user")
    if (sub is None and handle is None) or (handle is not None and handle != factor.sub):
        raise PasskeyRefused("user handle does not name the passkey's user")
    challenge = _client_challenge(response.get("clientDataJSON") if isinstance(response.get("clientDataJSON"), str)
                                  else "")
    expires_at = checked_challenge(browser_value, challenge, purpose=purpose, sub=sub)
    try:
        verified = verify_authentication_response(
            credential=value, expected_challenge=challenge, expected_rp_id=rp_id(),
            expected_origin=expected_origin(), credential_public_key=_unb64(factor.public_key or ""),
            credential_current_sign_count=factor.sign_count, require_user_verification=require_uv)
    except Exception as exc:  # noqa: BLE001 - py_webauthn raises several kinds for hostile input
        reason = str(exc)[:200]
        if "sign count" in reason:
            # §6.1.1 / §7.2 step 21: a counter that did not grow means a cloned authenticator (or a
            # replay). Refused (the stricter reading) and logged naming the credential.
            log.warning("passkey sign counter did not increase: possible cloned authenticator",
                        extra={"sub": factor.sub, "credential_id": factor.credential_id,
                               "stored_count": factor.sign_count})
            raise PasskeyRefused("sign counter regression") from None
        raise PasskeyRefused(f"assertion not valid ({type(exc).__name__}: {reason})") from None
    backup_eligible = factor.backup_eligible or verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE
    amr = [_key_kind(backup_eligible)] + (["user"] if verified.user_verified else [])
    return PasskeyUse(amr=amr, credential_id=factor.credential_id, user_verified=verified.user_verified, items=[
        factors.passkey_use(factor.sub, factor.factor_id, read_count=factor.sign_count,
                            new_count=verified.new_sign_count),
        factors.challenge_used(_b64(challenge), expires_at)])


def verify_registration(browser_value: str, credential_json: str, *, sub: str) -> NewPasskey:
    """Check an attestation (navigator.credentials.create, WebAuthn §7.1) for a challenge minted by
    `registration_options` for this browser and `sub`: origin, RP ID, user presence and
    verification, an offered algorithm. PasskeyRefused for anything wrong. The challenge is marked
    used by storage.factors.add_passkey, in the transaction that stores the passkey."""
    from webauthn import verify_registration_response
    from webauthn.helpers.structs import CredentialDeviceType

    value = _json_object(credential_json)
    response = value.get("response") if value else None
    if not isinstance(response, dict) or credential_id_of(credential_json) is None:
        raise PasskeyRefused("credential malformed")
    challenge = _client_challenge(response.get("clientDataJSON") if isinstance(response.get("clientDataJSON"), str)
                                  else "")
    expires_at = checked_challenge(browser_value, challenge, purpose=REGISTER, sub=sub)
    try:
        verified = verify_registration_response(
            credential=value, expected_challenge=challenge, expected_rp_id=rp_id(),
            expected_origin=expected_origin(), require_user_verification=True,
            supported_pub_key_algs=_algorithms())
    except Exception as exc:  # noqa: BLE001 - py_webauthn raises several kinds for hostile input
        raise PasskeyRefused(f"registration not valid ({type(exc).__name__}: {str(exc)[:200]})") from None
    transports = response.get("transports")
    known = {"ble", "cable", "hybrid", "internal", "nfc", "smart-card", "usb"}
    return NewPasskey(
        credential_id=_b64(verified.credential_id), public_key=_b64(verified.credential_public_key),
        sign_count=verified.sign_count,
        transports=tuple(sorted({t for t in transports if isinstance(t, str) and t in known}))
        if isinstance(transports, list) else (),
        backup_eligible=verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE,
        challenge=_b64(challenge), challenge_expires_at=expires_at)


def clean_name(name: str | None) -> str | None:
    """A passkey's name as the user typed it, trimmed; None when empty, too long or with control
    characters."""
    name = (name or "").strip()
    if not name or len(name) > MAX_NAME_LENGTH or not name.isprintable():
        return None
    return name
