"""An MCP server (the official MCP Python SDK, streamable HTTP) protected by this IdP's access tokens.

Run it against `make run`:

    ./idp-admin resources register --uri http://127.0.0.1:8200/mcp --name "Notes MCP" \\
        --scope notes:read --scope notes:write --public
    IDP_ISSUER=http://localhost:8000 MCP_RESOURCE=http://127.0.0.1:8200/mcp \\
        PYTHONPATH=. .venv/bin/python -m examples.mcp_server.server      # serves http://127.0.0.1:8200/mcp

(--public: clients that register themselves may ask for its scopes). Then point any MCP client that
speaks the MCP authorization spec at http://127.0.0.1:8200/mcp: it gets
a 401 naming our RFC 9728 metadata, discovers the IdP from it, registers itself (RFC 7591) or uses a
client ID metadata document, signs the user in and calls the tools with a token whose `aud` is
exactly MCP_RESOURCE.

The SDK's own auth is not used: a small ASGI layer in front of the SDK's app
- serves the protected resource metadata at /.well-known/oauth-protected-resource/mcp (RFC 9728
  §3.1) and at /.well-known/oauth-protected-resource (clients fall back to it);
- checks every /mcp request's token with chalicelib.verifier.Verifier (signature, issuer,
  `aud` = MCP_RESOURCE, expiry) and the base scope notes:read: 401 with a challenge otherwise. A
  DPoP-bound token (RFC 9449) comes as `Authorization: DPoP <token>` with a `DPoP` proof for this
  request (htm, htu = MCP_RESOURCE, ath), each proof good once (the verifier's in-memory replay
  cache: this example runs as one process); a bound token sent as Bearer is refused, unbound
  tokens still work as Bearer;
- reads the JSON-RPC body of a POST and, for a `tools/call` of a tool needing more (add_note needs
  notes:write), answers 403 insufficient_scope naming every scope needed, so the client steps up;
- for a tool that needs a stronger sign-in (delete_note: a second factor, TOOL_ACR), answers 401
  insufficient_user_authentication with `acr_values` (RFC 9470 §3) when the token's `acr` is weaker;
  then hands the request, body replayed, to the SDK.

RFC 9470 step-up, from the client's side: on

    WWW-Authenticate: Bearer error="insufficient_user_authentication", ...,
                      acr_values="urn:serverless-idp:acr:mfa"

send the user to the authorization endpoint again with the same scope and resource plus
`acr_values=urn:serverless-idp:acr:mfa` (and `max_age` when the challenge has one). The IdP asks
the signed-in user for their second factor (/mfa), issues a code whose tokens carry
`acr: "urn:serverless-idp:acr:mfa"`, and the retried tool call passes.
"""
from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from mcp.server.auth.middleware.auth_context import auth_context_var
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.mcpserver import MCPServer
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chalicelib.errors import OAuthError
from chalicelib.verifier import (
    WELL_KNOWN_PROTECTED_RESOURCE,
    Verifier,
    credentials,
    metadata_path,
    protected_resource_metadata,
)

#: Every /mcp request needs BASE_SCOPES; a tools/call needs its tool's scopes (unlisted tools: BASE_SCOPES).
BASE_SCOPES = ("notes:read",)
TOOL_SCOPES = {"list_notes": ("notes:read",), "add_note": ("notes:read", "notes:write"),
               "delete_note": ("notes:read", "notes:write")}
#: RFC 9470: tools that need a stronger sign-in than the token's, as acceptable acr values (the IdP's
#: ladder: a passkey sign-in, "phr", also meets "…:mfa").
TOOL_ACR = {"delete_note": ("urn:serverless-idp:acr:mfa",)}
SCOPES_SUPPORTED = ["notes:read", "notes:write"]
MAX_BODY_BYTES = 1_000_000


@dataclass
class Notes:
    items: list[dict] = field(default_factory=lambda: [{"id": 1, "text": "Buy milk", "by": "seed"}])


def build_mcp(notes: Notes) -> MCPServer:
    mcp = MCPServer("notes", instructions="A shared notebook. list_notes reads it, add_note writes to it, "
                                          "delete_note removes a note.")

    @mcp.tool()
    def list_notes() -> list[dict]:
        """Every note in the notebook."""
        return list(notes.items)

    @mcp.tool()
    def add_note(text: str) -> dict:
        """Add a note (needs the notes:write scope)."""
        token = auth_context_var.get()
        note = {"id": len(notes.items) + 1, "text": text[:200],
                "by": token.access_token.subject if token else None}
        notes.items.append(note)
        return note

    @mcp.tool()
    def delete_note(note_id: int) -> dict:
        """Delete a note (needs notes:write and a sign-in with a second factor)."""
        kept = [note for note in notes.items if note["id"] != note_id]
        deleted = len(kept) != len(notes.items)
        notes.items[:] = kept
        return {"id": note_id, "deleted": deleted}

    return mcp


def called_tools(body: bytes) -> list[str]:
    """The tools a JSON-RPC message (or batch) calls (tools/call)."""
    try:
        message = json.loads(body) if body else None
    except ValueError:
        return []  # the SDK answers malformed JSON-RPC itself
    return [str(item["params"].get("name")) for item in (message if isinstance(message, list) else [message])
            if isinstance(item, dict) and item.get("method") == "tools/call" and isinstance(item.get("params"), dict)]


def required_scopes(body: bytes) -> tuple[str, ...]:
    """The scopes a JSON-RPC message (or batch) needs: a tools/call needs its tool's scopes."""
    needed = dict.fromkeys(BASE_SCOPES)
    for tool in called_tools(body):
        needed.update(dict.fromkeys(TOOL_SCOPES.get(tool, BASE_SCOPES)))
    return tuple(needed)


def required_acr(body: bytes) -> tuple[str, ...]:
    """The acr values a JSON-RPC message (or batch) needs (RFC 9470): those of its tools' TOOL_ACR."""
    needed: dict = {}
    for tool in called_tools(body):
        needed.update(dict.fromkeys(TOOL_ACR.get(tool, ())))
    return tuple(needed)


class ProtectedMCP:
    """ASGI app: RFC 9728 metadata + our Verifier in front of the SDK's streamable HTTP app."""

    def __init__(self, issuer: str, resource: str, *, host: str = "127.0.0.1", notes: Notes | None = None):
        self.resource = resource
        self.mcp_path = urlsplit(resource).path or "/mcp"
        self.verifier = Verifier(issuer, audience=resource, resource_metadata=True, realm="mcp")
        self.metadata = protected_resource_metadata(resource, [issuer.rstrip("/")], scopes_supported=SCOPES_SUPPORTED,
                                                    resource_name="Notes MCP")
        self.metadata_paths = {metadata_path(resource), WELL_KNOWN_PROTECTED_RESOURCE}
        self.notes = notes or Notes()
        self.sdk_app: ASGIApp = build_mcp(self.notes).streamable_http_app(streamable_http_path=self.mcp_path,
                                                                         host=host)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # the SDK's session manager starts and stops here
            return await self.sdk_app(scope, receive, send)
        if scope["type"] != "http":  # no websockets: everything goes through the checks below
            return await send({"type": "websocket.close", "code": 1008})
        if scope["path"] in self.metadata_paths and scope["method"] in ("GET", "HEAD"):
            return await JSONResponse(self.metadata, headers={"Cache-Control": "max-age=300",
                                                              "Access-Control-Allow-Origin": "*"})(scope, receive, send)
        if scope["path"] != self.mcp_path:
            return await self.sdk_app(scope, receive, send)

        body = b""
        if scope["method"] == "POST":
            body, receive = await read_body(receive)
            if body is None:
                return await JSONResponse({"error": "request body too large"}, status_code=413)(scope, receive, send)
        headers = request_headers(scope)
        try:
            # The verifier may fetch discovery/JWKS (blocking urllib): keep it off the event loop.
            # The proof's htu is the URL the client called: the resource's public URL (RFC 9449 §4.3).
            claims = await run_in_threadpool(lambda: self.verifier.authenticate(
                headers.get("authorization"), required_scopes(body), required_acr=required_acr(body),
                dpop_proof=headers.get("dpop"), method=scope["method"], url=self.resource))
        except OAuthError as exc:
            status, payload, response_headers = exc.to_response()
            return await Response(payload, status_code=status, headers=response_headers)(scope, receive, send)

        # Tell the SDK who is calling: it binds each MCP session to (client_id, issuer, subject),
        # so a session id is useless with another principal's token.
        user = AuthenticatedUser(AccessToken(
            token=credentials(headers["authorization"])[1], client_id=claims["client_id"],
            scopes=str(claims.get("scope", "")).split(), expires_at=claims.get("exp"), resource=self.resource,
            subject=claims.get("sub"), claims={"iss": claims["iss"]}))
        context = auth_context_var.set(user)
        try:
            await self.sdk_app({**scope, "user": user}, receive, send)
        finally:
            auth_context_var.reset(context)


def request_headers(scope: Scope) -> dict[str, str]:
    """The request's headers by lower-case name, repeated fields joined by ", " (RFC 9110 §5.3), so
    that a header that must come once (a DPoP proof: RFC 9449 §4.3 item 1) sent twice is seen as
    such instead of its last copy."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


async def read_body(receive: Receive) -> tuple[bytes | None, Receive]:
    """Read the whole request body, and return a `receive` that replays it to the next app."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > MAX_BODY_BYTES:
            return None, receive
        if not message.get("more_body", False):
            break
    body, replayed = b"".join(chunks), False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


def create_app(issuer: str | None = None, resource: str | None = None, host: str = "127.0.0.1") -> ProtectedMCP:
    return ProtectedMCP(issuer or os.environ["IDP_ISSUER"], resource or os.environ["MCP_RESOURCE"], host=host)


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--issuer", default=os.environ.get("IDP_ISSUER", "http://localhost:8000"))
    parser.add_argument("--resource", default=os.environ.get("MCP_RESOURCE", "http://127.0.0.1:8200/mcp"))
    parser.add_argument("--host", default=os.environ.get("MCP_HOST"))
    parser.add_argument("--port", type=int, default=int(os.environ["MCP_PORT"]) if os.environ.get("MCP_PORT") else None)
    args = parser.parse_args(argv)
    url = urlsplit(args.resource)
    host, port = args.host or url.hostname or "127.0.0.1", args.port or url.port or 8200
    uvicorn.run(create_app(args.issuer, args.resource, host=host), host=host, port=port, log_level="info")


if __name__ == "__main__":
    main()
