"""The stage's CloudFormation template, merged by `chalice package --merge-template` into one stack.

Chalice generates the Lambda functions, the REST API and the daily schedule from app.py and
.chalice/config.json; this module adds everything else, rendered from the code's own definitions:

- the front door (API_FRONT_DOOR, infra/stage.py): "http" adds an HTTP API (`http_api_resources`)
  and infra/package.py removes Chalice's REST API from sam.json; "rest" keeps and configures it;

- stateful resources (`stateful_resources`): the DynamoDB tables (from the pynamodb models, as the
  local bootstrap creates them; infra/tables.py), the KMS key encrypting the signing-key secrets
  (KEY_BACKEND=secretsmanager) with the alias SECRETS_KMS_KEY_ID names, the key sealing TOTP secrets
  (FACTOR_KMS_KEY_ID; its key policy lets only the API role use it), the functions' log groups,
  and one IAM role per function with the least-privilege policy of infra/policy.py;
- the custom domain: ISSUER's host becomes an API Gateway regional domain name (certificate: the
  CertificateArn parameter), ISSUER's path its base path mapping, so the issuer and the URL the
  API answers on cannot differ; an optional HostedZoneId adds the Route 53 alias record;
- overrides of Chalice's function resources: fixed names (so the log groups and policies can name
  them), the roles above (config.json sets manage_iam_role: false), the runtime (Chalice would name
  the Python that runs it; infra/package.py builds the code for LAMBDA_RUNTIME on arm64), and for the
  API function SnapStart on a published version behind the alias API_ALIAS, which API Gateway invokes;
- operations (`operations_resources`): the API stage's throttle and JSON access logs, the
  execute-api endpoint turned off (the custom domain is the only way in, so the issuer is the only
  URL), optional reserved concurrency, and CloudWatch alarms to an optional SNS topic: 5xx rate,
  Lambda throttles, rotation failures, and sign-in failure spikes counted from the JSON logs.

    .venv/bin/python -m infra.template --stage prod              # the merge template
    .venv/bin/python -m infra.template --stage prod --stateful   # the stateful part alone (moto test)
"""
from __future__ import annotations

import json

from infra import policy
from infra.stage import Stage, load
from infra.tables import cloudformation_resources, retention

#: Role of each Chalice function (by function name); a new function must be given one here.
FUNCTION_ROLES = {"api_handler": "api", "rotate_signing_keys": "rotation", "deliver_logout": "logout"}
ROLES = {"api": policy.API_ROLE, "rotation": "RotationRole", "logout": "LogoutDeliveryRole"}
#: The logout queue (chalicelib/logout_queue.py). Lambda wants the visibility timeout at least the
#: function's timeout (10 s); a failed delivery comes back after it, up to MAX_RECEIVES times, then
#: goes to the dead-letter queue, kept 14 days for the operator (an alarm counts what lands there).
LOGOUT_VISIBILITY_TIMEOUT = 60
LOGOUT_MAX_RECEIVES = 5
DEAD_LETTER_RETENTION = 14 * 86400
#: Chalice's SAM event of the delivery function, whose placeholder queue is replaced by the stage's.
LOGOUT_EVENT = "DeliverLogoutSqsEventSource"
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
                "Description": f"{stage.stack_name}: encrypts the token signing-key "
                               + ("secrets" if s.key_backend == "secretsmanager" else "private keys"),
                "EnableKeyRotation": True,
                # Account administrators manage the key; the functions' IAM policies (infra/policy.py)
                # allow only Decrypt/GenerateDataKey through Secrets Manager (kms-envelope: Decrypt,
                # Encrypt, GenerateDataKeyPair under the stage's encryption context).
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
    resources[policy.FACTORS_KEY] = {
        "Type": "AWS::KMS::Key", **_retain(stage),
        "Properties": {"Description": f"{stage.stack_name}: seals the users' TOTP secrets", "EnableKeyRotation": True,
                       "KeyPolicy": policy.factors_key_policy(stage)},
    }
    resources["FactorsKeyAlias"] = {
        "Type": "AWS::KMS::Alias",
        "Properties": {"AliasName": stage.factors_key_alias, "TargetKeyId": {"Ref": policy.FACTORS_KEY}},
    }
    resources.update(logout_queue_resources(stage))
    documents = {"api": policy.api_policy(stage), "rotation": policy.rotation_policy(stage),
                 "logout": policy.logout_policy(stage)}
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


def logout_queue_resources(stage: Stage) -> dict:
    """The back-channel logout queue and its dead-letter queue, named after TABLE_PREFIX (so that
    `./idp-admin`, with operator credentials, finds it by name: chalicelib/logout_queue.py)."""
    from chalicelib.logout_queue import queue_name

    name = queue_name(stage.settings)
    return {
        policy.LOGOUT_DEAD_LETTERS: {"Type": "AWS::SQS::Queue", "Properties": {
            "QueueName": f"{name}-dead-letters", "MessageRetentionPeriod": DEAD_LETTER_RETENTION,
            "SqsManagedSseEnabled": True}},
        policy.LOGOUT_QUEUE: {"Type": "AWS::SQS::Queue", "Properties": {
            "QueueName": name, "VisibilityTimeout": LOGOUT_VISIBILITY_TIMEOUT, "SqsManagedSseEnabled": True,
            "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": [policy.LOGOUT_DEAD_LETTERS, "Arn"]},
                              "maxReceiveCount": LOGOUT_MAX_RECEIVES}}},
    }


def stateful_outputs(stage: Stage) -> dict:
    s = stage.settings
    outputs = {
        "Issuer": {"Description": "ISSUER of the stage (.chalice/config.json)", "Value": s.issuer},
        "TablePrefix": {"Description": "TABLE_PREFIX of the stage", "Value": s.table_prefix},
        "SecretPrefix": {"Description": "SECRET_PREFIX of the stage", "Value": s.secret_prefix},
        "KeyBackend": {"Description": "KEY_BACKEND of the stage", "Value": s.key_backend},
        "ApiRoleArn": {"Value": {"Fn::GetAtt": [ROLES["api"], "Arn"]}},
        "RotationRoleArn": {"Value": {"Fn::GetAtt": [ROLES["rotation"], "Arn"]}},
        "LogoutDeliveryRoleArn": {"Value": {"Fn::GetAtt": [ROLES["logout"], "Arn"]}},
        "LogoutQueueUrl": {"Value": {"Ref": policy.LOGOUT_QUEUE}},
    }
    if stage.secrets_key_alias:
        outputs["SecretsKmsKeyArn"] = {"Value": {"Fn::GetAtt": [policy.SECRETS_KEY, "Arn"]}}
        outputs["SecretsKmsKeyAlias"] = {"Value": stage.secrets_key_alias}
    outputs["FactorsKmsKeyArn"] = {"Value": {"Fn::GetAtt": [policy.FACTORS_KEY, "Arn"]}}
    outputs["FactorsKmsKeyAlias"] = {"Value": stage.factors_key_alias}
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
    """The custom domain and the mapping of the stage's API onto it. The domain is an API Gateway
    (v1) regional domain name behind either front door: custom domains are shared by REST and HTTP
    APIs, and keeping its type (and logical id) lets a stage switch API_FRONT_DOOR without
    re-creating the domain, whose regional host name the DNS record points at. The mapping is of
    the front door's own kind, under its own logical id (CloudFormation cannot change a resource's
    type in place)."""
    domain = {"Type": "AWS::ApiGateway::DomainName", "Properties": {
        "DomainName": stage.domain_name, "RegionalCertificateArn": {"Ref": "CertificateArn"},
        "EndpointConfiguration": {"Types": ["REGIONAL"]}, "SecurityPolicy": "TLS_1_2"}}
    if stage.front_door == "http":
        mapping_id = "ApiMapping"
        mapping = {"Type": "AWS::ApiGatewayV2::ApiMapping", "Properties": {
            "DomainName": {"Ref": "ApiDomain"}, "ApiId": {"Ref": "HttpApi"}, "Stage": {"Ref": "HttpApiStage"}}}
        if stage.base_path:
            mapping["Properties"]["ApiMappingKey"] = stage.base_path
    else:
        mapping_id = "ApiBasePathMapping"
        mapping = {"Type": "AWS::ApiGateway::BasePathMapping",
                   # The mapping names the stage, which SAM creates alongside the API.
                   "DependsOn": [SAM_STAGE.format(stage.api_gateway_stage)],
                   "Properties": {"DomainName": {"Ref": "ApiDomain"}, "RestApiId": {"Ref": "RestAPI"},
                                  "Stage": stage.api_gateway_stage}}
        if stage.base_path:
            mapping["Properties"]["BasePath"] = stage.base_path
    return {
        "ApiDomain": domain,
        mapping_id: mapping,
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


#: What `chalice package` generates for its REST API and the HTTP API front door does without
#: (infra/package.py removes them from sam.json: a merge template can add and override, not delete).
REST_API_RESOURCES = ("RestAPI",)
REST_API_OUTPUTS = ("RestAPIId", "EndpointURL")


def without_rest_api(template: dict) -> dict:
    """The packaged template of an API_FRONT_DOOR=http stage: Chalice's REST API removed."""
    return {**template,
            "Resources": {k: v for k, v in template["Resources"].items() if k not in REST_API_RESOURCES},
            "Outputs": {k: v for k, v in template.get("Outputs", {}).items() if k not in REST_API_OUTPUTS}}


def http_api_resources(stage: Stage) -> dict:
    """The HTTP API front door: one `$default` route to the API function's alias (payload format
    1.0: the REST proxy event shape, which chalicelib/front_door.py maps to the Chalice route), its
    `$default` stage auto-deployed, throttled and access-logged, execute-api off as for REST."""
    return {
        "HttpApi": {"Type": "AWS::ApiGatewayV2::Api", "Properties": {
            "Name": stage.stack_name, "ProtocolType": "HTTP", "DisableExecuteApiEndpoint": True,
            "Description": f"{stage.stack_name}: HTTP API front door (infra/template.py)"}},
        "HttpApiIntegration": {"Type": "AWS::ApiGatewayV2::Integration", "Properties": {
            "ApiId": {"Ref": "HttpApi"}, "IntegrationType": "AWS_PROXY", "IntegrationMethod": "POST",
            "IntegrationUri": {"Ref": API_ALIAS_RESOURCE}, "PayloadFormatVersion": "1.0"}},
        "HttpApiDefaultRoute": {"Type": "AWS::ApiGatewayV2::Route", "Properties": {
            "ApiId": {"Ref": "HttpApi"}, "RouteKey": "$default",
            "Target": {"Fn::Sub": "integrations/${HttpApiIntegration}"}}},
        "HttpApiStage": {"Type": "AWS::ApiGatewayV2::Stage", "Properties": {
            "ApiId": {"Ref": "HttpApi"}, "StageName": "$default", "AutoDeploy": True,
            "DefaultRouteSettings": {"ThrottlingRateLimit": {"Ref": "ApiRateLimit"},
                                     "ThrottlingBurstLimit": {"Ref": "ApiBurstLimit"}},
            "AccessLogSettings": {"DestinationArn": {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]},
                                  "Format": HTTP_ACCESS_LOG_FORMAT}}},
    }


def snapstart_resources(stage: Stage) -> dict:
    """SnapStart on the API function, and API Gateway invoking its alias (merged into Chalice's)."""
    from app import app

    resources = {
        "APIHandler": {"Properties": {"SnapStart": {"ApplyOn": "PublishedVersions"}, "AutoPublishAlias": API_ALIAS}},
        # Invoking an alias needs a permission on the alias itself; one on the function does not cover it.
        "APIHandlerInvokePermission": {"Properties": {"FunctionName": {"Ref": API_ALIAS_RESOURCE}}},
    }
    if stage.front_door == "http":
        # Chalice's permission names its REST API; the HTTP API replaces it (and the integration
        # names the alias already).
        resources["APIHandlerInvokePermission"] = {"Type": "AWS::Lambda::Permission", "Properties": {
            "FunctionName": {"Ref": API_ALIAS_RESOURCE}, "Action": "lambda:InvokeFunction",
            "Principal": "apigateway.amazonaws.com",
            "SourceArn": {"Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:"
                                     "${HttpApi}/*"}}}
        return resources
    paths = {path: {method.lower(): {"x-amazon-apigateway-integration": {"uri": {"Fn::Sub": ALIAS_INVOCATION_URI}}}
                    for method in entry}
             for path, entry in app.routes.items()}
    resources["RestAPI"] = {"Properties": {"DefinitionBody": {"paths": paths}}}
    return resources


#: API Gateway stage throttle defaults (requests per second, and the bucket's burst). The account's
#: own limit (10,000/s, burst 5,000) is shared by every API of the account and region: the stage
#: limit keeps one flood from taking all of it, and from scaling Lambda to its concurrency limit.
API_RATE_LIMIT = 1000
API_BURST_LIMIT = 2000
#: Alarm thresholds: 5xx share of the API's requests over 5 minutes; sign-in failures in 5 minutes.
API_5XX_RATE = 0.05
SIGN_IN_FAILURES = 100
#: What the sign-in failure metric counts: chalicelib/oauth/login.py's log lines (chalicelib/log.py
#: writes one JSON object per line, so the filter reads its `msg` field).
SIGN_IN_FAILURE_PATTERN = '{ ($.msg = "sign-in failed") || ($.msg = "sign-in throttled") }'
#: API Gateway access log: one JSON line per request. No query string, no headers: an /authorize
#: URL carries state and PKCE challenges, a token request credentials.
_ACCESS_LOG_FIELDS = {
    "request_id": "$context.requestId", "ip": "$context.identity.sourceIp", "time": "$context.requestTimeEpoch",
    "method": "$context.httpMethod", "resource": "$context.resourcePath", "status": "$context.status",
    "bytes": "$context.responseLength", "latency_ms": "$context.responseLatency",
    "integration_ms": "$context.integrationLatency", "error": "$context.error.responseType",
}
ACCESS_LOG_FORMAT = json.dumps(_ACCESS_LOG_FIELDS, separators=(",", ":"))
#: The same fields from an HTTP API: no resource path behind $default, so the path (which never
#: holds the query string).
HTTP_ACCESS_LOG_FORMAT = json.dumps({**_ACCESS_LOG_FIELDS, "resource": "$context.path"}, separators=(",", ":"))


def parameters(stage: Stage) -> dict:
    return {
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
        "AlarmTopicArn": {
            "Type": "String", "Default": "",
            "Description": "SNS topic the alarms notify (alarm and back to OK). Empty: the alarms only show in "
                           "CloudWatch",
            "AllowedPattern": r"^(arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_.-]+)?$",
        },
        "ReservedConcurrency": {
            "Type": "String", "Default": "",
            "Description": "Reserved concurrent executions of the API function (caps it, and guarantees them out of "
                           "the account's pool). Empty: none, the function shares the account's pool",
            "AllowedPattern": r"^\d*$",
        },
        "ApiRateLimit": {"Type": "Number", "Default": API_RATE_LIMIT, "MinValue": 1,
                         "Description": "API stage throttle: steady requests per second"},
        "ApiBurstLimit": {"Type": "Number", "Default": API_BURST_LIMIT, "MinValue": 1,
                          "Description": "API stage throttle: burst (token bucket size)"},
        "SignInFailureAlarmThreshold": {"Type": "Number", "Default": SIGN_IN_FAILURES, "MinValue": 1,
                                        "Description": "Failed or throttled sign-ins in 5 minutes that raise the "
                                                       "alarm"},
    }


def _alarm(stage: Stage, name: str, description: str, metric: dict, **settings) -> dict:
    notify = {"Fn::If": ["NotifyAlarms", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    return {"Type": "AWS::CloudWatch::Alarm", "Properties": {
        "AlarmName": f"{stage.stack_name}-{name}", "AlarmDescription": description, **metric,
        "EvaluationPeriods": 1, "TreatMissingData": "notBreaching", **settings,
        "AlarmActions": notify, "OKActions": notify}}


def operations_resources(stage: Stage) -> dict:
    """Throttle, access logs, execute-api off, reserved concurrency and alarms (see the module docstring)."""
    api = stage.function_name("api")
    access_log = f"/aws/apigateway/{stage.stack_name}-access"
    return {
        "APIHandler": {"Properties": {"ReservedConcurrentExecutions": {
            "Fn::If": ["ReserveConcurrency", {"Ref": "ReservedConcurrency"}, {"Ref": "AWS::NoValue"}]}}},
        **(http_api_resources(stage) if stage.front_door == "http" else _rest_api_operations(stage)),
        "ApiAccessLogGroup": {"Type": "AWS::Logs::LogGroup",
                              "Properties": {"LogGroupName": access_log, "RetentionInDays": LOG_RETENTION_DAYS}},
        "SignInFailureMetric": {"Type": "AWS::Logs::MetricFilter", "Properties": {
            "LogGroupName": {"Ref": policy.LOG_GROUPS["api"]}, "FilterPattern": SIGN_IN_FAILURE_PATTERN,
            "MetricTransformations": [{"MetricNamespace": stage.stack_name, "MetricName": "SignInFailures",
                                       "MetricValue": "1", "Unit": "Count"}]}},
        "Api5xxAlarm": _alarm(
            stage, "api-5xx", f"More than {API_5XX_RATE:.0%} of requests answered 5xx in 5 minutes: a dependency "
                              "fault (503) or a bug (500); see the API function's logs",
            _api_5xx_metric(stage),
            Threshold=API_5XX_RATE, ComparisonOperator="GreaterThanThreshold", EvaluationPeriods=2,
            DatapointsToAlarm=2),
        "ApiThrottleAlarm": _alarm(
            stage, "api-throttles", "Lambda throttled the API function: its concurrency (reserved, or the "
                                    "account's) is exhausted and requests fail with 5xx",
            {"Namespace": "AWS/Lambda", "MetricName": "Throttles", "Statistic": "Sum", "Period": 300,
             "Dimensions": [{"Name": "FunctionName", "Value": api}]},
            Threshold=0, ComparisonOperator="GreaterThanThreshold"),
        "RotationFailureAlarm": _alarm(
            stage, "rotation-failures", "The signing-key rotation function failed; see "
                                        f"/aws/lambda/{stage.function_name('rotation')}",
            {"Namespace": "AWS/Lambda", "MetricName": "Errors", "Statistic": "Sum", "Period": 3600,
             "Dimensions": [{"Name": "FunctionName", "Value": stage.function_name("rotation")}]},
            Threshold=0, ComparisonOperator="GreaterThanThreshold"),
        "SignInFailureAlarm": _alarm(
            stage, "sign-in-failures", "A spike of failed or throttled sign-ins: password guessing or "
                                       "credential stuffing (per-account and per-address limits apply)",
            {"Namespace": stage.stack_name, "MetricName": "SignInFailures", "Statistic": "Sum", "Period": 300},
            Threshold={"Ref": "SignInFailureAlarmThreshold"}, ComparisonOperator="GreaterThanOrEqualToThreshold"),
    }


def _api_5xx_metric(stage: Stage) -> dict:
    """API Gateway's 5xx share: "5XXError" by API name for REST APIs, "5xx" by API id for HTTP APIs."""
    if stage.front_door == "http":
        return {"Namespace": "AWS/ApiGateway", "MetricName": "5xx", "Statistic": "Average", "Period": 300,
                "Dimensions": [{"Name": "ApiId", "Value": {"Ref": "HttpApi"}}, {"Name": "Stage", "Value": "$default"}]}
    return {"Namespace": "AWS/ApiGateway", "MetricName": "5XXError", "Statistic": "Average", "Period": 300,
            "Dimensions": [{"Name": "ApiName", "Value": stage.stack_name},
                           {"Name": "Stage", "Value": stage.api_gateway_stage}]}


def _rest_api_operations(stage: Stage) -> dict:
    """The REST API's stage settings, and the account-wide role API Gateway (v1) logs through (HTTP
    APIs log through their service-linked role)."""
    return {
        "RestAPI": {
            # The stage must not be created before API Gateway may write the account's logs.
            "DependsOn": ["ApiGatewayAccount"],
            "Properties": {
                # Named for the stack (Chalice would name every stage's API after the app), so its
                # metrics, which API Gateway keys by name, are this stage's alone.
                "Name": stage.stack_name,
                "DefinitionBody": {"info": {"title": stage.stack_name}},
                "DisableExecuteApiEndpoint": True,
                "MethodSettings": [{"ResourcePath": "/*", "HttpMethod": "*",
                                    "ThrottlingRateLimit": {"Ref": "ApiRateLimit"},
                                    "ThrottlingBurstLimit": {"Ref": "ApiBurstLimit"}}],
                "AccessLogSetting": {"DestinationArn": {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]},
                                     "Format": ACCESS_LOG_FORMAT},
            }},
        # API Gateway writes logs through one role per account and region. Kept when the stack goes,
        # because other APIs of the account may log through it by then.
        "ApiGatewayLogRole": {
            "Type": "AWS::IAM::Role", "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
            "Properties": {
                "Description": "API Gateway's account-wide CloudWatch Logs role (set by "
                               f"{stage.stack_name}, infra/template.py)",
                "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
                    {"Effect": "Allow", "Principal": {"Service": "apigateway.amazonaws.com"},
                     "Action": "sts:AssumeRole"}]},
                "ManagedPolicyArns": [{"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/"
                                                  "AmazonAPIGatewayPushToCloudWatchLogs"}],
            }},
        "ApiGatewayAccount": {"Type": "AWS::ApiGateway::Account", "DeletionPolicy": "Retain",
                              "UpdateReplacePolicy": "Retain",
                              "Properties": {"CloudWatchRoleArn": {"Fn::GetAtt": ["ApiGatewayLogRole", "Arn"]}}},
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
        if role in ("api", "logout"):
            # The queue a sign-out puts its message on, and the fan-out too (chalicelib/logout_queue.py).
            resources[logical_id]["Properties"]["Environment"] = {
                "Variables": {"LOGOUT_QUEUE_URL": {"Ref": policy.LOGOUT_QUEUE}}}
        if role == "logout":
            resources[logical_id]["Properties"]["Events"] = {LOGOUT_EVENT: {"Properties": {
                "Queue": {"Fn::GetAtt": [policy.LOGOUT_QUEUE, "Arn"]}, "BatchSize": 1}}}
    for logical_id, resource in [*snapstart_resources(stage).items(), *operations_resources(stage).items()]:
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
        "Parameters": parameters(stage),
        "Conditions": {
            "CreateDnsRecord": {"Fn::Not": [{"Fn::Equals": [{"Ref": "HostedZoneId"}, ""]}]},
            "NotifyAlarms": {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]},
            "ReserveConcurrency": {"Fn::Not": [{"Fn::Equals": [{"Ref": "ReservedConcurrency"}, ""]}]},
        },
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
