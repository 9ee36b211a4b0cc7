"""Authorization server metadata (RFC 8414) / OpenID Provider metadata (OIDC Discovery 1.0).

One pure function builds the document; both well-known URLs serve it. Only what is implemented is
advertised: each later feature adds its fields here together with the code that backs them.
"""
from __future__ import annotations

from .config import SUPPORTED_SIGNING_ALGS, Settings
from .oauth.scopes import SCOPE_CLAIMS

#: Scopes with meaning here (OIDC Core §5.4); clients may be registered with their own API scopes too.
SCOPES_SUPPORTED = ("openid", "profile", "email", "offline_access")
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")


def metadata(settings: Settings) -> dict:
    issuer = settings.issuer
    document = {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "userinfo_endpoint": f"{issuer}/userinfo",
        "revocation_endpoint": f"{issuer}/revoke",
        "introspection_endpoint": f"{issuer}/introspect",
        "jwks_uri": f"{issuer}/jwks",
        "scopes_supported": list(SCOPES_SUPPORTED),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": list(SUPPORTED_SIGNING_ALGS),
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "revocation_endpoint_auth_methods_supported": list(AUTH_METHODS),
        # Introspection is for resource servers, which are confidential clients.
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["iss", "sub", "aud", "azp", "exp", "iat", "auth_time", "nonce", "at_hash",
                             *sorted({c for names in SCOPE_CLAIMS.values() for c in names})],
        "prompt_values_supported": ["none", "login", "consent"],
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        # RFC 9207: every authorization response carries `iss`.
        "authorization_response_iss_parameter_supported": True,
    }
    if settings.client_id_documents != "off":
        # draft-ietf-oauth-client-id-metadata-document: an https URL may be used as client_id
        # (with an allow-list, only one on a listed host).
        document["client_id_metadata_document_supported"] = True
    if settings.registration_mode != "off":
        document["registration_endpoint"] = f"{issuer}/register"
    return document


#: RFC 8414 §3 and OIDC Discovery §4: the well-known paths. With an issuer path (https://host/tenant)
#: RFC 8414 puts the path after the well-known segment (…/oauth-authorization-server/tenant), OIDC
#: appends the well-known segment to the issuer (/tenant/.well-known/openid-configuration), and MCP
#: clients also try /.well-known/openid-configuration/tenant; all three are served.
WELL_KNOWN_OAUTH = "/.well-known/oauth-authorization-server"
WELL_KNOWN_OIDC = "/.well-known/openid-configuration"
