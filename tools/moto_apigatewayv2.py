"""CloudFormation for the HTTP API front door in moto, which (5.2.5) accepts its resource types but
creates nothing ("No Moto CloudFormation support for AWS::ApiGatewayV2::Api").

moto's apigatewayv2 backend implements the API calls themselves (CreateApi, CreateIntegration,
CreateRoute, CreateStage, CreateDomainName, CreateApiMapping); what is missing is the
CloudFormation model classes its template parser looks resource types up in
(moto/cloudformation/parsing.py: `get_model_map()`, type -> class, from each class's
`cloudformation_type()`). The stand-in supplies one per resource type infra/template.py's
`http_api_resources` and `domain_resources` use, each calling moto's own backend, so the resources
are the ones the apigatewayv2 API then returns, and Ref / Fn::GetAtt resolve as CloudFormation
documents them (AWS::ApiGatewayV2::* "Return values"):

    AWS::ApiGatewayV2::Api          Ref: the API id        GetAtt: ApiId, ApiEndpoint
    AWS::ApiGatewayV2::Integration  Ref: the integration id
    AWS::ApiGatewayV2::Route        Ref: the route id
    AWS::ApiGatewayV2::Stage        Ref: the stage name
    AWS::ApiGatewayV2::ApiMapping   Ref: the mapping id
    AWS::ApiGateway::DomainName     Ref: the domain name   GetAtt: RegionalDomainName, RegionalHostedZoneId,
                                                                   DistributionDomainName, DistributionHostedZoneId

The custom domain is API Gateway's (v1) DomainName, as the template declares it (one domain serves
either front door). In API Gateway the custom domain names are one set shared by REST and HTTP APIs
(apigatewayv2 GetDomainName returns a domain created through apigateway); moto keeps one set per
API, so the stand-in creates the domain in both, and an ApiGatewayV2::ApiMapping can name it.

CloudFormation's property names are the API's parameter names in PascalCase (ApiId: apiId,
PayloadFormatVersion: payloadFormatVersion), which is how properties are passed on. Stacks with
these resources can be created and deleted; an update that changes one of them is not supported
(moto fails the update). Installed by tests/conftest.py and tools/moto_server.py, for the types
moto does not handle itself: remove this module once moto's CloudFormation supports them.
"""
from __future__ import annotations

import inspect
from typing import Any


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _camel(key: str) -> str:
    return key[:1].lower() + key[1:]


def _arguments(method, properties: dict, **given) -> dict:
    """Keyword arguments of a moto backend method from CloudFormation properties: each parameter
    (snake_case) from the property of its PascalCase name, else None; `given` overrides."""
    names = [n for n in inspect.signature(method).parameters if n != "self"]
    return {name: given[name] if name in given else properties.get(_pascal(name)) for name in names}


class _StandIn:
    """What moto's template parser calls on a model class and its instances."""

    #: GetAtt attribute -> instance attribute.
    ATTRIBUTES: dict[str, str] = {}

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in cls.ATTRIBUTES

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

        if attribute_name not in self.ATTRIBUTES:
            raise UnformattedGetAttTemplateException()
        return getattr(self, self.ATTRIBUTES[attribute_name])

    def is_created(self) -> bool:
        return True

    @staticmethod
    def backend(account_id: str, region_name: str):
        from moto.apigatewayv2.models import apigatewayv2_backends

        return apigatewayv2_backends[account_id][region_name]


class HttpApi(_StandIn):
    ATTRIBUTES = {"ApiId": "physical_resource_id", "ApiEndpoint": "api_endpoint"}

    def __init__(self, api):
        self.physical_resource_id = api.api_id
        self.api_endpoint = api.api_endpoint

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGatewayV2::Api"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        backend = cls.backend(account_id, region_name)
        properties = cloudformation_json["Properties"]
        return cls(backend.create_api(**_arguments(backend.create_api, properties, tags=properties.get("Tags") or {})))

    def delete(self, account_id: str, region_name: str) -> None:
        self.backend(account_id, region_name).delete_api(self.physical_resource_id)


class _ApiPart(_StandIn):
    """A resource of one API (integration, route, stage): gone with its API, whichever goes first."""

    def __init__(self, api_id: str, physical_resource_id: str):
        self.api_id = api_id
        self.physical_resource_id = physical_resource_id

    def delete(self, account_id: str, region_name: str) -> None:
        backend = self.backend(account_id, region_name)
        if self.api_id in backend.apis:
            self.remove(backend)


class Integration(_ApiPart):
    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGatewayV2::Integration"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        backend = cls.backend(account_id, region_name)
        properties = cloudformation_json["Properties"]
        integration = backend.create_integration(**_arguments(backend.create_integration, properties))
        return cls(properties["ApiId"], integration.id)

    def remove(self, backend) -> None:
        backend.delete_integration(self.api_id, self.physical_resource_id)


class Route(_ApiPart):
    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGatewayV2::Route"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        backend = cls.backend(account_id, region_name)
        properties = cloudformation_json["Properties"]
        route = backend.create_route(**_arguments(backend.create_route, properties))
        return cls(properties["ApiId"], route.route_id)

    def remove(self, backend) -> None:
        backend.delete_route(self.api_id, self.physical_resource_id)


class Stage(_ApiPart):
    #: Properties whose values are settings objects (their keys are API parameter names too); the
    #: keys of StageVariables, RouteSettings and Tags are the operator's and are passed as they are.
    SETTINGS = ("DefaultRouteSettings", "AccessLogSettings")

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGatewayV2::Stage"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        properties = dict(cloudformation_json["Properties"])
        api_id = properties.pop("ApiId")
        # CreateStage's request body, which moto's backend takes as it is.
        config = {_camel(key): ({_camel(k): v for k, v in value.items()} if key in cls.SETTINGS else value)
                  for key, value in properties.items()}
        stage = cls.backend(account_id, region_name).create_stage(api_id, config)
        return cls(api_id, stage.name)

    def remove(self, backend) -> None:
        backend.delete_stage(self.api_id, self.physical_resource_id)


class ApiMapping(_StandIn):
    def __init__(self, mapping):
        self.physical_resource_id = mapping.api_mapping_id
        self.domain_name = mapping.domain_name

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGatewayV2::ApiMapping"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        backend = cls.backend(account_id, region_name)
        properties = cloudformation_json["Properties"]
        return cls(backend.create_api_mapping(**_arguments(backend.create_api_mapping, properties,
                                                           api_mapping_key=properties.get("ApiMappingKey", ""))))

    def delete(self, account_id: str, region_name: str) -> None:
        backend = self.backend(account_id, region_name)
        if self.physical_resource_id in backend.api_mappings:
            backend.delete_api_mapping(self.physical_resource_id, self.domain_name)


class DomainName(_StandIn):
    ATTRIBUTES = {"RegionalDomainName": "regional_domain_name", "RegionalHostedZoneId": "regional_hosted_zone_id",
                  "DistributionDomainName": "distribution_domain_name",
                  "DistributionHostedZoneId": "distribution_hosted_zone_id"}

    def __init__(self, domain):
        self.physical_resource_id = domain.domain_name
        for attribute in self.ATTRIBUTES.values():
            setattr(self, attribute, getattr(domain, attribute))

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGateway::DomainName"

    @staticmethod
    def rest_backend(account_id: str, region_name: str):
        from moto.apigateway.models import apigateway_backends

        return apigateway_backends[account_id][region_name]

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        rest = cls.rest_backend(account_id, region_name)
        properties = cloudformation_json["Properties"]
        endpoint = {_camel(k): v for k, v in properties.get("EndpointConfiguration", {}).items()}
        domain = rest.create_domain_name(**_arguments(rest.create_domain_name, properties,
                                                      endpoint_configuration=endpoint, tags=properties.get("Tags") or []))
        # The same domain as apigatewayv2 describes it (see the module docstring).
        endpoint_type = (endpoint.get("types") or ["EDGE"])[0]
        regional = endpoint_type == "REGIONAL"
        cls.backend(account_id, region_name).create_domain_name(
            domain_name=domain.domain_name, mutual_tls_authentication={}, tags={},
            domain_name_configurations=[{
                "apiGatewayDomainName": domain.regional_domain_name if regional else domain.distribution_domain_name,
                "certificateArn": domain.regional_certificate_arn if regional else domain.certificate_arn,
                "endpointType": endpoint_type, "securityPolicy": domain.security_policy,
                "hostedZoneId": domain.regional_hosted_zone_id if regional else domain.distribution_hosted_zone_id}])
        return cls(domain)

    def delete(self, account_id: str, region_name: str) -> None:
        rest = self.rest_backend(account_id, region_name)
        if self.physical_resource_id in rest.domain_names:
            rest.delete_domain_name(self.physical_resource_id)
        backend = self.backend(account_id, region_name)
        if self.physical_resource_id in backend.domain_names:
            backend.delete_domain_name(self.physical_resource_id)


MODELS = (HttpApi, Integration, Route, Stage, ApiMapping, DomainName)


def install() -> None:
    """Register each model with moto's CloudFormation parser unless moto has its own (idempotent)."""
    from moto.cloudformation import parsing

    models = parsing.get_model_map()  # cached: the dict the parser looks resource types up in
    for model in MODELS:
        models.setdefault(model.cloudformation_type(), model)
