"""The acr ladder and the step-up decision (chalicelib/oauth/acr.py): pure, one rule per test."""
from __future__ import annotations

import pytest

from chalicelib.oauth import acr
from chalicelib.oauth.acr import MFA_ACR, PASSWORD_ACR, PHR_ACR, Outcome, needed

PASSWORD = ("pwd",)
TOTP = ("pwd", "otp", "mfa")
PASSKEY = ("hwk", "user", "mfa")
SYNCED_PASSKEY_AFTER_PASSWORD = ("pwd", "swk", "mfa")


def test_the_ladder_is_password_then_mfa_then_phishing_resistant():
    assert acr.SUPPORTED == ("urn:serverless-idp:acr:password", "urn:serverless-idp:acr:mfa", "phr")
    assert [acr.level(v) for v in acr.SUPPORTED] == [1, 2, 3]


@pytest.mark.parametrize("value", ["urn:other:acr", "", None, "PHR", "0"])
def test_an_unknown_acr_value_has_no_level(value):
    assert acr.level(value) is None


@pytest.mark.parametrize("amr, expected", [
    (PASSWORD, PASSWORD_ACR),
    ((), PASSWORD_ACR),  # a session from before amr was kept
    (TOTP, MFA_ACR),
    (("pwd", "otp"), MFA_ACR),
    (PASSKEY, PHR_ACR),
    (SYNCED_PASSKEY_AFTER_PASSWORD, PHR_ACR),
    (("pwd", "hwk", "mfa"), PHR_ACR),
])
def test_of_maps_amr_to_the_acr_achieved(amr, expected):
    assert acr.of(amr) == expected


@pytest.mark.parametrize("factors, expected", [((), 1), (("recovery",), 2), (("totp",), 2),
                                               (("totp", "recovery", "passkey"), 3), (("unknown",), 1)])
def test_a_user_reaches_the_level_of_their_strongest_factor(factors, expected):
    assert acr.reachable(factors) == expected


@pytest.mark.parametrize("achieved, required, expected", [
    (MFA_ACR, [MFA_ACR], True),
    (PHR_ACR, [MFA_ACR], True),  # higher on the ladder
    (PASSWORD_ACR, [MFA_ACR], False),
    (PASSWORD_ACR, [MFA_ACR, PASSWORD_ACR], True),  # one of them
    (MFA_ACR, ["urn:other"], False),
    ("urn:other", ["urn:other"], True),  # an exact match needs no ladder
    (None, [MFA_ACR], False),
    (None, [], True),
])
def test_meets_accepts_a_listed_value_or_one_higher_on_the_ladder(achieved, required, expected):
    assert acr.meets(achieved, required) is expected


def test_a_password_session_asked_for_mfa_by_a_user_with_totp_must_verify():
    assert needed(session_amr=PASSWORD, user_factors=("totp",), acr_values=[MFA_ACR]) == \
        Outcome("verify", needed=MFA_ACR)


def test_voluntary_acr_values_the_user_cannot_reach_are_not_forced():
    """OIDC Core §3.1.2.1: acr_values is voluntary: without a factor the request goes on, and the
    acr claim says what was achieved."""
    assert needed(session_amr=PASSWORD, user_factors=(), acr_values=[MFA_ACR]) == Outcome("ok", acr=PASSWORD_ACR)
    assert needed(session_amr=PASSWORD, user_factors=("totp",), acr_values=[PHR_ACR]) == \
        Outcome("ok", acr=PASSWORD_ACR)


def test_the_least_requested_known_level_is_the_target():
    assert needed(session_amr=PASSWORD, user_factors=("passkey",), acr_values=[PHR_ACR, MFA_ACR]) == \
        Outcome("verify", needed=MFA_ACR)


def test_unknown_voluntary_values_are_ignored():
    assert needed(session_amr=PASSWORD, user_factors=("totp",), acr_values=["urn:other", "gold"]) == \
        Outcome("ok", acr=PASSWORD_ACR)


def test_a_session_meeting_the_request_is_ok_with_the_highest_requested_value_it_meets():
    assert needed(session_amr=PASSKEY, user_factors=("passkey",), acr_values=[PASSWORD_ACR, MFA_ACR]) == \
        Outcome("ok", acr=MFA_ACR)
    assert needed(session_amr=TOTP, user_factors=("totp",), acr_values=[MFA_ACR, PHR_ACR]) == \
        Outcome("ok", acr=MFA_ACR)


def test_without_a_request_the_acr_is_what_the_session_achieved():
    assert needed(session_amr=PASSKEY, user_factors=("passkey",)) == Outcome("ok", acr=PHR_ACR)
    assert needed(session_amr=PASSWORD, user_factors=("totp",)) == Outcome("ok", acr=PASSWORD_ACR)


def test_an_essential_acr_the_user_can_reach_forces_a_step_up():
    assert needed(session_amr=PASSWORD, user_factors=("passkey",), essential_acr=[PHR_ACR]) == \
        Outcome("verify", needed=PHR_ACR)


def test_an_essential_acr_the_user_cannot_reach_is_unmet():
    assert needed(session_amr=PASSWORD, user_factors=("totp",), essential_acr=[PHR_ACR]).action == "unmet"
    assert needed(session_amr=PASSWORD, user_factors=(), essential_acr=[MFA_ACR]).action == "unmet"


def test_an_essential_acr_with_no_known_value_is_unmet():
    assert needed(session_amr=PASSKEY, user_factors=("passkey",), essential_acr=["urn:other"]).action == "unmet"


def test_a_met_essential_acr_is_claimed_as_one_of_its_values():
    """OIDC Core §5.5.1.1: the acr returned must be one of the essential values."""
    assert needed(session_amr=PASSKEY, user_factors=("passkey",), essential_acr=[MFA_ACR],
                  acr_values=[PHR_ACR]) == Outcome("ok", acr=MFA_ACR)


def test_policy_requiring_mfa_sends_a_user_without_a_factor_to_enrol():
    assert needed(session_amr=PASSWORD, user_factors=(), policy_requires_mfa=True).action == "enroll"


def test_policy_requiring_mfa_asks_a_password_session_of_a_user_with_a_factor_for_it():
    assert needed(session_amr=PASSWORD, user_factors=("recovery", "totp"), policy_requires_mfa=True) == \
        Outcome("verify", needed=MFA_ACR)
    assert needed(session_amr=TOTP, user_factors=("totp",), policy_requires_mfa=True) == Outcome("ok", acr=MFA_ACR)


def test_with_second_factors_off_nothing_above_the_session_is_asked_for():
    """MFA_POLICY=off: the caller passes no factors, so voluntary values are not forced and an
    essential one above the session is unmet."""
    assert needed(session_amr=PASSWORD, user_factors=(), acr_values=[MFA_ACR]) == Outcome("ok", acr=PASSWORD_ACR)
    assert needed(session_amr=PASSWORD, user_factors=(), essential_acr=[MFA_ACR]).action == "unmet"
    assert needed(session_amr=PASSWORD, user_factors=(), essential_acr=[PASSWORD_ACR]) == \
        Outcome("ok", acr=PASSWORD_ACR)


@pytest.mark.parametrize("before, added, expected", [
    (["pwd"], [], ["pwd"]),
    (["pwd"], ["otp"], ["pwd", "otp", "mfa"]),
    (["pwd"], ["hwk"], ["pwd", "hwk", "mfa"]),  # a passkey as the second factor, with or without UV
    (["pwd"], ["swk", "user"], ["pwd", "swk", "user", "mfa"]),
    ([], ["hwk", "user"], ["hwk", "user", "mfa"]),  # a passkey with user verification alone
    ([], ["swk"], ["swk"]),  # a passkey without user verification is one factor
    (["pwd", "otp", "mfa"], ["hwk"], ["pwd", "otp", "mfa", "hwk"]),  # step-up: each value once
    (["pwd"], ["pwd"], ["pwd"]),
])
def test_combined_amr_names_mfa_exactly_when_two_factors_were_used(before, added, expected):
    assert acr.combined(before, added) == expected
