"""Deployment profiles (PROFILE): the strict OAuth 2.1 core, or the FAPI 2.0 Security Profile on top.

The FAPI 2.0 Security Profile (OpenID Foundation, final, February 2025; "FAPI2" below, section
numbers are its) is a set of "shall"s for authorization servers that mostly narrow what the core
already offers. This module is the one place that states them: `apply` enforces the settings side
at start-up (a deployment that cannot be FAPI2 fails loudly instead of quietly serving something
weaker), and small pure functions answer the questions the rest of the code asks ("which client
authentication methods?", "which JWS algorithms?"), so no other module tests PROFILE itself.

PROFILE=fapi2 means:
- PAR_REQUIRED and DPOP_REQUIRED on, whatever they are set to: §5.3.2.2 item 3 ("shall reject
  authorization requests sent without [RFC9126]") and §5.3.2.1 items 4-5 (only sender-constrained
  access tokens; DPoP is the method offered, MTLS is not);
- CODE_TTL at most 60 (§5.3.2.1 item 11) and PAR_TTL under 600 (§5.3.2.2 item 12), else ConfigError;
- SIGNING_ALG not RS256: §5.4.1 item 1.2 allows PS256, ES256 and EdDSA only, and of those our key
  backends sign ES256;
- no client ID metadata documents: they describe public clients, and §5.3.2.1 item 3 allows only
  confidential ones (CLIENT_ID_DOCUMENTS is off; set to anything else it is a ConfigError);
- refresh tokens are not rotated (§5.3.2.1 item 9: "shall not use refresh token rotation except in
  extraordinary circumstances"): every client is confidential, so its refresh token is worthless
  without the client's key, and a refresh keeps the same token (`rotates_refresh_tokens`);
- clients authenticate with private_key_jwt only, at every endpoint (§5.3.2.1 item 6; MTLS is not
  offered), so public clients are refused too (item 3); only such clients can be created;
- a client assertion's `aud` must be the issuer identifier, as a string (§5.3.2.1 item 8);
- JWTs we verify from clients (client assertions, DPoP proofs) use ES256, PS256 or EdDSA (§5.4.1):
  RS256 is refused, and client assertions may use PS256, which the core does not take.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .capabilities import (CLIENT_ASSERTION_ALGS, DPOP_ALGS, INTROSPECTION_AUTH_METHODS, PRIVATE_KEY_JWT,
                           SIGNING_ALGS, TOKEN_ENDPOINT_AUTH_METHODS)

if TYPE_CHECKING:
    from .config import Settings

FAPI2 = "fapi2"
#: FAPI2 §5.4.1 item 1.2: the only JWS algorithms created or accepted (EdDSA with Ed25519, the only
#: curve keys/jwk.fits accepts for it). Client assertions may use all three: PS256 takes
#: RS256's place for clients with RSA keys.
FAPI2_JWS_ALGS = ("ES256", "PS256", "EdDSA")
#: FAPI2 §5.3.2.1 item 11: "shall issue authorization codes with a maximum lifetime of 60 seconds".
FAPI2_MAX_CODE_TTL = 60
#: FAPI2 §5.3.2.2 item 12: request_uri `expires_in` "of less than 600 seconds".
FAPI2_PAR_TTL_LIMIT = 600


def is_fapi2(settings: Settings) -> bool:
    return settings.profile == FAPI2


def apply(settings: Settings) -> None:
    """Settings.__post_init__: force or refuse what FAPI2 decides (see the module docstring).
    Raises config.ConfigError for a setting FAPI2 forbids. Nothing for PROFILE=oauth2.1."""
    if not is_fapi2(settings):
        return
    from .config import ConfigError

    problems = []
    if settings.code_ttl > FAPI2_MAX_CODE_TTL:
        problems.append(f"CODE_TTL ({settings.code_ttl}) must be at most {FAPI2_MAX_CODE_TTL} (FAPI 2.0 §5.3.2.1 item 11)")
    if settings.par_ttl >= FAPI2_PAR_TTL_LIMIT:
        problems.append(f"PAR_TTL ({settings.par_ttl}) must be less than {FAPI2_PAR_TTL_LIMIT} "
                        "(FAPI 2.0 §5.3.2.2 item 12)")
    if settings.signing_alg not in FAPI2_JWS_ALGS:
        problems.append(f"SIGNING_ALG {settings.signing_alg} is not allowed; use ES256 (FAPI 2.0 §5.4.1: "
                        f"{', '.join(FAPI2_JWS_ALGS)})")
    if settings.client_id_documents not in ("", "off"):
        problems.append("CLIENT_ID_DOCUMENTS must be off: a client ID metadata document is a public client, and "
                        "FAPI 2.0 §5.3.2.1 item 3 allows only confidential ones")
    if problems:
        raise ConfigError("PROFILE=fapi2: " + "; ".join(problems))
    derive = object.__setattr__  # Settings is frozen: forced once, here, like its derived defaults
    derive(settings, "par_required", True)
    derive(settings, "dpop_required", True)
    derive(settings, "client_id_documents", "off")


def client_auth_methods(settings: Settings) -> tuple[str, ...]:
    """How clients may authenticate at the token, revocation, device authorization and PAR endpoints
    (discovery's token_endpoint_auth_methods_supported). FAPI2 §5.3.2.1 item 6: private_key_jwt
    (MTLS is not offered), which also leaves out public clients (item 3)."""
    return (PRIVATE_KEY_JWT,) if is_fapi2(settings) else TOKEN_ENDPOINT_AUTH_METHODS


def introspection_auth_methods(settings: Settings) -> tuple[str, ...]:
    """How resource servers may authenticate at /introspect: they are clients too (FAPI2 §5.3.2.1
    item 6 names no exception)."""
    return (PRIVATE_KEY_JWT,) if is_fapi2(settings) else INTROSPECTION_AUTH_METHODS


def assertion_algs(settings: Settings) -> tuple[str, ...]:
    """JWS algorithms of private_key_jwt client assertions; FAPI2 §5.4.1 has PS256 instead of RS256
    (keys/jwk.fits checks an RSA key for either)."""
    return FAPI2_JWS_ALGS if is_fapi2(settings) else CLIENT_ASSERTION_ALGS


def dpop_algs(settings: Settings) -> tuple[str, ...]:
    """JWS algorithms of DPoP proofs (RFC 9449 §5.1 dpop_signing_alg_values_supported, and what
    dpop.check_proof's `algs` gets); FAPI2 §5.4.1 drops RS256."""
    return _fapi2_algs(DPOP_ALGS) if is_fapi2(settings) else DPOP_ALGS


def signing_algs(settings: Settings) -> tuple[str, ...]:
    """The algorithms our ID tokens may be signed with (id_token_signing_alg_values_supported): under
    FAPI2 only SIGNING_ALG's allowed ones (`apply` refuses RS256 keys from now on)."""
    return _fapi2_algs(SIGNING_ALGS) if is_fapi2(settings) else SIGNING_ALGS


def assertion_audiences(settings: Settings) -> tuple[str, ...]:
    """What a client assertion's `aud` may name: our issuer, or (OIDC Core §9) our token endpoint,
    or (RFC 9126 §2) our pushed authorization request endpoint.
    FAPI2 §5.3.2.1 item 8: "shall only accept its issuer identifier value"."""
    issuer = settings.issuer
    return (issuer,) if is_fapi2(settings) else (issuer, f"{issuer}/token", f"{issuer}/par")


def assertion_audience_is_string(settings: Settings) -> bool:
    """FAPI2 §5.3.2.1 item 8: the issuer is accepted "as a string in the aud claim", not within a
    list (a list could name other audiences the assertion is also good for)."""
    return is_fapi2(settings)


def check_client_authentication(client_type: str, method: str, settings: Settings) -> None:
    """A client about to be created or changed (admin CLI, RFC 7591/7592 registration) must be able to
    authenticate under this profile: FAPI2 §5.3.2.1 items 3 and 6, confidential with private_key_jwt.
    Raises InvalidClientMetadata, before anything is written."""
    if is_fapi2(settings) and (client_type != "confidential" or method != PRIVATE_KEY_JWT):
        from .errors import InvalidClientMetadata

        raise InvalidClientMetadata(f"PROFILE=fapi2 allows only confidential clients using {PRIVATE_KEY_JWT} "
                                    "(FAPI 2.0 §5.3.2.1 items 3 and 6)")


def _fapi2_algs(algs: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(alg for alg in algs if alg in FAPI2_JWS_ALGS)


def redirect_status(settings: Settings) -> int:
    """The status of our redirects: FAPI 2.0 §5.3.2.2 item 11 "should use HTTP 303"; 302 otherwise
    (browsers follow both with a GET)."""
    return 303 if is_fapi2(settings) else 302


def rotates_refresh_tokens(settings: Settings) -> bool:
    """Does a refresh replace the refresh token? The core rotates every use (OAuth 2.1 §4.3.1, with
    reuse detection: chalicelib/oauth/refresh_tokens.py). FAPI 2.0 §5.3.2.1 item 9 says not to:
    its clients are all confidential, so a refresh token is bound to the client's private_key_jwt
    authentication already, and rotation would only make a lost response cost the client its family.
    The same token then stays valid while it is used within REFRESH_TOKEN_IDLE_TTL, up to the
    family's REFRESH_TOKEN_ABSOLUTE_TTL, and revocation ends it as before."""
    return not is_fapi2(settings)
