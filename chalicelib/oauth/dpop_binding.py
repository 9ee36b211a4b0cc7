"""DPoP at this server's own endpoints (RFC 9449): the I/O around the pure proof check.

chalicelib/oauth/dpop.py checks a proof and chalicelib/oauth/dpop_nonces.py derives nonces, both
without I/O. This module adds what needs the outside world:

- the nonce key: 256 random bits in the Secrets Manager secret `<SECRET_PREFIX>dpop-nonce`, made
  once by the bootstrap that makes the signing keys (`ensure_nonce_key`: tools/devstack.py, the
  rotation schedule's bootstrap step, `idp-admin keys ensure`) and read once per container (a
  cached GetSecretValue: no per-request call). A secret rather than an item of a table: whoever
  reads a table export could otherwise compute every future window's nonce, and nonces exist to
  stop proofs made ahead of time (RFC 9449 §11.2). Every container derives the same nonce from it,
  so a nonce handed out by one is accepted by all, with no per-client state (§8);
- the proof's `jti`, spent with one conditional PutItem (storage/used_jtis.py, kind "dpop", keyed
  by the key's thumbprint: §11.1), so a proof replayed within its lifetime is refused;
- the mapping of refusals to the token endpoint's errors: `invalid_dpop_proof` (§5: "If the DPoP
  proof is invalid, the authorization server issues an error response per Section 5.2 of
  [RFC6749] with invalid_dpop_proof as the value of the error parameter") and `use_dpop_nonce`
  with a `DPoP-Nonce` header (§8: 400 at an authorization server).
"""
from __future__ import annotations

from .. import caches, profiles
from ..config import Settings
from ..errors import DpopProofRefused, InvalidDpopProof, UseDpopNonce
from ..log import get_logger, now
from . import dpop, dpop_nonces

log = get_logger("idp.dpop")

#: The nonce key's secret, under SECRET_PREFIX (infra/policy.py lets the API role read only it).
NONCE_SECRET = "dpop-nonce"
#: Response header carrying the nonce to use next (RFC 9449 §8.1).
NONCE_HEADER = "DPoP-Nonce"

_nonce_keys: dict[str, bytes] = {}
caches.register("dpop_binding.nonce_key", _nonce_keys.clear)


def secret_name(settings: Settings) -> str:
    return f"{settings.secret_prefix}{NONCE_SECRET}"


def ensure_nonce_key(settings: Settings) -> bool:
    """Bootstrap: create the nonce key's secret unless it exists. True when it was created.
    Idempotent and safe to run twice at once (CreateSecret of an existing name is refused)."""
    from botocore.exceptions import ClientError

    from ..aws import client
    from ..hashing import new_secret

    try:
        # Under the account's AWS managed key, like the connection secrets (infra/policy.py): the
        # API role reads it with GetSecretValue alone, whatever the key backend.
        client("secretsmanager").create_secret(
            Name=secret_name(settings), SecretString=new_secret(),
            Description="IdP DPoP nonce key (RFC 9449 §8; read by the API, do not edit)",
            Tags=[{"Key": "idp:stage", "Value": settings.stage}])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceExistsException":
            return False
        raise
    log.info("DPoP nonce key created", extra={"secret": secret_name(settings)})
    return True


def _nonce_key(settings: Settings) -> bytes:
    """The nonce key, read once per container (a fault leaves as the 503 chalicelib/faults.py makes)."""
    name = secret_name(settings)
    key = _nonce_keys.get(name)
    if key is None:
        from ..aws import client

        key = client("secretsmanager").get_secret_value(SecretId=name)["SecretString"].encode("utf-8")
        _nonce_keys[name] = key
    return key


def fresh_nonce(settings: Settings) -> str:
    """The nonce to hand out now, in `DPoP-Nonce` (RFC 9449 §8)."""
    return dpop_nonces.current(_nonce_key(settings), now(), settings.dpop_nonce_window)


def nonce_headers(settings: Settings) -> dict[str, str]:
    """`DPoP-Nonce` for a response, when this server demands nonces (DPOP_NONCE)."""
    return {NONCE_HEADER: fresh_nonce(settings)} if settings.dpop_nonce else {}


def required(client, settings: Settings) -> bool:
    """Must this client's token requests carry a proof? RFC 9449 §5.2: a client registered with
    `dpop_bound_access_tokens` true ("the authorization server MUST reject token requests from this
    client that do not contain the DPoP header"); DPOP_REQUIRED: every client."""
    return settings.dpop_required or bool(getattr(client, "dpop_bound_access_tokens", False))


def proof_for(dpop_header: str | None, *, method: str, url: str, settings: Settings,
              access_token: str | None = None, require_nonce: bool) -> dpop.Proof | None:
    """The request's checked proof, its `jti` spent; None when the request has no DPoP header.

    `dpop_header`: every DPoP header field of the request joined by commas (two proofs are
    refused: RFC 9449 §4.3 item 1). `require_nonce`: the proof must carry a current nonce of ours
    (§8). Raises InvalidDpopProof (a replayed jti too) or UseDpopNonce. One conditional PutItem
    for a proof that passes every check; none for one that fails."""
    if dpop_header is None:
        return None
    at = now()
    nonce_ok = None
    if require_nonce:
        key = _nonce_key(settings)
        nonce_ok = lambda nonce: dpop_nonces.valid(key, nonce, at, settings.dpop_nonce_window)  # noqa: E731
    try:
        proof = dpop.check_proof(dpop_header, method=method, url=url, now=at, max_age=settings.dpop_proof_max_age,
                                 algs=profiles.dpop_algs(settings), access_token=access_token, nonce_ok=nonce_ok)
    except DpopProofRefused as exc:
        if exc.nonce_needed:
            raise UseDpopNonce(exc.description, nonce=fresh_nonce(settings), detail=exc.detail) from None
        raise InvalidDpopProof(exc.description, detail=exc.detail) from None
    from ..storage import used_jtis

    if not used_jtis.use("dpop", proof.jkt, proof.jti, proof.expires_at):
        # RFC 9449 §11.1: a proof is good for one request; a second use is a replay.
        raise InvalidDpopProof("the DPoP proof was already used; make a new one for each request",
                               detail=f"jti replayed for jkt {proof.jkt}")
    return proof


def confirmation(proof: dpop.Proof | None) -> dict | None:
    """The access token's `cnf` for a request with `proof` (RFC 9449 §6.1), None without one."""
    return {"jkt": proof.jkt} if proof is not None else None
