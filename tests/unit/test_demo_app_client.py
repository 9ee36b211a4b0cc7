"""tools/demo_app.py without a network: its client registration is idempotent and follows DEMO_PORT,
and what it shows (claims, userinfo, emails) is escaped."""
from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

from tools import demo_app


def test_the_demo_client_is_registered_once_as_a_public_pkce_client_and_follows_the_port(aws):
    from chalicelib.storage.clients import get_client

    assert demo_app.register_client(8100) is True
    assert demo_app.register_client(8100) is False, "nothing is written when it is already as wanted"
    client = get_client("demo-app")
    assert (client.client_type, client.token_endpoint_auth_method) == ("public", "none")
    assert client.redirect_uris == ("http://127.0.0.1:8100/callback",)
    assert set(client.scopes) == {"openid", "email", "profile"}

    assert demo_app.register_client(8200) is True
    assert get_client("demo-app").redirect_uris == ("http://127.0.0.1:8200/callback",)


def test_claims_and_userinfo_are_shown_escaped():
    demo = demo_app.Demo(issuer="http://localhost:8000", port=8100)
    evil = '<script>alert("x")</script>'
    session = demo_app.Session(claims={"sub": "u1", "name": evil}, userinfo={"sub": "u1", "name": evil})

    page = demo_app.home_page(demo, session)

    assert "<script>" not in page
    assert "&lt;script&gt;" in page


def test_the_emails_page_escapes_the_message_and_links_only_what_it_found(tmp_path: Path):
    message = EmailMessage()
    message["Subject"], message["To"], message["Date"] = "<b>Hi</b>", "a@example.org", "Mon, 01 Jan 2026 00:00:00 +0000"
    message.set_content('Open http://localhost:8000/verify?t=1&x="><script> now.')
    (tmp_path / "00000000000000000001-0000.eml").write_bytes(message.as_bytes())
    demo = demo_app.Demo(issuer="http://localhost:8000", port=8100, outbox_dir=tmp_path)

    page = demo_app.emails_page(demo)

    assert "<script>" not in page and "<b>Hi</b>" not in page
    assert '<a href="http://localhost:8000/verify?t=1&amp;x=">' in page
