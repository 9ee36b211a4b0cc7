"""pynamodb on the container's one DynamoDB client (chalicelib/aws.py).

pynamodb 6.1 gives each Model a TableConnection wrapping a Connection of its own, and each
Connection builds its own botocore session and client on first use (Connection.session / .client):
about 150 ms of service-model parsing per model on a cold start, plus one connection pool per
model. Here every model's table connection and the transaction connection dispatch through the
one client of chalicelib.aws instead, which also carries the timeouts and the retry mode.

How, with the least reach into pynamodb: a Connection subclass whose public `session` and `client`
properties return the shared ones, and a Model base class whose `_get_connection` (the classmethod
pynamodb calls for every operation) swaps that connection into the TableConnection pynamodb built.
pynamodb's own client property also rebuilds a client whose credentials came back empty (a flaky
instance-metadata service); on Lambda the credentials come from the environment or the container
credentials endpoint, which botocore refreshes itself, so the shared client needs no such rebuild.
tests/storage/test_connection.py fails if any path creates a second DynamoDB client.
"""
from __future__ import annotations

from pynamodb.connection import Connection, TableConnection
from pynamodb.models import Model as PynamoModel

from .. import aws


class SharedClientConnection(Connection):
    """A pynamodb Connection that sends every request through the container's DynamoDB client."""

    @property
    def session(self):
        return aws.session()

    @property
    def client(self):
        return aws.client("dynamodb")


class Model(PynamoModel):
    """Base class of every model: its table connection uses the shared client."""

    @classmethod
    def _get_connection(cls) -> TableConnection:
        table = super()._get_connection()  # cached by pynamodb in cls._connection
        if not isinstance(table.connection, SharedClientConnection):
            # pynamodb's own Connection has built nothing yet (it builds lazily): replace it.
            shared = SharedClientConnection(region=cls.Meta.region)
            shared.add_meta_table(table.get_meta_table())
            table.connection = shared
        return table
