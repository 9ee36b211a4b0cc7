"""infra/template.py: the stage's resources, roles and domain are rendered from config.json and the
code, with least-privilege policies and an issuer that cannot differ from the API's URL."""
from __future__ import annotations

import json

import pytest

from infra import policy
from infra.stage import CONFIG, StageError, load
from infra.template import lambda_functions, merge_template, stateful_template
from tests.infra.stage_config import stage_with

SERVICES = ("dynamodb:", "kms:", "secretsmanager:")


def role_statements(template: dict) -> list[dict]:
    return [statement for resource in template["Resources"].values() if resource.get("Type") == "AWS::IAM::Role"
            for document in resource["Properties"].get("Policies", []) for statement in document["PolicyDocument"]["Statement"]]


def as_list(value):
    return value if isinstance(value, list) else [value]


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_no_function_may_touch_dynamodb_kms_or_secrets_manager_on_a_wildcard_resource(stage):
    statements = [s for s in role_statements(merge_template(load(stage)))
                  if any(action.startswith(SERVICES) for action in as_list(s["Action"]))]
    assert statements
    for statement in statements:
        for resource in as_list(statement["Resource"]):
            # A reference to one of the stack's own resources ...
            assert isinstance(resource, dict) and set(resource) <= {"Fn::GetAtt", "Fn::Sub"}, statement
            # ... and the only patterns: secrets the key ring, or the operator's connections (issue
            # 15), name later under the stage's prefix.
            arn = resource.get("Fn::Sub", "")
            assert "*" not in arn or arn.endswith((f":secret:idp/{stage}/signing-keys/*",
                                                   f":secret:idp/{stage}/connections/*")), statement


def table_actions(document: dict) -> dict[str, set[str]]:
    """Logical id of a table (or "<table>/index/<name>") -> the DynamoDB actions the policy grants on it."""
    granted: dict[str, set[str]] = {}
    for statement in document["Statement"]:
        for resource in as_list(statement["Resource"]):
            if "Fn::GetAtt" in resource:
                name = resource["Fn::GetAtt"][0]
            else:
                name = resource["Fn::Sub"].removeprefix("${").replace(".Arn}", "")
            if name.startswith("Table"):
                granted.setdefault(name, set()).update(as_list(statement["Action"]))
    return granted


def test_the_api_role_gets_per_table_exactly_what_the_storage_layer_declares():
    from chalicelib.storage.access import API_INDEX_ACTIONS, API_TABLE_ACTIONS
    from infra.tables import logical_id

    granted = table_actions(policy.api_policy(load("prod")))
    every_table = {name for name, r in stateful_template(load("prod"))["Resources"].items()
                   if r["Type"] == "AWS::DynamoDB::Table"}
    assert {name for name in granted if "/" not in name} == every_table
    for suffix, actions in API_TABLE_ACTIONS.items():
        assert granted[logical_id(suffix)] == set(actions), suffix
    for (suffix, index), actions in API_INDEX_ACTIONS.items():
        assert granted[f"{logical_id(suffix)}/index/{index}"] == set(actions)


def test_the_api_role_cannot_scan_the_users_table_or_write_the_key_ring():
    granted = table_actions(policy.api_policy(load("prod")))
    # PutItem since self-service sign-up and invitations (issue 12): only storage/users.create_user
    # puts, in a transaction whose items are each conditioned on a new key, so no user is ever
    # overwritten; IAM cannot express that condition, so the code's is the guard.
    assert not {"dynamodb:Scan", "dynamodb:Query"} & granted["TableUsers"]
    assert granted["TableSigningKeys"] == {"dynamodb:GetItem", "dynamodb:Scan"}
    batch_read = {name for name, actions in granted.items() if "dynamodb:BatchGetItem" in actions}
    # The account page reads a user's consents with their clients' names in one batch (issue 12); the
    # second step of a sign-in reads the half-done sign-in, its user and the factor in one (issue 13).
    assert batch_read == {"TableUsers", "TableGrants", "TableAuthorizationRequests", "TableSessions", "TableConsents",
                          "TableClients", "TableFactors"}
    queried = {name for name, actions in granted.items() if "dynamodb:Query" in actions}
    # Factors: one user's factors by their partition key, the sub (the account page, issue 13).
    assert queried == {"TableGrants", "TableGrants/index/by_client", "TableFactors"}
    scanned = {name for name, actions in granted.items() if "dynamodb:Scan" in actions}
    # ... and the few connections (issue 15), once per container per CLIENT_CACHE_SECONDS.
    assert scanned == {"TableSigningKeys", "TableResources", "TableConnections"}, \
        "only the two summaries' one-off fallbacks and the cached connections scan"
    assert granted["TableConnections"] == {"dynamodb:GetItem", "dynamodb:Scan"}


def test_a_table_without_declared_api_actions_is_refused(monkeypatch):
    from chalicelib.storage import access

    monkeypatch.setattr(access, "API_TABLE_ACTIONS", {k: v for k, v in access.API_TABLE_ACTIONS.items()
                                                      if k != "consents"})
    monkeypatch.setattr(policy, "API_TABLE_ACTIONS", access.API_TABLE_ACTIONS)
    with pytest.raises(KeyError, match="consents"):
        policy.api_policy(load("prod"))


def test_the_api_role_may_query_only_the_grants_index_by_name():
    statements = [s for s in policy.api_policy(load("prod"))["Statement"] if "/index/" in json.dumps(s["Resource"])]
    assert [(s["Action"], s["Resource"]) for s in statements] == [
        (["dynamodb:Query"], {"Fn::Sub": "${TableGrants.Arn}/index/by_client"})]


def secretsmanager_stage(tmp_path):
    """prod with the Secrets Manager key backend (the deployed stages default to kms-envelope)."""
    return stage_with(tmp_path, KEY_BACKEND="secretsmanager", ENVELOPE_KMS_KEY_ID=None,
                      SECRETS_KMS_KEY_ID="alias/serverless-idp-prod-secrets")


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_deployed_stages_sign_with_envelope_keys_under_the_key_the_stack_creates(stage):
    loaded = load(stage)
    assert loaded.settings.key_backend == "kms-envelope"
    alias = stateful_template(loaded)["Resources"]["SecretsKeyAlias"]["Properties"]
    assert alias == {"AliasName": loaded.settings.envelope_kms_key_id, "TargetKeyId": {"Ref": "SecretsKey"}}
    assert alias["AliasName"] == f"alias/serverless-idp-{stage}-signing-keys"


def test_the_api_role_reads_signing_keys_but_cannot_create_or_delete_them(tmp_path):
    stage = secretsmanager_stage(tmp_path)
    api = {a for s in policy.api_policy(stage)["Statement"] for a in as_list(s["Action"])}
    rotation = {a for s in policy.rotation_policy(stage)["Statement"] for a in as_list(s["Action"])}
    assert "secretsmanager:GetSecretValue" in api
    assert not api & {"secretsmanager:CreateSecret", "secretsmanager:DeleteSecret", "kms:GenerateDataKey"}
    assert {"secretsmanager:CreateSecret", "secretsmanager:DeleteSecret", "kms:GenerateDataKey"} <= rotation
    secrets = next(s for s in policy.api_policy(stage)["Statement"] if s["Sid"] == "ReadSigningKeySecrets")
    assert secrets["Resource"]["Fn::Sub"].endswith(":secret:idp/prod/signing-keys/*")


@pytest.mark.parametrize("backend", [{"KEY_BACKEND": "kms", "KMS_SIGNER_ROLE_NAME": "serverless-idp-prod-api"},
                                     {"KEY_BACKEND": "secretsmanager", "ENVELOPE_KMS_KEY_ID": None,
                                      "SECRETS_KMS_KEY_ID": "alias/serverless-idp-prod-secrets"},
                                     {}])
def test_the_api_role_only_reads_connection_secrets_under_the_stage_prefix(tmp_path, backend):
    """Issue 15: the client secrets and private keys of upstream identity providers are read by the
    API (chalicelib/federation/connections.secret), never written, and only under SECRET_PREFIX."""
    stage = stage_with(tmp_path, **backend)
    api = {s["Sid"]: s for s in policy.api_policy(stage)["Statement"]}
    read = api["ReadConnectionSecrets"]
    assert read["Action"] == ["secretsmanager:GetSecretValue"]
    assert read["Resource"]["Fn::Sub"].endswith(":secret:idp/prod/connections/*")
    rotation = {a for s in policy.rotation_policy(stage)["Statement"] for a in as_list(s["Action"])}
    written = {a for s in api.values() for a in as_list(s["Action"]) if a.startswith("secretsmanager:")
               and a != "secretsmanager:GetSecretValue"}
    assert not written
    assert all("connections" not in json.dumps(s) for s in policy.rotation_policy(stage)["Statement"]) and rotation


def test_the_secrets_kms_key_is_usable_only_through_secrets_manager(tmp_path):
    stage = secretsmanager_stage(tmp_path)
    for document in (policy.api_policy(stage), policy.rotation_policy(stage)):
        kms = [s for s in document["Statement"] if any(a.startswith("kms:") for a in as_list(s["Action"]))]
        assert kms and all(s["Resource"] == {"Fn::GetAtt": ["SecretsKey", "Arn"]} for s in kms)
        assert all(s["Condition"]["StringEquals"]["kms:ViaService"] == {
            "Fn::Sub": "secretsmanager.${AWS::Region}.amazonaws.com"} for s in kms)


def test_the_alias_the_stack_creates_is_the_one_the_functions_encrypt_with(tmp_path):
    stage = secretsmanager_stage(tmp_path)
    alias = stateful_template(stage)["Resources"]["SecretsKeyAlias"]["Properties"]
    assert alias == {"AliasName": stage.env["SECRETS_KMS_KEY_ID"], "TargetKeyId": {"Ref": "SecretsKey"}}


def test_with_the_kms_backend_no_iam_statement_mentions_kms_or_secrets(tmp_path):
    stage = stage_with(tmp_path, KEY_BACKEND="kms", KMS_SIGNER_ROLE_NAME="serverless-idp-prod-api")
    template = merge_template(stage)
    assert "SecretsKey" not in template["Resources"]
    # Upstream connections' secrets (issue 15) and the DPoP nonce key (issue 16) are read with every
    # key backend; they are not signing keys.
    statements = [s for s in role_statements(template) if s.get("Sid") not in ("ReadConnectionSecrets",
                                                                               "ReadDpopNonceKey")]
    actions = {a for s in statements for a in as_list(s["Action"])}
    assert not {a for a in actions if a.startswith(("kms:", "secretsmanager:"))}
    assert template["Resources"]["ApiRole"]["Properties"]["RoleName"] == stage.settings.kms_signer_role_name


def test_with_the_envelope_backend_the_stage_key_opens_only_this_stages_signing_keys_each_naming_its_kid(tmp_path):
    stage = stage_with(tmp_path, KEY_BACKEND="kms-envelope", ENVELOPE_KMS_KEY_ID="alias/serverless-idp-prod-signing-keys")
    template = merge_template(stage)
    assert template["Resources"]["SecretsKeyAlias"]["Properties"] == {
        "AliasName": "alias/serverless-idp-prod-signing-keys", "TargetKeyId": {"Ref": "SecretsKey"}}
    # Upstream connections' secrets (issue 15) and the DPoP nonce key (issue 16) are read with every
    # key backend; they are not signing keys.
    by_role = {role: {s["Sid"]: s for s in document["Statement"]
                      if s["Sid"] not in ("ReadConnectionSecrets", "ReadDpopNonceKey", "CreateDpopNonceKey")}
               for role, document in (("api", policy.api_policy(stage)), ("rotation", policy.rotation_policy(stage)))}
    kms = {role: {a for s in statements.values() for a in as_list(s["Action"]) if a.startswith(("kms:", "secretsmanager:"))}
           for role, statements in by_role.items()}
    assert kms == {"api": {"kms:Decrypt"},
                   "rotation": {"kms:GenerateDataKeyPair", "kms:Encrypt", "kms:DescribeKey"}}
    named_kid = {"StringEquals": {"kms:EncryptionContext:idp:stage": "prod"},
                 "Null": {"kms:EncryptionContext:idp:kid": "false"}}
    assert by_role["api"]["DecryptSigningKeys"]["Condition"] == named_kid
    assert by_role["rotation"]["SealSigningKeys"]["Condition"] == named_kid
    assert by_role["rotation"]["GenerateSigningKeyPairs"]["Condition"] == {"StringEquals": {
        "kms:EncryptionContext:idp:stage": "prod", "kms:DataKeyPairSpec": ["ECC_NIST_P256", "RSA_2048"]}}
    for statements in by_role.values():
        assert all(s["Resource"] == {"Fn::GetAtt": ["SecretsKey", "Arn"]}
                   for s in statements.values() if any(a.startswith("kms:") for a in as_list(s["Action"])))


def test_each_chalice_function_runs_with_its_own_role_name_and_log_group():
    stage = load("prod")
    resources = merge_template(stage)["Resources"]
    assert lambda_functions() == {"APIHandler": "api", "RotateSigningKeys": "rotation", "DeliverLogout": "logout"}
    for logical_id, role, group in (("APIHandler", "ApiRole", "ApiLogGroup"),
                                    ("RotateSigningKeys", "RotationRole", "RotationLogGroup"),
                                    ("DeliverLogout", "LogoutDeliveryRole", "LogoutLogGroup")):
        function = resources[logical_id]
        assert function["Properties"]["Role"] == {"Fn::GetAtt": [role, "Arn"]}
        assert function["DependsOn"] == [group]
        assert resources[group]["Properties"]["LogGroupName"] == f"/aws/lambda/{function['Properties']['FunctionName']}"


def test_a_new_function_without_a_role_is_refused(monkeypatch):
    from chalice.app import ScheduledEventConfig

    from app import app

    monkeypatch.setattr(app, "event_sources", [*app.event_sources, ScheduledEventConfig(
        name="nightly_report", handler_string="x.y", schedule_expression="rate(1 day)", description="")])
    with pytest.raises(KeyError, match="nightly_report"):
        lambda_functions()


def rest_stage(tmp_path, **changes):
    """prod behind the REST API front door (the shipped stages use the HTTP API)."""
    return stage_with(tmp_path, API_FRONT_DOOR="rest", **changes)


def test_the_custom_domain_is_the_issuer_host_at_the_root_of_the_api(tmp_path):
    stage = rest_stage(tmp_path)
    resources = merge_template(stage)["Resources"]
    assert resources["ApiDomain"]["Properties"]["DomainName"] == "login.example.com" == stage.domain_name
    mapping = resources["ApiBasePathMapping"]
    assert "BasePath" not in mapping["Properties"]
    assert mapping["Properties"]["Stage"] == "api"
    # SAM names the stage resource <RestApi logical id><stage name>Stage; the mapping needs it first.
    assert mapping["DependsOn"] == ["RestAPIapiStage"]


def test_an_issuer_path_becomes_the_base_path_mapping(tmp_path):
    stage = rest_stage(tmp_path, ISSUER="https://example.org/idp")
    mapping = merge_template(stage)["Resources"]["ApiBasePathMapping"]["Properties"]
    assert mapping["BasePath"] == "idp"
    assert merge_template(stage)["Resources"]["ApiDomain"]["Properties"]["DomainName"] == "example.org"
    assert merge_template(stage)["Outputs"]["DiscoveryURL"]["Value"] == \
        "https://example.org/idp/.well-known/openid-configuration"


@pytest.mark.parametrize(("changes", "message"), [
    ({"ISSUER": "https://abc123.execute-api.eu-west-1.amazonaws.com/api"}, "your own domain"),
    ({"ISSUER": "https://example.org/a/b"}, "at most one segment"),
    ({"ISSUER": "http://login.example.com"}, "https"),
    ({"STAGE": "dev"}, "STAGE is 'dev'"),
    ({"api_gateway_endpoint_type": "EDGE"}, "REGIONAL"),
    ({"manage_iam_role": None}, "manage_iam_role"),
    ({"KEY_BACKEND": "secretsmanager", "SECRETS_KMS_KEY_ID": None}, "SECRETS_KMS_KEY_ID"),
    ({"ENVELOPE_KMS_KEY_ID": None}, "ENVELOPE_KMS_KEY_ID"),
    ({"KEY_BACKEND": "kms"}, "KMS_SIGNER_ROLE_NAME"),
    ({"KEY_BACKEND": "kms-envelope", "ENVELOPE_KMS_KEY_ID": "arn:aws:kms:us-east-1:1:key/x"}, "ENVELOPE_KMS_KEY_ID"),
    ({"KEY_RETIRE_AFTER": "600"}, "KEY_RETIRE_AFTER"),
])
def test_a_stage_the_template_cannot_deploy_is_refused_with_the_fix(tmp_path, changes, message):
    with pytest.raises(StageError, match=message):
        stage_with(tmp_path, **changes)


def test_the_stateful_part_keeps_prod_data_and_lets_dev_go():
    for stage, deletion, replacement in (("prod", "RetainExceptOnCreate", "Retain"), ("dev", "Delete", "Delete")):
        resources = stateful_template(load(stage))["Resources"]
        for name in ("TableUsers", "SecretsKey"):
            assert resources[name]["DeletionPolicy"] == deletion
            assert resources[name]["UpdateReplacePolicy"] == replacement
        assert resources["TableUsers"]["Properties"]["DeletionProtectionEnabled"] is (stage == "prod")


def test_a_failed_first_create_of_prod_leaves_nothing_behind_that_would_block_a_retry():
    """Retain would keep fixed-name tables after a first creation that rolled back, and every later
    attempt would fail with "already exists"; RetainExceptOnCreate deletes them on that rollback only."""
    resources = stateful_template(load("prod"))["Resources"]
    kept = {name for name, r in resources.items() if r.get("DeletionPolicy", "Delete") != "Delete"}
    assert kept == {name for name, r in resources.items()
                    if r["Type"] in ("AWS::DynamoDB::Table", "AWS::KMS::Key")}
    assert {resources[name]["DeletionPolicy"] for name in kept} == {"RetainExceptOnCreate"}


def test_rendering_does_not_depend_on_this_process_table_prefix():
    # The tests run with TABLE_PREFIX=idp-test; the template must still name the stage's tables.
    names = {r["Properties"]["TableName"] for r in stateful_template(load("dev"))["Resources"].values()
             if r["Type"] == "AWS::DynamoDB::Table"}
    assert names and all(name.startswith("idp-dev-") for name in names)


def test_the_command_line_renders_json_and_explains_a_bad_stage(capsys, monkeypatch, tmp_path):
    from infra import stage as stage_module
    from infra.template import main

    assert main(["--stage", "prod", "--stateful"]) == 0
    assert json.loads(capsys.readouterr().out)["Outputs"]["TablePrefix"]["Value"] == "idp-prod"
    config = json.loads(CONFIG.read_text())
    config["stages"]["prod"]["environment_variables"]["ISSUER"] = "https://x.execute-api.us-east-1.amazonaws.com/api"
    (tmp_path / "config.json").write_text(json.dumps(config))
    monkeypatch.setattr(stage_module, "CONFIG", tmp_path / "config.json")
    assert main(["--stage", "prod"]) == 2
    assert "your own domain" in capsys.readouterr().err


def test_the_api_stage_is_throttled_logged_and_reachable_only_through_the_custom_domain(tmp_path):
    stage = rest_stage(tmp_path)
    template = merge_template(stage)
    api = template["Resources"]["RestAPI"]
    properties = api["Properties"]
    assert properties["DisableExecuteApiEndpoint"] is True, "the issuer's domain is the only way in"
    assert properties["MethodSettings"] == [{"ResourcePath": "/*", "HttpMethod": "*",
                                             "ThrottlingRateLimit": {"Ref": "ApiRateLimit"},
                                             "ThrottlingBurstLimit": {"Ref": "ApiBurstLimit"}}]
    assert template["Parameters"]["ApiRateLimit"]["Default"] <= template["Parameters"]["ApiBurstLimit"]["Default"]
    access = properties["AccessLogSetting"]
    assert access["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    logged = json.loads(access["Format"])
    assert {"request_id", "ip", "status", "resource"} <= set(logged)
    assert not any("querystring" in v.lower() or "header" in v.lower() for v in logged.values()), \
        "no query strings (state, PKCE challenges) or headers (credentials) in the access log"
    assert api["DependsOn"] == ["ApiGatewayAccount"]
    assert properties["Name"] == properties["DefinitionBody"]["info"]["title"] == stage.stack_name


def test_reserved_concurrency_is_optional():
    template = merge_template(load("prod"))
    reserved = template["Resources"]["APIHandler"]["Properties"]["ReservedConcurrentExecutions"]
    assert reserved == {"Fn::If": ["ReserveConcurrency", {"Ref": "ReservedConcurrency"}, {"Ref": "AWS::NoValue"}]}
    assert template["Parameters"]["ReservedConcurrency"]["Default"] == ""


def test_alarms_cover_5xx_throttles_rotation_failures_and_sign_in_spikes_and_notify_the_topic(tmp_path):
    stage = rest_stage(tmp_path)
    resources = merge_template(stage)["Resources"]
    alarms = {name: r["Properties"] for name, r in resources.items() if r.get("Type") == "AWS::CloudWatch::Alarm"}
    metrics = {name: (a["Namespace"], a["MetricName"], {d["Value"] for d in a.get("Dimensions", [])})
               for name, a in alarms.items()}
    assert metrics == {
        "Api5xxAlarm": ("AWS/ApiGateway", "5XXError", {stage.stack_name, "api"}),
        "ApiThrottleAlarm": ("AWS/Lambda", "Throttles", {"serverless-idp-prod-api"}),
        "RotationFailureAlarm": ("AWS/Lambda", "Errors", {"serverless-idp-prod-rotation"}),
        "SignInFailureAlarm": (stage.stack_name, "SignInFailures", set()),
    }
    notify = {"Fn::If": ["NotifyAlarms", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    assert all(a["AlarmActions"] == a["OKActions"] == notify for a in alarms.values())
    metric_filter = resources["SignInFailureMetric"]["Properties"]
    assert metric_filter["LogGroupName"] == {"Ref": "ApiLogGroup"}
    assert metric_filter["MetricTransformations"][0]["MetricName"] == "SignInFailures"
    assert resources["APIHandler"]["Properties"]["FunctionName"] == "serverless-idp-prod-api"


def test_new_stages_serve_through_an_http_api_and_an_unknown_front_door_is_refused(tmp_path):
    assert load("prod").front_door == load("dev").front_door == "http"
    assert stage_with(tmp_path, API_FRONT_DOOR=None).front_door == "http", "the default for new deployments"
    with pytest.raises(StageError, match="API_FRONT_DOOR must be one of http, rest"):
        stage_with(tmp_path, API_FRONT_DOOR="alb")


def test_the_http_api_sends_every_request_to_the_snapstart_alias_in_the_rest_event_shape():
    resources = merge_template(load("prod"))["Resources"]
    integration = resources["HttpApiIntegration"]["Properties"]
    assert integration["IntegrationType"] == "AWS_PROXY"
    assert integration["PayloadFormatVersion"] == "1.0", "the REST proxy event shape chalicelib/front_door.py maps"
    assert integration["IntegrationUri"] == {"Ref": "APIHandlerAliaslive"}, "SnapStart: the published alias"
    route = resources["HttpApiDefaultRoute"]["Properties"]
    assert route["RouteKey"] == "$default"
    assert route["Target"] == {"Fn::Sub": "integrations/${HttpApiIntegration}"}
    permission = resources["APIHandlerInvokePermission"]["Properties"]
    assert permission["FunctionName"] == {"Ref": "APIHandlerAliaslive"}
    assert permission["SourceArn"]["Fn::Sub"].endswith(":${HttpApi}/*")
    assert not {"RestAPI", "ApiBasePathMapping", "ApiGatewayAccount", "ApiGatewayLogRole"} & set(resources), \
        "no REST API resources behind the HTTP API"


def test_the_http_api_stage_is_throttled_logged_and_reachable_only_through_the_custom_domain():
    stage = load("prod")
    resources = merge_template(stage)["Resources"]
    assert resources["HttpApi"]["Properties"]["DisableExecuteApiEndpoint"] is True
    assert resources["HttpApi"]["Properties"]["Name"] == stage.stack_name
    settings = resources["HttpApiStage"]["Properties"]
    assert settings["StageName"] == "$default" and settings["AutoDeploy"] is True
    assert settings["DefaultRouteSettings"] == {"ThrottlingRateLimit": {"Ref": "ApiRateLimit"},
                                                "ThrottlingBurstLimit": {"Ref": "ApiBurstLimit"}}
    access = settings["AccessLogSettings"]
    assert access["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    logged = json.loads(access["Format"])
    assert {"request_id", "ip", "status", "resource"} <= set(logged)
    assert not any("querystring" in v.lower() or "header" in v.lower() for v in logged.values())
    alarm = resources["Api5xxAlarm"]["Properties"]
    assert (alarm["MetricName"], alarm["Dimensions"]) == (
        "5xx", [{"Name": "ApiId", "Value": {"Ref": "HttpApi"}}, {"Name": "Stage", "Value": "$default"}])


def test_the_http_api_is_mapped_at_the_issuer_path_of_the_same_custom_domain(tmp_path):
    resources = merge_template(load("prod"))["Resources"]
    assert resources["ApiDomain"] == merge_template(rest_stage(tmp_path))["Resources"]["ApiDomain"], \
        "switching front doors keeps the domain (and its regional host name, which DNS points at)"
    assert resources["ApiDomain"]["Properties"]["DomainName"] == "login.example.com"
    assert "ApiBasePathMapping" not in resources
    mapping = resources["ApiMapping"]
    assert mapping["Type"] == "AWS::ApiGatewayV2::ApiMapping"
    assert mapping["Properties"] == {"DomainName": {"Ref": "ApiDomain"}, "ApiId": {"Ref": "HttpApi"},
                                     "Stage": {"Ref": "HttpApiStage"}}
    with_path = merge_template(stage_with(tmp_path, ISSUER="https://example.org/idp"))["Resources"]
    assert with_path["ApiMapping"]["Properties"]["ApiMappingKey"] == "idp"


def test_the_packaged_http_variant_drops_chalices_rest_api():
    from infra.template import without_rest_api

    sam = {"Resources": {"RestAPI": {}, "APIHandler": {}, "HttpApi": {}},
           "Outputs": {"RestAPIId": {}, "EndpointURL": {}, "DiscoveryURL": {}}}
    assert without_rest_api(sam) == {"Resources": {"APIHandler": {}, "HttpApi": {}}, "Outputs": {"DiscoveryURL": {}}}


def _send_email_statements(document: dict) -> list[dict]:
    return [s for s in document["Statement"] if any(a.startswith("ses:") for a in as_list(s["Action"]))]


def test_the_api_role_may_send_email_only_from_email_from_and_only_it():
    stage = load("prod")
    (statement,) = _send_email_statements(policy.api_policy(stage))
    sub = "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:"
    assert statement["Action"] == ["ses:SendEmail"]
    assert statement["Resource"] == [{"Fn::Sub": f"{sub}identity/login.example.com"},
                                     {"Fn::Sub": f"{sub}identity/no-reply@login.example.com"}]
    assert statement["Condition"] == {"StringEquals": {"ses:FromAddress": "no-reply@login.example.com"}}
    assert _send_email_statements(policy.rotation_policy(stage)) == []


def test_a_configuration_set_is_granted_by_name_when_one_is_configured(tmp_path):
    stage = stage_with(tmp_path, EMAIL_FROM="Acme <login@mail.acme.dev>", SES_CONFIGURATION_SET="idp-events")
    (statement,) = _send_email_statements(policy.api_policy(stage))
    resources = [r["Fn::Sub"].rpartition(":")[2] for r in statement["Resource"]]
    assert resources == ["identity/mail.acme.dev", "identity/login@mail.acme.dev", "configuration-set/idp-events"]
    assert statement["Condition"]["StringEquals"]["ses:FromAddress"] == "login@mail.acme.dev"
    assert all("*" not in r["Fn::Sub"] for r in statement["Resource"])


@pytest.mark.parametrize("backend", [{"KEY_BACKEND": "kms", "KMS_SIGNER_ROLE_NAME": "serverless-idp-prod-api"},
                                     {"KEY_BACKEND": "kms-envelope",
                                      "ENVELOPE_KMS_KEY_ID": "alias/serverless-idp-prod-signing-keys"},
                                     {"KEY_BACKEND": "secretsmanager", "ENVELOPE_KMS_KEY_ID": None,
                                      "SECRETS_KMS_KEY_ID": "alias/serverless-idp-prod-secrets"}])
def test_totp_secrets_have_a_key_of_their_own_that_only_the_api_role_uses_under_this_stages_context(tmp_path, backend):
    stage = stage_with(tmp_path, **backend)
    resources = merge_template(stage)["Resources"]
    assert resources["FactorsKeyAlias"]["Properties"] == {"AliasName": "alias/idp-prod-factors",
                                                          "TargetKeyId": {"Ref": "FactorsKey"}}
    assert stage.settings.factor_kms_key_id == "alias/idp-prod-factors"
    statements = {s["Sid"]: s for s in resources["FactorsKey"]["Properties"]["KeyPolicy"]["Statement"]}
    assert set(statements) == {"AccountAdministers", "ApiSealsFactorSecrets"}
    use = statements["ApiSealsFactorSecrets"]
    assert use["Principal"] == {"AWS": {"Fn::GetAtt": ["ApiRole", "Arn"]}}
    assert use["Action"] == ["kms:Encrypt", "kms:Decrypt"]
    assert use["Condition"] == {"StringEquals": {"kms:EncryptionContext:idp:stage": "prod",
                                                 "kms:EncryptionContext:idp:purpose": ["totp", "upstream_tokens"]},
                                "Null": {"kms:EncryptionContext:idp:sub": "false"}}
    # No role's IAM policy reaches the key: its key policy alone says who uses it.
    assert "FactorsKey" not in json.dumps(role_statements(merge_template(stage)))


def test_the_factors_key_must_be_an_alias_the_stack_creates(tmp_path):
    with pytest.raises(StageError, match="FACTOR_KMS_KEY_ID"):
        stage_with(tmp_path, FACTOR_KMS_KEY_ID="arn:aws:kms:eu-west-1:123456789012:key/abc")


def test_the_logout_queue_sends_what_keeps_failing_to_a_dead_letter_queue_and_feeds_one_message_per_call():
    stage = load("prod")
    resources = merge_template(stage)["Resources"]
    queue = resources[policy.LOGOUT_QUEUE]["Properties"]
    assert queue["QueueName"] == f"{stage.settings.table_prefix}-logout"  # found by name by ./idp-admin
    assert queue["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": [policy.LOGOUT_DEAD_LETTERS, "Arn"]},
                                      "maxReceiveCount": 5}
    assert queue["VisibilityTimeout"] >= 10  # at least the function's timeout, as Lambda requires
    event = resources["DeliverLogout"]["Properties"]["Events"]["DeliverLogoutSqsEventSource"]["Properties"]
    assert event == {"Queue": {"Fn::GetAtt": [policy.LOGOUT_QUEUE, "Arn"]}, "BatchSize": 1}
    for function in ("APIHandler", "DeliverLogout"):
        assert resources[function]["Properties"]["Environment"]["Variables"]["LOGOUT_QUEUE_URL"] == \
            {"Ref": policy.LOGOUT_QUEUE}
    assert "Environment" not in resources["RotateSigningKeys"]["Properties"]


def test_the_api_may_only_enqueue_and_the_logout_function_only_reads_grants_and_clients():
    stage = load("prod")
    api, logout = policy.api_policy(stage)["Statement"], policy.logout_policy(stage)["Statement"]
    queue = {"Fn::GetAtt": [policy.LOGOUT_QUEUE, "Arn"]}
    assert [s["Action"] for s in api if any(a.startswith("sqs:") for a in s["Action"])] == [["sqs:SendMessage"]]
    assert all(s["Resource"] == queue for s in api + logout if any(a.startswith("sqs:") for a in s["Action"]))
    tables = {s["Sid"]: s["Action"] for s in logout if any(a.startswith("dynamodb:") for a in s["Action"])}
    assert tables == {"TableGrants": ["dynamodb:Query"], "TableClients": ["dynamodb:GetItem"],
                      "TableSigningKeys": ["dynamodb:GetItem", "dynamodb:Scan"]}
    assert not any(a.startswith(("dynamodb:Put", "dynamodb:Update", "dynamodb:Delete", "secretsmanager:Create"))
                   for s in logout for a in s["Action"])
