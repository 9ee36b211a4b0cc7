"""A tiny protected API (a "resource server") that trusts the IdP's access tokens.

    IDP_ISSUER=http://localhost:8000 API_AUDIENCE=https://notes.example.com/api \
        PYTHONPATH=. .venv/bin/python -m examples.notes_api.app     # serves on 127.0.0.1:8100

The verifier fetches the IdP's discovery document and JWKS once, then checks every request's
Bearer token locally: signature, typ at+jwt, issuer, audience (this API), expiry and scopes.
A real API would copy chalicelib/verifier.py and chalicelib/errors.py, or depend on this repo.
"""
from __future__ import annotations

import functools
import json
import os

from chalice import Chalice, Response

from chalicelib.errors import OAuthError
from chalicelib.verifier import Verifier

app = Chalice(app_name="notes-api")
NOTES = [{"id": 1, "text": "Buy milk"}]


@functools.lru_cache(maxsize=1)
def verifier() -> Verifier:
    # Created once per container: its discovery/JWKS cache lives as long as the container does.
    return Verifier(os.environ["IDP_ISSUER"], os.environ["API_AUDIENCE"])


def requires(*scopes: str):
    """Protect a view: 401/403 with RFC 6750 WWW-Authenticate, or the token's claims as `claims`."""

    def decorate(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            try:
                claims = verifier().authenticate(app.current_request.headers.get("authorization"), scopes)
            except OAuthError as exc:
                status, body, headers = exc.to_response()
                return Response(body=body, status_code=status, headers=headers)
            return view(claims, *args, **kwargs)

        return wrapper

    return decorate


@app.route("/notes", methods=["GET"])
@requires("notes:read")
def list_notes(claims):
    return Response(body=json.dumps({"owner": claims["sub"], "notes": NOTES}), status_code=200,
                    headers={"Content-Type": "application/json", "Cache-Control": "no-store"})


@app.route("/notes", methods=["POST"])
@requires("notes:write")
def add_note(claims):
    note = {"id": len(NOTES) + 1, "text": str((app.current_request.json_body or {}).get("text", ""))[:200]}
    NOTES.append(note)
    return Response(body=json.dumps(note), status_code=201, headers={"Content-Type": "application/json"})


if __name__ == "__main__":
    from chalice.local import LocalDevServer
    from chalice.config import Config

    LocalDevServer(app, Config(), host="127.0.0.1", port=int(os.environ.get("NOTES_PORT", "8100"))).serve_forever()
