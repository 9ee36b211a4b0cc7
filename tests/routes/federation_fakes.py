"""The browser flow's test upstream: `FakeUpstream` replaces `upstream.start` / `upstream.finish`
(chalicelib/federation/upstream.py, whose protocol checks tests/unit/test_federation_upstream.py
attacks against tests/fakes/upstream.py) and `enabled_connections`, so each rule of the flow
(chalicelib/federation/sign_in.py) is driven exactly as a test says.
"""
from __future__ import annotations

import secrets
from urllib.parse import urlencode


def connection(connection_id="acme", **overrides):
    """A Connection (chalicelib/federation/connections.py) with test defaults."""
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
