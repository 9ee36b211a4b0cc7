"""What the request benchmarks run against: one API, three clients and a user, and the helpers to
make requests as each. bench/dynamodb_calls.py and bench/request_cpu.py share it, so both measure
the same paths on the same data. Call `seed()` with the environment already pointing at the tables.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass

#: An https redirect, so remembered consent applies (loopback public clients are asked every time).
WEB_APP = "https://app.example.com/cb"
API = "https://api.example.com"
EMAIL, PASSWORD = "alice@example.com", "correct horse battery"
SCOPE = "openid email offline_access"


@dataclass
class Scenario:
    public: object  # the web app: a public client with refresh tokens
    service: object  # a backend job: client_credentials for the API
    service_secret: str
    api: object  # the API itself: introspects tokens for its audience
    api_secret: str


def seed() -> Scenario:
    """Tables, signing keys, the API, the clients and the user."""
    from chalicelib.keys import keyring
    from chalicelib.oauth.clients import create_client
    from chalicelib.storage.resources import register_resource
    from chalicelib.storage.tables import bootstrap_tables
    from chalicelib.storage.users import create_user

    bootstrap_tables()
    keyring.ensure_keys()
    register_resource(API, "API", ["api:read"])
    public, _ = create_client(client_name="App", client_type="public", redirect_uris=[WEB_APP],
                              grant_types=["authorization_code", "refresh_token"],
                              scopes=["openid", "email", "offline_access"])
    service, service_secret = create_client(client_name="Job", grant_types=["client_credentials"],
                                            scopes=["api:read"])
    api, api_secret = create_client(client_name="API", grant_types=["client_credentials"], scopes=[],
                                    introspects=[API])
    create_user(EMAIL, PASSWORD)
    return Scenario(public, service, service_secret, api, api_secret)


def basic(client_id: str, client_secret: str) -> dict:
    """Form headers with HTTP Basic client authentication (RFC 6749 §2.3.1)."""
    from tests.routes.flow import FORM

    credentials = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
    return {**FORM, "Authorization": f"Basic {credentials}"}
