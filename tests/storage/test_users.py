"""Users: unique normalised email enforced atomically, argon2id passwords, lookup, disabling."""
from __future__ import annotations

import json

import pytest

from chalicelib.passwords import verify_password
from chalicelib.storage import users
from chalicelib.storage.models import UserModel
from chalicelib.storage.users import InvalidUser, UserExists


def stored_items() -> list[dict]:
    from chalicelib.aws import client

    return client("dynamodb").scan(TableName=UserModel.Meta.table_name, ConsistentRead=True)["Items"]


def test_duplicate_email_is_rejected_atomically(aws):
    alice = users.create_user("alice@example.com", "correct horse")

    with pytest.raises(UserExists) as raised:
        users.create_user(" ALICE@example.com", "another horse")

    assert str(raised.value) == "a user with email 'alice@example.com' already exists"
    # One user and its email claim: the losing user item was not written either.
    assert sorted(item["pk"]["S"] for item in stored_items()) == sorted([alice.pk, "email#alice@example.com"])


def test_email_is_normalised_and_found_in_any_case(aws):
    user = users.create_user("  Alice@Example.COM ", "correct horse", name=" Alice ")
    assert user.email == "alice@example.com" and user.name == "Alice"
    assert users.find_user_by_email("ALICE@example.com").pk == user.pk
    assert users.find_user_by_email("bob@example.com") is None
    assert users.find_user_by_email("not an email") is None
    assert users.find_user_by_email("") is None


def test_normalise_email_never_raises_because_sign_in_uses_it_on_raw_input():
    assert users.normalise_email("  Not An Email\n") == "not an email"
    assert users.normalise_email(None) == ""


def test_sub_is_opaque_and_not_derived_from_the_email(aws):
    user = users.create_user("alice@example.com", "correct horse")
    assert user.pk.startswith("u_") and "alice" not in user.pk
    assert users.get_user(user.pk).email == "alice@example.com"
    assert users.get_user("email#alice@example.com") is None, "an email claim is not a user"


@pytest.mark.parametrize("email", [
    "", "alice", "alice@", "@example.com", "a@@example.com", "a@b@example.com", "alice@localhost",
    "alice@.com", "alice@example.", "al ice@example.com", "alice@exa\x00mple.com", "a@" + "b" * 250 + ".com",
])
def test_invalid_email_is_rejected_and_writes_nothing(aws, email):
    with pytest.raises(InvalidUser) as raised:
        users.create_user(email, "correct horse")
    assert str(raised.value) == f"invalid email address: {email.strip().lower()!r}"
    assert stored_items() == []


@pytest.mark.parametrize("password, message", [
    ("seven77", "password must be at least 8 characters"),
    ("x" * 1025, "password must be at most 1024 characters"),
])
def test_password_length_is_bounded(aws, password, message):
    with pytest.raises(InvalidUser) as raised:
        users.create_user("alice@example.com", password)
    assert str(raised.value) == message
    assert stored_items() == []


@pytest.mark.parametrize("password, message", [
    ("iloveyou", "password is too common: it is on a list of passwords that attackers try first"),
    ("Alice.Smith1987", "password must not be your email address or made from it"),
])
def test_the_password_policy_applies_and_a_refused_password_writes_nothing(aws, password, message):
    """chalicelib/password_policy.py decides; every rule has its own tests in tests/unit/test_password_policy.py."""
    with pytest.raises(InvalidUser) as raised:
        users.create_user("Alice.Smith@example.com", password)
    assert str(raised.value) == message
    assert stored_items() == []


def test_password_is_stored_as_argon2id_and_verifies(aws):
    user = users.create_user("alice@example.com", "correct horse")
    stored = users.get_user(user.pk).password_hash
    assert stored.startswith("$argon2id$v=19$")
    assert verify_password("correct horse", stored)
    assert not verify_password("correct horsE", stored)
    assert "correct horse" not in json.dumps(stored_items())


def test_disable_and_enable(aws):
    user = users.create_user("alice@example.com", "correct horse")
    assert users.get_user(user.pk).disabled is False

    assert users.set_user_disabled(user.pk, True) is True
    assert users.get_user(user.pk).disabled is True
    assert users.set_user_disabled(user.pk, False) is True
    assert users.get_user(user.pk).disabled is False


def test_disabling_an_unknown_user_creates_nothing(aws):
    assert users.set_user_disabled("u_missing", True) is False
    assert users.set_user_disabled("email#alice@example.com", True) is False
    assert stored_items() == []


def test_list_users_skips_email_claims(aws):
    alice = users.create_user("alice@example.com", "correct horse")
    bob = users.create_user("bob@example.com", "battery staple")
    listed = users.list_users()
    assert {u.pk for u in listed} == {alice.pk, bob.pk}
    assert all(isinstance(u, UserModel) for u in listed)
