"""A deployable stage, as .chalice/config.json defines it: the one place its settings live.

The Lambda functions get exactly these environment variables (Chalice copies them into the
template), the admin CLI reads them (tools/stage_env.py), and the template's resource names are
derived from them here, so a table, secret prefix or key alias cannot differ between the three.
They are parsed with the runtime's own chalicelib.config.load_settings, which rejects what the
Lambda would reject at start-up.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / ".chalice" / "config.json"
#: Stages that deploy to AWS ("local" runs on moto only).
DEPLOYABLE = ("dev", "prod")
#: Names reserved for examples and tests (RFC 2606, RFC 6761): .chalice/config.json ships with
#: issuers under example.com, and no real deployment can own one.
RESERVED_DOMAINS = ("example.com", "example.net", "example.org")
RESERVED_TLDS = ("example", "test", "invalid", "localhost")
#: Set to package anyway (the test suite and `make deploy DRY_RUN=1` check the build with the
#: shipped example issuer); nothing built with it may be deployed.
ALLOW_EXAMPLE_ISSUER = "ALLOW_EXAMPLE_ISSUER"
#: API_FRONT_DOOR (a stage's environment variable): the API Gateway product in front of the API
#: function. "http" (the default): an HTTP API, $1.00 per million requests; "rest": a REST API,
#: $3.50 per million, for usage plans, edge-optimised endpoints or a WAF directly on the API
#: (docs/deploy.md, "Front door"). The function serves either (chalicelib/front_door.py).
FRONT_DOORS = ("http", "rest")
DEFAULT_FRONT_DOOR = "http"


class StageError(ValueError):
    """The stage's configuration cannot be deployed as it is; the message says what to change."""


@dataclass(frozen=True)
class Stage:
    name: str
    app_name: str
    #: The Chalice stage's environment_variables (with the top-level ones), verbatim.
    env: dict
    #: The parsed runtime settings (chalicelib.config.Settings).
    settings: object
    api_gateway_stage: str
    endpoint_type: str

    @property
    def stack_name(self) -> str:
        return f"{self.app_name}-{self.name}"

    def function_name(self, role: str) -> str:
        """Lambda function (and so log group) names are fixed, so the policies can name them."""
        return f"{self.app_name}-{self.name}-{role}"

    def role_name(self, role: str) -> str:
        return f"{self.app_name}-{self.name}-{role}"

    @property
    def domain_name(self) -> str:
        return urlsplit(self.settings.issuer).hostname

    @property
    def sender_address(self) -> str:
        """EMAIL_FROM's address, without a display name ("Login <no-reply@x>" -> "no-reply@x")."""
        return parseaddr(self.settings.email_from)[1]

    @property
    def base_path(self) -> str:
        """The API mapping's base path: the issuer's path without slashes ("" = the domain's root)."""
        return urlsplit(self.settings.issuer).path.strip("/")

    @property
    def front_door(self) -> str:
        return self.env.get("API_FRONT_DOOR") or DEFAULT_FRONT_DOOR

    @property
    def secrets_key_alias(self) -> str | None:
        """The alias of the stage's symmetric KMS key, which the stack creates: it encrypts the signing-key
        secrets (secretsmanager) or the signing keys themselves (kms-envelope)."""
        return {"secretsmanager": self.settings.secrets_kms_key_id,
                "kms-envelope": self.settings.envelope_kms_key_id}.get(self.settings.key_backend)


    @property
    def factors_key_alias(self) -> str:
        """The alias of the symmetric KMS key that seals TOTP secrets (FACTOR_KMS_KEY_ID), which the stack creates."""
        return self.settings.factor_kms_key_id


def is_example_domain(host: str) -> bool:
    host = (host or "").lower().rstrip(".")
    return (host.rsplit(".", 1)[-1] in RESERVED_TLDS
            or any(host == domain or host.endswith("." + domain) for domain in RESERVED_DOMAINS))


def is_example_issuer(stage: Stage) -> bool:
    return is_example_domain(stage.domain_name)


def require_real_issuer(stage: Stage) -> None:
    """Refuse the example issuer .chalice/config.json ships with: a stack built for it serves
    tokens no client can verify against a URL anyone can reach, and the issuer must never change."""
    if is_example_issuer(stage):
        raise StageError(f"stage {stage.name}: ISSUER is still the example {stage.settings.issuer}: set it to "
                         f"https://<your IdP's host name> in .chalice/config.json (stages.{stage.name}."
                         "environment_variables.ISSUER) before packaging or deploying (docs/deploy.md, "
                         "\"First deploy\")")


def require_real_sender(stage: Stage) -> None:
    """EMAIL_FROM must be set for a deployed stage, on a domain the operator can verify in SES: the
    default (no-reply@<issuer host>) is a guess nobody verified, and SES refuses every message from an
    unverified identity, so sign-up, verification and reset would all answer "could not send"."""
    where = f"stages.{stage.name}.environment_variables.EMAIL_FROM in .chalice/config.json"
    if not stage.env.get("EMAIL_FROM"):
        raise StageError(f"stage {stage.name}: EMAIL_FROM is not set: set {where} to an address of the domain "
                         "you verify in Amazon SES (docs/deploy.md, \"Email through Amazon SES\")")
    if is_example_domain(stage.sender_address.rpartition("@")[2]):
        raise StageError(f"stage {stage.name}: EMAIL_FROM is still the example {stage.settings.email_from}: set "
                         f"{where} to an address of the domain you verify in Amazon SES (docs/deploy.md, "
                         "\"Email through Amazon SES\")")


def load(name: str, config_path: Path | None = None) -> Stage:
    from chalicelib.config import ConfigError, load_settings

    config = json.loads((config_path or CONFIG).read_text())
    if name not in config["stages"]:
        raise StageError(f"unknown stage {name!r}; .chalice/config.json has {sorted(config['stages'])}")
    stage_config = {**config, **config["stages"][name]}
    env = {**config.get("environment_variables", {}), **config["stages"][name].get("environment_variables", {})}
    try:
        settings = load_settings(env)
    except ConfigError as exc:
        raise StageError(f"stage {name}: {exc}") from exc
    stage = Stage(name=name, app_name=config["app_name"], env=env, settings=settings,
                  api_gateway_stage=stage_config.get("api_gateway_stage", "api"),
                  endpoint_type=stage_config.get("api_gateway_endpoint_type", "EDGE"))
    _check(stage, stage_config)
    return stage


def _check(stage: Stage, stage_config: dict) -> None:
    """What the template relies on, checked before anything is rendered."""
    s = stage.settings
    if s.stage != stage.name:
        raise StageError(f"stage {stage.name}: STAGE is {s.stage!r}; it must be {stage.name!r}")
    if stage.front_door not in FRONT_DOORS:
        raise StageError(f"stage {stage.name}: API_FRONT_DOOR must be one of {', '.join(FRONT_DOORS)}, got "
                         f"{stage.front_door!r}")
    if stage.endpoint_type != "REGIONAL":
        raise StageError(f"stage {stage.name}: set \"api_gateway_endpoint_type\": \"REGIONAL\" (the custom domain "
                         "and its certificate live in the stack's region)")
    if stage_config.get("manage_iam_role", True) or stage_config.get("autogen_policy", True):
        raise StageError(f"stage {stage.name}: set \"manage_iam_role\": false and \"autogen_policy\": false; the "
                         "roles and their least-privilege policies are defined by infra/template.py")
    if "@" not in stage.sender_address:
        raise StageError(f"stage {stage.name}: EMAIL_FROM must be an address or \"Name <address>\", got "
                         f"{s.email_from!r}")
    host = stage.domain_name or ""
    if host.endswith(".amazonaws.com"):
        raise StageError(f"stage {stage.name}: ISSUER must be on your own domain, not {host}: execute-api URLs change "
                         "whenever the API is re-created, and the issuer must never change")
    if "/" in stage.base_path:
        raise StageError(f"stage {stage.name}: ISSUER's path may have at most one segment (the API mapping's base "
                         f"path), got {stage.base_path!r}")
    if s.key_backend == "secretsmanager" and not s.secrets_kms_key_id.startswith("alias/"):
        raise StageError(f"stage {stage.name}: SECRETS_KMS_KEY_ID must name the alias the stack creates for the "
                         f"signing-key secrets' KMS key, e.g. \"alias/{stage.stack_name}-secrets\"")
    if s.key_backend == "kms-envelope" and not s.envelope_kms_key_id.startswith("alias/"):
        raise StageError(f"stage {stage.name}: ENVELOPE_KMS_KEY_ID must name the alias the stack creates for the "
                         f"signing keys' KMS key, e.g. \"alias/{stage.stack_name}-signing-keys\"")
    if not s.factor_kms_key_id.startswith("alias/"):
        raise StageError(f"stage {stage.name}: FACTOR_KMS_KEY_ID must name the alias the stack creates for the key "
                         f"that seals TOTP secrets (unset: \"alias/{s.table_prefix}-factors\")")
    if s.key_backend == "kms" and s.kms_signer_role_name != stage.role_name("api"):
        raise StageError(f"stage {stage.name}: with KEY_BACKEND=kms set KMS_SIGNER_ROLE_NAME to "
                         f"\"{stage.role_name('api')}\", the role the stack creates for the API function")
