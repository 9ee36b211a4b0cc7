"""Passkey ceremonies without storage (chalicelib/accounts/passkeys.py): stateless challenges bound
to browser, purpose, subject and time; every refusal of an assertion and a registration, driven
by a software authenticator (tests/webauthn_authenticator.py)."""
from __future__ import annotations

import json

import pytest

from chalicelib.accounts import passkeys
from chalicelib.accounts.passkeys import PasskeyRefused
from chalicelib.storage.factors import Factor, passkey_id
from tests.webauthn_authenticator import SoftAuthenticator, b64, unb64

BROWSER = "browser-cookie-value-0123456789abcdef"
SUB = "u_alice0000000000000000"


def registered(authenticator: SoftAuthenticator, sub: str = SUB) -> Factor:
    options = passkeys.registration_options(BROWSER, sub=sub, email="alice@example.com", display_name=None,
                                            existing_ids=[])
    new = passkeys.verify_registration(BROWSER, authenticator.create(options), sub=sub)
    return Factor(sub=sub, factor_id=passkey_id(new.credential_id), kind="passkey", created_at=0,
                  public_key=new.public_key, sign_count=new.sign_count, backup_eligible=new.backup_eligible)


def assertion(authenticator, *, purpose="login", sub=None, browser=BROWSER, **kwargs) -> str:
    return authenticator.get(passkeys.authentication_options(browser, purpose=purpose, sub=sub), **kwargs)


def refused(reason_part: str, *args, **kwargs):
    with pytest.raises(PasskeyRefused) as caught:
        passkeys.verify_assertion(*args, **kwargs)
    assert reason_part in caught.value.reason, caught.value.reason


# Challenges -------------------------------------------------------------------------------------------

def test_a_challenge_verifies_for_its_browser_purpose_and_subject_until_it_expires():
    challenge = passkeys.new_challenge(BROWSER, purpose="mfa", sub=SUB, at=1000)
    assert passkeys.checked_challenge(BROWSER, challenge, purpose="mfa", sub=SUB, at=1000) == 1000 + passkeys.CHALLENGE_TTL
    for browser, purpose, sub in (("another-browser-cookie-value-0123", "mfa", SUB), (BROWSER, "login", SUB),
                                  (BROWSER, "mfa", "u_mallory"), (BROWSER, "mfa", None)):
        with pytest.raises(PasskeyRefused, match="not ours"):
            passkeys.checked_challenge(browser, challenge, purpose=purpose, sub=sub, at=1000)
    with pytest.raises(PasskeyRefused, match="expired"):
        passkeys.checked_challenge(BROWSER, challenge, purpose="mfa", sub=SUB, at=1000 + passkeys.CHALLENGE_TTL)


def test_a_challenge_cannot_be_extended_or_truncated():
    challenge = bytearray(passkeys.new_challenge(BROWSER, purpose="login", at=1000))
    challenge[passkeys.NONCE_BYTES + passkeys.EXPIRY_BYTES - 1] ^= 0xFF  # a later expiry: the MAC no longer fits
    with pytest.raises(PasskeyRefused, match="not ours"):
        passkeys.checked_challenge(BROWSER, bytes(challenge), purpose="login", sub=None, at=1000)
    for broken in (b"", bytes(challenge[:-1]), bytes(challenge) + b"x"):
        with pytest.raises(PasskeyRefused, match="malformed"):
            passkeys.checked_challenge(BROWSER, broken, purpose="login", sub=None, at=1000)
    with pytest.raises(PasskeyRefused):
        passkeys.checked_challenge(None, bytes(challenge), purpose="login", sub=None, at=1000)


def test_challenges_are_random():
    assert passkeys.new_challenge(BROWSER, purpose="login") != passkeys.new_challenge(BROWSER, purpose="login")


def test_rp_id_and_origin_come_from_the_issuer():
    assert passkeys.rp_id("https://id.example.com/tenant") == "id.example.com"
    assert passkeys.expected_origin("https://id.example.com/tenant") == "https://id.example.com"
    assert passkeys.expected_origin("http://localhost:8000") == "http://localhost:8000"


# Assertions --------------------------------------------------------------------------------------------

def test_a_good_assertion_gives_amr_and_the_single_use_writes():
    authenticator = SoftAuthenticator()
    factor = registered(authenticator)
    use = passkeys.verify_assertion(BROWSER, assertion(authenticator), factor, purpose="login", sub=None,
                                    require_uv=True)
    assert use.amr == ["hwk", "user"] and passkeys.combined_amr((), use) == ["hwk", "user", "mfa"]
    assert passkeys.combined_amr(["pwd"], use) == ["pwd", "hwk", "user", "mfa"]
    assert [(item.kind, item.label) for item in use.items] == [("update", "passkey"), ("put", "challenge")]


def test_a_second_factor_without_user_verification_is_accepted_when_not_required():
    authenticator = SoftAuthenticator(backup_eligible=True)
    factor = registered(authenticator)  # registration demands user verification
    authenticator.user_verified = False
    use = passkeys.verify_assertion(BROWSER, assertion(authenticator, purpose="mfa", sub=SUB), factor,
                                    purpose="mfa", sub=SUB, require_uv=False)
    assert use.amr == ["swk"] and passkeys.combined_amr(["pwd"], use) == ["pwd", "swk", "mfa"]
    assert passkeys.combined_amr((), use) == ["swk"]  # a key without UV alone is one factor
    refused("assertion not valid", BROWSER, assertion(authenticator, purpose="mfa", sub=SUB), factor, purpose="mfa",
            sub=SUB, require_uv=True)


def test_assertions_for_another_origin_rp_purpose_or_browser_are_refused():
    authenticator = SoftAuthenticator()
    factor = registered(authenticator)
    refused("origin", BROWSER, assertion(authenticator, origin="https://evil.example"), factor, purpose="login",
            sub=None, require_uv=True)
    refused("RP ID", BROWSER, assertion(authenticator, rp_id="evil.example"), factor, purpose="login", sub=None,
            require_uv=True)
    refused("not ours", BROWSER, assertion(authenticator, purpose="account-login"), factor, purpose="login",
            sub=None, require_uv=True)
    refused("not ours", BROWSER, assertion(authenticator, browser="someone-elses-cookie-value-000000"), factor,
            purpose="login", sub=None, require_uv=True)


def test_a_bad_signature_is_refused():
    authenticator = SoftAuthenticator()
    factor = registered(authenticator)
    impostor = SoftAuthenticator(credential_id=authenticator.credential_id, user_handle=authenticator.user_handle,
                                 count=10)  # a counter ahead, so only the signature is wrong
    refused("assertion not valid", BROWSER, assertion(impostor), factor, purpose="login", sub=None, require_uv=True)


def test_a_user_handle_must_name_the_passkeys_user():
    authenticator = SoftAuthenticator()
    factor = registered(authenticator)
    refused("user handle", BROWSER, assertion(authenticator, user_handle=b"u_mallory"), factor, purpose="login",
            sub=None, require_uv=True)
    body = json.loads(assertion(authenticator))
    body["response"]["userHandle"] = None  # passwordless needs the user handle
    refused("user handle", BROWSER, json.dumps(body), factor, purpose="login", sub=None, require_uv=True)
    # A second factor: the known user must own the passkey.
    refused("another user", BROWSER, assertion(authenticator, purpose="mfa", sub="u_bob"), factor, purpose="mfa",
            sub="u_bob", require_uv=False)


def test_an_assertion_for_another_credential_than_the_one_read_is_refused():
    authenticator = SoftAuthenticator()
    factor = registered(authenticator)
    refused("not the passkey read", BROWSER, assertion(authenticator, credential_id=b"other-credential"), factor,
            purpose="login", sub=None, require_uv=True)


def test_a_sign_counter_that_does_not_grow_is_refused_and_logged(caplog):
    import logging

    from chalicelib.log import get_logger

    get_logger("idp").addHandler(caplog.handler)
    caplog.set_level(logging.WARNING, logger="idp")
    authenticator = SoftAuthenticator()
    factor = registered(authenticator)
    authenticator.count = 4
    factor = Factor(**{**factor.__dict__, "sign_count": 5})
    refused("sign counter", BROWSER, assertion(authenticator), factor, purpose="login", sub=None, require_uv=True)
    assert any("sign counter" in record.getMessage() and record.credential_id == factor.credential_id
               for record in caplog.records)


def test_a_zero_counter_is_no_regression():
    authenticator = SoftAuthenticator(fixed_count=0, backup_eligible=True)
    factor = registered(authenticator)
    for _ in range(2):
        passkeys.verify_assertion(BROWSER, assertion(authenticator), factor, purpose="login", sub=None,
                                  require_uv=True)


@pytest.mark.parametrize("credential", ["", "{", "[]", "null", '{"id": "AAAA"}', '{"id": "AAAA", "response": 1}',
                                        '{"id": "AAAA", "response": {"clientDataJSON": "%%"}}', "x" * 20000])
def test_malformed_credentials_are_refused(credential):
    factor = registered(SoftAuthenticator())
    with pytest.raises(PasskeyRefused):
        passkeys.verify_assertion(BROWSER, credential, factor, purpose="login", sub=None, require_uv=True)
    with pytest.raises(PasskeyRefused):
        passkeys.verify_registration(BROWSER, credential, sub=SUB)
    assert passkeys.credential_id_of(credential) in (None, "AAAA")


def test_the_user_handle_is_read_as_the_subject():
    authenticator = SoftAuthenticator(user_handle=SUB.encode())
    body = json.loads(assertion(authenticator))
    assert passkeys.user_handle_of(json.dumps(body)) == SUB
    body["response"]["userHandle"] = b64(b"\xff\xfe")
    assert passkeys.user_handle_of(json.dumps(body)) is None
    assert unb64(body["id"]) == authenticator.credential_id


# Registration ---------------------------------------------------------------------------------------

def test_registration_options_exclude_existing_passkeys_and_bind_the_subject():
    options = passkeys.registration_options(BROWSER, sub=SUB, email="alice@example.com", display_name="Alice",
                                            existing_ids=[b64(b"one"), b64(b"two")])
    assert [c["id"] for c in options["excludeCredentials"]] == [b64(b"one"), b64(b"two")]
    assert options["user"] == {"id": b64(SUB.encode()), "name": "alice@example.com", "displayName": "Alice"}
    new = SoftAuthenticator().create(options)
    with pytest.raises(PasskeyRefused, match="not ours"):
        passkeys.verify_registration(BROWSER, new, sub="u_mallory")


@pytest.mark.parametrize("authenticator, part", [
    (SoftAuthenticator(origin="https://evil.example"), "origin"),
    (SoftAuthenticator(user_verified=False), "verif"),
])
def test_registrations_from_elsewhere_or_without_user_verification_are_refused(authenticator, part):
    options = passkeys.registration_options(BROWSER, sub=SUB, email="a@example.com", display_name=None,
                                            existing_ids=[])
    with pytest.raises(PasskeyRefused) as caught:
        passkeys.verify_registration(BROWSER, authenticator.create(options), sub=SUB)
    assert part in caught.value.reason.lower() or part in caught.value.reason


def test_a_registration_for_another_rp_is_refused():
    options = passkeys.registration_options(BROWSER, sub=SUB, email="a@example.com", display_name=None,
                                            existing_ids=[])
    with pytest.raises(PasskeyRefused, match="RP ID"):
        passkeys.verify_registration(BROWSER, SoftAuthenticator().create(options, rp_id="evil.example"), sub=SUB)


def test_passkey_names_are_trimmed_and_bounded():
    assert passkeys.clean_name("  Phone ") == "Phone"
    assert passkeys.clean_name("") is None and passkeys.clean_name("a" * 101) is None
    assert passkeys.clean_name("bad\x00name") is None


def test_request_options_are_what_py_webauthn_would_make():
    from webauthn import generate_authentication_options
    from webauthn.helpers import options_to_json_dict
    from webauthn.helpers.structs import PublicKeyCredentialDescriptor, UserVerificationRequirement

    ours = passkeys.authentication_options(BROWSER, purpose="mfa", sub=SUB, credential_ids=[b64(b"one")],
                                           user_verification="preferred")
    theirs = options_to_json_dict(generate_authentication_options(
        rp_id="localhost", challenge=unb64(ours["challenge"]), timeout=passkeys.CEREMONY_TIMEOUT_MS,
        allow_credentials=[PublicKeyCredentialDescriptor(id=b"one")],
        user_verification=UserVerificationRequirement.PREFERRED))
    assert ours == theirs
