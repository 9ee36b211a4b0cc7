"""Two regions, one IdP: where eventual replication would spend a single-use artefact twice, and
how routing its writes to its home region prevents it (docs/multi-region.md).

The simulation runs the real app against two regional DynamoDB endpoints: moto's us-east-1 and
us-west-2 backends, each with every table. One process plays both regions: `Regions.serve(name)`
points the container's DynamoDB client at that region's endpoint and forgets what the container
had read, so each request is served as a fresh container of that region would serve it.

Replication is a small shim in the client layer, shaped like DynamoDB global tables in their
default mode (MREC, multi-Region eventual consistency): every successful write is copied to the
other region after `delay` seconds, item by item, and a copy whose write is older than the
destination's own last write of that item is dropped (last writer wins). Time is logical:
`advance(seconds)` delivers the copies that have come due, so nothing here sleeps and every run is
the same.

`home_routing=True` adds the chosen design: the codes, grants, sessions and authorization requests
are each written (and read before a write) only in their home region, the region that created
them; in production the artefact names its home (a region tag in the code, refresh token, cookie
and request id), here the shim remembers it. One item then has one writer, so its conditional
writes are serialised by one region as they are in a single-region deployment.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from urllib.parse import urlencode

import pytest

from tests.routes.flow import FORM, Browser, query_of, redeem, sign_in_and_consent

EAST, WEST = "us-east-1", "us-west-2"
DELAY = 1.0  # seconds of replication lag (MREC's is "typically within a second")
WRITES = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}


def _key_names() -> dict[str, list[str]]:
    from chalicelib.storage.tables import table_specs

    return {spec["TableName"]: [k["AttributeName"] for k in spec["KeySchema"]] for spec in table_specs()}


def _single_use_tables() -> set[str]:
    from chalicelib.storage.models import AuthorizationCodeModel, AuthorizationRequestModel, GrantModel, SessionModel

    return {m.Meta.table_name for m in (AuthorizationCodeModel, GrantModel, SessionModel, AuthorizationRequestModel)}


class Regions:
    """Regional DynamoDB endpoints joined by a last-writer-wins replication shim."""

    def __init__(self, names: tuple[str, ...], *, delay: float, home_routing: bool):
        from botocore.session import get_session

        session = get_session()
        self.raw = {name: session.create_client("dynamodb", region_name=name) for name in names}
        self.delay, self.home_routing = delay, home_routing
        self.keys = _key_names()
        self.single_use = _single_use_tables()
        self.clock = 0.0
        self.version = 0
        self.stamps: dict[tuple[str, str, str], int] = {}  # (region, table, key) -> version last written there
        self.pending: list[tuple[float, str, str, str, str]] = []  # (due, source, destination, table, key)
        self.home: dict[tuple[str, str], str] = {}  # (table, key) -> the region that created the item
        self.served_by: list[tuple[str, str, str]] = []  # (serving region, operation, region that ran it)

    @contextmanager
    def serve(self, region: str):
        """Serve the requests made inside as a container of `region`."""
        from chalicelib import aws, caches

        caches.clear_all(("data",))
        aws._state["dynamodb"] = RegionalClient(self, region)
        try:
            yield
        finally:
            aws._state.pop("dynamodb", None)

    # What a call touches -------------------------------------------------------------------

    def _key_of(self, table: str, item: dict) -> str:
        return json.dumps({name: item[name] for name in self.keys[table]}, sort_keys=True)

    def _touched(self, operation: str, params: dict) -> list[tuple[str, str]]:
        """(table, key) of every item the call reads for a decision or writes."""
        if operation in ("GetItem", "UpdateItem", "DeleteItem"):
            return [(params["TableName"], self._key_of(params["TableName"], params["Key"]))]
        if operation == "PutItem":
            return [(params["TableName"], self._key_of(params["TableName"], params["Item"]))]
        if operation == "TransactWriteItems":
            touched = []
            for entry in params["TransactItems"]:
                (_, action), = entry.items()
                table = action["TableName"]
                touched.append((table, self._key_of(table, action.get("Key") or action["Item"])))
            return touched
        if operation == "BatchGetItem":
            return [(table, self._key_of(table, key)) for table, request in params["RequestItems"].items()
                    for key in request["Keys"]]
        return []  # Query, Scan, table management: served where they are made

    def _written(self, operation: str, params: dict) -> list[tuple[str, str]]:
        if operation == "TransactWriteItems":
            return [(table, key) for entry, (table, key) in zip(params["TransactItems"], self._touched(operation, params))
                    if "ConditionCheck" not in entry]
        if operation == "BatchWriteItem":
            return [(table, self._key_of(table, (request.get("PutRequest") or {}).get("Item")
                                         or request["DeleteRequest"]["Key"]))
                    for table, requests in params["RequestItems"].items() for request in requests]
        return self._touched(operation, params) if operation in WRITES else []

    # Routing and replication ---------------------------------------------------------------

    def target(self, serving: str, operation: str, params: dict) -> str:
        """Where the call runs: its single-use items' home region under home routing, else here."""
        if not self.home_routing:
            return serving
        homes = {self.home[item] for item in self._touched(operation, params) if item in self.home}
        assert len(homes) <= 1, f"one call touches artefacts of several home regions: {homes}"
        return homes.pop() if homes else serving

    def record(self, region: str, operation: str, params: dict) -> None:
        """A write succeeded in `region`: stamp it and queue its copy to every other region."""
        for table, key in self._written(operation, params):
            self.version += 1
            self.stamps[(region, table, key)] = self.version
            if table in self.single_use:
                self.home.setdefault((table, key), region)
            for other in self.raw:
                if other != region:
                    self.pending.append((self.clock + self.delay, region, other, table, key))

    def advance(self, seconds: float) -> int:
        """Let `seconds` pass: apply every copy that has come due, in order; returns how many."""
        self.clock += seconds
        due = [entry for entry in self.pending if entry[0] <= self.clock]
        self.pending = [entry for entry in self.pending if entry[0] > self.clock]
        for _, source, destination, table, key in sorted(due, key=lambda entry: entry[0]):
            self._copy(source, destination, table, key)
        return len(due)

    def settle(self) -> None:
        """Wait out the replication delay: both regions hold the same items."""
        self.advance(self.delay)

    def _copy(self, source: str, destination: str, table: str, key: str) -> None:
        written = self.stamps.get((source, table, key), 0)
        if self.stamps.get((destination, table, key), 0) >= written:
            return  # the destination wrote the item later: last writer wins
        item = self.raw[source].get_item(TableName=table, Key=json.loads(key), ConsistentRead=True).get("Item")
        if item is None:
            self.raw[destination].delete_item(TableName=table, Key=json.loads(key))
        else:
            self.raw[destination].put_item(TableName=table, Item=item)
        self.stamps[(destination, table, key)] = written


class RegionalClient:
    """The DynamoDB client a container of one region holds: every call goes through the shim."""

    def __init__(self, regions: Regions, region: str):
        self._regions, self._region = regions, region
        self.meta = regions.raw[region].meta

    def _make_api_call(self, operation: str, params: dict):
        target = self._regions.target(self._region, operation, params)
        self._regions.served_by.append((self._region, operation, target))
        response = self._regions.raw[target]._make_api_call(operation, params)
        self._regions.record(target, operation, params)  # only reached when the call succeeded
        return response

    def __getattr__(self, name: str):
        operation = self.meta.method_to_api_mapping.get(name)
        if operation is None:
            return getattr(self._regions.raw[self._region], name)
        return lambda **params: self._make_api_call(operation, params)


@pytest.fixture
def world(aws, monkeypatch):
    """Tables in both regions, and a factory for the two-region world seeded in us-east-1."""
    from botocore.session import get_session

    from chalicelib.storage.tables import bootstrap_tables

    bootstrap_tables(get_session().create_client("dynamodb", region_name=WEST))

    def build(*, home_routing: bool):
        from chalicelib.keys import keyring
        from chalicelib.oauth.clients import create_client
        from chalicelib.storage.users import create_user

        regions = Regions((EAST, WEST), delay=DELAY, home_routing=home_routing)
        with regions.serve(EAST):
            keyring.ensure_keys()
            client, _ = create_client(client_name="Notes", client_type="public",
                                      redirect_uris=["http://127.0.0.1:5000/cb"],
                                      grant_types=["authorization_code", "refresh_token"],
                                      scopes=["openid", "email", "offline_access"])
            create_user("alice@example.com", "correct horse battery")
        regions.settle()
        return regions, client.client_id

    return build


@pytest.fixture
def http(world):
    from chalice.test import Client

    from app import app

    with Client(app, stage_name="local") as client:
        yield client.http


def new_code(regions: Regions, http, client_id: str, region: str = EAST) -> str:
    """A user signs in through `region` and the app gets a code there; replication then settles."""
    with regions.serve(region):
        location = sign_in_and_consent(Browser(http), client_id, scope="openid email offline_access")
    regions.settle()
    return query_of(location)["code"]


def refresh(http, client_id: str, token: str):
    return http.post("/token", headers=FORM, body=urlencode(
        {"grant_type": "refresh_token", "refresh_token": token, "client_id": client_id}).encode())


def redeem_in(regions: Regions, region: str, http, client_id: str, code: str):
    with regions.serve(region):
        return redeem(http, client_id, code)


def refresh_in(regions: Regions, region: str, http, client_id: str, token: str):
    with regions.serve(region):
        return refresh(http, client_id, token)


def outcome(response) -> str:
    body = json.loads(response.body)
    return "ok" if response.status_code == 200 else body["error"]


def test_with_eventual_replication_one_code_is_redeemed_in_both_regions(world, http):
    regions, client_id = world(home_routing=False)
    code = new_code(regions, http, client_id)

    first = redeem_in(regions, EAST, http, client_id, code)
    second = redeem_in(regions, WEST, http, client_id, code)  # within the delay: us-west-2 saw no redemption

    assert [outcome(first), outcome(second)] == ["ok", "ok"]  # the double spend
    issued = [json.loads(r.body) for r in (first, second)]
    assert issued[0]["access_token"] != issued[1]["access_token"]
    assert issued[0]["refresh_token"] != issued[1]["refresh_token"]


def test_with_eventual_replication_one_refresh_token_forks_its_family(world, http):
    regions, client_id = world(home_routing=False)
    tokens = json.loads(redeem_in(regions, EAST, http, client_id, new_code(regions, http, client_id)).body)
    regions.settle()

    east = refresh_in(regions, EAST, http, client_id, tokens["refresh_token"])
    west = refresh_in(regions, WEST, http, client_id, tokens["refresh_token"])

    assert [outcome(east), outcome(west)] == ["ok", "ok"]  # rotated twice, and no reuse was detected
    successors = [json.loads(r.body)["refresh_token"] for r in (east, west)]
    assert successors[0] != successors[1]
    # Replication then keeps the later write in both regions (last writer wins): one holder of a
    # successor has silently lost its sign-in, and the family never saw the reuse.
    regions.settle()
    after = [outcome(refresh_in(regions, EAST, http, client_id, token)) for token in successors]
    assert after == ["invalid_grant", "ok"]


def test_home_region_routing_redeems_a_code_exactly_once(world, http):
    regions, client_id = world(home_routing=True)
    code = new_code(regions, http, client_id)

    first = redeem_in(regions, EAST, http, client_id, code)
    second = redeem_in(regions, WEST, http, client_id, code)

    assert [outcome(first), outcome(second)] == ["ok", "invalid_grant"]
    # us-west-2 sent the redemption to the code's home, where it was a replay: the grant is revoked.
    assert (WEST, "UpdateItem", EAST) in regions.served_by
    refreshed = refresh_in(regions, WEST, http, client_id, json.loads(first.body)["refresh_token"])
    assert outcome(refreshed) == "invalid_grant"


def test_home_region_routing_rotates_a_refresh_token_exactly_once(world, http):
    regions, client_id = world(home_routing=True)
    tokens = json.loads(redeem_in(regions, EAST, http, client_id, new_code(regions, http, client_id)).body)

    east = refresh_in(regions, EAST, http, client_id, tokens["refresh_token"])
    west = refresh_in(regions, WEST, http, client_id, tokens["refresh_token"])  # before any replication

    assert [outcome(east), outcome(west)] == ["ok", "invalid_grant"]  # the second is reuse: family revoked
    successor = json.loads(east.body)["refresh_token"]
    assert outcome(refresh_in(regions, WEST, http, client_id, successor)) == "invalid_grant"


def test_home_region_routing_serves_a_moved_user_from_their_artefacts_home(world, http):
    """Routing flips mid-flow (us-east-1 drained): the code minted there is redeemed, and its family
    refreshed, through us-west-2, each write sent to us-east-1; replication carries the result."""
    regions, client_id = world(home_routing=True)
    code = new_code(regions, http, client_id)

    tokens = redeem_in(regions, WEST, http, client_id, code)
    assert outcome(tokens) == "ok"
    rotated = refresh_in(regions, WEST, http, client_id, json.loads(tokens.body)["refresh_token"])
    assert outcome(rotated) == "ok"
    assert {target for region, operation, target in regions.served_by
            if region == WEST and operation == "UpdateItem"} == {EAST}
