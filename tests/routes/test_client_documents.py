"""Client ID metadata documents: fetched, validated, cached, and fetched only from public addresses."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chalicelib.config import load_settings
from chalicelib import outbound
from chalicelib.oauth import client_documents
from chalicelib.errors import DocumentError
from tests.routes.flow import (
    authorize_query,
    error_page_logs,
    hidden,
    query_of,
    redeem,
    reference,
    sign_in_and_consent,
)

PROD = load_settings({"STAGE": "prod", "ISSUER": "https://login.example.com"})
#: The one thing the page says about any unusable document: why is in the log.
UNVERIFIED = b"so the app could not be verified."
LOCAL = load_settings({"STAGE": "local", "ISSUER": "http://localhost:8000"})


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
    assert b"Agent Smith" in page.body and b"This app is unverified." in page.body
    consent = browser.get(browser.post("/login", {
        "request_id": hidden(page.body, "request_id"), "csrf_token": hidden(page.body, "csrf_token"),
        "username": "alice@example.com", "password": "correct horse battery"}).headers["Location"])
    assert b"unverified" in consent.body and b"published by <strong>127.0.0.1</strong>" in consent.body
    code = query_of(sign_in_and_consent(browser, client_id, scope="openid email"))["code"]
    assert redeem(http, client_id, code).status_code == 200


@pytest.mark.parametrize("change, shown, logged", [
    ({"client_id": "https://someone-else.example/agent.json"}, UNVERIFIED, "not the URL it was fetched from"),
    ({"client_name": None}, UNVERIFIED, "needs a client_name"),
    ({"redirect_uris": ["http://127.0.0.1/other"]}, b"redirect_uri is not registered", "redirect_uri="),
    ({"token_endpoint_auth_method": "client_secret_basic"}, UNVERIFIED, "public clients"),
    ({"redirect_uris": ["http://evil.example/cb"]}, UNVERIFIED, "invalid"),
])
def test_bad_documents_are_shown_as_errors_never_redirected(browser, documents, idp_log, change, shown, logged):
    client_id = documents.publish("/agent.json", {k: v for k, v in change.items()})
    response = browser.get("/authorize?" + authorize_query(client_id, scope="openid"))
    assert response.status_code == 400 and "Location" not in response.headers
    assert shown in response.body
    [entry] = error_page_logs(idp_log())
    assert logged in entry["detail"] and entry["request_id"] == reference(response.body)


def test_a_documents_contents_never_appear_on_the_error_page(browser, documents, idp_log):
    """Its validation error quotes the document; the page once showed that quote on our domain."""
    client_id = documents.publish("/agent.json", {"redirect_uris": ["http://evil.example/<b>Buy now</b>"]})
    response = browser.get("/authorize?" + authorize_query(client_id, scope="openid"))
    assert response.status_code == 400 and "Location" not in response.headers
    assert b"evil.example" not in response.body and b"Buy now" not in response.body
    assert UNVERIFIED in response.body and b"Error code: <code>invalid_request</code>" in response.body
    [entry] = error_page_logs(idp_log())
    assert entry["page"] == "unverified_client" and entry["request_id"] == reference(response.body)
    assert client_id in entry["detail"] and "http://evil.example/<b>Buy now" in entry["detail"]


def test_oversized_documents_are_refused(browser, documents, idp_log):
    client_id = documents.publish("/big.json", {"padding": "x" * 6000})
    response = browser.get("/authorize?" + authorize_query(client_id, scope="openid"))
    assert response.status_code == 400 and UNVERIFIED in response.body and b"5120" not in response.body
    assert client_documents.UNFETCHABLE in error_page_logs(idp_log())[0]["detail"]


def test_redirects_are_not_followed(browser, documents, idp_log):
    target = documents.publish("/real.json")
    client_id = documents.publish("/moved.json", status=302, headers={"Location": target}, raw=b"")
    response = browser.get("/authorize?" + authorize_query(client_id, scope="openid"))
    assert response.status_code == 400 and UNVERIFIED in response.body and b"HTTP 302" not in response.body
    assert client_documents.UNFETCHABLE in error_page_logs(idp_log())[0]["detail"]
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


def configure(monkeypatch, **env):
    from chalicelib.config import settings

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings.cache_clear()


@pytest.fixture
def no_fetching(monkeypatch):
    """Fails the test if a document is fetched (or its cache read): the policy comes first."""
    from chalicelib.storage.models import ClientDocumentModel

    def refuse(*_args, **_kwargs):
        raise AssertionError("a client_id document was fetched or looked up")

    monkeypatch.setattr(client_documents, "fetch", refuse)
    monkeypatch.setattr(ClientDocumentModel, "get", refuse)


@pytest.mark.parametrize("env", [
    {"REGISTRATION_MODE": "off"},
    {"REGISTRATION_MODE": "token", "REGISTRATION_TOKEN_SHA256": "0" * 64},
    {"CLIENT_ID_DOCUMENTS": "off"},
])
def test_with_registration_closed_a_document_client_id_is_an_unknown_client(browser, documents, no_fetching,
                                                                            monkeypatch, env):
    client_id = documents.publish("/agent.json")
    configure(monkeypatch, **env)
    response = browser.get("/authorize?" + authorize_query(client_id, scope="openid"))
    assert response.status_code == 400 and "Location" not in response.headers
    assert b"unknown client" in response.body
    assert documents.hits == []


def test_with_registration_closed_a_document_client_is_invalid_client_at_the_token_endpoint(
        http, documents, no_fetching, monkeypatch):
    from urllib.parse import urlencode

    client_id = documents.publish("/agent.json")
    configure(monkeypatch, REGISTRATION_MODE="off")
    response = http.post("/token", headers={"Content-Type": "application/x-www-form-urlencoded"}, body=urlencode(
        {"grant_type": "authorization_code", "code": "x" * 43, "client_id": client_id,
         "redirect_uri": "http://127.0.0.1/cb", "code_verifier": "v" * 43}).encode())
    assert response.status_code == 401 and json.loads(response.body)["error"] == "invalid_client"
    assert documents.hits == []


def test_discovery_advertises_documents_only_when_they_are_allowed(http, monkeypatch):
    configure(monkeypatch, REGISTRATION_MODE="off")
    assert "client_id_metadata_document_supported" not in json.loads(
        http.get("/.well-known/oauth-authorization-server").body)
    configure(monkeypatch, CLIENT_ID_DOCUMENTS="agents.example.com")
    assert json.loads(http.get("/.well-known/oauth-authorization-server").body)[
        "client_id_metadata_document_supported"] is True


def test_an_allow_list_admits_only_the_listed_hosts(browser, documents, monkeypatch, alice):
    allowed = documents.publish("/agent.json")
    configure(monkeypatch, CLIENT_ID_DOCUMENTS="agents.example.com, 127.0.0.1")
    assert browser.get("/authorize?" + authorize_query(allowed, scope="openid")).status_code == 302
    assert documents.hits == ["/agent.json"]

    configure(monkeypatch, CLIENT_ID_DOCUMENTS="agents.example.com")
    refused = documents.publish("/other.json")
    response = browser.get("/authorize?" + authorize_query(refused, scope="openid"))
    assert response.status_code == 400 and b"unknown client" in response.body
    assert documents.hits == ["/agent.json"]


@pytest.mark.parametrize("url, allowed", [
    ("https://agents.example.com/a.json", True),
    ("https://AGENTS.example.com/a.json", True),  # host names are case-insensitive
    ("https://evil.agents.example.com/a.json", False),  # exact hosts: no subdomains
    ("https://agents.example.com.evil.test/a.json", False),
    ("https://example.com/a.json", False),
    ("https://agents.example.com@evil.test/a.json", False),
    ("https://[::1/a.json", False),
])
def test_the_allow_list_matches_exact_hosts(url, allowed):
    settings = load_settings({"STAGE": "prod", "ISSUER": "https://login.example.com",
                              "CLIENT_ID_DOCUMENTS": "agents.example.com"})
    assert client_documents.allowed_by_policy(url, settings) is allowed


@pytest.mark.parametrize("scope", ["notes:read", "no-such:scope"])
def test_a_document_asking_for_a_private_scope_fails_like_one_asking_for_a_missing_scope(
        browser, documents, api_resources, idp_log, scope):
    client_id = documents.publish("/agent.json", {"scope": f"openid {scope}"})
    response = browser.get("/authorize?" + authorize_query(client_id, scope="openid"))
    assert response.status_code == 400 and "Location" not in response.headers
    assert UNVERIFIED in response.body
    # The page is the same fixed text either way; only the log says which scope, in the same words.
    [entry] = error_page_logs(idp_log())
    assert f"scope not available to self-registered clients: {scope!r}" in entry["detail"]


@pytest.mark.parametrize("address", ["64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::1", "::a9fe:a9fe", "2001:0:4136:e378::1"])
def test_ipv6_forms_that_embed_ipv4_are_not_public(address):
    assert not outbound.allowed_address(address, PROD)


# Over TLS ------------------------------------------------------------------------------------------

@pytest.fixture
def tls_documents(tmp_path, monkeypatch):
    """A DocumentServer behind TLS with a certificate for 127.0.0.1 that the fetcher is made to trust."""
    import datetime
    import ipaddress
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server = DocumentServer()
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert_file, key_file)
    server.server.socket = server_context.wrap_socket(server.server.socket, server_side=True)
    server.base = server.base.replace("http://", "https://")
    trusting = ssl.create_default_context
    monkeypatch.setattr(ssl, "create_default_context", lambda *a, **k: trusting(cafile=str(cert_file)))
    yield server
    server.server.shutdown()


def test_a_document_is_fetched_over_verified_tls_from_a_server_that_closes_the_connection(tls_documents):
    """With a Content-Length and a closing connection, http.client closes the socket as soon as the
    body is complete, under the fetcher's feet."""
    url = tls_documents.base + "/tls.json"
    body = json.dumps({"client_id": url, "client_name": "Agent Smith", "redirect_uris": ["http://127.0.0.1/cb"]})
    tls_documents.publish("/tls.json", raw=body.encode(),
                          headers={"Cache-Control": "max-age=600", "Content-Length": str(len(body))})
    document, max_age = client_documents.fetch(url, LOCAL)
    assert document["client_id"] == url and max_age == 600 and tls_documents.hits == ["/tls.json"]


# Fixed error texts: no oracle for what the target answered -------------------------------------

def test_what_the_target_answered_is_never_shown(browser, documents, idp_log):
    """A stranger's client_id must not tell them a URL's status, size or contents: every such answer
    gets the same page, word for word."""
    answers = [(404, b"{}"), (500, b"{}"), (401, b"{}"), (301, b""), (200, b"<html>not json</html>"),
               (200, b"[" + b"1," * 3000 + b"1]")]
    pages = set()
    for n, (status, raw) in enumerate(answers):
        client_id = documents.publish(f"/answer-{n}.json", status=status, raw=raw)
        response = browser.get("/authorize?" + authorize_query(client_id, scope="openid"))
        assert response.status_code == 400 and "Location" not in response.headers
        pages.add(response.body.replace(client_id.encode(), b"<client_id>").replace(
            reference(response.body).encode(), b"<reference>"))
    assert len(pages) == 1 and UNVERIFIED in pages.pop()
    # The log under each reference names the rule, in the same fixed words whatever the target said.
    assert {entry["detail"].split(": ", 1)[1] for entry in error_page_logs(idp_log())} == {client_documents.UNFETCHABLE}


def test_a_host_that_does_not_resolve_and_a_private_host_get_the_same_answer(monkeypatch):
    """Otherwise the error would tell which internal names exist."""
    import socket

    def resolver(host, *_args, **_kwargs):
        if host == "missing.example":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", 443))]

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    messages = set()
    for host in ("missing.example", "internal.example"):
        with pytest.raises(DocumentError) as refused:
            client_documents.fetch(f"https://{host}/agent.json", PROD)
        messages.add(str(refused.value))
    assert messages == {client_documents.NOT_PUBLIC}


# Never from ourselves -----------------------------------------------------------------------------

@pytest.mark.parametrize("url", [
    "https://login.example.com/authorize?client_id=https://login.example.com/authorize",
    "https://LOGIN.example.com./agent.json",
    "https://login.example.com:443/agent.json",
    "https://abc123defg.execute-api.eu-west-1.amazonaws.com/api/authorize?client_id=x",
])
def test_document_urls_on_our_own_host_are_refused(url, monkeypatch):
    import socket

    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: pytest.fail("looked up"))
    with pytest.raises(DocumentError, match="must not point at this server"):
        client_documents.fetch(url, PROD)


def test_authorize_will_not_fetch_a_document_from_itself(browser, documents, idp_log, monkeypatch):
    """/authorize?client_id=<our own /authorize?client_id=...> would have each level fetch the next."""
    import socket

    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: pytest.fail("connected"))
    for own in ("http://localhost:8000", "http://127.0.0.1:8000"):
        nested = f"{own}/authorize?" + authorize_query(documents.publish("/inner.json"), scope="openid")
        response = browser.get("/authorize?" + authorize_query(nested, scope="openid"))
        assert response.status_code == 400 and UNVERIFIED in response.body
        assert "must not point at this server" in error_page_logs(idp_log())[-1]["detail"]


# One deadline over DNS, connect, TLS and every read -------------------------------------------

#: Wall-clock bounds below are a guard against hanging, not a measurement: each attack, unchecked,
#: holds the fetch far longer than FETCH_TIMEOUT + GUARD.
GUARD = 1.0


class SlowServer:
    """A loopback TCP listener that runs `behave(connection)` for each connection, for fetches that
    must be cut short. Stops whatever it is doing when the test ends."""

    def __init__(self, behave):
        import socket

        self.stop = threading.Event()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.port = self.listener.getsockname()[1]

        def serve():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                try:
                    behave(conn, self.stop)
                except OSError:
                    pass

        threading.Thread(target=serve, daemon=True).start()

    def close(self):
        self.stop.set()
        self.listener.close()


@pytest.fixture
def slow_server():
    servers = []

    def start(behave):
        servers.append(SlowServer(behave))
        return servers[-1]

    yield start
    for server in servers:
        server.close()



def _fetch_timed(url, settings=LOCAL):
    import time

    started = time.monotonic()
    with pytest.raises(DocumentError) as refused:
        client_documents.fetch(url, settings)
    return str(refused.value), time.monotonic() - started


def test_a_dns_lookup_that_hangs_is_cut_at_the_deadline(monkeypatch):
    """getaddrinfo takes no timeout: a name server that never answers must not hold the Lambda."""
    import socket

    released = threading.Event()
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: released.wait(30) and [])
    monkeypatch.setattr(client_documents, "FETCH_TIMEOUT", 0.5)
    try:
        message, elapsed = _fetch_timed("https://slow-dns.example/agent.json", PROD)
    finally:
        released.set()
    assert message == client_documents.NOT_PUBLIC
    assert elapsed < 0.5 + GUARD


def test_a_tls_handshake_that_never_completes_is_cut_at_the_same_deadline(monkeypatch, slow_server):
    """The time DNS took is not given again to the handshake: one deadline covers both."""
    import socket
    import time

    server = slow_server(lambda conn, stop: conn.recv(4096) and stop.wait(30))  # reads the hello, never answers
    answer = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", server.port))]

    getaddrinfo = socket.getaddrinfo

    def slow_resolver(host, *args, **kwargs):
        if host != "slow-tls.example":
            return getaddrinfo(host, *args, **kwargs)
        time.sleep(1.3)
        return answer

    monkeypatch.setattr(socket, "getaddrinfo", slow_resolver)
    monkeypatch.setattr(client_documents, "FETCH_TIMEOUT", 1.5)
    message, elapsed = _fetch_timed(f"https://slow-tls.example:{server.port}/agent.json")
    assert message in (client_documents.UNFETCHABLE, client_documents.NOT_PUBLIC)
    assert elapsed < 1.5 + GUARD


def test_a_server_that_drips_its_body_cannot_hold_the_fetch(monkeypatch, slow_server):
    """Once the headers say the connection will close, http.client lets go of the socket; the
    deadline must still cut the body read."""

    def drip_body(conn, stop):
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n"
                     b"Connection: close\r\n\r\n{")
        for _ in range(100):  # 10 s at most
            if stop.wait(0.1):
                return
            conn.sendall(b" ")

    server = slow_server(drip_body)
    monkeypatch.setattr(client_documents, "FETCH_TIMEOUT", 1.0)
    message, elapsed = _fetch_timed(f"http://127.0.0.1:{server.port}/slow.json")
    assert message == client_documents.UNFETCHABLE
    assert elapsed < 1.0 + GUARD


def test_a_server_that_drips_its_headers_cannot_hold_the_fetch(monkeypatch, slow_server):
    def drip_headers(conn, stop):
        conn.recv(4096)
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100:
            if stop.wait(0.2):
                return
            conn.sendall(bytes([byte]))

    server = slow_server(drip_headers)
    monkeypatch.setattr(client_documents, "FETCH_TIMEOUT", 1.0)
    message, elapsed = _fetch_timed(f"http://127.0.0.1:{server.port}/slow.json")
    assert message == client_documents.UNFETCHABLE
    assert elapsed < 1.0 + GUARD


# Rate limits: real fetches per client address and per host -------------------------------------

def _limited(per_ip=100, per_host=100):
    return load_settings({"STAGE": "local", "ISSUER": "http://localhost:8000",
                          "CLIENT_DOCUMENT_FETCHES_PER_IP": str(per_ip),
                          "CLIENT_DOCUMENT_FETCHES_PER_HOST": str(per_host)})


@pytest.fixture(autouse=True)
def one_rate_window(monkeypatch):
    """Counters are per fixed minute: a test that straddles a minute boundary would start over."""
    from chalicelib.log import now
    from chalicelib.oauth import throttle

    frozen = now()
    monkeypatch.setattr(throttle, "now", lambda: frozen)


@pytest.fixture
def fetcher(monkeypatch):
    """Stands in for the network: records each fetch and serves a valid document."""
    fetched = []

    def fake_fetch(url, _settings):
        fetched.append(url)
        return {"client_id": url, "client_name": "Agent", "redirect_uris": ["http://127.0.0.1/cb"]}, 300

    monkeypatch.setattr(client_documents, "fetch", fake_fetch)
    return fetched


def test_fetches_past_the_per_ip_limit_are_refused_before_fetching(aws, fetcher):
    limited = _limited(per_ip=3)
    for n in range(3):
        client_documents.resolve(f"https://host{n}.example/agent.json", limited, source_ip="198.51.100.7")
    with pytest.raises(DocumentError, match="too many client_id documents"):
        client_documents.resolve("https://host3.example/agent.json", limited, source_ip="198.51.100.7")
    assert len(fetcher) == 3
    client_documents.resolve("https://host3.example/agent.json", limited, source_ip="198.51.100.8")
    assert len(fetcher) == 4, "another address has its own budget"


def test_an_ipv6_client_cannot_escape_the_limit_by_changing_addresses_within_its_64(aws, fetcher):
    limited = _limited(per_ip=2)
    client_documents.resolve("https://a.example/agent.json", limited, source_ip="2001:db8:7:7::1")
    client_documents.resolve("https://b.example/agent.json", limited, source_ip="2001:db8:7:7::2")
    with pytest.raises(DocumentError, match="too many client_id documents"):
        client_documents.resolve("https://c.example/agent.json", limited, source_ip="2001:db8:7:7:ffff::3")
    assert len(fetcher) == 2


def test_fetches_past_the_per_host_limit_are_refused_whoever_asks(aws, fetcher):
    limited = _limited(per_host=3)
    for n in range(3):
        client_documents.resolve(f"https://target.example/{n}.json", limited, source_ip=f"198.51.100.{n}")
    with pytest.raises(DocumentError, match="too many client_id documents"):
        client_documents.resolve("https://TARGET.example./3.json", limited, source_ip="198.51.100.99")
    assert len(fetcher) == 3
    client_documents.resolve("https://other.example/3.json", limited, source_ip="198.51.100.99")
    assert len(fetcher) == 4, "another host has its own budget"


def test_cached_documents_do_not_count_against_the_limits(aws, fetcher):
    limited = _limited(per_ip=1, per_host=1)
    for _ in range(5):
        client = client_documents.resolve("https://cached.example/agent.json", limited, source_ip="198.51.100.7")
    assert client.client_name == "Agent" and len(fetcher) == 1


def test_each_browser_address_has_its_own_fetch_budget_at_authorize(browser, documents, idp_log, monkeypatch):
    """The request's source IP reaches the limiter (chalice's local gateway reports LOCAL_SOURCE_IP)."""
    from chalice.local import LambdaEventConverter

    from chalicelib.config import settings

    monkeypatch.setenv("CLIENT_DOCUMENT_FETCHES_PER_IP", "1")
    settings.cache_clear()
    answers = []
    for n, address in enumerate(["198.51.100.1", "198.51.100.2", "198.51.100.1"]):
        monkeypatch.setattr(LambdaEventConverter, "LOCAL_SOURCE_IP", address)
        client_id = documents.publish(f"/agent-{n}.json")
        answers.append(browser.get("/authorize?" + authorize_query(client_id, scope="openid")))
    assert [a.status_code for a in answers] == [302, 302, 400]
    assert UNVERIFIED in answers[2].body
    assert "too many client_id documents" in error_page_logs(idp_log())[-1]["detail"]
    assert documents.hits == ["/agent-0.json", "/agent-1.json"]


def test_each_caller_address_has_its_own_fetch_budget_at_token(http, documents, monkeypatch):
    """Client authentication at /token may fetch a document too, limited by the caller's address."""
    from chalice.local import LambdaEventConverter

    from chalicelib.config import settings

    monkeypatch.setenv("CLIENT_DOCUMENT_FETCHES_PER_IP", "1")
    settings.cache_clear()
    answers = []
    for n, address in enumerate(["198.51.100.1", "198.51.100.2", "198.51.100.1"]):
        monkeypatch.setattr(LambdaEventConverter, "LOCAL_SOURCE_IP", address)
        answers.append(json.loads(redeem(http, documents.publish(f"/agent-{n}.json"), "no-such-code").body))
    assert [a["error"] for a in answers] == ["invalid_grant", "invalid_grant", "invalid_client"]
    assert documents.hits == ["/agent-0.json", "/agent-1.json"]


def test_a_throttled_document_client_at_token_gets_invalid_client_not_a_server_error(http, documents, monkeypatch):
    from chalicelib.config import settings

    monkeypatch.setenv("CLIENT_DOCUMENT_FETCHES_PER_IP", "0")
    settings.cache_clear()
    response = redeem(http, documents.publish("/agent.json"), "some-code")
    assert response.status_code == 401 and response.headers["Cache-Control"] == "no-store"
    assert json.loads(response.body)["error"] == "invalid_client"
    assert documents.hits == []


def test_a_document_clients_broken_request_waits_on_the_notice_page(browser, documents):
    client_id = documents.publish("/agent.json")
    response = browser.get("/authorize?" + authorize_query(client_id, scope="openid", code_challenge_method="plain"))
    assert response.status_code == 400 and "Location" not in response.headers
    assert b"Continue to 127.0.0.1:5000" in response.body and b"invalid_request" in response.body


# Stale copies: a refresh that cannot happen must not lock a document client out ---------------

@pytest.fixture
def clock(monkeypatch):
    """The document cache's clock (the rate windows stay frozen by one_rate_window)."""
    from chalicelib.log import now

    class Clock:
        at = now()

        def advance(self, seconds):
            self.at += seconds

    clock = Clock()
    monkeypatch.setattr(client_documents, "now", lambda: clock.at)
    return clock


@pytest.fixture
def host(monkeypatch):
    """A document host whose answers the test decides: a valid document, or an error per URL."""
    class Host:
        fetched: list = []
        failures: dict = {}

        def fetch(self, url, _settings):
            self.fetched.append(url)
            if url in self.failures:
                raise self.failures[url]
            if "junk" in url:
                raise DocumentError(client_documents.UNFETCHABLE)  # a 404: the host has no such document
            return {"client_id": url, "client_name": "Agent", "redirect_uris": ["http://127.0.0.1/cb"]}, 300

    served = Host()
    served.fetched, served.failures = [], {}
    monkeypatch.setattr(client_documents, "fetch", served.fetch)
    return served


LEGIT = "https://claude.example/oauth/client.json"


def _spend_junk_budget(limited, count):
    """The attack: a few addresses ask for junk URLs on the real client's host, each a cache miss."""
    for n in range(count):
        with pytest.raises(DocumentError):
            client_documents.resolve(f"https://claude.example/junk{n}", limited, source_ip=f"198.51.100.{n // 10}")


def test_junk_urls_on_a_host_cannot_spend_the_budget_that_refreshes_its_real_clients(aws, host, clock):
    limited = _limited(per_ip=10, per_host=60)
    client_documents.resolve(LEGIT, limited, source_ip="203.0.113.50")
    _spend_junk_budget(limited, 61)
    assert len(host.fetched) == 60, "the host's budget is spent: the last junk fetches were refused"
    clock.advance(301)  # the real client's copy expires
    client = client_documents.resolve(LEGIT, limited, source_ip="192.0.2.77")
    assert client.client_id == LEGIT and host.fetched[-1] == LEGIT, "refreshed from its host, not refused"


def test_a_spent_refresh_budget_serves_the_stale_copy_instead_of_locking_the_client_out(aws, host, clock, idp_log):
    from chalicelib.oauth import throttle

    limited = _limited(per_host=5)
    client_documents.resolve(LEGIT, limited, source_ip="203.0.113.50")
    _spend_junk_budget(limited, 6)
    # Even the refreshes' own budget spent (say by documents an attacker can publish on a shared host):
    throttle.add(throttle.window_key("docrefresh-host", "claude.example", client_documents.FETCH_RATE_WINDOW),
                 client_documents.FETCH_RATE_WINDOW, amount=5)
    clock.advance(301)
    fetches = len(host.fetched)
    for address in ("192.0.2.77", "192.0.2.78"):
        assert client_documents.resolve(LEGIT, limited, source_ip=address).client_name == "Agent"
    assert len(host.fetched) == fetches
    stale = [e for e in idp_log() if e.get("msg") == "stale client document served"]
    assert len(stale) == 1, "the second request used the copy without trying (and counting) a refresh again"
    assert stale[0]["url"] == LEGIT and stale[0]["reason"] == client_documents.TOO_MANY_FETCHES


@pytest.mark.parametrize("failure", [
    client_documents.DocumentUnavailable(client_documents.UNFETCHABLE),  # timeout, reset, 5xx, 429
    client_documents.DocumentUnavailable(client_documents.NOT_PUBLIC),  # DNS did not answer
])
def test_a_host_that_is_down_serves_the_stale_copy_for_at_most_max_stale(aws, host, clock, failure):
    client_documents.resolve(LEGIT, LOCAL, source_ip="203.0.113.50")
    host.failures[LEGIT] = failure
    clock.advance(300 + client_documents.MAX_STALE - 1)
    assert client_documents.resolve(LEGIT, LOCAL, source_ip="203.0.113.50").client_id == LEGIT
    clock.advance(1)
    with pytest.raises(client_documents.DocumentUnavailable):
        client_documents.resolve(LEGIT, LOCAL, source_ip="203.0.113.50")


def test_a_stale_copy_is_retried_once_a_minute_and_replaced_when_the_host_is_back(aws, host, clock):
    client_documents.resolve(LEGIT, LOCAL, source_ip="203.0.113.50")
    host.failures[LEGIT] = client_documents.DocumentUnavailable(client_documents.UNFETCHABLE)
    clock.advance(301)
    client_documents.resolve(LEGIT, LOCAL, source_ip="203.0.113.50")
    clock.advance(client_documents.STALE_RETRY - 1)
    client_documents.resolve(LEGIT, LOCAL, source_ip="203.0.113.50")
    assert host.fetched == [LEGIT, LEGIT]
    del host.failures[LEGIT]
    clock.advance(1)
    client_documents.resolve(LEGIT, LOCAL, source_ip="203.0.113.50")
    assert host.fetched == [LEGIT] * 3
    clock.advance(299 + client_documents.MAX_STALE)
    host.failures[LEGIT] = client_documents.DocumentUnavailable(client_documents.UNFETCHABLE)
    assert client_documents.resolve(LEGIT, LOCAL, source_ip="203.0.113.50").client_id == LEGIT, \
        "the stale time counts from the last successful fetch"


@pytest.mark.parametrize("answer", [
    DocumentError(client_documents.UNFETCHABLE),  # 404 or 410: the client withdrew its document
    {"client_id": "https://elsewhere.example/client.json", "client_name": "Agent",
     "redirect_uris": ["http://127.0.0.1/cb"]},  # fetched fine, and invalid now
])
def test_a_withdrawn_or_invalid_document_ends_the_client_at_once_and_no_outage_revives_it(
        aws, host, clock, monkeypatch, answer):
    client_documents.resolve(LEGIT, LOCAL, source_ip="203.0.113.50")
    clock.advance(301)
    if isinstance(answer, Exception):
        host.failures[LEGIT] = answer
    else:
        monkeypatch.setattr(client_documents, "fetch", lambda url, _s: (answer, 300))
    with pytest.raises(DocumentError) as refused:
        client_documents.resolve(LEGIT, LOCAL, source_ip="203.0.113.50")
    assert not isinstance(refused.value, client_documents.DocumentUnavailable)
    monkeypatch.setattr(client_documents, "fetch", host.fetch)
    host.failures[LEGIT] = client_documents.DocumentUnavailable(client_documents.UNFETCHABLE)
    with pytest.raises(client_documents.DocumentUnavailable):
        client_documents.resolve(LEGIT, LOCAL, source_ip="203.0.113.50")


def test_a_document_host_answering_503_keeps_its_signed_in_users_working(browser, documents, alice, monkeypatch):
    """Through /authorize, against a real (local) host: 503 is an outage, so the stale copy is used."""
    from chalicelib.log import now

    client_id = documents.publish("/agent.json")
    assert browser.get("/authorize?" + authorize_query(client_id, scope="openid")).status_code == 302
    documents.documents["/agent.json"] = (503, {}, b"")
    later = now() + 301
    monkeypatch.setattr(client_documents, "now", lambda: later)
    response = browser.get("/authorize?" + authorize_query(client_id, scope="openid"))
    assert response.status_code == 302 and documents.hits == ["/agent.json", "/agent.json"]


@pytest.mark.parametrize("status, code", [(503, 302), (429, 302), (404, 400), (410, 400), (403, 400)])
def test_which_host_answers_are_outages(browser, documents, monkeypatch, status, code):
    from chalicelib.log import now

    client_id = documents.publish("/agent.json")
    browser.get("/authorize?" + authorize_query(client_id, scope="openid"))
    documents.documents["/agent.json"] = (status, {}, b"")
    later = now() + 301
    monkeypatch.setattr(client_documents, "now", lambda: later)
    assert browser.get("/authorize?" + authorize_query(client_id, scope="openid")).status_code == code


def test_a_fetch_under_way_when_the_url_is_blocked_does_not_overwrite_the_block(aws, monkeypatch):
    from chalicelib.storage.client_documents import block_document_client, cached_document

    def fetch_while_an_operator_blocks(url, _settings):
        block_document_client(url)
        return {"client_id": url, "client_name": "Agent", "redirect_uris": ["http://127.0.0.1/cb"]}, 300

    monkeypatch.setattr(client_documents, "fetch", fetch_while_an_operator_blocks)
    assert client_documents.resolve(LEGIT, LOCAL, source_ip="203.0.113.50") is None
    assert cached_document(LEGIT).blocked is True
