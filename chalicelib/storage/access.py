"""What each Lambda function does to each table, as the IAM actions its role is granted.

infra/policy.py renders the roles' DynamoDB statements from these maps, so the policy is declared
here, next to the storage modules that make the calls, and a new call is a one-line change in the
same place. Least privilege (the API role can never read the users table wholesale, only the
items a request names): tests/routes/conftest.py records every DynamoDB call the route tests'
requests make and fails the test if these maps do not allow it; tests/infra/test_template.py pins
what they must never allow.

IAM authorises a TransactWriteItems item by item as PutItem, UpdateItem, DeleteItem or
ConditionCheckItem on its table, and a BatchGetItem as BatchGetItem on each table it reads.
Administration (tools/admin.py: creating users and clients, listing, resources) runs with the
operator's credentials, never with these roles, so nothing here serves it.
"""
from __future__ import annotations

GET, PUT, UPDATE, DELETE = "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"
CHECK, BATCH_GET, QUERY, SCAN = ("dynamodb:ConditionCheckItem", "dynamodb:BatchGetItem", "dynamodb:Query",
                                 "dynamodb:Scan")

#: The API function (every HTTP request), by table name without TABLE_PREFIX. Every table is listed.
API_TABLE_ACTIONS: dict[str, tuple[str, ...]] = {
    # pending /authorize requests: put, read (alone or batched with the email claim at POST /login),
    # marked signed in, checked and deleted inside the sign-in and code transactions; pushed requests
    # (RFC 9126): put by /par, spent by /authorize with one conditional update (put back by another)
    "authorization_requests": (GET, BATCH_GET, PUT, UPDATE, DELETE, CHECK),
    # upstream identity providers (issue 15): the enabled ones by one Scan per container per
    # CLIENT_CACHE_SECONDS (storage/connections.enabled_connections), one by id; never written
    "connections": (GET, SCAN),
    # the cache of client ID metadata documents: read, refreshed, dropped
    "client_documents": (GET, PUT, UPDATE, DELETE),
    # dynamic registration (RFC 7591) and its management (RFC 7592) write clients; the account
    # page reads the names of a user's apps in one batch with their consents
    "clients": (GET, BATCH_GET, PUT, UPDATE, DELETE),
    # issued inside the /authorize transaction, consumed by one conditional update; device
    # authorizations (RFC 8628): put, read by the /device page, approved inside a transaction, polled
    # by conditional updates
    "codes": (GET, PUT, UPDATE),
    # remembered with an ADD, checked inside the transaction that issues a code; the account page
    # reads a user's list of them (one item) and the consents it names, and deletes them
    "consents": (GET, BATCH_GET, UPDATE, DELETE, CHECK),
    # a grant and its user in one batch; Query: a user's grants (sign out everywhere), and the
    # by_client index (INDEX_ACTIONS) for a client's grants when it is deleted
    "grants": (GET, BATCH_GET, PUT, UPDATE, QUERY),
    # resource lookups; the public-scopes summary is built once (a Scan of the few resource
    # registrations) when a deployment from before it has none
    "resources": (GET, PUT, SCAN),
    # one-time email links: written when sent, read by the page a GET shows, consumed by one
    # conditional update (and put back by one when what they were for fails)
    "links": (GET, PUT, UPDATE),
    # the deny list of revoked client_credentials tokens; JWTs used once (client assertions,
    # ID-JAGs): one conditional put each
    "revoked_tokens": (GET, PUT),
    # sessions and known devices (read with the user in one batch at POST /login); half-done
    # sign-ins (read with their user and factor in one batch, deleted by the transaction that
    # completes them); used WebAuthn challenges (put in that transaction); checked live inside the
    # transaction that approves a device authorization
    "sessions": (GET, BATCH_GET, PUT, UPDATE, DELETE, CHECK),
    # second factors and passkeys: read alone or in a batch with the sign-in they complete, a
    # user's all by Query (the account page); added, used (conditional updates inside the sign-in
    # transaction) and removed in transactions with the user item
    "factors": (GET, BATCH_GET, PUT, UPDATE, DELETE, QUERY),
    # the key ring is read only; Scan: until the rotation role has built its summary
    "signing_keys": (GET, SCAN),
    # fixed-window counters: atomic ADDs, alone or in a transaction
    "throttles": (UPDATE,),
    # users and email claims, by key only, never Scan. Put: self-service sign-up and an accepted
    # invitation create a user and its email claim in one transaction (storage/users.create_user,
    # each item conditioned on its key being new, so no Put ever overwrites a user). Delete: those
    # two when the verification email of a sign-up could not be sent (users.delete_unverified), and
    # the old email claim in an email change's or an account deletion's transaction (the new claim
    # is made by a conditional update)
    "users": (GET, BATCH_GET, PUT, UPDATE, DELETE, CHECK),
}

#: The API function's actions on global secondary indexes: (table, index) -> actions.
API_INDEX_ACTIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("grants", "by_client"): (QUERY,),
}

#: The back-channel logout delivery function (chalicelib/blueprints/logout_delivery.py): a user's
#: grants by Query (which clients held them), the clients' registrations, the key ring to sign.
LOGOUT_TABLE_ACTIONS: dict[str, tuple[str, ...]] = {
    "grants": (QUERY,),
    "clients": (GET,),
    "signing_keys": (GET, SCAN),
}

#: The rotation function (the daily schedule): the key ring, as KEY_BACKEND=secretsmanager runs it
#: (scan, create, promote and prune in transactions with the summary item, refresh).
ROTATION_TABLE_ACTIONS: dict[str, tuple[str, ...]] = {
    "signing_keys": (SCAN, GET, PUT, UPDATE, DELETE),
}
