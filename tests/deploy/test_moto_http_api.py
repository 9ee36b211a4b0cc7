"""Deploy the HTTP API front door of the prod stage (API_FRONT_DOOR=http, the default) into moto
through CloudFormation, then read back through the apigatewayv2 API what API Gateway would serve.

What is deployed is the API-Gateway part of the merged template (infra/template.py
`merge_template`, what `make package` hands to chalice): its API Gateway and Route 53 resources
and everything they reference (the access log group), with the template's parameters and
conditions. moto's CloudFormation has no SAM transform, so the alias SAM generates for the API
function (APIHandlerAliaslive, from AutoPublishAlias) does not exist there: its Ref, which in AWS
is the alias ARN, is replaced by that ARN, built from the function's fixed name. (The functions
themselves run in test_moto_cloudformation.py's "Lambda container".) moto lacks CloudFormation
support for these resource types; tools/moto_apigatewayv2.py supplies it from moto's own
apigatewayv2 backend.
"""
from __future__ import annotations

import json
import re

import pytest

from infra.stage import load
from infra.template import API_ALIAS, API_ALIAS_RESOURCE, API_BURST_LIMIT, API_RATE_LIMIT, HTTP_ACCESS_LOG_FORMAT
from infra.template import merge_template
from tests.deploy.test_moto_cloudformation import REGION, boto
from tests.infra.stage_config import stage_with

pytestmark = pytest.mark.integration

ACCOUNT = "123456789012"  # moto's
#: The resource types of the front door: the HTTP API, the custom domain and its DNS record.
FRONT_DOOR_TYPES = ("AWS::ApiGatewayV2::", "AWS::ApiGateway::", "AWS::Route53::")
CERTIFICATE = f"arn:aws:acm:{REGION}:{ACCOUNT}:certificate/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
#: The shipped prod stage (its issuer is the domain's root), and one whose issuer has a path.
ISSUERS = {"root": None, "base path": "https://login.example.com/idp"}


def references(value) -> set[str]:
    """Logical ids and parameters a template fragment names (Ref, Fn::GetAtt, ${...} in Fn::Sub)."""
    if isinstance(value, list):
        return set().union(*map(references, value)) if value else set()
    if not isinstance(value, dict):
        return set()
    found = set()
    if "Ref" in value:
        found.add(value["Ref"])
    if "Fn::GetAtt" in value:
        found.add(value["Fn::GetAtt"][0])
    if isinstance(value.get("Fn::Sub"), str):
        found |= {name.split(".")[0] for name in re.findall(r"\$\{([^!}][^}]*)\}", value["Fn::Sub"])}
    return {name for name in found if not name.startswith("AWS::")} | references(list(value.values()))


def alias_arn(stage) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{stage.function_name('api')}:{API_ALIAS}"


def without_alias(value, arn: str):
    """The fragment with the SAM alias's Ref replaced by its ARN (see the module docstring)."""
    if value == {"Ref": API_ALIAS_RESOURCE}:
        return arn
    if isinstance(value, dict):
        return {key: without_alias(item, arn) for key, item in value.items()}
    if isinstance(value, list):
        return [without_alias(item, arn) for item in value]
    return value


def front_door_template(stage) -> dict:
    merged = merge_template(stage)
    resources = merged["Resources"]
    part = {name for name, resource in resources.items() if resource.get("Type", "").startswith(FRONT_DOOR_TYPES)}
    while missing := {name for name in references([resources[n] for n in part]) if name in resources} - part:
        part |= missing
    outside = references([resources[n] for n in part]) - part - set(merged["Parameters"])
    assert outside == {API_ALIAS_RESOURCE}, "the front door needs only the API function's alias from the rest"
    return {"AWSTemplateFormatVersion": "2010-09-09", "Parameters": merged["Parameters"],
            "Conditions": merged["Conditions"],
            "Resources": {name: without_alias(resources[name], alias_arn(stage)) for name in sorted(part)}}


@pytest.fixture(scope="module", params=list(ISSUERS))
def front_door(request, moto_server, tmp_path_factory):
    import requests

    requests.post(f"{moto_server}/moto-api/reset", timeout=10).raise_for_status()
    issuer = ISSUERS[request.param]
    stage = stage_with(tmp_path_factory.mktemp("config"), ISSUER=issuer) if issuer else load("prod")
    assert stage.front_door == "http"
    zone = boto("route53", moto_server).create_hosted_zone(
        Name=f"{stage.domain_name}.", CallerReference="front-door")["HostedZone"]["Id"].split("/")[-1]
    template = front_door_template(stage)
    cloudformation = boto("cloudformation", moto_server)
    cloudformation.create_stack(StackName=stage.stack_name, TemplateBody=json.dumps(template),
                                Parameters=[{"ParameterKey": "CertificateArn", "ParameterValue": CERTIFICATE},
                                            {"ParameterKey": "HostedZoneId", "ParameterValue": zone}])
    cloudformation.get_waiter("stack_create_complete").wait(StackName=stage.stack_name,
                                                            WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    yield {"stage": stage, "template": template, "endpoint": moto_server, "zone": zone}
    requests.post(f"{moto_server}/moto-api/reset", timeout=10).raise_for_status()


def the_api(front_door) -> dict:
    apis = boto("apigatewayv2", front_door["endpoint"]).get_apis()["Items"]
    assert len(apis) == 1, apis
    return apis[0]


def test_every_resource_of_the_front_door_was_created(front_door):
    created = boto("cloudformation", front_door["endpoint"]).describe_stack_resources(
        StackName=front_door["stage"].stack_name)["StackResources"]
    assert {r["LogicalResourceId"] for r in created} == set(front_door["template"]["Resources"])
    assert {"HttpApi", "HttpApiIntegration", "HttpApiDefaultRoute", "HttpApiStage", "ApiDomain", "ApiMapping",
            "ApiDnsRecord", "ApiAccessLogGroup"} == set(front_door["template"]["Resources"])


def test_the_api_is_an_http_api_reachable_only_through_the_custom_domain(front_door):
    api = the_api(front_door)
    assert api["ProtocolType"] == "HTTP"
    assert api["Name"] == front_door["stage"].stack_name
    assert api["DisableExecuteApiEndpoint"] is True


def test_one_default_route_proxies_every_request_to_the_api_function_alias_in_the_rest_event_shape(front_door):
    client, api = boto("apigatewayv2", front_door["endpoint"]), the_api(front_door)
    routes = client.get_routes(ApiId=api["ApiId"])["Items"]
    integrations = client.get_integrations(ApiId=api["ApiId"])["Items"]
    assert [r["RouteKey"] for r in routes] == ["$default"]
    assert len(integrations) == 1
    integration = integrations[0]
    assert routes[0]["Target"] == f"integrations/{integration['IntegrationId']}"
    assert integration["IntegrationType"] == "AWS_PROXY"
    assert integration["IntegrationMethod"] == "POST"
    assert integration["IntegrationUri"] == alias_arn(front_door["stage"])
    # Payload format 1.0: the REST proxy event, which chalicelib/front_door.py maps to the Chalice route.
    assert integration["PayloadFormatVersion"] == "1.0"


def test_the_stage_is_throttled_and_access_logged(front_door):
    endpoint, api = front_door["endpoint"], the_api(front_door)
    stages = boto("apigatewayv2", endpoint).get_stages(ApiId=api["ApiId"])["Items"]
    assert [s["StageName"] for s in stages] == ["$default"]
    stage = stages[0]
    assert stage["AutoDeploy"] is True
    assert stage["DefaultRouteSettings"]["ThrottlingRateLimit"] == API_RATE_LIMIT
    assert stage["DefaultRouteSettings"]["ThrottlingBurstLimit"] == API_BURST_LIMIT
    log_group = f"/aws/apigateway/{front_door['stage'].stack_name}-access"
    group = boto("logs", endpoint).describe_log_groups(logGroupNamePrefix=log_group)["logGroups"][0]
    settings = stage["AccessLogSettings"]
    assert settings["Format"] == HTTP_ACCESS_LOG_FORMAT
    # The log group's ARN has a trailing ":*" in AWS (both GetAtt and DescribeLogGroups); moto's GetAtt omits it.
    assert settings["DestinationArn"].removesuffix(":*") == group["arn"].removesuffix(":*")


def test_the_issuers_host_maps_the_issuers_path_to_the_api(front_door):
    stage, endpoint, api = front_door["stage"], front_door["endpoint"], the_api(front_door)
    client = boto("apigatewayv2", endpoint)
    domain = client.get_domain_name(DomainName=stage.domain_name)
    [configuration] = domain["DomainNameConfigurations"]
    assert (configuration["EndpointType"], configuration["CertificateArn"]) == ("REGIONAL", CERTIFICATE)
    [mapping] = client.get_api_mappings(DomainName=stage.domain_name)["Items"]
    assert (mapping["ApiId"], mapping["Stage"]) == (api["ApiId"], "$default")
    assert mapping.get("ApiMappingKey", "") == stage.base_path == ("idp" if "/idp" in stage.settings.issuer else "")
    records = boto("route53", endpoint).list_resource_record_sets(HostedZoneId=front_door["zone"])["ResourceRecordSets"]
    [alias] = [r for r in records if r["Type"] == "A"]
    assert alias["Name"].rstrip(".") == stage.domain_name
    assert alias["AliasTarget"]["DNSName"].rstrip(".") == configuration["ApiGatewayDomainName"]


def test_deleting_the_stack_removes_the_api_and_the_domain(front_door):
    endpoint, stage = front_door["endpoint"], front_door["stage"]
    cloudformation = boto("cloudformation", endpoint)
    cloudformation.delete_stack(StackName=stage.stack_name)
    cloudformation.get_waiter("stack_delete_complete").wait(StackName=stage.stack_name,
                                                            WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    client = boto("apigatewayv2", endpoint)
    assert client.get_apis()["Items"] == []
    assert client.get_domain_names()["Items"] == []
    assert boto("apigateway", endpoint).get_domain_names()["items"] == []
