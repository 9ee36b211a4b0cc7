"""The demo app of `make run`: a tiny relying party at http://127.0.0.1:DEMO_PORT (default 8100).

    python -m tools.demo_app --port 8100        (env: ISSUER, the IdP; OUTBOX_DIR, the local outbox)

Development only, never deployed. It shows a newcomer the whole OpenID Connect code flow against the
local IdP: "Sign in" -> the IdP's hosted pages (sign in or create an account, consent) -> back to
/callback -> a page with the ID token's claims and the userinfo response, and a local "Sign out".

The OAuth side is Authlib's, a maintained client also used by the interop tests, so the demo proves
interop rather than restating the IdP's own assumptions:
- the authorization request carries PKCE S256 (RFC 7636 §4.2, required by OAuth 2.1 for every
  client), `state` (RFC 6749 §10.12, CSRF) and `nonce` (OIDC Core §3.1.2.1, ID token replay);
- the callback's `state` is checked by Authlib before the code is redeemed (at the token endpoint,
  as a public client: token_endpoint_auth_method "none");
- the ID token is verified as OIDC Core §3.1.3.7 says: signature against the keys at jwks_uri
  (joserfc), restricted to the algorithms discovery names, then iss, aud, exp, iat, nonce and
  at_hash (authlib.oidc.core.CodeIDToken);
- userinfo is called with the access token (OIDC Core §5.3).

The bootstrap of `make run` (tools/devstack.py) registers the public client `demo-app` with the
redirect URI http://127.0.0.1:DEMO_PORT/callback (`register_client`, idempotent). Sessions live in
this process's memory (a random cookie names one): restarting the demo signs everyone out of it,
not out of the IdP. Every value shown is HTML-escaped; the pages have no script.
"""
from __future__ import annotations

import argparse
import html
import json
import os
import secrets
import sys
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

CLIENT_ID = "demo-app"
CLIENT_NAME = "Demo app"
SCOPE = "openid email profile"
DEFAULT_PORT = 8100
COOKIE = "demo_session"
#: Seconds of clock difference accepted on iat/exp (OIDC Core §3.1.3.7 leaves it to the client).
LEEWAY = 30
TIMEOUT = 10
#: The demo's "Emails" page shows this many of the newest outbox messages.
EMAILS_SHOWN = 10


def redirect_uri(port: int) -> str:
    return f"http://127.0.0.1:{port}/callback"


def register_client(port: int) -> bool:
    """Register (or re-point) the public client `demo-app` at this port's callback; True if it changed.

    Called by the devstack bootstrap on every start: nothing is written when the client is already
    as wanted, and a DEMO_PORT change replaces its redirect URI."""
    from chalicelib.oauth.client_metadata import validate_client_metadata
    from chalicelib.oauth.clients import add_client
    from chalicelib.storage.clients import delete_client, get_client

    wanted = validate_client_metadata(client_name=CLIENT_NAME, client_type="public",
                                      redirect_uris=[redirect_uri(port)], grant_types=["authorization_code"],
                                      scopes=SCOPE.split(), token_endpoint_auth_method="none")
    current = get_client(CLIENT_ID)
    if current is not None and not current.disabled and all(
            tuple(value) == tuple(getattr(current, name)) if isinstance(value, (list, tuple))
            else value == getattr(current, name) for name, value in wanted.items()):
        return False
    if current is not None:
        delete_client(CLIENT_ID)
    add_client(CLIENT_ID, wanted)
    return True


@dataclass
class Session:
    #: The authorization request in flight: state, nonce and code_verifier.
    pending: dict | None = None
    #: After sign-in: the verified ID token claims and the userinfo response.
    claims: dict | None = None
    userinfo: dict | None = None


@dataclass
class Demo:
    issuer: str
    port: int
    outbox_dir: Path | None = None
    sessions: dict[str, Session] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _metadata: dict | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def metadata(self) -> dict:
        """The IdP's discovery document (OIDC Discovery §4), fetched once it is first needed."""
        import requests

        if self._metadata is None:
            response = requests.get(f"{self.issuer}/.well-known/openid-configuration", timeout=TIMEOUT)
            response.raise_for_status()
            self._metadata = response.json()
        return self._metadata

    def oauth(self, token: dict | None = None):
        from authlib.integrations.requests_client import OAuth2Session

        return OAuth2Session(CLIENT_ID, token_endpoint_auth_method="none", scope=SCOPE,
                             redirect_uri=redirect_uri(self.port), code_challenge_method="S256", token=token)

    def authorization_url(self, session: Session) -> str:
        from authlib.common.security import generate_token

        nonce, verifier = generate_token(32), generate_token(64)
        url, state = self.oauth().create_authorization_url(self.metadata()["authorization_endpoint"], nonce=nonce,
                                                           code_verifier=verifier)
        session.pending = {"state": state, "nonce": nonce, "code_verifier": verifier}
        return url

    def complete(self, session: Session, callback_url: str) -> None:
        """Redeem the code of `callback_url` (Authlib checks `state`), verify the ID token, call userinfo."""
        pending, session.pending = session.pending, None
        if pending is None:
            raise DemoError("This sign-in was not started here (or the demo app restarted): start again.")
        metadata = self.metadata()
        oauth = self.oauth()
        token = oauth.fetch_token(metadata["token_endpoint"], authorization_response=callback_url,
                                  state=pending["state"], code_verifier=pending["code_verifier"], timeout=TIMEOUT)
        claims = verify_id_token(token["id_token"], metadata, nonce=pending["nonce"],
                                 access_token=token["access_token"])
        response = oauth.get(metadata["userinfo_endpoint"], timeout=TIMEOUT)
        response.raise_for_status()
        session.claims, session.userinfo = claims, response.json()


class DemoError(Exception):
    """A sign-in that cannot complete; the message is shown to the user."""


def verify_id_token(id_token: str, metadata: dict, *, nonce: str, access_token: str) -> dict:
    """OIDC Core §3.1.3.7: signature by a key of jwks_uri with an advertised algorithm, then the claims."""
    import requests
    from authlib.oidc.core import CodeIDToken
    from joserfc import jwt
    from joserfc.jwk import KeySet
    from joserfc.jws import JWSRegistry

    keys = requests.get(metadata["jwks_uri"], timeout=TIMEOUT)
    keys.raise_for_status()
    registry = JWSRegistry(algorithms=metadata["id_token_signing_alg_values_supported"])
    token = jwt.decode(id_token, KeySet.import_key_set(keys.json()), registry=registry)
    claims = CodeIDToken(token.claims, token.header,
                         {"iss": {"essential": True, "value": metadata["issuer"]},
                          "aud": {"essential": True, "value": CLIENT_ID},
                          "sub": {"essential": True}, "exp": {"essential": True}, "iat": {"essential": True},
                          "nonce": {"essential": True}},
                         {"nonce": nonce, "client_id": CLIENT_ID, "access_token": access_token})
    claims.validate(leeway=LEEWAY)
    return dict(claims)


# Pages: plain HTML, every value escaped, no script; one stylesheet from this origin.

STYLE = """body{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#1b1b1f}
h1{font-size:1.5rem}pre{background:#f3f3f6;padding:.75rem;overflow-x:auto;border-radius:6px}
button{font:inherit;padding:.5rem 1.25rem;border-radius:6px;border:1px solid #3451b2;background:#3451b2;color:#fff;
cursor:pointer}form{display:inline}nav{margin-top:2rem;font-size:.9rem}.error{color:#b00020}
article{border-top:1px solid #ddd;padding-top:.5rem}"""


def _page(title: str, body: str) -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{html.escape(title)}</title><link rel="stylesheet" href="/style.css"></head>'
            f'<body><h1>{html.escape(title)}</h1>{body}'
            f'<nav><a href="/">Home</a> · <a href="/emails">Emails the IdP sent (local outbox)</a></nav></body></html>')


def _json(value) -> str:
    return f"<pre>{html.escape(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False))}</pre>"


def home_page(demo: Demo, session: Session | None) -> str:
    if session is None or session.claims is None:
        return _page("Demo app", (
            f"<p>A relying party of the local IdP at <code>{html.escape(demo.issuer)}</code>, client "
            f"<code>{CLIENT_ID}</code>. Sign in with a user you created, or create an account on the sign-in "
            "page; its emails show up under “Emails”.</p>"
            '<form method="get" action="/login"><button type="submit">Sign in</button></form>'))
    name = session.claims.get("name") or session.claims.get("email") or session.claims["sub"]
    return _page("Demo app", (
        f"<p>Signed in as <strong>{html.escape(str(name))}</strong>.</p>"
        '<form method="post" action="/logout"><button type="submit">Sign out</button></form>'
        " <small>(of this app only; your IdP session stays)</small>"
        "<h2>ID token claims</h2><p>Signature verified with the IdP's <code>/jwks</code>; iss, aud, exp, iat, "
        f"nonce and at_hash checked.</p>{_json(session.claims)}"
        f"<h2>userinfo response</h2>{_json(session.userinfo)}"))


def error_page(message: str) -> str:
    return _page("Sign-in failed", f'<p class="error">{html.escape(message)}</p>'
                                   '<form method="get" action="/login"><button type="submit">Try again</button></form>')


def emails_page(demo: Demo) -> str:
    from tools import outbox

    if demo.outbox_dir is None:
        return _page("Emails", "<p>No OUTBOX_DIR: this IdP keeps no copies of its emails.</p>")
    messages = outbox.newest_first(demo.outbox_dir)[:EMAILS_SHOWN]
    if not messages:
        return _page("Emails", f"<p>No emails yet in <code>{html.escape(str(demo.outbox_dir))}</code>.</p>")
    articles = []
    for number, path in enumerate(messages, start=1):
        message = outbox.details(number, path)
        links = "".join(f'<li><a href="{html.escape(link)}">{html.escape(link)}</a></li>' for link in message["links"])
        articles.append(f"<article><h2>{html.escape(message['subject'])}</h2>"
                        f"<p>To {html.escape(message['to'])}, {html.escape(message['date'])}</p>"
                        f"<ul>{links}</ul><pre>{html.escape(message['text'])}</pre></article>")
    return _page("Emails", f"<p>The newest first, from <code>{html.escape(str(demo.outbox_dir))}</code> "
                           "(also: <code>./idp-admin outbox show</code>).</p>" + "".join(articles))


class Handler(BaseHTTPRequestHandler):
    demo: Demo  # set on the subclass serve() makes
    server_version = "demo-app"

    def do_GET(self):  # noqa: N802 - http.server's naming
        path = urlsplit(self.path).path
        if path == "/":
            self._html(home_page(self.demo, self._session()))
        elif path == "/style.css":
            self._send(HTTPStatus.OK, STYLE.encode(), "text/css; charset=utf-8")
        elif path == "/login":
            session, cookie = self._session_or_new()
            try:
                with self.demo.lock:
                    location = self.demo.authorization_url(session)
            except Exception as exc:  # noqa: BLE001 - the IdP is unreachable: say so on the page
                self._html(error_page(f"The IdP did not answer: {exc}"), HTTPStatus.BAD_GATEWAY)
                return
            self._redirect(location, cookie)
        elif path == "/callback":
            self._callback()
        elif path == "/emails":
            self._html(emails_page(self.demo))
        else:
            self._html(_page("Not found", "<p>There is no such page.</p>"), HTTPStatus.NOT_FOUND)

    def do_POST(self):  # noqa: N802
        if urlsplit(self.path).path != "/logout":
            self._html(_page("Not found", "<p>There is no such page.</p>"), HTTPStatus.NOT_FOUND)
            return
        origin = self.headers.get("Origin")
        if origin not in (None, self.demo.base_url):  # a cross-site form must not sign anyone out
            self._html(_page("Refused", "<p>Sign out from this app's own page.</p>"), HTTPStatus.FORBIDDEN)
            return
        with self.demo.lock:
            self.demo.sessions.pop(self._cookie() or "", None)
        self._redirect("/", f"{COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax")

    def _callback(self):
        query = parse_qs(urlsplit(self.path).query)
        session = self._session()
        if "error" in query:  # RFC 6749 §4.1.2.1: the IdP (or the user) refused
            if session is not None:
                session.pending = None
            detail = query.get("error_description", [""])[0]
            self._html(error_page(f"The IdP answered {query['error'][0]}" + (f": {detail}" if detail else ".")),
                       HTTPStatus.BAD_REQUEST)
            return
        if session is None:
            self._html(error_page("No sign-in was started in this browser: start again."), HTTPStatus.BAD_REQUEST)
            return
        try:
            self.demo.complete(session, self.demo.base_url + self.path)
        except DemoError as exc:
            self._html(error_page(str(exc)), HTTPStatus.BAD_REQUEST)
            return
        except Exception as exc:  # noqa: BLE001 - Authlib/joserfc refusals and IdP errors, shown as they are
            self._html(error_page(f"{type(exc).__name__}: {exc}"), HTTPStatus.BAD_REQUEST)
            return
        self._redirect("/")

    def _cookie(self) -> str | None:
        try:
            morsel = SimpleCookie(self.headers.get("Cookie", "")).get(COOKIE)
        except CookieError:
            return None
        return morsel.value if morsel else None

    def _session(self) -> Session | None:
        with self.demo.lock:
            return self.demo.sessions.get(self._cookie() or "")

    def _session_or_new(self) -> tuple[Session, str | None]:
        session = self._session()
        if session is not None:
            return session, None
        key = secrets.token_urlsafe(32)
        with self.demo.lock:
            session = self.demo.sessions[key] = Session()
        return session, f"{COOKIE}={key}; Path=/; HttpOnly; SameSite=Lax"

    def _redirect(self, location: str, cookie: str | None = None):
        self.send_response(HTTPStatus.SEE_OTHER)
        self.send_header("Location", location)
        if cookie:
            self.send_header("Set-Cookie", cookie)
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _html(self, page: str, status: HTTPStatus = HTTPStatus.OK):
        self._send(status, page.encode(), "text/html; charset=utf-8")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        # No script at all; forms post here or lead (by redirect) to the IdP.
        self.send_header("Content-Security-Policy",
                         "default-src 'none'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
                         f"form-action 'self' {_origin(self.demo.issuer)}")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002 - http.server's signature
        sys.stderr.write(f"demo app: {self.address_string()} {format % args}\n")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def serve(demo: Demo) -> ThreadingHTTPServer:
    handler = type("DemoHandler", (Handler,), {"demo": demo})
    return ThreadingHTTPServer(("127.0.0.1", demo.port), handler)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("DEMO_PORT") or DEFAULT_PORT))
    args = parser.parse_args(argv)
    outbox_dir = os.environ.get("OUTBOX_DIR")
    demo = Demo(issuer=os.environ["ISSUER"].rstrip("/"), port=args.port,
                outbox_dir=Path(outbox_dir) if outbox_dir else None)
    server = serve(demo)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
