"""Authorization server metadata (RFC 8414) / OpenID Provider metadata (OIDC Discovery 1.0).

One pure function builds the document; both well-known URLs serve it. Only what is implemented is
advertised: each later feature adds its fields here together with the code that backs them, and
every list comes from chalicelib/capabilities.py, which the endpoints enforce.
"""
from __future__ import annotations

from . import capabilities as can
from . import profiles
from .config import Settings
from .oauth import acr
from .oauth.scopes import SCOPE_CLAIMS


def metadata(settings: Settings) -> dict:
    issuer = settings.issuer
    # What the profile narrows (chalicelib/profiles.py: PROFILE=fapi2), read once.
    auth_methods, auth_algs = profiles.client_auth_methods(settings), profiles.assertion_algs(settings)
    document = {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "userinfo_endpoint": f"{issuer}/userinfo",
        "revocation_endpoint": f"{issuer}/revoke",
        "introspection_endpoint": f"{issuer}/introspect",
        # RFC 8628 §4: the device authorization grant (grant_types_supported lists its grant type).
        "device_authorization_endpoint": f"{issuer}/device_authorization",
        "jwks_uri": f"{issuer}/jwks",
        # RFC 9126 §5: /par, and whether /authorize takes only pushed requests (PAR_REQUIRED; a
        # client's own `require_pushed_authorization_requests` is its metadata, not ours).
        "pushed_authorization_request_endpoint": f"{issuer}/par",
        "require_pushed_authorization_requests": settings.par_required,
        # Scopes with meaning here (OIDC Core §5.4); clients may be registered with their own API scopes too.
        "scopes_supported": list(can.IDENTITY_SCOPES),
        "response_types_supported": list(can.RESPONSE_TYPES),
        "response_modes_supported": list(can.RESPONSE_MODES),
        "grant_types_supported": list(can.GRANT_TYPES),
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": list(profiles.signing_algs(settings)),
        "token_endpoint_auth_methods_supported": list(auth_methods),
        "revocation_endpoint_auth_methods_supported": list(auth_methods),
        "introspection_endpoint_auth_methods_supported": list(profiles.introspection_auth_methods(settings)),
        # RFC 8414 §2 / OIDC Discovery §3: the algorithms of private_key_jwt client assertions.
        "token_endpoint_auth_signing_alg_values_supported": list(auth_algs),
        "revocation_endpoint_auth_signing_alg_values_supported": list(auth_algs),
        "introspection_endpoint_auth_signing_alg_values_supported": list(auth_algs),
        # RFC 9449 §5.1: the algorithms of DPoP proofs at /token, /userinfo (chalicelib/oauth/dpop_binding.py).
        "dpop_signing_alg_values_supported": list(profiles.dpop_algs(settings)),
        "code_challenge_methods_supported": list(can.PKCE_METHODS),
        "claims_supported": ["iss", "sub", "aud", "azp", "exp", "iat", "auth_time", "acr", "amr", "nonce", "at_hash", "sid",
                             *sorted({c for names in SCOPE_CLAIMS.values() for c in names})],
        # OIDC Discovery §3: the ladder of chalicelib/oauth/acr.py, lowest first.
        "acr_values_supported": list(acr.SUPPORTED),
        "prompt_values_supported": list(can.PROMPT_VALUES),
        "ui_locales_supported": list(can.UI_LOCALES),
        # OIDC Core §5.5: accepted; its essential acr is honoured or refused (oauth/authorization.requested_acr).
        "claims_parameter_supported": True,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        # RFC 9207: every authorization response carries `iss`.
        "authorization_response_iss_parameter_supported": True,
        # OpenID Connect RP-Initiated Logout 1.0 §2.1: /logout takes id_token_hint, client_id,
        # post_logout_redirect_uri, state, ui_locales (chalicelib/oauth/rp_initiated_logout.py).
        "end_session_endpoint": f"{issuer}/logout",
        # OpenID Connect Back-Channel Logout 1.0 §2.1: logout tokens to each client's
        # backchannel_logout_uri, with `sid` (and ID tokens carry it).
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        # draft-ietf-oauth-identity-assertion-authz-grant §"Authorization Server Metadata": ID-JAGs are
        # redeemed with the jwt-bearer grant (which issuers are trusted is not disclosed: §"Metadata
        # Disclosure"), and issued by token exchange.
        "authorization_grant_profiles_supported": list(can.AUTHORIZATION_GRANT_PROFILES),
        "identity_chaining_requested_token_types_supported": list(can.IDENTITY_CHAINING_TOKEN_TYPES),
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
