"""Client ID metadata documents: fetched, validated, cached, and fetched only from public addresses."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chalicelib.config import load_settings
from chalicelib.oauth import client_documents
from chalicelib.oauth.client_documents import DocumentError
from tests.routes.flow import authorize_query, hidden, query_of, redeem, sign_in_and_consent

PROD = load_settings({"STAGE": "prod", "ISSUER": "https://login.example.com"})


class DocumentServer:
    """Serves client ID metadata documents on 127.0.0.1 and counts requests."""

    def __init__(self):
        self.documents: dict[str, tuple[int, dict, bytes]] = {}
        self.hits: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.hits.append(self.path)
                status, headers, body = outer.documents.get(self.path, (404, {}, b"{}"))
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def publish(self, path: str, document=None, *, status=200, headers=None, raw: bytes | None = None) -> str:
        url = self.base + path
        document = {"client_id": url, "client_name": "Agent Smith", "redirect_uris": ["http://127.0.0.1/cb"],
                    **(document or {})}
        self.documents[path] = (status, headers or {}, raw if raw is not None else json.dumps(document).encode())
        return url


@pytest.fixture
def documents():
    server = DocumentServer()
    yield server
    server.server.shutdown()


def test_document_client_signs_in_and_redeems_its_code(browser, http, documents, alice):
    client_id = documents.publish("/agent.json", {"grant_types": ["authorization_code"]})
    location = browser.get("/authorize?" + authorize_query(client_id, scope="openid email")).headers["Location"]
    page = browser.get(location)
    assert b"Agent Smith" in page.body
    consent = browser.get(browser.post("/login", {
        "request_id": hidden(page.body, "request_id"), "csrf_token": hidden(page.body, "csrf_token"),
        "username": "alice@example.com", "password": "correct horse battery"}).headers["Location"])
    assert b"unverified" in consent.body and b"published by <strong>127.0.0.1</strong>" in consent.body
    code = query_of(sign_in_and_consent(browser, client_id, scope="openid email"))["code"]
    assert redeem(http, client_id, code).status_code == 200


@pytest.mark.parametrize("change, message", [
    ({"client_id": "https://someone-else.example/agent.json"}, b"not the URL it was fetched from"),
    ({"client_name": None}, b"needs a client_name"),
    ({"redirect_uris": ["http://127.0.0.1/other"]}, b"redirect_uri is not registered"),
    ({"token_endpoint_auth_method": "client_secret_basic"}, b"public clients"),
    ({"redirect_uris": ["http://evil.example/cb"]}, b"invalid"),
])
def test_bad_documents_are_shown_as_errors_never_redirected(browser, documents, change, message):
    client_id = documents.publish("/agent.json", {k: v for k, v in change.items()})
    response = browser.get("/authorize?" + authorize_query(client_id, scope="openid"))
    assert response.status_code == 400 and "Location" not in response.headers
    assert message in response.body


def test_oversized_documents_are_refused(browser, documents):
    client_id = documents.publish("/big.json", {"padding": "x" * 6000})
    response = browser.get("/authorize?" + authorize_query(client_id, scope="openid"))
    assert response.status_code == 400 and client_documents.UNFETCHABLE.encode() in response.body


def test_redirects_are_not_followed(browser, documents):
    target = documents.publish("/real.json")
    client_id = documents.publish("/moved.json", status=302, headers={"Location": target}, raw=b"")
    response = browser.get("/authorize?" + authorize_query(client_id, scope="openid"))
    assert response.status_code == 400 and client_documents.UNFETCHABLE.encode() in response.body
    assert documents.hits == ["/moved.json"]


def test_documents_are_cached_by_max_age(browser, documents, alice):
    client_id = documents.publish("/cached.json", headers={"Cache-Control": "max-age=3600"})
    for _ in range(3):
        assert browser.get("/authorize?" + authorize_query(client_id, scope="openid")).status_code == 302
    assert documents.hits == ["/cached.json"]


@pytest.mark.parametrize("header, seconds", [
    ("max-age=3600", 3600), ("max-age=5", 300), ("max-age=999999", 86400), ("no-store", 300), ("", 300),
    ("public, max-age=600", 600),
])
def test_cache_lifetime_follows_headers_within_bounds(header, seconds):
    assert client_documents._cache_seconds(header) == seconds


@pytest.mark.parametrize("url, message", [
    ("http://127.0.0.1:9/agent.json", "must use https"),
    ("https://127.0.0.1/agent.json", "not a public address"),
    ("https://localhost/agent.json", "not a public address"),
    ("https://169.254.169.254/latest/meta-data", "not a public address"),
    ("https://10.0.0.7/agent.json", "not a public address"),
    ("https://192.168.1.20/agent.json", "not a public address"),
    ("https://[fd00:ec2::254]/agent.json", "not a public address"),
    ("https://[::ffff:10.0.0.1]/agent.json", "not a public address"),
    ("https://100.64.0.1/agent.json", "not a public address"),
    ("https://agent.example.com/", "needs a path"),
    ("https://agent.example.com:8443/agent.json", "default https port"),
    ("https://agent.example.com/a/../b.json", "dot segments"),
    ("https://user:pw@agent.example.com/a.json", "no credentials"),
    ("https://agent.invalid/agent.json", "does not resolve"),
])
def test_outside_the_local_stage_only_public_https_documents_are_fetched(url, message, monkeypatch):
    import socket

    def never_connect(*_args, **_kwargs):
        raise AssertionError("the guard must refuse before connecting")

    monkeypatch.setattr(socket, "create_connection", never_connect)
    with pytest.raises(DocumentError, match=message):
        client_documents.fetch(url, PROD)


def test_a_host_resolving_to_any_private_address_is_refused(monkeypatch):
    import socket

    answers = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", 443)),
               (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", 443))]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: answers)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: pytest.fail("connected"))
    with pytest.raises(DocumentError, match="not a public address"):
        client_documents.fetch("https://rebinding.example/agent.json", PROD)


def test_discovery_advertises_document_support(http):
    assert json.loads(http.get("/.well-known/oauth-authorization-server").body)[
        "client_id_metadata_document_supported"] is True


@pytest.mark.parametrize("address", ["64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::1", "::a9fe:a9fe", "2001:0:4136:e378::1"])
def test_ipv6_forms_that_embed_ipv4_are_not_public(address):
    assert not client_documents.allowed_address(address, PROD)


def test_a_server_that_drips_bytes_cannot_hold_the_fetch(monkeypatch):
    """FETCH_TIMEOUT bounds the whole fetch, not just each read."""
    import socket
    import time

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    stop = threading.Event()

    def drip():
        conn, _ = listener.accept()
        conn.recv(4096)
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100:
            if stop.is_set():
                break
            try:
                conn.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.2)
        conn.close()

    threading.Thread(target=drip, daemon=True).start()
    monkeypatch.setattr(client_documents, "FETCH_TIMEOUT", 1.0)
    local = load_settings({"STAGE": "local", "ISSUER": "http://127.0.0.1:8000"})
    started = time.monotonic()
    with pytest.raises(DocumentError, match="could not be fetched"):
        client_documents.fetch(f"http://127.0.0.1:{port}/slow.json", local)
    assert time.monotonic() - started < 3
    stop.set()
    listener.close()
