"""One-time email links (chalicelib/storage/links.py): 128-bit tokens stored as hashes, typed codes
forgiven their formatting, one consumption per link, purpose and expiry enforced by the write."""
from __future__ import annotations

import threading

import pytest

from chalicelib.hashing import sha256_hex
from chalicelib.storage import links
from chalicelib.storage.models import LinkModel

AT = 1_800_000_000


def issue(purpose="verify_email", **kwargs):
    return links.issue(purpose, email="a@example.com", sub="u_1", at=AT, ttl=600, **kwargs)


def test_tokens_carry_at_least_128_bits_and_only_their_hash_is_stored(aws):
    token = issue()
    assert len(token) == links.TOKEN_LENGTH and links.TOKEN_BITS >= 128
    assert set(token) <= set(links._ALPHABET)
    stored = LinkModel.get(sha256_hex(token))
    assert token not in str(stored.attribute_values)
    assert issue() != token


def test_a_typed_code_is_forgiven_case_separators_and_confusable_letters(aws):
    token = issue()
    typed = links.display_code(token).lower().replace("1", "l").replace("0", "o")
    assert "-" in typed
    link, _ = links.consume(" " + typed + " ", "verify_email", AT + 1)
    assert link.email == "a@example.com" and link.sub == "u_1"


def test_peek_never_consumes(aws):
    token = issue(request_id="r1", data={"new_email": "b@example.com"})
    for _ in range(3):
        seen = links.peek(token, "verify_email", AT + 1)
        assert seen.request_id == "r1" and seen.data == {"new_email": "b@example.com"}
    assert isinstance(links.consume(token, "verify_email", AT + 2), tuple)


def test_a_link_is_consumed_once(aws):
    token = issue()
    assert isinstance(links.consume(token, "verify_email", AT + 1), tuple)
    refused = links.consume(token, "verify_email", AT + 2)
    assert refused.reason == "used" and refused.link.used_at == AT + 1
    assert links.peek(token, "verify_email", AT + 3).reason == "used"


@pytest.mark.parametrize("purpose", ["reset_password", "invitation", "email_change"])
def test_a_token_does_nothing_for_another_purpose(aws, purpose):
    token = issue()
    assert links.consume(token, purpose, AT + 1) == links.Refused("unknown")
    assert isinstance(links.consume(token, "verify_email", AT + 1), tuple)


def test_expiry_is_enforced_by_the_write_not_the_ttl(aws):
    token = issue()
    assert links.consume(token, "verify_email", AT + 600).reason == "expired"
    assert links.peek(token, "verify_email", AT + 600).reason == "expired"


def test_unknown_tokens_and_garbage_are_refused(aws):
    assert links.consume("0" * 26, "verify_email", AT) == links.Refused("unknown")
    assert links.consume("\u00e9\u0000" * 50, "verify_email", AT) == links.Refused("unknown")
    assert links.peek("", "verify_email", AT) == links.Refused("unknown")


def test_restore_puts_back_only_its_own_use(aws):
    token = issue()
    _, use_id = links.consume(token, "verify_email", AT + 1)
    assert links.restore(token, "someone-else") is False
    assert links.restore(token, use_id) is True
    _, second = links.consume(token, "verify_email", AT + 2)
    assert links.restore(token, use_id) is False  # the first use's undo cannot revive the second use
    assert links.consume(token, "verify_email", AT + 3).reason == "used" and second


def test_concurrent_consumption_has_exactly_one_winner(aws_server):
    """Eight threads POST one link at once against the moto server: one wins, seven are refused."""
    token = issue()
    results, barrier = [], threading.Barrier(8)

    def use():
        barrier.wait()
        results.append(links.consume(token, "verify_email", AT + 1))

    threads = [threading.Thread(target=use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(isinstance(r, tuple) for r in results) == 1
    assert sorted(r.reason for r in results if not isinstance(r, tuple)) == ["used"] * 7
