"""What this server implements: the one table that discovery advertises and every check enforces.

Discovery (RFC 8414 §2 / OIDC Discovery §3) must not promise what the endpoints refuse, nor the
endpoints accept what discovery leaves out; so the lists live here once, and discovery, dynamic
registration (RFC 7591), admin client validation, the authorization and token endpoints and the
admin CLI all read them. tests/unit/test_capabilities.py ties discovery to this table.
"""
from __future__ import annotations

import re

#: RFC 8628 §3.4: the device authorization grant's grant_type.
DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"
#: RFC 8693 §2.1: token exchange (chalicelib/grants/token_exchange.py).
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
#: RFC 7523 §2.1: a JWT as an authorization grant; here an ID-JAG from a trusted issuer
#: (draft-ietf-oauth-identity-assertion-authz-grant, chalicelib/grants/jwt_bearer.py).
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: RFC 6749 §4.1, §6, §4.4, RFC 8628 §3.4, RFC 8693, RFC 7523: every grant the token endpoint
#: dispatches (chalicelib/grants.HANDLERS).
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials", DEVICE_CODE, TOKEN_EXCHANGE, JWT_BEARER)
#: The grants a client nobody vetted (RFC 7591 registration, a client ID metadata document) may use:
#: client_credentials would let a stranger mint tokens with no user involved. The device grant is not
#: offered either: it is the grant remote phishing abuses (RFC 8628 §5.4, a stranger's code relayed to
#: a victim), and there the client's name on the consent page is all the user goes by; an
#: administrator vouches for that name.
SELF_REGISTERED_GRANT_TYPES = ("authorization_code", "refresh_token")
#: draft-ietf-oauth-identity-assertion-authz-grant §"Authorization Server Metadata": the grant profiles
#: the jwt-bearer grant processes (authorization_grant_profiles_supported; it names no issuer), and the
#: token types token exchange issues for identity chaining (identity_chaining_requested_token_types_supported).
#: RFC 8693 §3 token type identifiers token exchange takes and gives, and the ID-JAG's
#: (draft-ietf-oauth-identity-assertion-authz-grant §"Token Exchange").
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"
ID_JAG_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id-jag"
AUTHORIZATION_GRANT_PROFILES = ("urn:ietf:params:oauth:grant-profile:id-jag",)
IDENTITY_CHAINING_TOKEN_TYPES = (ID_JAG_TOKEN_TYPE,)
#: RFC 7591 §2.1: "code" goes with authorization_code, and is the only response type (OAuth 2.1 drops
#: the implicit grant).
RESPONSE_TYPES = ("code",)
RESPONSE_MODES = ("query",)

#: RFC 6749 §2.3.1: the secret-based methods; RFC 7591 §2 default first.
CONFIDENTIAL_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
#: RFC 7523 §2.2 / OIDC Core §9: the client signs a short JWT with its private key; we hold only its
#: public keys (jwks or jwks_uri), so nothing we store would let anyone pass for it.
PRIVATE_KEY_JWT = "private_key_jwt"
#: Token and revocation endpoints: confidential methods, and "none" for public clients (PKCE instead).
TOKEN_ENDPOINT_AUTH_METHODS = (*CONFIDENTIAL_AUTH_METHODS, PRIVATE_KEY_JWT, "none")
#: Introspection is for resource servers, which are confidential clients (RFC 7662 §2.1).
INTROSPECTION_AUTH_METHODS = (*CONFIDENTIAL_AUTH_METHODS, PRIVATE_KEY_JWT)
#: RFC 7523 §2.2: the client_assertion_type of a JWT client assertion.
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: JWS algorithms of client assertions (OIDC Discovery §3 token_endpoint_auth_signing_alg_values_supported):
#: asymmetric only. `none` proves nothing, and HMAC would need a secret we hold (RFC 8725 §3.1).
CLIENT_ASSERTION_ALGS = ("ES256", "RS256", "EdDSA")

#: RFC 9449 §5.1 dpop_signing_alg_values_supported: the JWS algorithms a DPoP proof may use.
#: Asymmetric only (§4.3 item 5): a proof is checked with the public key it carries, so `none` or
#: HMAC would prove nothing. FAPI 2.0 (PROFILE=fapi2) drops RS256 (chalicelib/profiles.py).
DPOP_ALGS = ("ES256", "PS256", "EdDSA", "RS256")
#: RFC 9449 §4.2: the `typ` of a DPoP proof.
DPOP_PROOF_TYP = "dpop+jwt"
#: RFC 9126 §2.2: the scheme of a pushed request's request_uri.
PAR_REQUEST_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"
#: PROFILE values: the strict OAuth 2.1 core, or FAPI 2.0 Security Profile on top (chalicelib/profiles.py).
PROFILES = ("oauth2.1", "fapi2")

#: RFC 7636: S256 only; `plain` protects nothing once the request leaks (RFC 9700 §2.1.1).
PKCE_METHODS = ("S256",)
#: OIDC Core §3.1.2.1 prompt values we honour (select_account is not offered).
PROMPT_VALUES = ("none", "login", "consent")
#: OIDC Core §3.1.2.1 ui_locales we speak (OIDC Discovery §3 ui_locales_supported): English, the language
#: of the msgids, first; every other one has a complete catalog in chalicelib/locales (chalicelib/i18n.py).
UI_LOCALES = ("en", "de")
#: JWS algorithms of our signing keys (SIGNING_ALG) and all a verifier accepts: never `none` or HMAC,
#: whose "key" would be our public key (RFC 8725 §2.1, §3.1).
SIGNING_ALGS = ("ES256", "RS256")

#: Scopes with meaning at this IdP itself (OIDC Core §5.4), not at any resource.
IDENTITY_SCOPES = ("openid", "profile", "email", "offline_access")
#: RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ). Use with fullmatch().
SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]+")

#: RFC 8252 §7.3 loopback IP literals, as urlsplit().hostname reports them ("[::1]" -> "::1"). Only
#: these may change port between registration and request (RFC 8252 §8.3 prefers them to names).
LOOPBACK_IPS = ("127.0.0.1", "::1")
#: Hosts where plain http is allowed for redirect URIs: nothing leaves the device.
LOOPBACK_HOSTS = (*LOOPBACK_IPS, "localhost")
