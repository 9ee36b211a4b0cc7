"""Admin CLI: clients, users, signing keys and upstream connections of one stage.

    python -m tools.admin [--stage local|dev|prod] <group> <command> ...    (or ./idp-admin ...)

Results are JSON on stdout, except the local outbox's, which are for reading (plain text). Errors are one `error: ...` line on stderr, with exit status 2 for bad
input (nothing is written) and 1 for anything else, such as AWS being unreachable.
"""
from __future__ import annotations

import argparse
import getpass
import json
import os
import sys

from chalicelib.capabilities import CONFIDENTIAL_AUTH_METHODS, GRANT_TYPES, PRIVATE_KEY_JWT
from tools.stage_env import stage_environment

STAGES = ("local", "dev", "prod")


class BadInput(Exception):
    """The command cannot run as asked (unknown client or user, passwords differ, ...): exit 2."""


class Text(str):
    """A result printed as it is rather than as JSON: messages for a person to read."""


def build_parser() -> argparse.ArgumentParser:
    # allow_abbrev=False everywhere: otherwise "--password" would silently mean "--password-stdin".
    parser = argparse.ArgumentParser(prog="idp-admin", description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("--stage", choices=STAGES, default="local", help="stage to administer (default: local)")
    groups = parser.add_subparsers(dest="group", required=True,
                                   metavar="{clients,resources,users,registration,keys,connections,exchange-policies,outbox}")

    def command(group, name, func, summary):
        sub = group.add_parser(name, help=summary, allow_abbrev=False)
        sub.set_defaults(func=func)
        return sub

    clients = groups.add_parser("clients", help="OAuth clients", allow_abbrev=False)
    clients = clients.add_subparsers(dest="command", required=True)
    create = command(clients, "create", clients_create, "register a client; prints its secret once")
    create.add_argument("--name", required=True, help="client_name shown to users")
    create.add_argument("--public", action="store_true", help="public client (no secret, PKCE only)")
    create.add_argument("--redirect-uri", action="append", default=[], metavar="URI", help="repeatable")
    create.add_argument("--grant-type", action="append", metavar="TYPE",
                        help=f"repeatable: {', '.join(GRANT_TYPES)} (default: {GRANT_TYPES[0]})")
    create.add_argument("--scope", action="append", metavar="SCOPE", help="repeatable (default: openid)")
    create.add_argument("--auth-method", metavar="METHOD",
                        help=f"{', '.join(CONFIDENTIAL_AUTH_METHODS)} (default: {CONFIDENTIAL_AUTH_METHODS[0]}) or "
                             f"{PRIVATE_KEY_JWT} (with --jwks-file or --jwks-uri; no secret); 'none' for public clients")
    client_keys_arguments(create)
    create.add_argument("--resource", action="append", default=[], metavar="URI",
                        help="repeatable: registered resources this client may request (default: any)")
    create.add_argument("--introspect", action="append", default=[], metavar="URI",
                        help="repeatable: a resource server that may call /introspect for tokens meant for URI")
    create.add_argument("--require-mfa", action="store_true",
                        help="its users sign in with a second factor (unless MFA_POLICY=off)")
    create.add_argument("--connections", metavar="IDS", help=CLIENT_CONNECTIONS_HELP)
    create.add_argument("--post-logout-redirect-uri", action="append", default=[], metavar="URI",
                        help="repeatable: where /logout may return the browser (RP-Initiated Logout 1.0)")
    create.add_argument("--backchannel-logout-uri", metavar="URI",
                        help="where logout tokens are POSTed when a user's session ends (Back-Channel Logout 1.0)")
    create.add_argument("--backchannel-logout-session-required", action="store_true",
                        help="every logout token sent to it carries sid")
    create.add_argument("--require-par", action="store_true",
                        help="its authorization requests must be pushed to /par first (RFC 9126)")
    create.add_argument("--dpop-bound-access-tokens", action=argparse.BooleanOptionalAction, default=False,
                        help=DPOP_BOUND_HELP)
    update = command(clients, "update", clients_update, "change an operator setting of a client")
    update.add_argument("client_id")
    update.add_argument("--require-mfa", action=argparse.BooleanOptionalAction,
                        help="its users sign in with a second factor (unless MFA_POLICY=off)")
    update.add_argument("--connections", metavar="IDS", help=CLIENT_CONNECTIONS_HELP + "; '' allows every way")
    update.add_argument("--require-par", action=argparse.BooleanOptionalAction,
                        help="its authorization requests must be pushed to /par first (RFC 9126)")
    update.add_argument("--auth-method", metavar="METHOD",
                        help=f"{', '.join(CONFIDENTIAL_AUTH_METHODS)} (a new secret is printed once if it had none) "
                             f"or {PRIVATE_KEY_JWT} (with --jwks-file or --jwks-uri; its secret is removed)")
    client_keys_arguments(update)
    update.add_argument("--dpop-bound-access-tokens", action=argparse.BooleanOptionalAction, help=DPOP_BOUND_HELP)
    command(clients, "list", clients_list, "list clients")
    command(clients, "show", clients_show, "show one client").add_argument("client_id")
    command(clients, "delete", clients_delete, "delete a client and revoke its grants").add_argument("client_id")
    command(clients, "disable", clients_disable,
            "disable a client and revoke its grants; a client_id document URL is blocked").add_argument("client_id")
    command(clients, "enable", clients_enable, "re-enable a client (or unblock a document URL)").add_argument(
        "client_id")

    resources = groups.add_parser("resources", help="protected resources (RFC 8707)", allow_abbrev=False)
    resources = resources.add_subparsers(dest="command", required=True)
    register = command(resources, "register", resources_register, "register (or update) a resource")
    register.add_argument("--uri", required=True, help="absolute https URI identifying the API")
    register.add_argument("--name", required=True)
    register.add_argument("--scope", action="append", default=[], metavar="SCOPE", help="repeatable")
    register.add_argument("--public", action="store_true",
                          help="open to unverified (self-registered, metadata-document) clients: they may target "
                               "it and ask for its scopes (default: admin-created clients only)")
    command(resources, "list", resources_list, "list resources")
    command(resources, "delete", resources_delete, "delete a resource").add_argument("uri")

    users = groups.add_parser("users", help="end users", allow_abbrev=False)
    users = users.add_subparsers(dest="command", required=True)
    create = command(users, "create", users_create, "create a user (password by prompt or stdin, never argv)")
    create.add_argument("--email", required=True)
    create.add_argument("--name")
    create.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    create.add_argument("--verified", action="store_true",
                        help="mark the email verified (you vouch for the address; otherwise, with "
                             "REQUIRE_VERIFIED_EMAIL, the user confirms it by email before any app gets a code)")
    invite = command(users, "invite", users_invite,
                     "email an invitation link where the invitee sets a password (prints the link)")
    invite.add_argument("--email", required=True)
    invite.add_argument("--name", help="display name, prefilled on the invitation page")
    command(users, "disable", users_disable, "disable a user").add_argument("user", metavar="SUB_OR_EMAIL")
    command(users, "enable", users_enable, "re-enable a user").add_argument("user", metavar="SUB_OR_EMAIL")
    command(users, "signout", users_signout, "end every session and refresh token of a user").add_argument(
        "user", metavar="SUB_OR_EMAIL")
    command(users, "list", users_list, "list users")
    mfa = users.add_parser("mfa", help="second factors and passkeys", allow_abbrev=False)
    mfa = mfa.add_subparsers(dest="mfa_command", required=True)
    command(mfa, "reset", users_mfa_reset,
            "remove every second factor and passkey of a user and end their sessions (the user signs in with "
            "the password alone, then enrols again)").add_argument("user", metavar="SUB_OR_EMAIL")
    update = command(users, "update", users_update,
                     "set profile claims (OIDC Core §5.1); an empty value clears one, an absent option keeps it")
    update.add_argument("user", metavar="SUB_OR_EMAIL")
    update.add_argument("--name")
    update.add_argument("--given-name")
    update.add_argument("--family-name")
    update.add_argument("--locale", help="a BCP 47 language tag, e.g. en-GB")

    registration = groups.add_parser("registration", help="dynamic client registration (RFC 7591)",
                                     allow_abbrev=False)
    registration = registration.add_subparsers(dest="command", required=True)
    command(registration, "token", registration_token,
            "make an initial access token for REGISTRATION_MODE=token (prints it and the hash to configure)")

    keys = groups.add_parser("keys", help="signing keys", allow_abbrev=False)
    keys = keys.add_subparsers(dest="command", required=True)
    command(keys, "list", keys_list, "list signing keys")
    command(keys, "ensure", keys_ensure, "create a current and a next key if missing (idempotent)")
    command(keys, "rotate", keys_rotate, "promote next -> current, retire current").add_argument(
        "--force", action="store_true", help="rotate even if the next key was published less than JWKS_MAX_AGE ago")

    connections = groups.add_parser("connections", help="upstream identity providers users sign in through",
                                    allow_abbrev=False)
    connections = connections.add_subparsers(dest="command", required=True)
    create = command(connections, "create", connections_create,
                     "add a connection; prints the redirect URI to register at the provider")
    create.add_argument("--preset", required=True, choices=list(PRESET_NAMES),
                        help="google, microsoft, apple, github, or oidc for any OpenID Provider")
    create.add_argument("--id", required=True, dest="connection_id",
                        help="1-32 lower-case letters, digits, hyphens (e.g. google, acme-okta)")
    create.add_argument("--client-id", required=True, help="the client id of your app at the provider")
    _connection_options(create)
    update = command(connections, "update", connections_update,
                     "change a connection; an absent option keeps its value")
    update.add_argument("connection_id")
    update.add_argument("--client-id", help="the client id of your app at the provider")
    _connection_options(update)
    command(connections, "list", connections_list, "list connections (never their secrets)")
    command(connections, "show", connections_show, "show one connection (never its secret)").add_argument(
        "connection_id")
    command(connections, "delete", connections_delete, "delete a connection and its secret").add_argument(
        "connection_id")

    policies = groups.add_parser("exchange-policies", allow_abbrev=False,
                                 help="what a client may trade at the token endpoint (RFC 8693 token exchange, "
                                      "ID-JAG)")
    policies = policies.add_subparsers(dest="command", required=True)
    add = command(policies, "add", exchange_policies_add, "add an exchange policy to a client")
    add.add_argument("--client", required=True, metavar="CLIENT_ID", help="the client that exchanges tokens")
    add.add_argument("--kind", choices=list(EXCHANGE_POLICY_KINDS), default="access_token",
                     help="access_token: exchange tokens for access tokens to our resources (default); id_jag: "
                          "obtain Identity Assertion JWTs for a downstream authorization server")
    add.add_argument("--id", dest="policy_id", metavar="ID", help="a name for the rule (default: generated)")
    add.add_argument("--resource", action="append", default=[], metavar="URI",
                     help="repeatable: access_token: registered resources the exchanged token may be for; "
                          "id_jag: resources at the downstream authorization server")
    add.add_argument("--scope", action="append", default=[], metavar="SCOPE",
                     help="repeatable: the most the result may carry (access_token default: what the subject "
                          "token and the resource allow)")
    add.add_argument("--subject-audience", action="append", default=[], metavar="AUD",
                     help="access_token, repeatable: audiences a subject token may carry (a resource URI; this "
                          "client's client_id for ID tokens issued to it)")
    add.add_argument("--max-depth", type=int, metavar="N",
                     help="access_token: actors the result's delegation chain (act) may hold (default 1)")
    add.add_argument("--audience", metavar="ISSUER", help="id_jag: the downstream authorization server's issuer")
    add.add_argument("--downstream-client-id", metavar="ID",
                     help="id_jag: this client's client_id at the downstream authorization server")
    command(policies, "list", exchange_policies_list, "list a client's exchange policies").add_argument(
        "--client", required=True, metavar="CLIENT_ID")
    remove = command(policies, "remove", exchange_policies_remove, "remove one exchange policy of a client")
    remove.add_argument("--client", required=True, metavar="CLIENT_ID")
    remove.add_argument("--id", dest="policy_id", required=True, metavar="ID")

    outbox = groups.add_parser("outbox", help="emails the local stack sent (local stage only)", allow_abbrev=False)
    outbox = outbox.add_subparsers(dest="command", required=True)
    command(outbox, "list", outbox_list, "the messages, newest first: number, date, to, subject")
    command(outbox, "show", outbox_show, "one message: headers, plain text and its links").add_argument(
        "number", nargs="?", type=int, default=1, metavar="N", help="as numbered by `outbox list` (default: 1, the "
                                                                    "newest)")
    return parser


EXCHANGE_POLICY_KINDS = ("access_token", "id_jag")
CLIENT_CONNECTIONS_HELP = ("comma-separated ways its users may sign in: connection ids and 'password' "
                           "(default: every enabled connection and the password)")
#: RFC 9449 §5.2 client metadata.
DPOP_BOUND_HELP = ("every token request of the client must carry a DPoP proof, so all its access tokens are "
                   "DPoP-bound (RFC 9449 §5.2)")
PRESET_NAMES = ("google", "microsoft", "apple", "github", "oidc")


def _connection_options(sub) -> None:
    """The options `connections create` and `update` share. Secrets come from stdin or a file,
    never from argv, which shell history and the process list keep."""
    sub.add_argument("--client-secret-stdin", action="store_true",
                     help="read the client secret from the first line of stdin")
    sub.add_argument("--private-key-file", metavar="PEM",
                     help="private key for private_key_jwt, or Apple's .p8 key (EC P-256 or RSA >= 2048)")
    sub.add_argument("--display-name", help="the button's label (default: the provider's name)")
    sub.add_argument("--issuer", help="oidc: the provider's issuer URL (https)")
    sub.add_argument("--discovery-url", help="oidc: its discovery document, if not under the issuer")
    sub.add_argument("--auth-method", choices=[*CONFIDENTIAL_AUTH_METHODS, "private_key_jwt"],
                     help="how we authenticate at the provider's token endpoint (default: the preset's)")
    sub.add_argument("--response-mode", choices=["query", "form_post"], help="oidc: how the code comes back")
    sub.add_argument("--tenant", help="microsoft: common, organizations, consumers or a tenant id")
    sub.add_argument("--allowed-tenants", metavar="IDS",
                     help="microsoft common/organizations: comma-separated tenant ids allowed (default: any)")
    sub.add_argument("--team-id", help="apple: your Apple Developer team id")
    sub.add_argument("--key-id", help="apple: the id of the Sign in with Apple private key")
    sub.add_argument("--authorization-endpoint", help="github (Enterprise Server): its authorize URL")
    sub.add_argument("--token-endpoint", help="github (Enterprise Server): its access_token URL")
    sub.add_argument("--api-base", help="github (Enterprise Server): its REST API base URL")
    sub.add_argument("--scopes", help="comma- or space-separated scopes to ask for (default: the preset's)")
    sub.add_argument("--claim", action="append", default=[], metavar="OURS=THEIRS",
                     help="repeatable: read our claim (email, email_verified, name, given_name, family_name, "
                          "locale) from this upstream claim; OURS= maps it from nothing")
    sub.add_argument("--acr", action="append", default=[], metavar="UPSTREAM=OURS",
                     help="repeatable: an upstream acr value counts as one of ours (see discovery's "
                          "acr_values_supported); UPSTREAM= removes a mapping")
    sub.add_argument("--domains", metavar="DOMAINS",
                     help="comma-separated email domains whose users this connection signs in (home-realm "
                          "discovery); '' for none")
    sub.add_argument("--trusted-email-domains", metavar="DOMAINS",
                     help="comma-separated domains for which this provider's verified emails link to existing "
                          "accounts without asking the user; '' for none")
    sub.add_argument("--trust", metavar="USES",
                     help="comma-separated uses of the issuer's own JWTs: id-jag (ID-JAGs redeemed with the "
                          "jwt-bearer grant), subject-token (token exchange); '' for none (default: none)")
    sub.add_argument("--subject-mapping", choices=["identity", "email"],
                     help="how a trusted JWT's sub finds the local user: identity (linked by a sign-in "
                          "through this connection; the default) or email (in --trusted-email-domains)")
    sub.add_argument("--store-tokens", action=argparse.BooleanOptionalAction,
                     help="keep the provider's tokens, encrypted (default: no)")
    sub.add_argument("--icon-url", help="https URL of the button's icon; '' for none")
    enabled = sub.add_mutually_exclusive_group()
    enabled.add_argument("--enable", dest="enabled", action="store_const", const=True, default=None)
    enabled.add_argument("--disable", dest="enabled", action="store_const", const=False,
                         help="hide it from sign-in pages and refuse sign-ins through it")


def main(argv=None, environ=None) -> int:
    """Run one command. `environ` receives the stage environment (default os.environ); tests pass a
    scratch dict because their process is already wired to in-process moto."""
    args = build_parser().parse_args(argv)
    environ = os.environ if environ is None else environ
    # Before any chalicelib.storage import: pynamodb reads table names when models are defined.
    environ.update(stage_environment(args.stage, environ))
    args.environ = environ
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        message, status = _describe(exc, args.stage, environ)
        print(f"error: {message}", file=sys.stderr)
        return status
    try:
        print(result if isinstance(result, Text) else json.dumps(result, indent=2), flush=True)
    except BrokenPipeError:
        # The reader went away (`| head`); without this Python prints a traceback at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0


def _describe(exc: Exception, stage: str, environ) -> tuple[str, int]:
    """One line for the operator, and the exit status: 2 for bad input, 1 for everything else."""
    import botocore.exceptions

    from chalicelib.errors import InvalidClientMetadata, InvalidConnection, KeyRingError
    from chalicelib.storage.resources import InvalidResource
    from chalicelib.accounts.profile import InvalidProfile
    from chalicelib.storage.users import InvalidUser, UserExists

    if isinstance(exc, (BadInput, InvalidClientMetadata, InvalidResource, InvalidUser, InvalidProfile, UserExists,
                        KeyRingError, InvalidConnection)):
        return str(exc), 2
    from chalicelib.errors import EmailNotSent

    if isinstance(exc, EmailNotSent):
        # SES refused or was unreachable (its reason is in exc.detail); the stored link's token was
        # never shown to anyone, so running the command again is all it takes.
        return f"the email could not be sent ({exc.detail}); nothing was sent, run the command again", 1
    # pynamodb wraps botocore errors in its own (`.cause`); look down the chain for the real one.
    cause = exc
    while cause is not None:
        if isinstance(cause, botocore.exceptions.ConnectionError):
            hint = " (is `make run` running?)" if stage == "local" else ""
            return f"cannot reach AWS at {environ.get('AWS_ENDPOINT_URL') or 'its default endpoint'}{hint}", 1
        if isinstance(cause, botocore.exceptions.NoCredentialsError):
            return f"no AWS credentials for the {stage} stage (set AWS_PROFILE or AWS_ACCESS_KEY_ID)", 1
        cause = getattr(cause, "cause", None) or cause.__cause__ or cause.__context__
    return f"{type(exc).__name__}: {exc}", 1


def _client_json(client) -> dict:
    # Deliberately field by field: the secret hash never leaves storage.
    return {
        "client_id": client.client_id, "client_name": client.client_name, "client_type": client.client_type,
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "redirect_uris": list(client.redirect_uris), "grant_types": list(client.grant_types),
        "response_types": list(client.response_types), "scopes": list(client.scopes),
        "resources": list(client.resources), "introspection": client.introspection, "introspects": list(client.introspects), "require_mfa": client.require_mfa, "disabled": client.disabled, "created_at": client.created_at, "updated_at": client.updated_at,
        "connections": list(client.connections),
        "post_logout_redirect_uris": list(client.post_logout_redirect_uris),
        "backchannel_logout_uri": client.backchannel_logout_uri,
        "backchannel_logout_session_required": client.backchannel_logout_session_required,
        "require_pushed_authorization_requests": client.require_pushed_authorization_requests,
    } | ({"dpop_bound_access_tokens": True} if client.dpop_bound_access_tokens else {}) | (
        {"jwks": json.loads(client.jwks)} if client.jwks else {}) | (
        {"jwks_uri": client.jwks_uri} if client.jwks_uri else {})


def _user_json(user) -> dict:
    return {"sub": user.pk, "email": user.email, "name": user.name, "given_name": user.given_name,
            "family_name": user.family_name, "locale": user.locale, "email_verified": user.email_verified,
            "disabled": user.disabled, "created_at": user.created_at, "deleted_at": user.deleted_at}


def _key_json(key) -> dict:
    return {"kid": key.kid, "alg": key.alg, "backend": key.backend, "state": key.state,
            "created_at": key.created_at, "publish_until": key.publish_until}


def clients_create(args):
    from chalicelib.oauth.clients import create_client

    client, secret = create_client(
        client_name=args.name, client_type="public" if args.public else "confidential",
        redirect_uris=args.redirect_uri, grant_types=args.grant_type, scopes=args.scope,
        token_endpoint_auth_method=args.auth_method, resources=args.resource, introspects=args.introspect,
        require_mfa=args.require_mfa, connections=_client_connections(args.connections),
        post_logout_redirect_uris=args.post_logout_redirect_uri,
        backchannel_logout_uri=args.backchannel_logout_uri,
        backchannel_logout_session_required=args.backchannel_logout_session_required,
        jwks=_jwks_file(args.jwks_file), jwks_uri=args.jwks_uri,
        require_pushed_authorization_requests=args.require_par,
        dpop_bound_access_tokens=args.dpop_bound_access_tokens)
    result = _client_json(client)
    if secret:
        result["client_secret"] = secret
        print("note: client_secret is shown only once; store it now.", file=sys.stderr)
    return result


def client_keys_arguments(parser) -> None:
    keys = parser.add_mutually_exclusive_group()
    keys.add_argument("--jwks-file", metavar="FILE",
                      help=f"{PRIVATE_KEY_JWT}: a JSON file with the client's JWK Set (public keys only)")
    keys.add_argument("--jwks-uri", metavar="URL", help=f"{PRIVATE_KEY_JWT}: where the client publishes its JWK Set")


def _jwks_file(path: str | None):
    """The JWK Set in --jwks-file, parsed (client_metadata.check_jwks judges it)."""
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except (OSError, ValueError) as exc:
        raise BadInput(f"cannot read a JSON JWK Set from {path}: {exc}") from None


def _client_connections(text: str | None) -> list[str]:
    """A client's --connections: "password" and ids of connections that exist (checked here, with the
    operator's credentials: the list is kept by the client, so a typo would lock its users out)."""
    from chalicelib.federation.connections import PASSWORD
    from chalicelib.oauth.client_metadata import check_client_connections
    from chalicelib.storage.connections import list_connections

    names = check_client_connections(_comma_list(text))
    if not names:
        return []
    known = {c.connection_id for c in list_connections()} | {PASSWORD}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise BadInput(f"no connection {unknown[0]!r} (see `connections list`; 'password' is the password form)")
    return names


def clients_update(args):
    from chalicelib.oauth.client_documents import is_document_client_id
    from chalicelib.oauth.clients import change_authentication
    from chalicelib.storage.clients import (
        get_client,
        set_client_connections,
        set_client_dpop_bound_access_tokens,
        set_client_require_mfa,
        set_client_require_par,
    )

    if is_document_client_id(args.client_id):
        raise BadInput(f"{args.client_id!r} is a client_id metadata document URL, not a stored client")
    changes_keys = args.jwks_file is not None or args.jwks_uri is not None
    if args.require_mfa is None and args.connections is None and args.auth_method is None and not changes_keys \
            and args.require_par is None and args.dpop_bound_access_tokens is None:
        raise BadInput("nothing to change: give --require-mfa, --no-require-mfa, --connections, --auth-method, "
                       "--jwks-file, --jwks-uri, --require-par, --no-require-par or --[no-]dpop-bound-access-tokens")
    connections = None if args.connections is None else _client_connections(args.connections)
    jwks = _jwks_file(args.jwks_file)
    secret = None
    if args.auth_method is not None or changes_keys:
        client = get_client(args.client_id)
        if client is None:
            raise BadInput(f"no client with client_id {args.client_id!r}")
        # New keys alone are a rotation of a private_key_jwt client's keys.
        _, secret = change_authentication(client, args.auth_method or client.token_endpoint_auth_method,
                                          jwks=jwks, jwks_uri=args.jwks_uri)
    if args.require_mfa is not None and not set_client_require_mfa(args.client_id, args.require_mfa):
        raise BadInput(f"no client with client_id {args.client_id!r}")
    if connections is not None and not set_client_connections(args.client_id, tuple(connections)):
        raise BadInput(f"no client with client_id {args.client_id!r}")
    if args.require_par is not None and not set_client_require_par(args.client_id, args.require_par):
        raise BadInput(f"no client with client_id {args.client_id!r}")
    if args.dpop_bound_access_tokens is not None and not set_client_dpop_bound_access_tokens(
            args.client_id, args.dpop_bound_access_tokens):
        raise BadInput(f"no client with client_id {args.client_id!r}")
    result = _client_json(get_client(args.client_id))
    if secret:
        result["client_secret"] = secret
        print("note: client_secret is shown only once; store it now.", file=sys.stderr)
    return result


def clients_list(args):
    from chalicelib.storage.clients import list_clients

    return [_client_json(c) for c in list_clients()]


def clients_show(args):
    from chalicelib.storage.clients import get_client

    client = get_client(args.client_id)
    if client is None:
        raise BadInput(f"no client with client_id {args.client_id!r}")
    return _client_json(client)


def clients_delete(args):
    from chalicelib.oauth.client_documents import is_document_client_id
    from chalicelib.storage.clients import delete_client

    if is_document_client_id(args.client_id):
        # Nothing of it is stored to delete (its document lives at its URL and would just be fetched
        # again): saying "deleted" would leave an operator believing the client was stopped.
        raise BadInput(f"{args.client_id!r} is a client_id metadata document URL, not a stored client: "
                       f"block it with `clients disable {args.client_id}`")
    if not delete_client(args.client_id):
        raise BadInput(f"no client with client_id {args.client_id!r}")
    return {"deleted": args.client_id}


def _set_client_disabled(client_id: str, disabled: bool) -> dict:
    from chalicelib.oauth.client_documents import is_document_client_id
    from chalicelib.storage.clients import set_client_disabled

    if is_document_client_id(client_id):
        return _set_document_client_blocked(client_id, disabled)
    if not set_client_disabled(client_id, disabled):
        raise BadInput(f"no client with client_id {client_id!r}")
    return {"client_id": client_id, "disabled": disabled}


def _set_document_client_blocked(url: str, blocked: bool) -> dict:
    """A document client has no stored registration to disable: the block goes on its URL, which the
    server reads before it would fetch (chalicelib/storage/client_documents.py)."""
    from chalicelib.storage.client_documents import block_document_client, unblock_document_client

    if blocked:
        if len(url) > 1024 or not url.isascii():  # never a client_id the server accepts; too long a key
            raise BadInput(f"not a client_id document URL: {url!r}")
        return {"client_id": url, "disabled": True, "grants_revoked": block_document_client(url)}
    if not unblock_document_client(url):
        raise BadInput(f"the document client {url!r} is not blocked")
    return {"client_id": url, "disabled": False}


def clients_disable(args):
    return _set_client_disabled(args.client_id, True)


def clients_enable(args):
    return _set_client_disabled(args.client_id, False)


def _resource_json(resource) -> dict:
    return {"resource": resource.resource, "name": resource.name, "scopes": list(resource.scopes),
            "public": resource.public, "created_at": resource.created_at}


def resources_register(args):
    from chalicelib.storage.resources import register_resource

    return _resource_json(register_resource(args.uri, args.name, args.scope, public=args.public))


def resources_list(args):
    from chalicelib.storage.resources import list_resources

    return [_resource_json(r) for r in list_resources()]


def resources_delete(args):
    from chalicelib.storage.resources import delete_resource

    if not delete_resource(args.uri):
        raise BadInput(f"no resource {args.uri!r}")
    return {"deleted": args.uri}


def _comma_list(text: str | None) -> list[str]:
    return [item.strip() for item in (text or "").replace(" ", ",").split(",") if item.strip()]


def _pairs(entries: list[str], option: str) -> dict[str, str]:
    """Repeated KEY=VALUE options, in order (a later one wins); an empty VALUE is kept as ""."""
    pairs = {}
    for entry in entries:
        key, sep, value = entry.partition("=")
        if not sep or not key.strip():
            raise BadInput(f"{option} takes KEY=VALUE, got {entry!r}")
        pairs[key.strip()] = value.strip()
    return pairs


def _connection_json(connection, settings) -> dict:
    """Everything but the secret, which only its name stands for; and the redirect URI to register."""
    import dataclasses

    shown = {name: list(value) if isinstance(value, tuple) else value
             for name, value in dataclasses.asdict(connection).items()}
    return {**shown, "redirect_uri": f"{settings.issuer}/federation/callback"}


def _connection_changes(args) -> dict:
    """The Connection fields the options give (None: not given)."""
    changes = {
        "display_name": args.display_name, "issuer": args.issuer, "discovery_url": args.discovery_url,
        "auth_method": args.auth_method, "response_mode": args.response_mode, "tenant": args.tenant,
        "apple_team_id": args.team_id, "apple_key_id": args.key_id,
        "authorization_endpoint": args.authorization_endpoint, "token_endpoint": args.token_endpoint,
        "api_base": args.api_base, "store_tokens": args.store_tokens, "enabled": args.enabled,
        "client_id": args.client_id, "subject_mapping": args.subject_mapping,
    }
    for name, option in (("scopes", args.scopes), ("allowed_tenants", args.allowed_tenants),
                         ("domains", args.domains), ("trusted_email_domains", args.trusted_email_domains),
                         ("trust", args.trust)):
        changes[name] = None if option is None else _comma_list(option)
    if args.icon_url is not None:
        changes["icon_url"] = args.icon_url or None
        changes["clear_icon_url"] = not args.icon_url
    return changes


def _connection_secret(args, auth_method: str, *, required: bool) -> dict | None:
    """The secret the options give (stdin, a PEM file), checked for `auth_method`; None when none is
    given and none is `required`."""
    from chalicelib.federation.connections import check_secret

    client_secret = sys.stdin.readline().removesuffix("\n").removesuffix("\r") if args.client_secret_stdin else None
    private_key = None
    if args.private_key_file:
        try:
            with open(args.private_key_file, "rb") as file:
                private_key = file.read(64 * 1024)
        except OSError as exc:
            raise BadInput(f"cannot read {args.private_key_file}: {exc.strerror}") from None
    if client_secret is None and private_key is None and not required:
        return None
    return check_secret(auth_method, client_secret=client_secret, private_key=private_key)


def _domains_free(connection, others) -> None:
    """Home-realm domains are unique across connections: an address must route to one place."""
    for other in others:
        if other.connection_id == connection.connection_id:
            continue
        taken = sorted(set(connection.domains) & set(other.domains))
        if taken:
            raise BadInput(f"the domain {taken[0]!r} already signs in through the connection {other.connection_id!r}")


def connections_create(args):
    from chalicelib.config import settings as current
    from chalicelib.federation.connections import Connection, secret_name, store_secret, validate
    from chalicelib.log import now
    from chalicelib.storage.connections import add_connection, delete_connection, list_connections

    settings = current()
    changes = _connection_changes(args)
    changes.pop("clear_icon_url", None)
    fields = validate(settings=settings, preset=args.preset, connection_id=args.connection_id, **changes,
                      **_mappings(args, args.preset, None))
    value = _connection_secret(args, fields["auth_method"], required=True)
    at = now()
    connection = Connection(**fields, secret_name=secret_name(fields["connection_id"], settings),
                            created_at=at, updated_at=at)
    _domains_free(connection, list_connections())
    # The record first: its conditional put claims the id, so a second create of the same id can
    # never overwrite the first one's secret. Until the secret follows (a moment), sign-ins through
    # it answer 503; if storing the secret fails, the record goes again.
    if not add_connection(connection):
        raise BadInput(f"a connection {connection.connection_id!r} exists (see `connections show`)")
    try:
        store_secret(connection.secret_name, value, stage=settings.stage)
    except BaseException:
        delete_connection(connection.connection_id)
        raise
    result = _connection_json(connection, settings)
    print(f"note: register {result['redirect_uri']} as the redirect URI of your app at the provider.",
          file=sys.stderr)
    return result


def _mappings(args, preset: str, existing) -> dict:
    """claim_mapping and acr_mapping: the existing ones (or the preset's), with the options applied."""
    from chalicelib.federation.connections import PRESETS

    claims = dict(existing.claim_mapping if existing else PRESETS[preset]["claim_mapping"])
    for ours, theirs in _pairs(args.claim, "--claim").items():
        if theirs:
            claims[ours] = theirs
        else:
            claims.pop(ours, None)
    acr = dict(existing.acr_mapping if existing else {})
    for theirs, ours in _pairs(args.acr, "--acr").items():
        if ours:
            acr[theirs] = ours
        else:
            acr.pop(theirs, None)
    return {"claim_mapping": claims, "acr_mapping": acr}


def _get_connection(connection_id: str):
    from chalicelib.storage.connections import get_connection

    connection = get_connection(connection_id)
    if connection is None:
        raise BadInput(f"no connection {connection_id!r}")
    return connection


def connections_update(args):
    import dataclasses

    from chalicelib.config import settings as current
    from chalicelib.federation.connections import (COMMON_FIELDS, PRESET_FIELDS, secret_name, store_secret,
                                                   validate)
    from chalicelib.log import now
    from chalicelib.storage.connections import list_connections, update_connection

    settings = current()
    existing = _get_connection(args.connection_id)
    changes = {k: v for k, v in _connection_changes(args).items() if v is not None}
    clear_icon = changes.pop("clear_icon_url", False)
    editable = (COMMON_FIELDS | PRESET_FIELDS[existing.preset]) - {"claim_mapping", "acr_mapping"}
    merged = {name: getattr(existing, name) for name in editable}
    merged.update(changes)
    if clear_icon:
        merged["icon_url"] = None
    fields = validate(settings=settings, **merged, **_mappings(args, existing.preset, existing))
    # A new secret is needed when the kind of secret changes (client secret <-> private key).
    def kind(method: str) -> str:
        return "client secret" if method in CONFIDENTIAL_AUTH_METHODS else method

    required = kind(fields["auth_method"]) != kind(existing.auth_method)
    value = _connection_secret(args, fields["auth_method"], required=required)
    connection = dataclasses.replace(existing, **fields, updated_at=now())
    _domains_free(connection, list_connections())
    name = existing.secret_name or secret_name(existing.connection_id, settings)
    if value is not None:
        store_secret(name, value, stage=settings.stage)
    if not update_connection(connection):
        raise BadInput(f"no connection {args.connection_id!r}")
    return _connection_json(connection, settings)


def connections_list(args):
    from chalicelib.config import settings
    from chalicelib.storage.connections import list_connections

    return [_connection_json(c, settings()) for c in list_connections()]


def connections_show(args):
    from chalicelib.config import settings

    return _connection_json(_get_connection(args.connection_id), settings())


def connections_delete(args):
    from chalicelib.config import settings
    from chalicelib.federation.connections import delete_secret, secret_name
    from chalicelib.storage.clients import list_clients
    from chalicelib.storage.connections import delete_connection

    connection = _get_connection(args.connection_id)
    # A client restricted to it would lose that way in without a word; its operator decides instead.
    users = [c.client_id for c in list_clients() if connection.connection_id in c.connections]
    if users:
        raise BadInput(f"clients {', '.join(users)} name the connection {connection.connection_id!r}: change their "
                       "--connections first (`clients update`)")
    if not delete_connection(connection.connection_id):
        raise BadInput(f"no connection {args.connection_id!r}")
    delete_secret(connection.secret_name or secret_name(connection.connection_id, settings()))
    return {"deleted": connection.connection_id}


def _exchange_policy(args, client):
    """The policy `exchange-policies add` describes, checked: each kind's fields and only those,
    resources registered (access_token), scopes well-formed, the depth within delegation.MAX_DEPTH."""
    import secrets
    from urllib.parse import urlsplit

    from chalicelib.capabilities import LOOPBACK_HOSTS, SCOPE_TOKEN, TOKEN_EXCHANGE
    from chalicelib.oauth.delegation import MAX_DEPTH
    from chalicelib.oauth.exchange_policy import ExchangePolicy
    from chalicelib.storage.resources import get_resource

    if client.client_type != "confidential":
        raise BadInput("only confidential clients may exchange tokens")
    if TOKEN_EXCHANGE not in client.grant_types:
        raise BadInput(f"the client lacks the {TOKEN_EXCHANGE} grant (clients create --grant-type ...)")
    bad_scope = next((s for s in args.scope if not SCOPE_TOKEN.fullmatch(s)), None)
    if bad_scope is not None:
        raise BadInput(f"not a scope: {bad_scope!r}")
    resources, scopes = tuple(dict.fromkeys(args.resource)), tuple(dict.fromkeys(args.scope))
    policy_id = args.policy_id or f"{args.kind.replace('_', '-')}-{secrets.token_hex(3)}"
    if not 0 < len(policy_id) <= 64 or not policy_id.isascii() or not policy_id.isprintable() or " " in policy_id:
        raise BadInput("--id: 1-64 printable ASCII characters, no spaces")
    if args.kind == "access_token":
        if args.audience or args.downstream_client_id:
            raise BadInput("--audience and --downstream-client-id are for --kind id_jag")
        if not resources or not args.subject_audience:
            raise BadInput("--kind access_token needs --resource and --subject-audience")
        unknown = next((uri for uri in resources if get_resource(uri) is None), None)
        if unknown is not None:
            raise BadInput(f"no resource {unknown!r} (see `resources list`)")
        max_depth = 1 if args.max_depth is None else args.max_depth
        if not 1 <= max_depth <= MAX_DEPTH:
            raise BadInput(f"--max-depth must be between 1 and {MAX_DEPTH}")
        return ExchangePolicy(policy_id=policy_id, kind="access_token", resources=resources, scopes=scopes,
                              subject_audiences=tuple(dict.fromkeys(args.subject_audience)), max_depth=max_depth)
    if args.subject_audience or args.max_depth is not None:
        raise BadInput("--subject-audience and --max-depth are for --kind access_token")
    if not args.audience or not args.downstream_client_id:
        raise BadInput("--kind id_jag needs --audience (the downstream issuer) and --downstream-client-id")
    parts = urlsplit(args.audience)
    # An issuer is an https URL without query or fragment (RFC 8414 §2); http only on this machine.
    secure = parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS)
    if not secure or not parts.netloc or parts.query or parts.fragment:
        raise BadInput("--audience must be the downstream authorization server's issuer (an https URL)")
    return ExchangePolicy(policy_id=policy_id, kind="id_jag", resources=resources, scopes=scopes,
                          audience=args.audience, downstream_client_id=args.downstream_client_id)


def _policy_json(policy) -> dict:
    from dataclasses import asdict

    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(policy).items() if k != "extra"}


def _policy_client(client_id: str):
    from chalicelib.oauth.client_documents import is_document_client_id
    from chalicelib.storage.clients import get_client

    if is_document_client_id(client_id):
        raise BadInput(f"{client_id!r} is a client_id metadata document URL, not a stored client")
    client = get_client(client_id)
    if client is None:
        raise BadInput(f"no client with client_id {client_id!r}")
    return client


def _change_policies(client_id: str, change) -> tuple:
    """Apply `change` (current policies -> new policies) with one conditional write on the text
    read; if another operator changed them in between, read again and reapply."""
    from chalicelib.oauth.exchange_policy import dump, parse
    from chalicelib.storage.clients import set_client_exchange_policies

    for _ in range(3):
        client = _policy_client(client_id)
        policies = change(client, parse(client.exchange_policies))
        if set_client_exchange_policies(client_id, dump(policies), expected=client.exchange_policies):
            return policies
    raise RuntimeError("the client's exchange policies keep changing; try again")


def exchange_policies_add(args):
    def added(client, policies):
        policy = _exchange_policy(args, client)
        if any(p.policy_id == policy.policy_id for p in policies):
            raise BadInput(f"the client already has a policy {policy.policy_id!r}")
        return (*policies, policy)

    return [_policy_json(p) for p in _change_policies(args.client, added)]


def exchange_policies_list(args):
    from chalicelib.oauth.exchange_policy import parse

    return [_policy_json(p) for p in parse(_policy_client(args.client).exchange_policies)]


def exchange_policies_remove(args):
    def removed(client, policies):
        kept = tuple(p for p in policies if p.policy_id != args.policy_id)
        if len(kept) == len(policies):
            raise BadInput(f"the client has no policy {args.policy_id!r}")
        return kept

    return [_policy_json(p) for p in _change_policies(args.client, removed)]


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    password = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != password:
        raise BadInput("passwords do not match")
    return password


def users_create(args):
    from chalicelib.storage.users import create_user

    user = create_user(args.email, _read_password(args.password_stdin), name=args.name,
                       email_verified=args.verified)
    return {"sub": user.pk, "email": user.email, "email_verified": user.email_verified}


def users_invite(args):
    """Invitations (chalicelib/accounts/invitations.py): refused for an address that has an account.
    The link is printed too: locally there is no mailbox but the outbox, and an operator may hand
    it over another way. It is as good as the email: treat it like a password."""
    from chalicelib.accounts.invitations import invite
    from chalicelib.config import settings

    email, link = invite(args.email, args.name)
    print("note: the invitation link works once; whoever has it can create the account.", file=sys.stderr)
    return {"email": email, "invitation_link": link, "expires_in": settings().invitation_ttl}


def _find_user(who: str):
    from chalicelib.storage.users import find_user_by_email, get_user

    return find_user_by_email(who) if "@" in who else get_user(who)


def _notify_signed_out(sub: str, since: int) -> None:
    """Every session of the user ended: the apps holding their grants are told (OpenID Connect
    Back-Channel Logout 1.0, chalicelib/oauth/backchannel_logout.py); a queue fault is logged."""
    from chalicelib.config import settings
    from chalicelib.oauth import backchannel_logout

    backchannel_logout.notify(backchannel_logout.user_signed_out(sub, since), settings())


def _set_disabled(who: str, disabled: bool) -> dict:
    from chalicelib.log import now
    from chalicelib.storage.users import set_user_disabled

    user = _find_user(who)
    since = now()
    if user is None or not set_user_disabled(user.pk, disabled):
        raise BadInput(f"no user with sub or email {who!r}")
    if disabled:
        _notify_signed_out(user.pk, since)
    return {"sub": user.pk, "email": user.email, "disabled": disabled}


def users_signout(args):
    from chalicelib.log import now
    from chalicelib.storage.users import end_all_sessions

    user = _find_user(args.user)
    since = now()
    if user is None or not end_all_sessions(user.pk):
        raise BadInput(f"no user with sub or email {args.user!r}")
    _notify_signed_out(user.pk, since)
    return {"sub": user.pk, "email": user.email, "signed_out": True}


def users_mfa_reset(args):
    from chalicelib.log import now
    from chalicelib.storage.factors import reset

    user = _find_user(args.user)
    if user is None or user.deleted_at is not None:
        raise BadInput(f"no user with sub or email {args.user!r}")
    since = now()
    removed = reset(user.pk)
    if removed is None:
        raise BadInput(f"no user with sub or email {args.user!r}")
    _notify_signed_out(user.pk, since)
    return {"sub": user.pk, "email": user.email, "factors_removed": removed, "signed_out": True}


def users_disable(args):
    return _set_disabled(args.user, True)


def users_enable(args):
    return _set_disabled(args.user, False)


def users_update(args):
    from chalicelib.accounts import profile
    from chalicelib.log import now
    from chalicelib.storage import accounts

    user = _find_user(args.user)
    if user is None or user.deleted_at is not None:
        raise BadInput(f"no user with sub or email {args.user!r}")
    given = {"name": args.name, "given_name": args.given_name, "family_name": args.family_name, "locale": args.locale}
    checked = profile.check(**{field: getattr(user, field) if value is None else value
                               for field, value in given.items()})
    # Sessions keep the claims they signed in with (ID tokens issued through them carry those until
    # the user signs in again); /userinfo reads the user, so it shows the change at once.
    if not accounts.update_profile(user.pk, checked, at=now()):
        raise BadInput(f"no user with sub or email {args.user!r}")
    return {"sub": user.pk, "email": user.email, **{field: getattr(checked, field) for field in profile.FIELDS}}


def users_list(args):
    from chalicelib.storage.users import list_users

    return [_user_json(u) for u in list_users()]


def registration_token(args):
    from chalicelib.hashing import new_secret, sha256_hex

    token = new_secret()
    print("note: give the token to whoever may register clients; configure only its hash.", file=sys.stderr)
    return {"initial_access_token": token, "REGISTRATION_MODE": "token", "REGISTRATION_TOKEN_SHA256": sha256_hex(token)}


def keys_list(args):
    from chalicelib.keys import keyring

    return [_key_json(k) for k in sorted(keyring.all_keys(), key=lambda k: k.created_at)]


def keys_ensure(args):
    from chalicelib.keys import keyring

    # Also makes the DPoP nonce key (RFC 9449 §8) when missing: with KEY_BACKEND=kms only here.
    return {"created": [_key_json(k) for k in keyring.ensure_keys()]}


def keys_rotate(args):
    # The same step the daily schedule runs (chalicelib/keys/rotation.py), but now rather than when due.
    from chalicelib.keys.rotation import rotate_keys

    return {"current": _key_json(rotate_keys(force=args.force).current)}


def _outbox(args) -> tuple:
    """The local outbox's messages, newest first; refused for a deployed stage, whose mail is SES's."""
    from pathlib import Path

    from tools import outbox

    if args.stage != "local":
        raise BadInput(f"the outbox is the local stack's copy of its emails (`make run`); the {args.stage} stage "
                       "sends through Amazon SES and keeps none (see docs/deploy.md, \"Email through Amazon SES\")")
    directory = Path(args.environ["OUTBOX_DIR"])
    return directory, outbox.newest_first(directory)


def outbox_list(args):
    from tools import outbox

    directory, messages = _outbox(args)
    if not messages:
        return Text(f"no messages in {directory}")
    rows = [outbox.summary(number, path) for number, path in enumerate(messages, start=1)]
    width = max(len(row["to"]) for row in rows)
    return Text("\n".join(f"{row['number']:>3}  {row['date']}  {row['to']:<{width}}  {row['subject']}" for row in rows))


def outbox_show(args):
    from tools import outbox

    directory, messages = _outbox(args)
    if not 1 <= args.number <= len(messages):
        raise BadInput(f"no message {args.number}: {directory} holds {len(messages)} (`outbox list` numbers them)")
    message = outbox.details(args.number, messages[args.number - 1])
    lines = [f"{name.capitalize()}: {message[name]}" for name in ("date", "from", "to", "subject")]
    lines += [f"File: {message['file']}", "", message["text"].rstrip("\n")]
    if message["links"]:
        lines += ["", "Links:", *message["links"]]
    return Text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
