"""The stage's CloudFormation template, merged by `chalice package --merge-template` into one stack.

Chalice generates the Lambda functions, the REST API and the daily schedule from app.py and
.chalice/config.json; this module adds everything else, rendered from the code's own definitions:

- stateful resources (`stateful_resources`): the DynamoDB tables (from the pynamodb models, as the
  local bootstrap creates them; infra/tables.py), the KMS key encrypting the signing-key secrets
  (KEY_BACKEND=secretsmanager) with the alias SECRETS_KMS_KEY_ID names, the functions' log groups,
  and one IAM role per function with the least-privilege policy of infra/policy.py;
- the custom domain: ISSUER's host becomes an API Gateway regional domain name (certificate: the
  CertificateArn parameter), ISSUER's path its base path mapping, so the issuer and the URL the
  API answers on cannot differ; an optional HostedZoneId adds the Route 53 alias record;
- overrides of Chalice's function resources: fixed names (so the log groups and policies can name
  them), the roles above (config.json sets manage_iam_role: false), the runtime (Chalice would name
  the Python that runs it; infra/package.py builds the code for LAMBDA_RUNTIME on arm64), and for the
  API function SnapStart on a published version behind the alias API_ALIAS, which API Gateway invokes.

    .venv/bin/python -m infra.template --stage prod              # the merge template
    .venv/bin/python -m infra.template --stage prod --stateful   # the stateful part alone (moto test)
"""
from __future__ import annotations

import json

from infra import policy
from infra.stage import Stage, load
from infra.tables import cloudformation_resources, retention

#: Role of each Chalice function (by function name); a new function must be given one here.
FUNCTION_ROLES = {"api_handler": "api", "rotate_signing_keys": "rotation"}
ROLES = {"api": "ApiRole", "rotation": "RotationRole"}
LOG_RETENTION_DAYS = 90
#: SAM names the REST API's stage resource <api logical id><stage name>Stage.
SAM_STAGE = "RestAPI{}Stage"
#: The deployed runtime: python3.13 on arm64 (Graviton: cheaper per GB-second). Chalice names the
#: Python that runs `chalice package`, so the runtime is set here; infra/package.py builds the
#: dependencies for it (manylinux aarch64 wheels). Lambda supports SnapStart on python3.12 and later.
LAMBDA_RUNTIME = "python3.13"
LAMBDA_ARCHITECTURE = "arm64"
#: SnapStart snapshots published versions only, never $LATEST: SAM publishes a version of the API
#: function whenever its code or configuration changes and points this alias at it, and API Gateway
#: invokes the alias.
API_ALIAS = "live"
#: The AWS::Lambda::Alias resource SAM generates for it ("<function>Alias<alias>"). Named directly:
#: SAM does not resolve "APIHandler.Alias" inside the API's DefinitionBody.
API_ALIAS_RESOURCE = f"APIHandlerAlias{API_ALIAS}"
#: API Gateway's Lambda proxy integration URI for the alias (Ref of an alias is its ARN).
ALIAS_INVOCATION_URI = ("arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/"
                        "${%s}/invocations" % API_ALIAS_RESOURCE)


def _retain(stage: Stage) -> dict:
    """Prod keeps its data when the stack (or the resource) goes away, except when its first
    creation rolls back (infra/tables.py `retention`); dev cleans up."""
    return retention(stage.name == "prod")


def _account_root() -> dict:
    return {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}


def stateful_resources(stage: Stage) -> dict:
    s = stage.settings
    resources = cloudformation_resources(deletion_protection=stage.name == "prod", table_prefix=s.table_prefix)
    if stage.secrets_key_alias:
        resources[policy.SECRETS_KEY] = {
            "Type": "AWS::KMS::Key", **_retain(stage),
            "Properties": {
                "Description": f"{stage.stack_name}: encrypts the token signing-key secrets",
                "EnableKeyRotation": True,
                # Account administrators manage the key; the functions' IAM policies (infra/policy.py)
                # allow only Decrypt/GenerateDataKey through Secrets Manager.
                "KeyPolicy": {"Version": "2012-10-17", "Statement": [
                    {"Sid": "AccountAdministers", "Effect": "Allow", "Principal": {"AWS": _account_root()},
                     "Action": "kms:*", "Resource": "*"},
                ]},
            },
        }
        resources["SecretsKeyAlias"] = {
            "Type": "AWS::KMS::Alias",
            "Properties": {"AliasName": stage.secrets_key_alias, "TargetKeyId": {"Ref": policy.SECRETS_KEY}},
        }
    documents = {"api": policy.api_policy(stage), "rotation": policy.rotation_policy(stage)}
    for role, logical_id in ROLES.items():
        # Logs expire anyway and are not kept with the stack, so a deleted stage can be deployed again.
        resources[policy.LOG_GROUPS[role]] = {
            "Type": "AWS::Logs::LogGroup",
            "Properties": {"LogGroupName": f"/aws/lambda/{stage.function_name(role)}",
                           "RetentionInDays": LOG_RETENTION_DAYS},
        }
        resources[logical_id] = {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "RoleName": stage.role_name(role),
                "Description": f"{stage.stack_name}: the {role} function (policy: infra/policy.py)",
                "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
                    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"},
                ]},
                "Policies": [{"PolicyName": f"{stage.role_name(role)}-policy", "PolicyDocument": documents[role]}],
            },
        }
    return resources


def stateful_outputs(stage: Stage) -> dict:
    s = stage.settings
    outputs = {
        "Issuer": {"Description": "ISSUER of the stage (.chalice/config.json)", "Value": s.issuer},
        "TablePrefix": {"Description": "TABLE_PREFIX of the stage", "Value": s.table_prefix},
        "SecretPrefix": {"Description": "SECRET_PREFIX of the stage", "Value": s.secret_prefix},
        "KeyBackend": {"Description": "KEY_BACKEND of the stage", "Value": s.key_backend},
        "ApiRoleArn": {"Value": {"Fn::GetAtt": [ROLES["api"], "Arn"]}},
        "RotationRoleArn": {"Value": {"Fn::GetAtt": [ROLES["rotation"], "Arn"]}},
    }
    if stage.secrets_key_alias:
        outputs["SecretsKmsKeyArn"] = {"Value": {"Fn::GetAtt": [policy.SECRETS_KEY, "Arn"]}}
        outputs["SecretsKmsKeyAlias"] = {"Value": stage.secrets_key_alias}
    return outputs


def stateful_template(stage: Stage) -> dict:
    """What holds data or grants access: deployable on its own (the moto deployment test does)."""
    return {"AWSTemplateFormatVersion": "2010-09-09",
            "Description": f"{stage.stack_name}: tables, keys, log groups and roles (infra/template.py)",
            "Resources": stateful_resources(stage), "Outputs": stateful_outputs(stage)}


def lambda_functions() -> dict[str, str]:
    """Chalice's logical id of each Lambda function of app.py -> its role."""
    from chalice.utils import to_cfn_resource_name

    from app import app

    functions = {"APIHandler": "api"} if app.routes else {}
    for source in [*app.event_sources, *app.pure_lambda_functions]:
        if source.name not in FUNCTION_ROLES:
            raise KeyError(f"Lambda function {source.name!r} has no role: add it to infra/template.py FUNCTION_ROLES "
                           "and its permissions to infra/policy.py")
        functions[to_cfn_resource_name(source.name)] = FUNCTION_ROLES[source.name]
    return functions


def domain_resources(stage: Stage) -> dict:
    mapping = {"DomainName": {"Ref": "ApiDomain"}, "RestApiId": {"Ref": "RestAPI"}, "Stage": stage.api_gateway_stage}
    if stage.base_path:
        mapping["BasePath"] = stage.base_path
    return {
        "ApiDomain": {
            "Type": "AWS::ApiGateway::DomainName",
            "Properties": {"DomainName": stage.domain_name, "RegionalCertificateArn": {"Ref": "CertificateArn"},
                           "EndpointConfiguration": {"Types": ["REGIONAL"]}, "SecurityPolicy": "TLS_1_2"},
        },
        "ApiBasePathMapping": {
            "Type": "AWS::ApiGateway::BasePathMapping",
            # The mapping names the stage, which SAM creates alongside the API.
            "DependsOn": [SAM_STAGE.format(stage.api_gateway_stage)],
            "Properties": mapping,
        },
        "ApiDnsRecord": {
            "Type": "AWS::Route53::RecordSet",
            "Condition": "CreateDnsRecord",
            "Properties": {
                "HostedZoneId": {"Ref": "HostedZoneId"}, "Name": stage.domain_name, "Type": "A",
                "AliasTarget": {"DNSName": {"Fn::GetAtt": ["ApiDomain", "RegionalDomainName"]},
                                "HostedZoneId": {"Fn::GetAtt": ["ApiDomain", "RegionalHostedZoneId"]}},
            },
        },
    }


def snapstart_resources() -> dict:
    """SnapStart on the API function, and API Gateway invoking its alias (merged into Chalice's)."""
    from app import app

    paths = {path: {method.lower(): {"x-amazon-apigateway-integration": {"uri": {"Fn::Sub": ALIAS_INVOCATION_URI}}}
                    for method in entry}
             for path, entry in app.routes.items()}
    return {
        "APIHandler": {"Properties": {"SnapStart": {"ApplyOn": "PublishedVersions"}, "AutoPublishAlias": API_ALIAS}},
        # Invoking an alias needs a permission on the alias itself; one on the function does not cover it.
        "APIHandlerInvokePermission": {"Properties": {"FunctionName": {"Ref": API_ALIAS_RESOURCE}}},
        "RestAPI": {"Properties": {"DefinitionBody": {"paths": paths}}},
    }


def merge_template(stage: Stage) -> dict:
    resources = {**stateful_resources(stage), **domain_resources(stage)}
    for logical_id, role in lambda_functions().items():
        # Merged into Chalice's AWS::Serverless::Function: these keys replace Chalice's.
        resources[logical_id] = {
            "DependsOn": [policy.LOG_GROUPS[role]],
            "Properties": {"FunctionName": stage.function_name(role), "Role": {"Fn::GetAtt": [ROLES[role], "Arn"]},
                           "Runtime": LAMBDA_RUNTIME, "Architectures": [LAMBDA_ARCHITECTURE]},
        }
    for logical_id, resource in snapstart_resources().items():
        resources[logical_id] = _deep_merge(resources.get(logical_id, {}), resource)
    outputs = {
        **stateful_outputs(stage),
        "DiscoveryURL": {"Value": f"{stage.settings.issuer}/.well-known/openid-configuration"},
        "RegionalDomainName": {"Description": f"Point {stage.domain_name} here (CNAME or alias) unless HostedZoneId "
                                              "was given", "Value": {"Fn::GetAtt": ["ApiDomain", "RegionalDomainName"]}},
        "RotationFunctionName": {"Value": stage.function_name("rotation")},
    }
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"{stage.stack_name}: OAuth 2.1 / OpenID Provider ({stage.settings.issuer}); "
                      "rendered by infra/template.py and chalice package",
        "Parameters": {
            "CertificateArn": {
                "Type": "String",
                "Description": f"ACM certificate for {stage.domain_name}, in the stack's region",
                "AllowedPattern": r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[A-Za-z0-9-]+$",
                "ConstraintDescription": "an ACM certificate ARN (arn:aws:acm:<region>:<account>:certificate/<id>)",
            },
            "HostedZoneId": {
                "Type": "String", "Default": "",
                "Description": f"Route 53 hosted zone of {stage.domain_name}: the stack creates the alias record. "
                               "Leave empty to create the DNS record yourself (output RegionalDomainName)",
            },
        },
        "Conditions": {"CreateDnsRecord": {"Fn::Not": [{"Fn::Equals": [{"Ref": "HostedZoneId"}, ""]}]}},
        "Resources": resources,
        "Outputs": outputs,
    }


def _deep_merge(base: dict, extra: dict) -> dict:
    merged = dict(base)
    for key, value in extra.items():
        merged[key] = _deep_merge(merged[key], value) if isinstance(merged.get(key), dict) else value
    return merged


def main(argv=None) -> int:
    import argparse
    import sys

    from infra.stage import DEPLOYABLE, StageError

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stage", choices=DEPLOYABLE, default="prod")
    parser.add_argument("--stateful", action="store_true", help="only the stateful resources (no API, no domain)")
    args = parser.parse_args(argv)
    try:
        stage = load(args.stage)
    except StageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    template = stateful_template(stage) if args.stateful else merge_template(stage)
    print(json.dumps(template, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
