"""The grant item holds its refresh family's state in bounded space, and rotation is one
conditional update: only the current token of a live family of that client rotates."""
from __future__ import annotations

from bench.cost import item_size
from chalicelib.hashing import sha256_hex
from chalicelib.log import now
from chalicelib.storage import grants
from chalicelib.storage.models import GrantModel


def a_grant(sub="u_alice", grant_id="g1", client_id="app", **fields) -> grants.Grant:
    at = now()
    grant = grants.Grant(sub=sub, grant_id=grant_id, client_id=client_id, scopes=("openid", "offline_access"),
                         resources=("https://api.example.com",), created_at=at, expires_at=at + 3600,
                         auth_time=at, user_claims={"email": "alice@example.com"}, token_hash=sha256_hex("t0"),
                         token_expires_at=at + 600, **fields)
    grants.to_model(grant).save()
    return grant


def rotate(presented: str, successor: str, n: int, client_id="app"):
    return grants.rotate("u_alice", "g1", client_id, presented_hash=sha256_hex(presented), rotation=n,
                         successor_hash=sha256_hex(successor), token_expires_at=now() + 600, retry_seal=None,
                         at=now())


def test_rotation_answers_with_the_grant_and_moves_current_to_previous(aws):
    a_grant()
    rotated = rotate("t0", "t1", 0)
    assert (rotated.token_hash, rotated.previous_hash) == (sha256_hex("t1"), sha256_hex("t0"))
    assert rotated.scopes == ("openid", "offline_access") and rotated.user_claims == {"email": "alice@example.com"}
    assert grants.consumed_mark(sha256_hex("t0")) in rotated.consumed


def test_only_the_current_token_of_this_clients_live_family_rotates(aws):
    a_grant()
    assert rotate("t0", "t1", 0, client_id="other-app") is None
    assert rotate("not-the-current-one", "t1", 0) is None
    assert rotate("t0", "t1", 0) is not None
    assert rotate("t0", "t2", 0) is None, "a consumed token rotates no more"
    assert grants.revoke("u_alice", "g1", reason="test")
    assert rotate("t1", "t2", 1) is None, "a revoked family rotates no more"


def test_the_consumed_slots_stay_bounded_and_the_item_small(aws):
    """DynamoDB bills a write per KB of the whole item: the family's memory of consumed tokens must
    not grow with its age."""
    a_grant()
    for n in range(grants.CONSUMED_SLOTS + 8):
        assert rotate(f"t{n}", f"t{n + 1}", n) is not None
    item = GrantModel.get("u_alice", "g1")
    assert len(item.consumed.as_dict()) == grants.CONSUMED_SLOTS
    remembered = grants.get("u_alice", "g1").consumed
    last = grants.CONSUMED_SLOTS + 8 - 1
    assert grants.consumed_mark(sha256_hex(f"t{last}")) in remembered
    assert grants.consumed_mark(sha256_hex("t0")) not in remembered, "the oldest slot was reused"
    size = item_size(item.serialize())
    assert size <= 1024, f"the grant item is {size} bytes: more than one write unit per rotation"
