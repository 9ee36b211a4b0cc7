"""Abuse limits on sign-up, resend and reset (chalicelib/accounts/limits.py)."""
from __future__ import annotations

import pytest

from chalicelib.accounts import limits
from chalicelib.config import settings
from chalicelib.storage.models import ThrottleModel


@pytest.fixture
def tight(aws, monkeypatch):
    monkeypatch.setenv("ACCOUNT_ACTIONS_PER_IP", "3")
    monkeypatch.setenv("ACCOUNT_ACTIONS_PER_ADDRESS", "2")
    monkeypatch.setenv("EMAILS_PER_ADDRESS_PER_HOUR", "3")
    settings.cache_clear()
    yield
    settings.cache_clear()


def test_per_address_limit_refuses_with_the_seconds_left_in_the_window(tight):
    assert limits.allow("signup", email="a@example.com", ip="203.0.113.1") is None
    assert limits.allow("signup", email="a@example.com", ip="203.0.113.2") is None
    retry = limits.allow("signup", email="a@example.com", ip="203.0.113.3")
    assert retry is not None and 0 < retry <= limits.WINDOW_SECONDS
    assert limits.allow("signup", email="b@example.com", ip="203.0.113.3") is None


def test_per_ip_limit_counts_an_ipv6_client_by_its_64(tight):
    for i in range(3):
        assert limits.allow("reset", email=f"u{i}@example.com", ip=f"2001:db8:1:2::{i + 1}") is None
    assert limits.allow("reset", email="u9@example.com", ip="2001:db8:1:2::ff") is not None
    assert limits.allow("reset", email="u9@example.com", ip="2001:db8:1:3::1") is None


def test_emails_to_one_address_are_capped_across_actions(tight):
    assert limits.allow("signup", email="v@example.com", ip="203.0.113.1") is None
    assert limits.allow("resend", email="v@example.com", ip="203.0.113.2") is None
    assert limits.allow("reset", email="v@example.com", ip="203.0.113.3") is None
    # Each action is under its own limit of 2, but the address has had its 3 emails this hour.
    assert limits.allow("reset", email="v@example.com", ip="203.0.113.4") is not None


def test_a_refused_attempt_counts_nowhere_and_no_address_is_stored(tight):
    for ip in ("203.0.113.1", "203.0.113.2"):
        limits.allow("signup", email="w@example.com", ip=ip)
    limits.allow("signup", email="w@example.com", ip="203.0.113.9")
    keys = {item.pk: item.failures for item in ThrottleModel.scan()}
    assert not any("w@example.com" in key for key in keys)
    assert [count for key, count in keys.items() if key.startswith("signup-ip#203.0.113.9#")] == []
