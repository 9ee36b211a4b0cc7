"""Stand-ins for what other branches of issue 15 build, for the browser flow's tests
(DESIGN15): `chalicelib.federation.upstream` (start/finish and their dataclasses, helper U),
`chalicelib.federation.connections` (Connection, helper C), `chalicelib.storage.connections`
(enabled_connections) and `chalicelib.federation.home_realm` (helper C).

`install_missing()` puts a module in sys.modules only where the real one cannot be imported, so
once the real modules are merged nothing here replaces them. Tests never rely on these bodies:
they monkeypatch `upstream.start` / `upstream.finish` and `enabled_connections` on whichever
module is there (`FakeUpstream.install`), with only the documented names.
"""
from __future__ import annotations

import importlib
import secrets
import sys
import types
from dataclasses import dataclass, field
from urllib.parse import urlencode


@dataclass(frozen=True)
class Connection:
    connection_id: str
    preset: str
    protocol: str
    display_name: str
    client_id: str
    auth_method: str
    issuer: str | None = None
    discovery_url: str | None = None
    allowed_tenants: tuple = ()
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    api_base: str | None = None
    scopes: tuple = ("openid", "email", "profile")
    response_mode: str = "query"
    claim_mapping: dict = field(default_factory=dict)
    acr_mapping: dict = field(default_factory=dict)
    trusted_email_domains: tuple = ()
    domains: tuple = ()
    store_tokens: bool = False
    apple_team_id: str | None = None
    apple_key_id: str | None = None
    icon_url: str | None = None
    enabled: bool = True
    created_at: int = 0
    updated_at: int = 0


@dataclass(frozen=True)
class UpstreamStart:
    url: str
    state: str
    nonce: str | None
    code_verifier: str


@dataclass(frozen=True)
class UpstreamProfile:
    subject: str
    email: str | None
    email_verified: bool
    name: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    locale: str | None = None
    acr: str | None = None
    amr: tuple = ()
    issuer: str = ""
    claims: dict = field(default_factory=dict)


@dataclass(frozen=True)
class UpstreamResult:
    profile: UpstreamProfile
    tokens: dict | None


def _missing(name: str) -> bool:
    if name in sys.modules:
        return False
    try:
        importlib.import_module(name)
    except ImportError:
        return True
    return False


def install_missing() -> None:
    if _missing("chalicelib.federation.connections"):
        module = types.ModuleType("chalicelib.federation.connections")
        module.Connection = Connection
        sys.modules[module.__name__] = module
    if _missing("chalicelib.storage.connections"):
        module = types.ModuleType("chalicelib.storage.connections")
        module.enabled_connections = lambda cache_seconds=0: []
        module.get_connection = lambda connection_id: None
        sys.modules[module.__name__] = module
    if _missing("chalicelib.federation.upstream"):
        module = types.ModuleType("chalicelib.federation.upstream")
        module.UpstreamStart, module.UpstreamProfile, module.UpstreamResult = UpstreamStart, UpstreamProfile, \
            UpstreamResult

        def unconfigured(*args, **kwargs):
            raise AssertionError("a test must install FakeUpstream")

        module.start = module.finish = unconfigured
        sys.modules[module.__name__] = module
    if _missing("chalicelib.federation.home_realm"):
        module = types.ModuleType("chalicelib.federation.home_realm")

        def connections_for(client, connections):
            allowed = list(getattr(client, "connections", None) or ())
            return [c for c in connections if c.enabled and (not allowed or c.connection_id in allowed)]

        def password_allowed(client):
            allowed = list(getattr(client, "connections", None) or ())
            return not allowed or "password" in allowed

        def by_email(email, connections):
            domain = (email or "").rpartition("@")[2].lower()
            return next((c for c in connections if domain and domain in c.domains), None)

        def by_hint(hint, connections):
            return next((c for c in connections if c.connection_id == hint), None)

        module.connections_for, module.password_allowed = connections_for, password_allowed
        module.by_email, module.by_hint = by_email, by_hint
        sys.modules[module.__name__] = module


def connection(connection_id="acme", **overrides):
    """A Connection of whichever module is installed, with the documented fields."""
    from chalicelib.federation.connections import Connection as Real

    fields = dict(connection_id=connection_id, preset="oidc", protocol="oidc", display_name="Acme SSO",
                  client_id="our-client", auth_method="client_secret_basic", issuer="https://sso.acme.test")
    fields.update(overrides)
    return Real(**fields)


class FakeUpstream:
    """upstream.start/finish as the flow calls them: start hands out a fresh state and records
    it; finish answers with the profile the test set for the code the callback carries, after the
    checks the real one makes first (state equal, an `error=` answer raised as UpstreamRefused)."""

    AUTHORIZE = "https://sso.acme.test/authorize"

    def __init__(self):
        self.started: list[dict] = []
        self.profiles: dict[str, object] = {}
        self.finished: list[dict] = []

    def install(self, monkeypatch, connections):
        from chalicelib.federation import upstream
        from chalicelib.storage import connections as stored

        monkeypatch.setattr(stored, "enabled_connections", lambda cache_seconds=0: list(connections))
        monkeypatch.setattr(upstream, "start", self.start)
        monkeypatch.setattr(upstream, "finish", self.finish)
        return self

    def start(self, connection, settings, *, redirect_uri, login_hint=None, prompt=None, max_age=None):
        from chalicelib.federation import upstream

        state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
        self.started.append({"connection": connection.connection_id, "state": state, "redirect_uri": redirect_uri,
                             "login_hint": login_hint, "prompt": prompt, "max_age": max_age, "nonce": nonce,
                             "code_verifier": verifier})
        query = urlencode({"state": state, "client_id": connection.client_id, "redirect_uri": redirect_uri})
        return upstream.UpstreamStart(url=f"{self.AUTHORIZE}?{query}", state=state, nonce=nonce,
                                      code_verifier=verifier)

    def answer(self, subject, email=None, *, email_verified=True, acr=None, tokens=None, **claims) -> str:
        """Make the upstream answer the next callback with this profile; returns its code."""
        from chalicelib.federation import upstream

        code = secrets.token_urlsafe(16)
        self.profiles[code] = upstream.UpstreamResult(
            profile=upstream.UpstreamProfile(subject=subject, email=email, email_verified=email_verified,
                                             name=claims.get("name"), given_name=claims.get("given_name"),
                                             family_name=claims.get("family_name"), locale=claims.get("locale"),
                                             acr=acr, amr=(), issuer="https://sso.acme.test", claims={}),
            tokens=tokens)
        return code

    def finish(self, connection, settings, *, params, state, nonce, code_verifier, redirect_uri):
        import hmac

        from chalicelib import errors

        self.finished.append({"connection": connection.connection_id, "state": state, "nonce": nonce,
                              "code_verifier": code_verifier})
        started = next((s for s in self.started if s["state"] == state), None)
        if started is None or not hmac.compare_digest(params.get("state", ""), state) \
                or started["nonce"] != nonce or started["code_verifier"] != code_verifier:
            raise errors.UpstreamFailed("state", "state mismatch")
        if params.get("error"):
            raise errors.UpstreamRefused(params["error"], "refused upstream")
        result = self.profiles.pop(params.get("code", ""), None)
        if result is None:
            raise errors.UpstreamFailed("token_endpoint", "unknown code")
        return result
