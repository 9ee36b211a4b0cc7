"""Authorization server metadata (RFC 8414) / OpenID Provider metadata (OIDC Discovery 1.0).

One pure function builds the document; both well-known URLs serve it. Only what is implemented is
advertised: each later feature adds its fields here together with the code that backs them.
"""
from __future__ import annotations

from .config import Settings


def metadata(settings: Settings) -> dict:
    issuer = settings.issuer
    return {
        "issuer": issuer,
        "jwks_uri": f"{issuer}/jwks",
        # RFC 8414 §2 REQUIRES response_types_supported even before /authorize exists; an empty
        # list says truthfully that no response type is served yet.
        "response_types_supported": [],
        "id_token_signing_alg_values_supported": [settings.signing_alg],
    }


#: RFC 8414 §3 and OIDC Discovery §4: the well-known paths, inserted after the host. With an
#: issuer path (https://host/tenant) RFC 8414 puts it after the well-known segment; OIDC appends.
WELL_KNOWN_OAUTH = "/.well-known/oauth-authorization-server"
WELL_KNOWN_OIDC = "/.well-known/openid-configuration"
