"""The guarded HTTP client shared by every request to a URL someone else chose (chalicelib/outbound.py)."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chalicelib import outbound
from chalicelib.config import load_settings

PROD = load_settings({"STAGE": "prod", "ISSUER": "https://login.example.com"})
LOCAL = load_settings({"STAGE": "local", "ISSUER": "http://localhost:8000"})


@pytest.mark.parametrize("url, rule", [
    ("http://idp.example.com/cb", "must use https"),
    ("https://user:pw@idp.example.com/cb", "no credentials"),
    ("https://idp.example.com/cb#frag", "no credentials or fragment"),
    ("https://idp.example.com:8443/cb", "default https port"),
    ("https://login.example.com/token", "must not point at this server"),
    ("https://abc123.execute-api.eu-west-1.amazonaws.com/token", "must not point at this server"),
    ("https://idp.example.com/" + "a" * 2100, "at most 2048"),
])
def test_check_url_refuses_each_rule(url, rule):
    with pytest.raises(outbound.Refused, match=rule):
        outbound.check_url(url, PROD, what="the URL")


def test_check_url_allows_loopback_http_only_in_the_local_stage():
    assert outbound.check_url("http://127.0.0.1:9000/x", LOCAL) == ("http", "127.0.0.1", 9000)
    with pytest.raises(outbound.Refused):
        outbound.check_url("http://127.0.0.1:9000/x", PROD)


def test_send_refuses_a_private_address_before_connecting(monkeypatch):
    import socket

    monkeypatch.setattr(socket, "getaddrinfo",
                        lambda *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", 443))])
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: pytest.fail("connected"))
    with pytest.raises(outbound.NotPublic):
        outbound.send("POST", "https://metadata.example/x", PROD, max_bytes=10, timeout=1)


@pytest.fixture
def echo_server():
    class Echo(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(400)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"got":"' + body + b'","type":"' + self.headers["Content-Type"].encode() + b'"}')

        def log_message(self, *_args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_send_posts_a_body_and_returns_any_status_with_its_body(echo_server):
    answer = outbound.send("POST", f"{echo_server}/token", LOCAL, max_bytes=1000, timeout=3, body=b"a=1",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status == 400
    assert answer.body == b'{"got":"a=1","type":"application/x-www-form-urlencoded"}'
    assert answer.headers["content-type"] == "application/json"
    assert not answer.too_big


def test_send_reads_one_byte_past_the_limit_so_too_big_is_known(echo_server):
    answer = outbound.send("POST", f"{echo_server}/token", LOCAL, max_bytes=5, timeout=3, body=b"a=1",
                           headers={"Content-Type": "text/plain"})
    assert len(answer.body) == 6 and answer.too_big
