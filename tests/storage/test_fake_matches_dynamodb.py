"""The in-memory storage (tests/fakes/storage.py) answers exactly as DynamoDB does.

Each scenario runs twice in one test: on the real storage modules over in-process moto, then on the
fake, from the same clock reading and the same seeded state; the two traces of answers (records,
outcomes, booleans) must be equal, and a few key answers are also stated outright so that both cannot
be wrong the same way. The unit tests of the core (tests/unit/test_grants_core.py,
tests/unit/test_authorization_decision.py) rely on the fake only as far as this keeps it honest.
"""
from __future__ import annotations

import dataclasses

import pytest

from chalicelib.hashing import sha256_hex
from chalicelib.log import now
from chalicelib.storage import authorization_requests, codes, consents, grants, revoked_tokens, sessions, used_jtis
from chalicelib.storage import pushed_requests
from chalicelib.storage.authorization_requests import PendingRequest
from chalicelib.storage.codes import Code, NotIssued, Refused
from chalicelib.storage.grants import Grant, consumed_mark
from tests.fakes.storage import forbid_aws, install

SUB, CLIENT, OTHER = "u_alice", "client-1", "client-2"
SESSION = sha256_hex("session cookie")
REQUEST = PendingRequest(request_id="request-1", client_id=CLIENT, redirect_uri="https://app.example.com/cb",
                         code_challenge="c" * 43, code_challenge_method="S256", created_at=0, expires_at=0,
                         scopes=("openid", "notes:read"), resources=("https://notes.example.com/api",),
                         state="state-1", nonce="nonce-1", prompt=("consent",), max_age=60, client_public=True,
                         ui_locale="de")
PAIRS = {"openid https://notes.example.com/api", "notes:read https://notes.example.com/api"}

#: Token hashes as the core computes them (SHA-256, hex): consumed slots keep a prefix of them.
H0, H1 = sha256_hex("h0"), sha256_hex("h1")


class DynamoSeed:
    """The fake's arranging methods, written to the real tables."""

    def add_user(self, sub, *, disabled=False, session_generation=0, email="user@example.com", name=None,
                 factors=()):
        from chalicelib.storage.models import UserModel

        UserModel(pk=sub, email=email, name=name, password_hash="-", disabled=disabled,
                  session_generation=session_generation, factors=set(factors) or None, created_at=0,
                  updated_at=0).save()

    def add_session(self, session_hash, sub, *, auth_time, expires_at, session_generation=0, revoked=False,
                    user_claims=None, amr=("pwd",), factors=()):
        import json

        from chalicelib.storage.models import SessionModel

        SessionModel(session_hash=session_hash, sub=sub, auth_time=auth_time, amr=list(amr), created_at=auth_time,
                     expires_at=expires_at, revoked=revoked, session_generation=session_generation,
                     user_claims=json.dumps(user_claims) if user_claims else None,
                     factors=sorted(factors) or None).save()

    def add_consent(self, sub, client_id, pairs):
        from chalicelib.storage.models import ConsentModel

        # An empty set cannot be stored: an item without pairs has no attribute at all.
        actions = [ConsentModel.updated_at.set(0)] + ([ConsentModel.audience_scopes.add(set(pairs))] if pairs else [])
        ConsentModel(pk=f"{sub}#{client_id}").update(actions=actions)

    def add_resource(self, uri, name, scopes, *, public=False):
        from chalicelib.storage.models import ResourceModel

        ResourceModel(resource=uri, name=name, scopes=list(scopes), public=public, created_at=0).save()

    def add_connection(self, connection):
        from chalicelib.storage.connections import add_connection

        assert add_connection(connection)


@pytest.fixture
def same_on_both(aws, monkeypatch):
    """run(scenario) -> the scenario's trace, after checking the fake's equals DynamoDB's."""

    def run(scenario):
        at = now()
        on_dynamodb = scenario(DynamoSeed(), at)
        with monkeypatch.context() as patch:
            forbid_aws(patch)
            on_memory = scenario(install(patch), at)
        assert on_memory == on_dynamodb
        return on_dynamodb

    return run


def code_and_grant(at, *, code="code-1", grant_id="grant-1", client_id=CLIENT, session_hash=SESSION,
                   code_ttl=60, user_claims=None):
    claims = {"name": "Alice", "email": "alice@example.com", "email_verified": True} if user_claims is None \
        else user_claims
    grant = Grant(sub=SUB, grant_id=grant_id, client_id=client_id, scopes=("openid", "notes:read"),
                  resources=("https://notes.example.com/api",), created_at=at, expires_at=at + 1000,
                  auth_time=at - 5, session_hash=session_hash, session_generation=0, user_claims=claims,
                  amr=("pwd", "otp", "mfa"), acr="urn:serverless-idp:acr:mfa")
    record = Code(code_hash=sha256_hex(code), client_id=client_id, redirect_uri="https://app.example.com/cb",
                  code_challenge="c" * 43, code_challenge_method="S256", scopes=grant.scopes,
                  resources=grant.resources, sub=SUB, auth_time=at - 5, grant_id=grant_id, created_at=at,
                  expires_at=at + code_ttl, nonce="n-1", session_hash=session_hash, user_claims=claims,
                  amr=grant.amr, acr=grant.acr)
    return record, grant


def signed_in(seed, at, **session):
    seed.add_user(SUB)
    seed.add_session(SESSION, SUB, auth_time=at - 5, expires_at=at + 600, **session)


def issue(at, *, code="code-1", grant_id="grant-1", consent_pairs=None, request_id=None, session_generation=0,
          **kwargs):
    record, grant = code_and_grant(at, code=code, grant_id=grant_id, **kwargs)
    return codes.issue(record, grant, session_hash=kwargs.get("session_hash", SESSION),
                       session_generation=session_generation, consent_pairs=consent_pairs, request_id=request_id,
                       at=at)


def test_a_code_is_redeemed_once_by_its_client_before_it_expires(same_on_both):
    def scenario(seed, at):
        signed_in(seed, at)
        return [issue(at), issue(at, code="short", grant_id="grant-2", code_ttl=0),
                codes.consume("code-1", OTHER, at), codes.consume("code-1", CLIENT, at + 1),
                codes.consume("code-1", CLIENT, at + 2), codes.consume("never issued", CLIENT, at),
                codes.consume("short", CLIENT, at), codes.consume("short", OTHER, at),
                grants.get(SUB, "grant-1"), sessions.get(SESSION)]

    trace = same_on_both(scenario)
    at = trace[3].created_at
    assert trace[:2] == [None, None]
    assert trace[2].reason == "other_client" and trace[2].code.consumed_at is None
    assert trace[3] == dataclasses.replace(code_and_grant(at)[0], consumed_at=at + 1)
    assert (trace[4].reason, trace[4].code.consumed_at) == ("replayed", at + 1)
    assert trace[5:8] == [Refused("unknown"), Refused("expired", trace[6].code), Refused("other_client", trace[7].code)]
    assert trace[8] == code_and_grant(at)[1]
    assert trace[9].grant_ids == {"grant-1", "grant-2"} and not trace[9].user_checked


def test_a_grant_without_user_claims_reads_back_with_none(same_on_both):
    def scenario(seed, at):
        signed_in(seed, at)
        return [issue(at, user_claims={}), codes.consume("code-1", CLIENT, at), grants.get(SUB, "grant-1")]

    trace = same_on_both(scenario)
    assert trace[1].user_claims == {} and trace[2].user_claims == {}


def test_rotation_current_previous_consumed_and_unknown_tokens(same_on_both, monkeypatch):
    monkeypatch.setattr(grants, "CONSUMED_SLOTS", 2)  # so the slots wrap within the scenario
    h = [sha256_hex(f"token {n}") for n in range(5)]

    def rotate(n, at, *, presented=None, client_id=CLIENT, seal=None):
        return grants.rotate(SUB, "grant-1", client_id, presented_hash=h[n] if presented is None else presented,
                             rotation=n, successor_hash=h[n + 1], token_expires_at=at + 100, retry_seal=seal, at=at)

    def scenario(seed, at):
        signed_in(seed, at)
        return [issue(at),
                grants.start_family(SUB, "grant-1", CLIENT, token_hash=h[0], token_expires_at=at + 100, at=at)
                and grants.get(SUB, "grant-1"),
                rotate(0, at + 1, client_id=OTHER),  # another client's
                rotate(0, at + 100),  # gone idle
                rotate(0, at + 1, seal="sealed 1"),  # the current token
                rotate(0, at + 2),  # the previous one
                rotate(1, at + 3),
                rotate(2, at + 4),  # slot 0 now remembers token 2, not token 0
                grants.get(SUB, "grant-1"),
                rotate(1, at + 5, presented=h[1]),  # a remembered consumed token
                rotate(0, at + 5, presented=sha256_hex("never issued")),
                grants.get(SUB, "grant-1")]

    trace = same_on_both(scenario)
    at = trace[1].created_at
    assert trace[1].token_hash == h[0] and trace[1].last_used_at == at
    assert trace[2:4] == [None, None]
    assert (trace[4].token_hash, trace[4].previous_hash, trace[4].retry_seal) == (h[1], h[0], "sealed 1")
    assert trace[5] is None
    assert (trace[7].token_hash, trace[7].previous_hash, trace[7].retry_seal) == (h[3], h[2], None)
    assert trace[8].consumed == {consumed_mark(h[2]), consumed_mark(h[1])}
    assert trace[9:11] == [None, None] and trace[11] == trace[8]


def test_a_rotation_stops_at_the_family_s_absolute_lifetime(same_on_both):
    def scenario(seed, at):
        signed_in(seed, at)
        issue(at)
        assert grants.start_family(SUB, "grant-1", CLIENT, token_hash=H0, token_expires_at=at + 5000, at=at)
        return [grants.get(SUB, "grant-1"),
                grants.rotate(SUB, "grant-1", CLIENT, presented_hash=H0, rotation=0, successor_hash=H1,
                              token_expires_at=at + 6000, retry_seal=None, at=at + 1000),
                grants.start_family(SUB, "grant-1", CLIENT, token_hash=None, token_expires_at=None, at=at + 1000),
                grants.active(SUB, "grant-1")]

    trace = same_on_both(scenario)
    assert trace[1:3] == [None, False] and trace[3] == trace[0]


def test_start_family_without_a_refresh_token_and_for_another_client(same_on_both):
    def scenario(seed, at):
        signed_in(seed, at)
        issue(at)
        return [grants.start_family(SUB, "grant-1", OTHER, token_hash=H0, token_expires_at=at + 9, at=at),
                grants.start_family(SUB, "grant-1", CLIENT, token_hash=None, token_expires_at=None, at=at + 1),
                grants.get(SUB, "grant-1"),
                grants.start_family(SUB, "no such grant", CLIENT, token_hash=None, token_expires_at=None, at=at)]

    trace = same_on_both(scenario)
    assert trace[0] is False and trace[1] is True and trace[3] is False
    assert (trace[2].token_hash, trace[2].last_used_at) == (None, trace[2].created_at + 1)


def test_revoked_grants_stay_revoked(same_on_both):
    def scenario(seed, at):
        signed_in(seed, at)
        issue(at)
        started = grants.start_family(SUB, "grant-1", CLIENT, token_hash=H0, token_expires_at=at + 100, at=at)
        return [started, grants.revoke(SUB, "grant-1", reason="test"), grants.revoke(SUB, "grant-1", reason="again"),
                grants.revoke(SUB, "no such grant", reason="test"), grants.revoke("", "grant-1", reason="test"),
                grants.revoke(SUB, "x" * 129, reason="test"),
                grants.start_family(SUB, "grant-1", CLIENT, token_hash="h9", token_expires_at=at + 100, at=at),
                grants.rotate(SUB, "grant-1", CLIENT, presented_hash=H0, rotation=0, successor_hash=H1,
                              token_expires_at=at + 100, retry_seal=None, at=at),
                grants.active(SUB, "grant-1"), grants.get(SUB, "grant-1")]

    trace = same_on_both(scenario)
    assert trace[1:9] == [True, False, False, False, False, False, None, None]
    assert trace[9].status == "revoked" and trace[9].token_hash == H0


def test_revocation_by_refresh_token_needs_the_current_or_previous_token_of_the_client(same_on_both):
    def scenario(seed, at):
        signed_in(seed, at)
        trace = []
        for n, presented in enumerate([H1, H0, "h2", "h9"]):
            grant_id = f"grant-{n}"
            issue(at, code=f"code-{n}", grant_id=grant_id)
            grants.start_family(SUB, grant_id, CLIENT, token_hash=H0, token_expires_at=at + 100, at=at)
            grants.rotate(SUB, grant_id, CLIENT, presented_hash=H0, rotation=0, successor_hash=H1,
                          token_expires_at=at + 100, retry_seal=None, at=at)
            trace += [grants.revoke_by_refresh_token(SUB, grant_id, OTHER, presented),
                      grants.revoke_by_refresh_token(SUB, grant_id, CLIENT, presented)]
        return trace + [grants.revoke_by_refresh_token(SUB, "grant-0", CLIENT, H1),
                        grants.revoke_by_refresh_token("", "grant-0", CLIENT, H1)]

    assert same_on_both(scenario) == [False, True, False, True, False, False, False, False, False, False]


def test_access_tokens_are_denied_one_by_one_up_to_the_bound(same_on_both, monkeypatch):
    monkeypatch.setattr(grants, "MAX_REVOKED_JTIS", 3)

    def scenario(seed, at):
        signed_in(seed, at)
        issue(at)
        trace = [grants.deny_access_token(SUB, "grant-1", f"jti-{n}") for n in range(4)]
        return trace + [grants.deny_access_token(SUB, "grant-1", "jti-0"),
                        grants.deny_access_token(SUB, "no such grant", "jti-0"),
                        grants.get(SUB, "grant-1").revoked_jtis]

    assert same_on_both(scenario) == [True, True, True, False, False, False, {"jti-0", "jti-1", "jti-2"}]


def test_a_live_session_records_its_users_factor_kinds(same_on_both):
    def scenario(seed, at):
        signed_in(seed, at, factors=("totp",))
        seed.add_session("ended", SUB, auth_time=at - 5, expires_at=at + 600, revoked=True)
        seed.add_session("expired", SUB, auth_time=at - 700, expires_at=at - 100)
        return [sessions.get(SESSION).factors, sessions.set_factors(SESSION, ["totp", "passkey"]),
                sessions.get(SESSION).factors, sessions.set_factors("ended", ["totp"]),
                sessions.set_factors("expired", ["totp"]), sessions.set_factors("nobody", ["totp"]),
                sessions.set_factors(SESSION, []), sessions.get(SESSION).factors]

    assert same_on_both(scenario) == [("totp",), True, ("passkey", "totp"), False, False, False, True, ()]


def test_revoking_every_grant_of_a_user_or_a_client_and_ending_a_session(same_on_both):
    def scenario(seed, at):
        signed_in(seed, at)
        for n, client_id in enumerate([CLIENT, CLIENT, OTHER]):
            issue(at, code=f"code-{n}", grant_id=f"grant-{n}", client_id=client_id)
        grants.revoke(SUB, "grant-1", reason="test")
        return [grants.revoke_grants_of(client_id=OTHER, reason="client disabled"),
                grants.revoke_all_of_user(SUB, reason="user disabled"),
                grants.revoke_all_of_user(SUB, reason="again"), grants.revoke_all_of_user("u_nobody", reason="none"),
                sessions.end(SESSION), sessions.get(SESSION), sessions.end(sha256_hex("no session"))]

    trace = same_on_both(scenario)
    assert trace[:4] == [1, 1, 0, 0]
    assert trace[4].revoked and trace[4].grant_ids == {"grant-0", "grant-1", "grant-2"} and trace[4].user_checked
    assert trace[5].revoked and not trace[5].user_checked and trace[6] is None


def test_revoking_a_users_grants_for_account_deletion_erases_their_kept_claims(same_on_both):
    def scenario(seed, at):
        signed_in(seed, at)
        issue(at, code="code-0", grant_id="grant-0")
        issue(at, code="code-1", grant_id="grant-1")
        grants.revoke(SUB, "grant-0", reason="test")
        return [grants.revoke_all_of_user(SUB, reason="account deleted", erase_claims=True),
                grants.get(SUB, "grant-0").user_claims, grants.get(SUB, "grant-1").user_claims]

    trace = same_on_both(scenario)
    assert trace[0] == 1 and trace[1] and trace[2] == {}, "only the grants it revokes lose their claims"


def test_a_grant_and_its_user_together_and_the_deny_list(same_on_both):
    def scenario(seed, at):
        signed_in(seed, at)
        issue(at)
        grant, user = grants.with_user(SUB, "grant-1")
        missing, same_user = grants.with_user(SUB, "no such grant")
        revoked_tokens.deny("jti-1", at + 60)
        return [grant, (user.pk, user.email, user.disabled, user.session_generation), missing, same_user.pk,
                revoked_tokens.is_denied("jti-1"), revoked_tokens.is_denied("jti-2")]

    trace = same_on_both(scenario)
    assert trace[0].grant_id == "grant-1" and trace[1][0] == SUB and trace[2:] == [None, SUB, True, False]
    assert trace[0].scopes == () and trace[0].token_hash is None, "only the access state is read"


def test_a_jwt_is_used_once_per_kind_and_issuer(same_on_both):
    def scenario(seed, at):
        return [used_jtis.use("client_assertion", "client-a", "jti-1", at + 60),
                used_jtis.use("client_assertion", "client-a", "jti-1", at + 60),
                used_jtis.use("client_assertion", "client-b", "jti-1", at + 60),
                used_jtis.use("id_jag", "client-a", "jti-1", at + 60)]

    assert same_on_both(scenario) == [True, False, True, True], "a replay is refused; other issuers and kinds are not"


def test_the_access_state_of_a_grant_reads_its_status_lifetime_client_and_revoked_jtis(same_on_both):
    def scenario(seed, at):
        signed_in(seed, at)
        issue(at)
        assert grants.start_family(SUB, "grant-1", CLIENT, token_hash=H0, token_expires_at=at + 100, at=at)
        before = grants.access_state(SUB, "grant-1")
        grants.deny_access_token(SUB, "grant-1", "jti-1")
        denied = grants.access_state(SUB, "grant-1")
        grants.revoke(SUB, "grant-1", reason="test")
        return [before, denied, grants.access_state(SUB, "grant-1"), grants.access_state(SUB, "no such grant"),
                grants.access_state("", "grant-1")]

    trace = same_on_both(scenario)
    assert (trace[0].status, trace[0].client_id, trace[0].revoked_jtis, trace[0].token_hash) == \
        ("active", CLIENT, frozenset(), None)
    assert trace[1].revoked_jtis == {"jti-1"} and trace[2].status == "revoked" and trace[3:] == [None, None]


def test_the_reads_and_counters_the_core_makes_alongside(same_on_both):
    """Users (the consent page's check), resources (narrowing) and the throttle counter (unrecognised
    refresh tokens)."""
    from chalicelib.oauth import throttle
    from chalicelib.storage import resources, users

    def scenario(seed, at):
        seed.add_user(SUB, session_generation=2, name="Alice")
        seed.add_resource("https://notes.example.com/api", "Notes", ("notes:read",))
        user = users.get_user(SUB)
        return [(user.pk, user.email, user.name, user.email_verified, user.disabled, user.session_generation),
                users.get_user("u_nobody"), users.get_user(""), users.get_user("email#user@example.com"),
                resources.get_resource("https://notes.example.com/api"),
                resources.get_resource_cached("https://notes.example.com/api", 60),
                resources.get_resource("https://other.example.com/api"),
                throttle.add("refresh-unknown#grant-1#1", 3600), throttle.add("refresh-unknown#grant-1#1", 3600, 2),
                throttle.count("refresh-unknown#grant-1#1"), throttle.count("refresh-unknown#grant-2#1")]

    trace = same_on_both(scenario)
    assert trace[0] == (SUB, "user@example.com", "Alice", False, False, 2) and trace[1:4] == [None, None, None]
    assert trace[4].scopes == ("notes:read",) and trace[5] == trace[4] and trace[6] is None
    assert trace[7:] == [1, 3, 3, 0]


def test_pending_requests_are_stored_loaded_until_they_expire_and_finished_once(same_on_both):
    def scenario(seed, at):
        live, expired = dataclasses.replace(REQUEST, expires_at=at + 600), \
            dataclasses.replace(REQUEST, request_id="request-2", expires_at=at)
        authorization_requests.store(dataclasses.replace(live, login_session_hash="ignored until signed in"))
        authorization_requests.store(expired)
        loaded = [authorization_requests.load(request_id) for request_id in ("request-1", "request-2", "request-3",
                                                                             "", "r" * 101)]
        return loaded + [authorization_requests.finish("request-1"), authorization_requests.finish("request-1"),
                         authorization_requests.load("request-1")]

    trace = same_on_both(scenario)
    assert trace[0] == dataclasses.replace(REQUEST, expires_at=trace[0].expires_at)
    assert trace[1:] == [None, None, None, None, True, False, None]


def test_a_pushed_request_is_consumed_once_by_its_client_before_it_expires_and_can_be_put_back(same_on_both):
    params = {"client_id": CLIENT, "scope": "openid", "resource": ["https://notes.example.com/api"]}

    def scenario(seed, at):
        h1, h2 = sha256_hex("secret-1"), sha256_hex("secret-2")
        pushed_requests.store(pushed_requests.PushedRequest(secret_hash=h1, client_id=CLIENT, params=params,
                                                            created_at=at, expires_at=at + 60))
        pushed_requests.store(pushed_requests.PushedRequest(secret_hash=h2, client_id=CLIENT, params=params,
                                                            created_at=at, expires_at=at + 1))
        trace = [pushed_requests.consume(h1, OTHER, at), pushed_requests.consume(h2, CLIENT, at + 1),
                 pushed_requests.consume(sha256_hex("never pushed"), CLIENT, at)]
        first = pushed_requests.consume(h1, CLIENT, at)
        trace += [first.params, pushed_requests.consume(h1, CLIENT, at), pushed_requests.release(h1, "not-mine"),
                  pushed_requests.release(h1, first.claim), pushed_requests.release(h1, first.claim)]
        again = pushed_requests.consume(h1, CLIENT, at)
        # A resent PutItem (its answer lost) finds its item and overwrites nothing: still spent.
        pushed_requests.store(pushed_requests.PushedRequest(secret_hash=h1, client_id=CLIENT, params=params,
                                                            created_at=at, expires_at=at + 60))
        return [*trace, again.params, pushed_requests.consume(h1, CLIENT, at),
                pushed_requests.release(sha256_hex("never pushed"), first.claim)]

    trace = same_on_both(scenario)
    assert trace == [None, None, None, params, None, False, True, False, params, None, False]


def test_remembered_consent_grows_and_covers_what_a_code_asks(same_on_both):
    def scenario(seed, at):
        signed_in(seed, at)
        first, second = sorted(PAIRS)
        consents.remember(SUB, CLIENT, {first})
        refused = issue(at, consent_pairs=PAIRS)
        consents.remember(SUB, CLIENT, {second})
        return [refused, issue(at, consent_pairs=PAIRS)]

    assert same_on_both(scenario) == [NotIssued("consent"), None]


@pytest.mark.parametrize("state, reason", [
    ({"session": "unknown"}, "session"),
    ({"session": "revoked"}, "session"),
    ({"session": "expired"}, "session"),
    ({"user": "missing"}, "user"),
    ({"user": "disabled"}, "user"),
    ({"user": "signed out everywhere"}, "user"),
    ({"user": "another generation"}, "user"),
    ({"consent": "none"}, "consent"),
    ({"consent": "no pairs"}, "consent"),
    ({"consent": "one pair short"}, "consent"),
    ({"consent": "too many pairs"}, "consent"),
    ({"request": "finished"}, "request"),
    ({"session": "revoked", "user": "disabled", "request": "finished", "consent": "none"}, "session"),
    ({"user": "signed out everywhere", "request": "finished", "consent": "none"}, "user"),
    ({"request": "finished", "consent": "one pair short"}, "request"),
    ({}, None),
])
def test_a_code_is_issued_only_while_everything_still_holds(same_on_both, state, reason):
    """codes.issue refuses with the first reason of session, user, request, consent, and writes
    nothing at all when it refuses."""

    def scenario(seed, at):
        user = state.get("user")
        if user != "missing":
            seed.add_user(SUB, disabled=user == "disabled", session_generation=int(user == "signed out everywhere"))
        if state.get("session") != "unknown":
            seed.add_session(SESSION, SUB, auth_time=at - 5, expires_at=at if state.get("session") == "expired"
                             else at + 600, revoked=state.get("session") == "revoked")
        consent = state.get("consent")
        if consent != "none":
            seed.add_consent(SUB, CLIENT, set() if consent == "no pairs" else
                             set(sorted(PAIRS)[:1]) if consent == "one pair short" else PAIRS)
        wanted = {f"s{n} https://notes.example.com/api" for n in range(41)} if consent == "too many pairs" else PAIRS
        if state.get("request") != "finished":
            authorization_requests.store(dataclasses.replace(REQUEST, expires_at=at + 600))
        outcome = issue(at, consent_pairs=wanted, request_id="request-1",
                        session_generation=1 if user == "another generation" else 0)
        session = sessions.get(SESSION)
        return [outcome, grants.get(SUB, "grant-1") is None, codes.consume("code-1", CLIENT, at),
                session and session.grant_ids, issue(at, code="code-2", grant_id="grant-2", request_id="request-1")]

    trace = same_on_both(scenario)
    if reason is None:
        assert trace[0] is None and not trace[1] and trace[2].grant_id == "grant-1"
        assert trace[3] == {"grant-1"} and trace[4] == NotIssued("request")  # the request is finished
    else:
        assert trace[:3] == [NotIssued(reason), True, Refused("unknown")]
        assert not trace[3]


def test_connections_are_read_by_id_and_the_enabled_ones_in_button_order(same_on_both):
    """Issue 15: what the sign-in page and the federation flow read of the connections table."""
    from chalicelib.federation.connections import Connection, validate
    from chalicelib.storage import connections

    def connection(connection_id, name, **fields):
        return Connection(**validate(preset="oidc", connection_id=connection_id, client_id="c", display_name=name,
                                     issuer=f"https://{connection_id}.example", **fields),
                          secret_name=f"idp/test/connections/{connection_id}", created_at=1, updated_at=1)

    def scenario(seed, at):
        for made in (connection("zeta", "acme"), connection("beta", "Zed", domains=["zed.example"]),
                     connection("alpha", "Acme", acr_mapping={"urn:x": "phr"}), connection("off", "Off", enabled=False)):
            seed.add_connection(made)
        return [connections.enabled_connections(60), connections.get_connection("alpha"),
                connections.get_connection("off"), connections.get_connection("nope"), connections.get_connection("")]

    trace = same_on_both(scenario)
    assert [c.connection_id for c in trace[0]] == ["alpha", "zeta", "beta"]
    assert trace[1].acr_mapping == {"urn:x": "phr"} and trace[2].enabled is False and trace[3:] == [None, None]


def test_dpop_bound_codes_and_families_give_way_only_to_their_key(same_on_both):
    """RFC 9449 §10 and §5: a code bound with dpop_jkt is consumed, and a bound family rotated, only
    for a proof of that key; a refused attempt writes nothing."""
    def scenario(seed, at):
        signed_in(seed, at)
        record, grant = code_and_grant(at)
        bound = dataclasses.replace(record, dpop_jkt="key-1")
        codes.issue(bound, grant, session_hash=SESSION, session_generation=0, consent_pairs=None, request_id=None,
                    at=at)

        def rotate(n, jkt, bind=False, when=at + 1):
            return grants.rotate(SUB, "grant-1", CLIENT, presented_hash=H0 if n == 0 else H1, rotation=n,
                                 successor_hash=H1 if n == 0 else sha256_hex("h2"), token_expires_at=at + 100,
                                 retry_seal=None, at=when, dpop_jkt=jkt, bind_dpop_key=bind)

        trace = [codes.consume("code-1", CLIENT, at, dpop_jkt="key-2"), codes.consume("code-1", CLIENT, at),
                 codes.consume("code-1", CLIENT, at, dpop_jkt="key-1"),
                 grants.start_family(SUB, "grant-1", CLIENT, token_hash=H0, token_expires_at=at + 100, at=at,
                                     dpop_jkt="key-1"),
                 rotate(0, "key-2"), rotate(0, None), grants.get(SUB, "grant-1")]
        rotated = rotate(0, "key-1")
        trace += [rotated, grants.undo_rotation(rotated), grants.get(SUB, "grant-1")]
        return trace

    trace = same_on_both(scenario)
    assert [r.reason for r in trace[:2]] == ["dpop_key", "dpop_key"] and trace[1].code.consumed_at is None
    assert trace[2].dpop_jkt == "key-1" and trace[2].consumed_at is not None
    assert trace[3] is True and trace[4:6] == [None, None]
    assert (trace[6].token_hash, trace[6].dpop_jkt) == (H0, "key-1")
    assert trace[7].token_hash == H1 and trace[8] is True and trace[9] == trace[6]


def test_a_public_family_is_bound_at_its_first_rotation_with_a_proof(same_on_both):
    def scenario(seed, at):
        signed_in(seed, at)
        issue(at)
        grants.start_family(SUB, "grant-1", CLIENT, token_hash=H0, token_expires_at=at + 100, at=at)
        rotated = grants.rotate(SUB, "grant-1", CLIENT, presented_hash=H0, rotation=0, successor_hash=H1,
                                token_expires_at=at + 100, retry_seal=None, at=at + 1, dpop_jkt="key-1",
                                bind_dpop_key=True)
        return [rotated, grants.get(SUB, "grant-1"), grants.undo_rotation(rotated), grants.get(SUB, "grant-1")]

    trace = same_on_both(scenario)
    assert trace[0].dpop_jkt == "key-1" and trace[1].dpop_jkt == "key-1"
    assert trace[2] is True and trace[3].dpop_jkt is None and trace[3].token_hash == H0


def test_a_kept_token_stays_current_and_only_its_idle_expiry_moves(same_on_both):
    """PROFILE=fapi2 (FAPI 2.0 §5.3.2.1 item 9): the successor is the presented token itself."""
    def scenario(seed, at):
        signed_in(seed, at)
        issue(at)
        grants.start_family(SUB, "grant-1", CLIENT, token_hash=H0, token_expires_at=at + 100, at=at)

        def keep(when, client_id=CLIENT):
            return grants.rotate(SUB, "grant-1", client_id, presented_hash=H0, rotation=0, successor_hash=H0,
                                 token_expires_at=when + 100, retry_seal=None, at=when)

        first, second = keep(at + 50), keep(at + 120)
        return [first, second, keep(at + 121, OTHER), keep(at + 500), grants.get(SUB, "grant-1"),
                grants.undo_rotation(second), grants.get(SUB, "grant-1")]

    trace = same_on_both(scenario)
    at = trace[0].last_used_at - 50
    assert (trace[0].token_hash, trace[0].previous_hash, trace[0].token_expires_at) == (H0, None, at + 150)
    assert trace[1].token_expires_at == at + 220, "used within its idle lifetime: still current"
    assert trace[2:4] == [None, None], "another client's, or gone idle"
    assert (trace[4].token_hash, trace[4].previous_hash, trace[4].consumed) == (H0, None, frozenset())
    assert trace[5] is True and trace[6].token_expires_at == at + 150


def test_a_family_remembers_the_rotation_from_which_it_is_bound(same_on_both):
    """dpop_bound_from: 0 for a family bound at redemption; for one bound at a refresh, the rotation
    number of its first bound token, kept by later rotations with the same key and put back by undo
    (oauth/refresh_tokens.py: reuse of a token from before the binding is still reuse)."""
    h2, h3 = sha256_hex("h2"), sha256_hex("h3")

    def scenario(seed, at):
        signed_in(seed, at)
        issue(at)
        grants.start_family(SUB, "grant-1", CLIENT, token_hash=H0, token_expires_at=at + 100, at=at)

        def rotate(n, presented, successor, jkt):
            return grants.rotate(SUB, "grant-1", CLIENT, presented_hash=presented, rotation=n, successor_hash=successor,
                                 token_expires_at=at + 100, retry_seal=None, at=at + 1, dpop_jkt=jkt,
                                 bind_dpop_key=jkt is not None)

        trace = [rotate(0, H0, H1, None), rotate(1, H1, h2, "key-1")]
        trace += [grants.get(SUB, "grant-1"), rotate(2, h2, h3, "key-1")]
        trace += [grants.get(SUB, "grant-1"), grants.undo_rotation(trace[-1]), grants.undo_rotation(trace[1]),
                  grants.get(SUB, "grant-1")]
        return trace

    trace = same_on_both(scenario)
    assert trace[0].dpop_bound_from is None and trace[1].dpop_bound_from == 2
    assert (trace[2].dpop_jkt, trace[2].dpop_bound_from) == ("key-1", 2)
    assert trace[3].dpop_bound_from == 2 and trace[4].dpop_bound_from == 2
    assert trace[5] is True and trace[6] is True
    assert (trace[7].token_hash, trace[7].dpop_jkt, trace[7].dpop_bound_from) == (H1, None, None)


def test_a_family_bound_at_redemption_is_bound_from_its_first_token(same_on_both):
    def scenario(seed, at):
        signed_in(seed, at)
        issue(at)
        grants.start_family(SUB, "grant-1", CLIENT, token_hash=H0, token_expires_at=at + 100, at=at, dpop_jkt="key-1")
        rotated = grants.rotate(SUB, "grant-1", CLIENT, presented_hash=H0, rotation=0, successor_hash=H1,
                                token_expires_at=at + 100, retry_seal=None, at=at + 1, dpop_jkt="key-1",
                                bind_dpop_key=True)
        return [grants.get(SUB, "grant-1"), rotated, grants.get(SUB, "grant-1")]

    trace = same_on_both(scenario)
    assert [t.dpop_bound_from for t in trace] == [0, 0, 0]


def test_a_spent_bound_code_presented_without_its_key_is_a_key_refusal_not_a_replay(same_on_both):
    """RFC 9449 §10: only the key holder can have redeemed a bound code, so its replay without the
    key is told apart from a replay (which revokes the grant: grants/authorization_code.py)."""
    def scenario(seed, at):
        signed_in(seed, at)
        record, grant = code_and_grant(at)
        codes.issue(dataclasses.replace(record, dpop_jkt="key-1"), grant, session_hash=SESSION, session_generation=0,
                    consent_pairs=None, request_id=None, at=at)
        return [codes.consume("code-1", CLIENT, at, dpop_jkt="key-1"), codes.consume("code-1", CLIENT, at),
                codes.consume("code-1", CLIENT, at, dpop_jkt="key-2"),
                codes.consume("code-1", CLIENT, at, dpop_jkt="key-1")]

    trace = same_on_both(scenario)
    assert trace[0].consumed_at is not None
    assert [r.reason for r in trace[1:]] == ["dpop_key", "dpop_key", "replayed"]
