"""The password policy (NIST SP 800-63B-4 §3.1.1.2): length in code points, no composition rules,
not the user's email or made from it, not on the bundled list of common passwords."""
from __future__ import annotations

import types

import pytest

from chalicelib import password_policy
from chalicelib.pages import messages
from chalicelib.password_policy import MAX_LENGTH, MIN_LENGTH, problem

EMAIL = "alice.smith+idp@example.com"


# The list

@pytest.mark.parametrize("password", [
    "password", "iloveyou", "qwertyuiop", "12345678", "sunshine", "football",
    "PASSWORD", "PassWord", "Password1",  # case variants share one record (case folding)
    "\uff50\uff41\uff53\uff53\uff57\uff4f\uff52\uff44",  # fullwidth "password": NFKC makes it "password"
])
def test_a_password_on_the_list_is_refused(password):
    assert problem(password) == messages.PASSWORD_TOO_COMMON


@pytest.mark.parametrize("password", [
    "password-kangaroo-7", "iloveyou, said the giraffe", "qwertyuiop[]", "correct horse battery staple",
])
def test_a_near_miss_of_a_listed_password_is_accepted(password):
    assert problem(password) is None


def test_no_composition_rules_a_long_lowercase_passphrase_is_enough():
    assert problem("tangerine lighthouse umbrella") is None


# Length

def test_length_is_counted_in_code_points_not_bytes():
    assert problem("\U0001f999" * 7) == messages.PASSWORD_TOO_SHORT  # 28 UTF-8 bytes, 7 characters
    assert problem("\U0001f999" * 8) is None
    assert problem("\u00e9t\u00e9 \u00e0 l'\u00eele") is None  # 11 characters, 15 bytes


def test_a_short_password_cannot_look_long_through_normalisation():
    """NFKC expands U+FDFA into 18 code points, and composes "e" + U+0301 into one."""
    assert problem("\ufdfa" * 7) == messages.PASSWORD_TOO_SHORT
    assert problem("e\u0301" * 4) == messages.PASSWORD_TOO_SHORT
    assert problem("e\u0301" * 8) is None


def test_seven_characters_are_refused_and_eight_accepted():
    assert problem("zq8v!kw") == messages.PASSWORD_TOO_SHORT
    assert problem("zq8v!kwm") is None


def test_64_characters_and_up_to_the_maximum_are_accepted():
    passphrase = "the quick onyx goblin jumps over the lazy dwarf near 7 red barns"
    assert len(passphrase) == 64 and problem(passphrase) is None
    assert problem(("0123456789abcdef" * 64)[:MAX_LENGTH]) is None
    assert problem("x" * (MAX_LENGTH + 1)) == messages.PASSWORD_TOO_LONG


def test_an_oversized_password_is_refused_before_any_normalisation(monkeypatch):
    def normalise_fails(*args):
        raise AssertionError("an oversized password was normalised")

    monkeypatch.setattr(password_policy, "unicodedata", types.SimpleNamespace(normalize=normalise_fails))
    assert problem("\ufdfa" * 100_000) == messages.PASSWORD_TOO_LONG


@pytest.mark.parametrize("password", [
    "\u043f\u0430\u0440\u043e\u043b\u044c-\u043e\u0447\u0435\u043d\u044c-\u043d\u0430\u0434\u0451\u0436\u043d\u044b\u0439",
    "\u5bc6\u7801\u662f\u4e00\u5339\u6b63\u786e\u7684\u9a6c\u7535\u6c60\u9489",
    "\U0001f999 \U0001f999 llama drama \u2615",
])
def test_unicode_passwords_are_accepted(password):
    assert problem(password) is None


def test_the_messages_state_the_limits_the_code_enforces():
    assert messages.PASSWORD_TOO_SHORT == f"password must be at least {MIN_LENGTH} characters"
    assert messages.PASSWORD_TOO_LONG == f"password must be at most {MAX_LENGTH} characters"
    assert MIN_LENGTH >= 8 and MAX_LENGTH >= 64  # SP 800-63B-4 §3.1.1.2: SHALL 8, SHOULD permit 64


# The user's email

@pytest.mark.parametrize("password", [
    EMAIL, "ALICE.SMITH+IDP@EXAMPLE.COM",     # the address
    "alice.smith@example.com",                # without its +tag
    "alice.smith", "alice.smith+idp",         # the local part, with and without the tag
    "AliceSmith", "alice_smith!!", "alice smith 99", "2024alice.smith", "AliceSmith2024!",  # decorated
    "\uff41\uff4c\uff49\uff43\uff45\uff53\uff4d\uff49\uff54\uff48",  # fullwidth
])
def test_the_email_and_what_is_made_from_it_are_refused(password):
    assert problem(password, EMAIL) == messages.PASSWORD_CONTAINS_EMAIL


def test_a_local_part_with_digits_is_refused_with_other_digits():
    assert problem("bob1987!", "bob1987@example.com") == messages.PASSWORD_CONTAINS_EMAIL
    assert problem("bob20242024", "bob1987@example.com") == messages.PASSWORD_CONTAINS_EMAIL
    assert problem("12345987", "12345987@example.com") == messages.PASSWORD_CONTAINS_EMAIL


@pytest.mark.parametrize("password", [
    "alice in wonderland 1865",   # contains the name but is not made from it
    "example.com is my employer",  # the domain is shared with every colleague: not this user's word
    "smith alice cat",
])
def test_a_password_that_merely_mentions_the_name_is_accepted(password):
    assert problem(password, EMAIL) is None


def test_without_an_email_only_the_other_rules_apply():
    assert problem("alice.smith2024") is None
    assert problem("alice.smith2024", None) is None
    assert problem("alice.smith2024", "") is None
    assert problem("alice.smith2024", "bob@example.com") is None
    assert problem("alice.smith2024", EMAIL) == messages.PASSWORD_CONTAINS_EMAIL


# The bundled file

def test_the_bundled_list_has_at_least_100k_sorted_distinct_fixed_width_records():
    data = password_policy.COMMON_PASSWORDS.read_bytes()
    width = password_policy.RECORD_BYTES
    assert len(data) % width == 0
    records = [data[i:i + width] for i in range(0, len(data), width)]
    assert len(records) >= 100_000
    assert all(a < b for a, b in zip(records, records[1:])), "records must be sorted and distinct"
    assert len(data) <= 600_000, "the list ships in every Lambda package"


def test_the_list_is_read_once_per_container_and_only_when_a_password_is_checked(monkeypatch):
    password_policy._common_passwords.cache_clear()
    reads = []
    real = type(password_policy.COMMON_PASSWORDS).read_bytes
    monkeypatch.setattr(type(password_policy.COMMON_PASSWORDS), "read_bytes",
                        lambda path: reads.append(path) or real(path))
    assert problem("zq8v!kw") == messages.PASSWORD_TOO_SHORT and reads == []
    assert problem("password") == messages.PASSWORD_TOO_COMMON
    assert problem("tangerine lighthouse umbrella") is None
    assert reads == [password_policy.COMMON_PASSWORDS]
