"""The official MCP Python SDK (mcp 2.3.0) against our IdP and examples/mcp_server, over real HTTP.

The client side is the SDK's own `OAuthClientProvider`, nothing hand-rolled: it meets the MCP
server's 401, reads our RFC 9728 metadata, discovers the IdP (RFC 8414), registers (RFC 7591) or
presents a client ID metadata document, runs the authorization code flow with PKCE and `resource`
(RFC 8707), refreshes, and steps up on 403 insufficient_scope. Its redirect handler plays the
user's browser through our hosted sign-in and consent pages (tests/integration/hosted_flow.py).

The MCP server runs in this process (uvicorn in a thread); every token it sees is checked by
chalicelib.verifier against the `idp` stack's JWKS.
"""
from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import datetime
import http.server
import ipaddress
import json
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx2
import jwt
import pytest
import requests
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

from examples.mcp_server.server import create_app
from tests.conftest import free_port
from tests.integration.conftest import Stack
from tests.integration.hosted_flow import REDIRECT_URI, TIMEOUT, HostedPages, new_user, query_of

pytestmark = pytest.mark.integration

FLOW_TIMEOUT = 60  # one whole client run: discovery, sign-in, tokens, tool calls
NOTES_SCOPES = ["notes:read", "notes:write"]


# --- the MCP server ---------------------------------------------------------------------------

class McpServerThread:
    """examples.mcp_server on a free port, served by uvicorn in a daemon thread."""

    def __init__(self, issuer: str):
        self.port = free_port()
        self.resource = f"http://127.0.0.1:{self.port}/mcp"
        self.app = create_app(issuer, self.resource)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, name=f"mcp-{self.port}", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"the MCP server did not start on port {self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        assert not self.thread.is_alive(), "the MCP server did not stop"


@pytest.fixture(scope="module")
def mcp_server(idp):
    server = McpServerThread(idp.base_url)
    yield server
    server.stop()


def register_mcp_resource(stack, use_stack, resource: str):
    """Register the MCP server as a public resource of `stack` (self-registered and metadata-document
    clients may use it); returns a fresh user's email."""
    from chalicelib.storage.resources import register_resource

    use_stack(stack)
    register_resource(resource, "Notes MCP", NOTES_SCOPES, public=True)
    return new_user()[1]


@pytest.fixture
def user(idp, use_stack, mcp_server):
    return register_mcp_resource(idp, use_stack, mcp_server.resource)


# --- the SDK client, with a test browser --------------------------------------------------------

class MemoryStorage:
    """The SDK's TokenStorage protocol, in memory (a real client would persist it)."""

    def __init__(self):
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client_info

    async def set_client_info(self, client_info):
        self.client_info = client_info


class Browser:
    """The SDK's redirect_handler + callback_handler: sign in and consent on our hosted pages
    (one cookie jar, so a second authorization reuses the SSO session), then hand the code back."""

    def __init__(self, stack, email: str):
        self.pages, self.email = HostedPages(stack.base_url), email
        self.authorization_urls: list[str] = []
        self._result: AuthorizationCodeResult | None = None

    async def redirect(self, url: str) -> None:
        self.authorization_urls.append(url)
        location = await anyio.to_thread.run_sync(self.pages.authorize, url, self.email)
        assert location.startswith(REDIRECT_URI + "?"), location
        returned = query_of(location)
        assert "code" in returned, f"the authorization failed: {location}"
        self._result = AuthorizationCodeResult(code=returned["code"], state=returned.get("state"),
                                               iss=returned.get("iss"))

    async def callback(self) -> AuthorizationCodeResult:
        result, self._result = self._result, None
        assert result is not None, "callback_handler called without an authorization"
        return result

    def scopes_requested(self, index: int) -> set[str]:
        return set(authorization_params(self.authorization_urls[index])["scope"].split())


def authorization_params(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def provider_for(server: McpServerThread, storage: MemoryStorage, browser: Browser, **kwargs) -> OAuthClientProvider:
    return OAuthClientProvider(
        server.resource, OAuthClientMetadata(client_name="MCP SDK interop test", redirect_uris=[REDIRECT_URI]),
        storage, redirect_handler=browser.redirect, callback_handler=browser.callback, **kwargs)


@dataclass
class Exchange:
    method: str
    url: str
    status: int
    form: dict  # a form-encoded body (the OAuth requests)
    rpc: str | None  # a JSON-RPC body's method, with the tool name for tools/call


class Recorder:
    """Every request the SDK sends (its OAuth requests included) and the status it got."""

    def __init__(self):
        self.exchanges: list[Exchange] = []

    async def __call__(self, response: httpx2.Response) -> None:
        request, form, rpc = response.request, {}, None
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("application/x-www-form-urlencoded"):
            form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        elif content_type.startswith("application/json") and request.content:
            message = json.loads(request.content)
            if isinstance(message, dict) and "method" in message:
                rpc = message["method"]
                if rpc == "tools/call":
                    rpc += f" {message['params']['name']}"
        self.exchanges.append(Exchange(request.method, str(request.url), response.status_code, form, rpc))

    def to(self, url: str, method: str | None = None) -> list[dict]:
        """The form bodies of the requests sent to `url`."""
        return [e.form for e in self.exchanges if e.url.split("?")[0] == url and method in (None, e.method)]

    def timeline(self) -> list[str]:
        """What happened, compactly: "POST /mcp tools/call add_note -> 403", "POST /token authorization_code -> 200"."""
        return [" ".join(filter(None, [e.method, urlsplit(e.url).path, e.rpc or e.form.get("grant_type")]))
                + f" -> {e.status}" for e in self.exchanges]


def run_client(server: McpServerThread, provider: OAuthClientProvider, calls, recorder: Recorder | None = None):
    """Connect with the SDK, list the tools, make `calls` [(tool, arguments)]; returns their results."""

    async def session():
        hooks = {"response": [recorder]} if recorder else None
        with anyio.fail_after(FLOW_TIMEOUT):
            async with (httpx2.AsyncClient(auth=provider, timeout=httpx2.Timeout(30, read=60),
                                           event_hooks=hooks) as http,
                        Client(streamable_http_client(server.resource, http_client=http)) as client):
                tools = {tool.name for tool in (await client.list_tools()).tools}
                assert {"list_notes", "add_note"} <= tools
                return [await client.call_tool(name, arguments) for name, arguments in calls]

    # In a thread of its own: the session-scoped Playwright fixture of the browser tests leaves an
    # event loop running in the main thread, where asyncio.run() refuses to start.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        results = pool.submit(lambda: asyncio.run(session())).result(timeout=FLOW_TIMEOUT + 10)
    for result in results:
        assert not result.is_error, result
    return results


def payload(result):
    """A tool result's value: structured content if any, else the JSON text."""
    if result.structured_content is not None:
        content = result.structured_content
        return content.get("result", content) if isinstance(content, dict) else content
    return json.loads(result.content[0].text)


def claims_of(access_token: str) -> dict:
    return jwt.decode(access_token, options={"verify_signature": False})


def audience(claims: dict) -> list[str]:
    return [claims["aud"]] if isinstance(claims["aud"], str) else claims["aud"]


# --- raw requests, without the SDK ------------------------------------------------------------

def mcp_headers(token: str | None = None) -> dict:
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def client_credentials_token(stack, use_stack, resource: str, scope: str) -> str:
    from chalicelib.oauth.clients import create_client
    from chalicelib.storage.resources import register_resource

    use_stack(stack)
    register_resource(resource, "Some MCP", NOTES_SCOPES)
    client, secret = create_client(client_name="MCP audience test", grant_types=["client_credentials"],
                                   scopes=NOTES_SCOPES)
    basic = base64.b64encode(f"{client.client_id}:{secret}".encode()).decode()
    response = requests.post(f"{stack.base_url}/token", timeout=TIMEOUT, headers={"Authorization": f"Basic {basic}"},
                             data={"grant_type": "client_credentials", "resource": resource, "scope": scope})
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                         "clientInfo": {"name": "raw", "version": "0"}}}


# --- a. dynamic client registration, end to end -------------------------------------------------

def test_sdk_registers_authorizes_and_calls_a_tool(idp, mcp_server, user):
    storage, browser, recorder = MemoryStorage(), Browser(idp, user), Recorder()

    [notes] = run_client(mcp_server, provider_for(mcp_server, storage, browser), [("list_notes", {})], recorder)

    assert any(note["text"] == "Buy milk" for note in payload(notes))
    # 401 -> RFC 9728 metadata -> RFC 8414 metadata -> RFC 7591 registration -> code (in the
    # browser) -> token -> the MCP request again, then the session (the SDK probes the 2026
    # protocol's server/discover first).
    assert recorder.timeline() == [
        "POST /mcp server/discover -> 401",
        "GET /.well-known/oauth-protected-resource/mcp -> 200",
        "GET /.well-known/oauth-authorization-server -> 200",
        "POST /register -> 201",
        "POST /token authorization_code -> 200",
        "POST /mcp server/discover -> 200",
        "POST /mcp tools/list -> 200",
        "POST /mcp tools/call list_notes -> 200",
    ]
    assert recorder.exchanges[1].url == mcp_server.app.verifier.resource_metadata_url
    assert recorder.exchanges[2].url == f"{idp.base_url}/.well-known/oauth-authorization-server"

    from chalicelib.storage.clients import get_client

    registered = get_client(storage.client_info.client_id)
    assert registered is not None and registered.registered_dynamically
    # The SDK omits token_endpoint_auth_method, so RFC 7591's default applies: a confidential
    # client (client_secret_basic) with a secret, which the SDK then uses at /token.
    assert storage.client_info.token_endpoint_auth_method == "client_secret_basic"
    assert storage.client_info.client_secret

    [url] = browser.authorization_urls
    params = authorization_params(url)
    assert params["client_id"] == storage.client_info.client_id
    assert params["resource"] == mcp_server.resource
    assert params["code_challenge_method"] == "S256" and params["code_challenge"]
    # The 401's scope (the base scope) plus offline_access, which our metadata lists.
    assert set(params["scope"].split()) == {"notes:read", "offline_access"}

    [token_request] = recorder.to(f"{idp.base_url}/token", "POST")
    assert token_request["grant_type"] == "authorization_code" and token_request["resource"] == mcp_server.resource
    claims = claims_of(storage.tokens.access_token)
    assert audience(claims) == [mcp_server.resource]
    assert claims["client_id"] == storage.client_info.client_id
    assert storage.tokens.refresh_token


# --- b. a restarted client refreshes instead of asking the user again ---------------------------

def test_new_provider_with_stored_tokens_refreshes_without_the_browser(idp, mcp_server, user):
    storage, browser = MemoryStorage(), Browser(idp, user)
    first = provider_for(mcp_server, storage, browser)
    run_client(mcp_server, first, [("list_notes", {})])
    assert len(browser.authorization_urls) == 1
    old = storage.tokens

    # A new provider (a restarted client) over the same storage. The SDK keeps no expiry in
    # storage: a loaded token counts as valid until the provider is told its expiry, so make it
    # expired. It also stores no discovery, and without it would refresh at the MCP server's own
    # origin (/token there); a real client would persist the metadata, as this one does.
    second = provider_for(mcp_server, storage, browser)
    second.context.token_expiry_time = time.time() - 1
    second.context.oauth_metadata = first.context.oauth_metadata
    second.context.protected_resource_metadata = first.context.protected_resource_metadata
    recorder = Recorder()

    [notes] = run_client(mcp_server, second, [("list_notes", {})], recorder)

    assert payload(notes)
    assert len(browser.authorization_urls) == 1, "redirect_handler was not called again"
    assert recorder.timeline() == [
        "POST /token refresh_token -> 200",
        "POST /mcp server/discover -> 200",
        "POST /mcp tools/list -> 200",
        "POST /mcp tools/call list_notes -> 200",
    ]
    [refresh] = recorder.to(f"{idp.base_url}/token", "POST")
    assert refresh["grant_type"] == "refresh_token" and refresh["refresh_token"] == old.refresh_token
    assert storage.tokens.access_token != old.access_token
    assert storage.tokens.refresh_token and storage.tokens.refresh_token != old.refresh_token  # rotated
    assert audience(claims_of(storage.tokens.access_token)) == [mcp_server.resource]


# --- d. step-up on 403 insufficient_scope ----------------------------------------------------

def test_step_up_to_the_write_scope_on_403(idp, mcp_server, user):
    storage, browser, recorder = MemoryStorage(), Browser(idp, user), Recorder()
    text = f"step-up {time.time_ns()}"

    [listed, added] = run_client(mcp_server, provider_for(mcp_server, storage, browser),
                                 [("list_notes", {}), ("add_note", {"text": text})], recorder)

    assert payload(listed)
    note = payload(added)
    assert note["text"] == text
    assert note["by"] == claims_of(storage.tokens.access_token)["sub"], "the tool saw the caller's token"
    assert len(browser.authorization_urls) == 2
    assert "notes:write" not in browser.scopes_requested(0)
    assert {"notes:read", "notes:write"} <= browser.scopes_requested(1), "the union of scopes is re-requested"
    assert set(claims_of(storage.tokens.access_token)["scope"].split()) >= {"notes:read", "notes:write"}
    # The same MCP session throughout; no second registration or discovery for the step-up.
    assert recorder.timeline()[-5:] == [
        "POST /mcp tools/list -> 200",
        "POST /mcp tools/call list_notes -> 200",
        "POST /mcp tools/call add_note -> 403",
        "POST /token authorization_code -> 200",
        "POST /mcp tools/call add_note -> 200",
    ]
    assert recorder.timeline().count("POST /register -> 201") == 1


def test_insufficient_scope_challenge_names_every_scope_needed(idp, mcp_server, use_stack):
    """What the SDK reacts to above: the 403 and its challenge, seen directly."""
    token = client_credentials_token(idp, use_stack, mcp_server.resource, scope="notes:read")
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "add_note", "arguments": {"text": "x"}}}
    response = requests.post(mcp_server.resource, json=body, timeout=TIMEOUT, headers=mcp_headers(token))
    assert response.status_code == 403
    challenge = response.headers["WWW-Authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert 'scope="notes:read notes:write"' in challenge
    assert f'resource_metadata="{mcp_server.app.verifier.resource_metadata_url}"' in challenge


# --- e. audience binding ------------------------------------------------------------------------

OTHER_RESOURCE = "https://other.example.com/mcp"


def test_a_token_for_another_resource_is_refused_with_401(idp, mcp_server, use_stack):
    foreign = client_credentials_token(idp, use_stack, OTHER_RESOURCE, scope="notes:read notes:write")
    assert audience(claims_of(foreign)) == [OTHER_RESOURCE]
    response = requests.post(mcp_server.resource, json=INITIALIZE, headers=mcp_headers(foreign), timeout=TIMEOUT)
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert 'error="invalid_token"' in challenge
    assert f'resource_metadata="{mcp_server.app.verifier.resource_metadata_url}"' in challenge

    # The control: the same kind of token, minted for this server, gets through to the SDK.
    own = client_credentials_token(idp, use_stack, mcp_server.resource, scope="notes:read")
    response = requests.post(mcp_server.resource, json=INITIALIZE, headers=mcp_headers(own), timeout=TIMEOUT)
    assert response.status_code == 200, response.text


def test_resource_metadata_and_unauthenticated_challenge(idp, mcp_server):
    for path in ("/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"):
        response = requests.get(f"http://127.0.0.1:{mcp_server.port}{path}", timeout=TIMEOUT)
        assert response.status_code == 200
        assert response.json() == {"resource": mcp_server.resource, "authorization_servers": [idp.base_url],
                                   "bearer_methods_supported": ["header"], "scopes_supported": NOTES_SCOPES,
                                   "resource_name": "Notes MCP"}
    response = requests.post(mcp_server.resource, json=INITIALIZE, headers=mcp_headers(), timeout=TIMEOUT)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == (
        f'Bearer realm="mcp", scope="notes:read", resource_metadata="{mcp_server.app.verifier.resource_metadata_url}"')


# --- c. client ID metadata documents --------------------------------------------------------

def make_tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 (IP SAN); returns (ca, cert, key) PEMs."""
    now = datetime.datetime.now(datetime.UTC)
    validity = {"not_valid_before": now - datetime.timedelta(minutes=5),
                "not_valid_after": now + datetime.timedelta(hours=1)}
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "MCP interop test CA")])
    ca = (x509.CertificateBuilder(subject_name=ca_name, issuer_name=ca_name, public_key=ca_key.public_key(),
                                  serial_number=x509.random_serial_number(), **validity)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder(subject_name=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]),
                                    issuer_name=ca_name, public_key=key.public_key(),
                                    serial_number=x509.random_serial_number(), **validity)
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


class DocumentServer:
    """Serves one client ID metadata document over HTTPS on 127.0.0.1, recording the paths fetched."""

    PATH = "/mcp-client.json"

    def __init__(self, cert: Path, key: Path):
        self.fetched: list[str] = []
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}{self.PATH}"
        self.document = {"client_id": self.url, "client_name": "MCP SDK interop test (CIMD)",
                         "redirect_uris": [REDIRECT_URI], "grant_types": ["authorization_code", "refresh_token"],
                         "response_types": ["code"], "token_endpoint_auth_method": "none"}
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="cimd", daemon=True)
        self.thread.start()

    def _handler(self):
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            timeout = 10

            def do_GET(self):
                owner.fetched.append(self.path)
                if self.path != owner.PATH:
                    self.send_error(404)
                    return
                body = json.dumps(owner.document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        return Handler

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def cimd_setup(tmp_path):
    """A CA, an HTTPS document server, a dedicated stack trusting that CA, and an MCP server for it."""
    ca, cert, key = make_tls_files(tmp_path)
    started = []
    try:
        documents = DocumentServer(cert, key)
        started.append(documents)
        stack = Stack(tmp_path / "state", "secretsmanager", tmp_path, extra_env={"SSL_CERT_FILE": str(ca)})
        started.append(stack)
        stack.wait_ready()
        server = McpServerThread(stack.base_url)
        started.append(server)
        yield documents, stack, server
    finally:
        for thing in reversed(started):
            if isinstance(thing, Stack):
                thing.kill()
                print(thing.output())
            else:
                thing.stop()


def test_sdk_uses_a_client_id_metadata_document(cimd_setup, use_stack):
    documents, stack, server = cimd_setup
    email = register_mcp_resource(stack, use_stack, server.resource)
    storage, browser, recorder = MemoryStorage(), Browser(stack, email), Recorder()
    provider = provider_for(server, storage, browser, client_metadata_url=documents.url)

    [notes] = run_client(server, provider, [("list_notes", {})], recorder)

    assert payload(notes)
    [url] = browser.authorization_urls
    assert authorization_params(url)["client_id"] == documents.url
    assert documents.fetched == [DocumentServer.PATH], "the IdP fetched the document over verified TLS"
    assert recorder.timeline() == [  # no /register
        "POST /mcp server/discover -> 401",
        "GET /.well-known/oauth-protected-resource/mcp -> 200",
        "GET /.well-known/oauth-authorization-server -> 200",
        "POST /token authorization_code -> 200",
        "POST /mcp server/discover -> 200",
        "POST /mcp tools/list -> 200",
        "POST /mcp tools/call list_notes -> 200",
    ]
    [token_request] = recorder.to(f"{stack.base_url}/token", "POST")
    assert token_request["client_id"] == documents.url and "client_secret" not in token_request
    claims = claims_of(storage.tokens.access_token)
    assert claims["client_id"] == documents.url
    assert audience(claims) == [server.resource]
