"""How the user authenticated (`amr`, RFC 8176) and how strongly (`acr`, OIDC Core §2), and when a
request needs more: the step-up decision of /authorize (OIDC Core §3.1.2.1 `acr_values`, §5.5.1.1
the essential `acr` claim, OpenID Connect Unmet Authentication Requirements 1.0). Pure: no I/O,
no clock.

The ladder (`SUPPORTED`, discovery's `acr_values_supported`, in this order):

  1. urn:serverless-idp:acr:password  a password alone
  2. urn:serverless-idp:acr:mfa       a password and a second factor (TOTP, a recovery code)
  3. phr                              a passkey was used (OpenID EAP ACR Values 1.0: phishing-resistant)

A session at a level meets every level below it, so the `acr` claimed may be a lower value that was
asked for: a passkey sign-in asked for "…:mfa" gets `acr: "…:mfa"` (OIDC Core §5.5.1.1: the value
returned must be one of those requested).

What a user can reach depends on the factors they have (DESIGN13): a passkey reaches 3, TOTP or
recovery codes 2, nothing else 1.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

# RFC 8176 §2 amr values we emit.
PWD = "pwd"  # a password
OTP = "otp"  # a one-time password: TOTP, or a recovery code (a look-up secret, NIST SP 800-63B §5.1.2)
HWK = "hwk"  # a passkey whose key cannot leave its device (not backup-eligible)
SWK = "swk"  # a synced passkey (backup-eligible: the key can leave the device)
USER = "user"  # user presence and verification on the authenticator (WebAuthn UV flag)
MFA = "mfa"  # more than one factor
#: Federated: an upstream identity provider authenticated the user (issue 15). At the password level
#: unless the connection maps the upstream's acr higher (chalicelib/federation/sign_in.py adds `mfa`).
FED = "fed"
AMR_VALUES = (PWD, OTP, HWK, SWK, USER, MFA, FED)

PASSWORD_ACR = "urn:serverless-idp:acr:password"
MFA_ACR = "urn:serverless-idp:acr:mfa"
#: OpenID EAP ACR Values 1.0 §2: "phishing-resistant".
PHR_ACR = "phr"
#: The ladder, lowest first: discovery's acr_values_supported lists it in this order.
SUPPORTED = (PASSWORD_ACR, MFA_ACR, PHR_ACR)

#: Factor kinds a user can have (storage: UserModel.factors, Session.factors) and the level each reaches.
FACTOR_LEVELS = {"passkey": 3, "totp": 2, "recovery": 2}


def level(value: str | None) -> int | None:
    """1-based place of an acr value on the ladder; None for a value we do not know."""
    try:
        return SUPPORTED.index(value) + 1
    except ValueError:
        return None


def of(amr: Iterable[str]) -> str:
    """The acr a sign-in with these amr values achieved: any passkey (hwk/swk) is phishing-resistant,
    any other second factor (mfa, otp) multi-factor, anything else (a password; no amr: a session
    from before amr was kept) the password level."""
    methods = set(amr or ())
    if methods & {HWK, SWK}:
        return PHR_ACR
    if methods & {MFA, OTP}:
        return MFA_ACR
    return PASSWORD_ACR


def combined(before: Iterable[str], added: Iterable[str]) -> list[str]:
    """The amr of a sign-in after one more method: `before` then `added`, each value once, and `mfa`
    when two factors are among them (RFC 8176 §2: a password, a one-time code, a key (hwk or swk),
    and user verification on the authenticator (`user`) each count once). So a password and a TOTP
    code, a password and a passkey, or a passkey with user verification alone are multi-factor; the
    one place that says so for the sign-in, the second step and step-up."""
    values = list(dict.fromkeys([*(before or ()), *(added or ())]))
    present = set(values)
    factors = sum(1 for group in ({PWD, FED}, {OTP}, {HWK, SWK}, {USER}) if group & present)
    if factors >= 2 and MFA not in present:
        values.append(MFA)
    return values


def reachable(factors: Iterable[str]) -> int:
    """The highest level a user with these factor kinds can sign in at (1: a password alone)."""
    return max((FACTOR_LEVELS.get(kind, 1) for kind in factors or ()), default=1)


def meets(achieved: str | None, required: Iterable[str]) -> bool:
    """Does an achieved acr satisfy a requirement naming acceptable values? Yes when it is one of
    them, or when it is on the ladder at or above the lowest known value required (a passkey sign-in
    meets "…:mfa"). An unknown achieved value meets only itself; no requirement is always met."""
    required = tuple(required)
    if not required or achieved in required:
        return True
    known = [lvl for lvl in map(level, required) if lvl is not None]
    achieved_level = level(achieved)
    return bool(known) and achieved_level is not None and achieved_level >= min(known)


def claimed(amr: Iterable[str], requested: Iterable[str]) -> str:
    """The `acr` claim of tokens from a session with these amr values: the highest requested value
    it meets (OIDC Core §5.5.1.1: a value from the request), else what it achieved (`of`)."""
    achieved = level(of(amr))
    met = [value for value in requested if (lvl := level(value)) is not None and lvl <= achieved]
    return max(met, key=level) if met else of(amr)


@dataclass(frozen=True)
class Outcome:
    """What /authorize must do about how the user authenticated.

    action: "ok" (issue, with `acr` in the tokens), "verify" (the session must add a factor reaching
    `needed`: the /mfa page), "enroll" (policy requires a second factor and the user has none), or
    "unmet" (an essential acr the user cannot reach: unmet_authentication_requirements)."""

    action: str
    acr: str | None = None
    #: For "verify": the lowest acr value that would do.
    needed: str | None = None


def needed(*, session_amr: Iterable[str], user_factors: Iterable[str], acr_values: Iterable[str] = (),
           essential_acr: Iterable[str] = (), policy_requires_mfa: bool = False) -> Outcome:
    """The step-up decision for a signed-in session.

    - `acr_values` (and non-essential acr requested through `claims`) are voluntary (OIDC Core
      §3.1.2.1): a step-up is forced only when the user's factors can reach the lowest known level
      asked for; otherwise the request goes on and the `acr` claim says what was achieved.
      Unknown values are ignored.
    - `essential_acr` (the `claims` parameter's essential acr values, OIDC Core §5.5.1.1) is
      honoured or refused: the lowest known level among them must be reachable, else "unmet"
      (also when none is known).
    - `policy_requires_mfa` (MFA_POLICY=required or the client's require_mfa): at least level 2;
      a user with no second factor enrols first ("enroll").
    `user_factors`: the kinds the user has; pass none when second factors are off (MFA_POLICY=off),
    so nothing above the session's own level is ever asked for.
    """
    session_amr, user_factors = tuple(session_amr or ()), tuple(user_factors or ())
    acr_values, essential_acr = tuple(acr_values or ()), tuple(essential_acr or ())
    have = level(of(session_amr))
    can = max(have, reachable(user_factors))
    if policy_requires_mfa and can < 2:
        return Outcome("enroll", needed=MFA_ACR)
    target = 2 if policy_requires_mfa else 1
    if essential_acr:
        known = [lvl for lvl in map(level, essential_acr) if lvl is not None]
        if not known or min(known) > can:
            return Outcome("unmet")
        target = max(target, min(known))
    voluntary = [lvl for lvl in map(level, acr_values) if lvl is not None]
    if voluntary and min(voluntary) <= can:
        target = max(target, min(voluntary))
    if have < target:
        return Outcome("verify", needed=SUPPORTED[target - 1])
    return Outcome("ok", acr=claimed(session_amr, essential_acr or acr_values))
