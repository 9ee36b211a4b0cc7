"""An in-memory twin of the storage functions the grant and authorization core calls, so that core
can be unit-tested without moto, HTTP or any AWS call.

What it replaces (`INTERFACE`) are module attributes: the core calls `codes.consume`,
`grants.rotate`, ... through their modules, so `install` swaps the functions on those modules and
the core runs unchanged. Each fake keeps the DynamoDB version's semantics: the same conditions, the
same outcomes (records as ALL_NEW would return them, None / False / Refused / NotIssued when a
condition fails), the same slots of consumed refresh tokens, the same bound on revoked jtis, and
for `codes.issue` the same all-or-nothing checks with the same priority of reasons.
tests/storage/test_fake_matches_dynamodb.py runs one scenario list against both and asserts the
answers are identical; change the two together.

Each table is one plain dict, named like the DynamoDB table and keyed like it (items are dicts of the
record's fields, or just the one value that matters), so a test can arrange a state directly (e.g. a
refresh token gone idle) and read what was written. Every call made through the installed functions
is recorded in `calls`, in order ("grants.rotate", ...), so a test can state how many storage calls
a path makes.
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
from dataclasses import dataclass, field

from chalicelib.hashing import new_secret, sha256_hex
from chalicelib.storage import authorization_requests as request_store, codes as code_store, grants as grant_store
from chalicelib.storage import pushed_requests as pushed_store
from chalicelib.storage.codes import Code, NotIssued, Refused
from chalicelib.storage.grants import Grant
from chalicelib.storage.sessions import Session

#: module -> the functions of it the fake replaces (method `<module's last name>_<function>`).
INTERFACE = {
    "chalicelib.storage.grants": ("get", "active", "start_family", "rotate", "undo_rotation", "revoke",
                                  "revoke_by_refresh_token", "deny_access_token", "revoke_all_of_user",
                                  "revoke_grants_of", "with_user", "access_state"),
    "chalicelib.storage.codes": ("issue", "consume", "restore"),
    "chalicelib.storage.sessions": ("get", "end", "set_factors"),
    "chalicelib.storage.authorization_requests": ("store", "load", "finish"),
    "chalicelib.storage.pushed_requests": ("store", "consume", "release"),
    "chalicelib.storage.consents": ("remember",),
    "chalicelib.storage.revoked_tokens": ("deny", "is_denied"),
    "chalicelib.storage.used_jtis": ("use",),
    "chalicelib.storage.users": ("get_user",),
    "chalicelib.storage.resources": ("get_resource", "get_resource_cached"),
    "chalicelib.storage.connections": ("get_connection", "enabled_connections"),
    "chalicelib.oauth.throttle": ("add", "count"),
}

#: The grant's stored fields (`replaced` is what a rotation returns of the state before it).
_GRANT_FIELDS = tuple(f.name for f in dataclasses.fields(Grant) if f.name != "replaced")
#: What storage.grants.to_model writes of a new grant; the rest starts at the model's defaults.
_GRANT_WRITTEN = ("sub", "grant_id", "client_id", "scopes", "resources", "created_at", "expires_at", "auth_time",
                  "session_hash", "session_generation", "user_claims", "amr", "acr", "status", "token_hash",
                  "token_expires_at")


class WriteRefused(Exception):
    """What pynamodb raises when a condition fails that the storage function does not turn into an
    outcome (a new item's key already taken: codes.issue, authorization_requests.store)."""


@dataclass(frozen=True)
class Call:
    name: str  # "codes.consume"
    args: tuple
    kwargs: dict


@dataclass
class MemoryStorage:
    grants: dict = field(default_factory=dict)  # (sub, grant_id) -> item
    codes: dict = field(default_factory=dict)  # code_hash -> item
    sessions: dict = field(default_factory=dict)  # session_hash -> item
    users: dict = field(default_factory=dict)  # sub -> item
    consents: dict = field(default_factory=dict)  # "<sub>#<client_id>" -> set of "<scope> <audience>" pairs
    authorization_requests: dict = field(default_factory=dict)  # request_id -> PendingRequest
    pushed_requests: dict = field(default_factory=dict)  # secret_hash -> item (client_id, params, expires_at, used_by)
    revoked_tokens: dict = field(default_factory=dict)  # jti -> expires_at
    used_jtis: dict = field(default_factory=dict)  # used_jtis.key(...) -> expires_at
    throttles: dict = field(default_factory=dict)  # key -> failures
    resources: dict = field(default_factory=dict)  # uri -> storage.resources.Resource
    connections: dict = field(default_factory=dict)  # connection_id -> federation.connections.Connection
    calls: list = field(default_factory=list)
    #: The local signing key `memory_storage` installs (LocalKeys).
    keys: object = None

    def called(self) -> list[str]:
        """The storage functions called so far, in order."""
        return [call.name for call in self.calls]

    # Arranging a state, as the rest of the system would have written it ----------------------------

    def add_user(self, sub: str, *, disabled: bool = False, session_generation: int = 0,
                 email: str = "user@example.com", name: str | None = None, factors=()) -> None:
        self.users[sub] = {"pk": sub, "email": email, "email_verified": False, "name": name, "password_hash": "-",
                           "disabled": disabled, "session_generation": session_generation,
                           "factors": set(factors) or None, "created_at": 0, "updated_at": 0}

    def add_session(self, session_hash: str, sub: str, *, auth_time: int, expires_at: int,
                    session_generation: int = 0, revoked: bool = False, user_claims: dict | None = None,
                    amr: tuple = ("pwd",), factors=()) -> None:
        self.sessions[session_hash] = {"session_hash": session_hash, "sub": sub, "auth_time": auth_time,
                                       "expires_at": expires_at, "amr": tuple(amr),
                                       "session_generation": session_generation, "revoked": revoked,
                                       "grant_ids": set(), "user_claims": user_claims or None,
                                       "factors": tuple(sorted(factors))}

    def add_consent(self, sub: str, client_id: str, pairs: set[str]) -> None:
        self.consents.setdefault(f"{sub}#{client_id}", set()).update(pairs)

    def add_resource(self, uri: str, name: str, scopes: tuple[str, ...], *, public: bool = False) -> None:
        from chalicelib.storage.resources import Resource

        self.resources[uri] = Resource(resource=uri, name=name, scopes=tuple(scopes), public=public)

    def add_connection(self, connection) -> None:
        self.connections[connection.connection_id] = connection

    def end_all_sessions(self, sub: str) -> None:
        """storage.users.end_all_sessions: the user's generation moves on and their grants are revoked."""
        self.users[sub]["session_generation"] += 1
        self.grants_revoke_all_of_user(sub, reason="signed out everywhere")

    # chalicelib.storage.grants ---------------------------------------------------------------------

    def grants_get(self, sub, grant_id):
        if not grant_store._valid_key(sub, grant_id):
            return None
        item = self.grants.get((sub, grant_id))
        return None if item is None else _grant(item)

    def grants_active(self, sub, grant_id):
        grant = self.grants_get(sub, grant_id)
        return grant if grant is not None and grant.is_active(grant_store.now()) else None

    def _live(self, sub, grant_id, client_id, at):
        """storage.grants._live: the item exists, is active, unexpired and the client's."""
        item = self.grants.get((sub, grant_id))
        live = (item is not None and item["status"] == "active" and item["expires_at"] > at
                and item["client_id"] == client_id)
        return item if live else None

    def grants_start_family(self, sub, grant_id, client_id, *, token_hash, token_expires_at, at, dpop_jkt=None):
        item = self._live(sub, grant_id, client_id, at)
        if item is None:
            return False
        item["last_used_at"] = at
        if token_hash is not None:
            item.update(token_hash=token_hash, token_expires_at=token_expires_at)
            if dpop_jkt is not None:
                item.update(dpop_jkt=dpop_jkt, dpop_bound_from=0)
        return True

    def grants_rotate(self, sub, grant_id, client_id, *, presented_hash, rotation, successor_hash, token_expires_at,
                      retry_seal, at, dpop_jkt=None, bind_dpop_key=False):
        item = self._live(sub, grant_id, client_id, at)
        if item is None or item["token_hash"] != presented_hash or not (item["token_expires_at"] or 0) > at:
            return None
        if item["dpop_jkt"] is not None and item["dpop_jkt"] != dpop_jkt:
            return None  # storage.grants._key_allowed
        slot = str(rotation % grant_store.CONSUMED_SLOTS)
        replaced = grant_store.FamilyState(
            token_hash=item["token_hash"], token_expires_at=item["token_expires_at"],
            previous_hash=item["previous_hash"], rotated_at=item["rotated_at"], retry_seal=item["retry_seal"],
            last_used_at=item["last_used_at"], slot=slot, slot_mark=item["consumed"].get(slot),
            dpop_jkt=item["dpop_jkt"], dpop_bound_from=item["dpop_bound_from"])
        item.update(token_expires_at=token_expires_at, last_used_at=at)
        if successor_hash != presented_hash:  # equal: PROFILE=fapi2 keeps the token (no rotation)
            item.update(previous_hash=presented_hash, rotated_at=at, token_hash=successor_hash,
                        retry_seal=retry_seal or None)
            item["consumed"][slot] = grant_store.consumed_mark(presented_hash)
        if bind_dpop_key and dpop_jkt is not None:
            item["dpop_jkt"] = dpop_jkt
            if item["dpop_bound_from"] is None:
                item["dpop_bound_from"] = rotation if successor_hash == presented_hash else rotation + 1
        return dataclasses.replace(_grant(item), replaced=replaced)

    def grants_undo_rotation(self, grant):
        state = grant.replaced
        item = self.grants.get((grant.sub, grant.grant_id))
        if state is None or item is None or item["token_hash"] != grant.token_hash:
            return False
        item.update(token_hash=state.token_hash, token_expires_at=state.token_expires_at,
                    previous_hash=state.previous_hash, rotated_at=state.rotated_at, retry_seal=state.retry_seal,
                    last_used_at=state.last_used_at, dpop_jkt=state.dpop_jkt, dpop_bound_from=state.dpop_bound_from)
        if state.slot_mark is None:
            item["consumed"].pop(state.slot, None)
        else:
            item["consumed"][state.slot] = state.slot_mark
        return True

    def _revoke_if(self, sub, grant_id, reason, holds, erase_claims=False) -> bool:
        item = self.grants.get((sub, grant_id)) if grant_store._valid_key(sub, grant_id) else None
        if item is None or item["status"] != "active" or not holds(item):
            return False
        item.update(status="revoked", revoked_at=grant_store.now(), retry_seal=None)
        if erase_claims:
            item["user_claims"] = None
        grant_store.log.warning("grant revoked", extra={"grant_id": grant_id, "reason": reason})
        return True

    def grants_revoke(self, sub, grant_id, *, reason, erase_claims=False):
        return self._revoke_if(sub, grant_id, reason, lambda item: True, erase_claims)

    def grants_revoke_by_refresh_token(self, sub, grant_id, client_id, token_hash):
        return self._revoke_if(sub, grant_id, "refresh token revoked by client",
                               lambda item: item["client_id"] == client_id
                               and token_hash in (item["token_hash"], item["previous_hash"]))

    def grants_deny_access_token(self, sub, grant_id, jti):
        item = self.grants.get((sub, grant_id))
        if item is None or len(item["revoked_jtis"]) >= grant_store.MAX_REVOKED_JTIS:
            return False
        item["revoked_jtis"].add(jti)
        return True

    def grants_revoke_all_of_user(self, sub, *, reason, erase_claims=False):
        # The Query answers in range-key order.
        active = sorted(grant_id for (owner, grant_id), item in self.grants.items()
                        if owner == sub and item["status"] == "active")
        return sum(self.grants_revoke(sub, grant_id, reason=reason, erase_claims=erase_claims) for grant_id in active)

    def grants_revoke_grants_of(self, *, client_id, reason):
        keys = [key for key, item in self.grants.items() if item["client_id"] == client_id]
        return sum(self.grants_revoke(sub, grant_id, reason=reason) for sub, grant_id in keys)

    def grants_access_state(self, sub, grant_id):
        """storage.grants.access_state: only the key and ACCESS_STATE are read; the rest as absent."""
        if not grant_store._valid_key(sub, grant_id):
            return None
        item = self.grants.get((sub, grant_id))
        if item is None:
            return None
        return Grant(sub=sub, grant_id=grant_id, client_id=item["client_id"], scopes=(), resources=(),
                     created_at=item["created_at"], expires_at=item["expires_at"], status=item["status"],
                     revoked_jtis=frozenset(item["revoked_jtis"]))

    def grants_with_user(self, sub, grant_id):
        return self.grants_access_state(sub, grant_id), self.users_get_user(sub)

    # chalicelib.storage.codes ----------------------------------------------------------------------

    def codes_issue(self, code, grant, *, session_hash, session_generation, consent_pairs, request_id, at,
                    require_verified_email=False):
        if consent_pairs is not None and len(consent_pairs) > code_store.MAX_CONSENT_PAIRS:
            return NotIssued("consent")
        session = self.sessions.get(session_hash)
        user = self.users.get(grant.sub)
        consent = self.consents.get(f"{grant.sub}#{grant.client_id}")
        holds = {
            "session": session is not None and not session["revoked"] and session["expires_at"] > at,
            "user": user is not None and not user["disabled"] and user["session_generation"] == session_generation
            and (user["email_verified"] or not require_verified_email),
            "request": not request_id or request_id in self.authorization_requests,
            "consent": consent_pairs is None or (consent is not None and set(consent_pairs) <= consent),
        }
        # The priority of codes.issue: an ended session needs a sign-in whatever else changed.
        for name in ("session", "user", "request", "consent"):
            if not holds[name]:
                return NotIssued(name)
        if (grant.sub, grant.grant_id) in self.grants or code.code_hash in self.codes:
            raise WriteRefused("the grant or the code already exists")
        self.grants[(grant.sub, grant.grant_id)] = _new_grant_item(grant)
        self.codes[code.code_hash] = {**dataclasses.asdict(code), "consumed_at": None}
        session["grant_ids"].add(grant.grant_id)
        if request_id:
            del self.authorization_requests[request_id]
        return None

    def codes_consume(self, code, client_id, at, dpop_jkt=None):
        item = self.codes.get(sha256_hex(code))
        if item is None:
            return Refused("unknown")
        key_allowed = item["dpop_jkt"] is None or item["dpop_jkt"] == dpop_jkt
        if item["client_id"] == client_id and item["consumed_at"] is None and item["expires_at"] > at and key_allowed:
            item.update(consumed_at=at, redemption=code_store.new_secret(12))
            return _code(item)
        # As the consistent read after a refused update tells it, in this order.
        existing = _code(item)
        if existing.client_id != client_id:
            return Refused("other_client", existing)
        if not key_allowed:
            return Refused("dpop_key", existing)
        if existing.consumed_at is not None:
            return Refused("replayed", existing)
        if existing.expires_at <= at:
            return Refused("expired", existing)
        return Refused("dpop_key", existing)

    def codes_restore(self, code, *, family_token_hash):
        item = self.codes.get(code.code_hash)
        grant = self.grants.get((code.sub, code.grant_id))
        if item is None or item["redemption"] is None or item["redemption"] != code.redemption or grant is None \
                or grant["token_hash"] not in (None, family_token_hash):
            return False
        item.update(consumed_at=None, redemption=None)
        grant.update(last_used_at=None, token_hash=None, token_expires_at=None, dpop_jkt=None, dpop_bound_from=None)
        return True

    # chalicelib.storage.sessions -------------------------------------------------------------------

    def sessions_get(self, session_hash):
        item = self.sessions.get(session_hash)
        return None if item is None else _session(item, user_checked=False)

    def sessions_set_factors(self, session_hash, kinds):
        item = self.sessions.get(session_hash)
        if item is None or item["revoked"] or item["expires_at"] <= request_store.now():
            return False
        item["factors"] = tuple(sorted(kinds))
        return True

    def sessions_end(self, session_hash):
        item = self.sessions.get(session_hash)
        if item is None:
            return None
        item["revoked"] = True
        return _session(item, user_checked=True)

    # chalicelib.storage.authorization_requests, chalicelib.storage.consents -----------------------

    def authorization_requests_store(self, request):
        if request.request_id in self.authorization_requests:
            raise WriteRefused("the request id is taken")
        # The item has no login_session_hash until a sign-in for it records one.
        self.authorization_requests[request.request_id] = dataclasses.replace(request, login_session_hash=None)

    def authorization_requests_load(self, request_id):
        if not request_id or len(request_id) > request_store.MAX_REQUEST_ID_LENGTH:
            return None
        request = self.authorization_requests.get(request_id)
        return request if request is not None and request.expires_at > request_store.now() else None

    def authorization_requests_finish(self, request_id):
        return self.authorization_requests.pop(request_id, None) is not None

    # chalicelib.storage.pushed_requests ----------------------------------------------------------

    def pushed_requests_store(self, request):
        # A taken key can only be this very request written before (storage/pushed_requests.store).
        self.pushed_requests.setdefault(request.secret_hash, {
            "client_id": request.client_id, "params": json.loads(json.dumps(request.params)),
            "expires_at": request.expires_at, "used_by": None})

    def pushed_requests_consume(self, secret_hash, client_id, at):
        item = self.pushed_requests.get(secret_hash)
        if item is None or item["client_id"] != client_id or item["expires_at"] <= at or item["used_by"] is not None:
            return None
        item["used_by"] = new_secret(16)
        return pushed_store.Consumed(params=json.loads(json.dumps(item["params"])), claim=item["used_by"])

    def pushed_requests_release(self, secret_hash, claim):
        item = self.pushed_requests.get(secret_hash)
        if item is None or item["used_by"] != claim:
            return False
        item["used_by"] = None
        return True

    def consents_remember(self, sub, client_id, pairs):
        self.consents.setdefault(f"{sub}#{client_id}", set()).update(pairs)

    # chalicelib.storage.revoked_tokens -------------------------------------------------------------

    def revoked_tokens_deny(self, jti, expires_at):
        self.revoked_tokens[jti] = expires_at

    def revoked_tokens_is_denied(self, jti):
        # Like the table: kept until its TTL deletes it, whenever that is.
        return jti in self.revoked_tokens

    # chalicelib.storage.used_jtis ------------------------------------------------------------------

    def used_jtis_use(self, kind, issuer, jti, expires_at):
        from chalicelib.storage.used_jtis import key

        name = key(kind, issuer, jti)
        if name in self.used_jtis:
            return False
        self.used_jtis[name] = int(expires_at)
        return True

    # chalicelib.storage.users, chalicelib.storage.resources (reads the core makes alongside) -------

    def users_get_user(self, sub):
        from chalicelib.storage.models import UserModel  # an unsaved item: building one calls nothing
        from chalicelib.storage.users import EMAIL_PREFIX

        if not sub or sub.startswith(EMAIL_PREFIX) or sub not in self.users:
            return None
        return UserModel(**self.users[sub])

    def resources_get_resource(self, uri):
        return self.resources.get(uri)

    def resources_get_resource_cached(self, uri, max_age):
        return self.resources.get(uri)

    # chalicelib.storage.connections (the sign-in page's and the federation flow's reads) -------

    def connections_get_connection(self, connection_id):
        return self.connections.get(connection_id) if isinstance(connection_id, str) else None

    def connections_enabled_connections(self, cache_seconds):
        # The table's answer as a fresh Scan gives it; tests arrange connections before the first read.
        return tuple(sorted((c for c in self.connections.values() if c.enabled),
                            key=lambda c: (c.display_name.casefold(), c.connection_id)))

    # chalicelib.oauth.throttle: a DynamoDB counter the refresh path writes to ----------------------

    def throttle_add(self, key, window_seconds, amount=1):
        self.throttles[key] = self.throttles.get(key, 0) + amount
        return self.throttles[key]

    def throttle_count(self, key):
        return self.throttles.get(key, 0)


def _grant(item: dict) -> Grant:
    """The record storage.grants.from_model makes of the item."""
    values = {name: item[name] for name in _GRANT_FIELDS}
    return Grant(**{**values, "scopes": tuple(item["scopes"]), "resources": tuple(item["resources"]),
                    "amr": tuple(item["amr"]),
                    "user_claims": dict(item["user_claims"] or {}), "consumed": frozenset(item["consumed"].values()),
                    "revoked_jtis": frozenset(item["revoked_jtis"])})


def _code(item: dict) -> Code:
    return Code(**{**item, "user_claims": None if item["user_claims"] is None else dict(item["user_claims"]),
                   "amr": tuple(item["amr"])})


def _new_grant_item(grant: Grant) -> dict:
    defaults = {f.name: f.default for f in dataclasses.fields(Grant) if f.default is not dataclasses.MISSING}
    item = {**defaults, **{name: getattr(grant, name) for name in _GRANT_WRITTEN}}
    return {**item, "user_claims": dict(grant.user_claims or {}), "consumed": {}, "revoked_jtis": set(),
            "revoked_at": None}


def _session(item: dict, *, user_checked: bool) -> Session:
    return Session(session_hash=item["session_hash"], sub=item["sub"], auth_time=item["auth_time"],
                   expires_at=item["expires_at"], amr=tuple(item["amr"]),
                   session_generation=item["session_generation"], revoked=item["revoked"],
                   grant_ids=frozenset(item["grant_ids"]), user_claims=item["user_claims"],
                   factors=tuple(item.get("factors") or ()), user_checked=user_checked)


def _shape(function) -> list:
    """A signature without annotations: names, kinds and defaults must match the real function's."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


def install(monkeypatch, storage: MemoryStorage | None = None) -> MemoryStorage:
    """Swap every function of INTERFACE for the fake's, recording each call. Fails at once when a
    real function's parameters have changed, so the fake cannot drift silently."""
    storage = storage or MemoryStorage()
    for module_name, names in INTERFACE.items():
        module = importlib.import_module(module_name)
        for name in names:
            real = getattr(module, name)
            fake = getattr(storage, f"{module_name.rsplit('.', 1)[1]}_{name}")
            assert _shape(real) == _shape(fake), f"{module_name}.{name} changed: update tests/fakes/storage.py"
            monkeypatch.setattr(module, name, _recorded(storage, f"{module_name.rsplit('.', 1)[1]}.{name}", fake))
    return storage


def _recorded(storage: MemoryStorage, name: str, fake):
    def call(*args, **kwargs):
        storage.calls.append(Call(name, args, kwargs))
        return fake(*args, **kwargs)

    return call


def forbid_aws(monkeypatch) -> None:
    """Make every AWS call fail loudly: the container's session and clients, and any botocore client
    built before (pynamodb's connections go through chalicelib.aws)."""
    from botocore.client import BaseClient

    from chalicelib import aws

    def refuse(*args, **kwargs):
        raise AssertionError("an AWS call from a test on the in-memory storage")

    monkeypatch.setattr(aws, "session", refuse)
    monkeypatch.setattr(aws, "client", refuse)
    monkeypatch.setattr(BaseClient, "_make_api_call", refuse)


@dataclass(frozen=True)
class LocalKeys:
    signer: object  # chalicelib.keys.backends.LocalSigner
    jwks: dict


def install_signer(monkeypatch) -> LocalKeys:
    """A freshly generated ES256 key as the key ring's current signer, and its public JWK as /jwks."""
    import json

    from cryptography.hazmat.primitives.asymmetric import ec
    from jwt.algorithms import ECAlgorithm

    from chalicelib.keys import keyring
    from chalicelib.keys.backends import LocalSigner

    private_key = ec.generate_private_key(ec.SECP256R1())
    signer = LocalSigner(kid="memory-test-key", alg="ES256", private_key=private_key)
    jwk = {**json.loads(ECAlgorithm.to_jwk(private_key.public_key())), "kid": signer.kid, "alg": "ES256",
           "use": "sig"}
    keys = LocalKeys(signer=signer, jwks={"keys": [jwk]})
    monkeypatch.setattr(keyring, "current_signer", lambda: signer)
    monkeypatch.setattr(keyring, "cached_jwks", lambda *, refresh=False: keys.jwks)
    return keys


def memory_storage(monkeypatch) -> MemoryStorage:
    """The core on the in-memory storage, with a local signing key, and no way to reach AWS (the
    `memory_storage` fixture of tests/unit/conftest.py)."""
    from chalicelib.oauth import access_tokens

    forbid_aws(monkeypatch)
    storage = install(monkeypatch)
    storage.keys = install_signer(monkeypatch)
    # Verifiers built against another test's key ring would keep its JWKS provider.
    monkeypatch.setattr(access_tokens, "_verifiers", {})
    return storage
