"""Table definitions derived from the models: the single source for local bootstrap and infra/.

`table_specs()` returns CreateTable-shaped dicts (on-demand billing, TTL attribute, GSIs) so
tools/devstack.py creates them through boto3 and infra/ renders the same specs into CloudFormation.
"""
from __future__ import annotations

from .models import ALL_MODELS


def table_specs() -> list[dict]:
    specs: dict[str, dict] = {}
    for model in ALL_MODELS:
        name = model.Meta.table_name
        if name in specs:
            continue
        schema = model._get_schema()
        spec = {
            "TableName": name,
            "AttributeDefinitions": schema["attribute_definitions"],
            # DynamoDB (and cfn-lint) want the HASH element first; pynamodb lists them as it finds them.
            "KeySchema": sorted(schema["key_schema"], key=lambda k: k["KeyType"] != "HASH"),
            "BillingMode": "PAY_PER_REQUEST",
            "TtlAttribute": getattr(model.Meta, "ttl_attribute", None),
        }
        if schema["global_secondary_indexes"]:
            spec["GlobalSecondaryIndexes"] = [
                {"IndexName": index["index_name"], "KeySchema": index["key_schema"], "Projection": index["projection"]}
                for index in schema["global_secondary_indexes"]
            ]
        specs[name] = spec
    return list(specs.values())


def bootstrap_tables(dynamodb=None) -> list[str]:
    """Create missing tables and enable TTL; idempotent. Returns the names of tables it created."""
    if dynamodb is None:
        from ..aws import client

        dynamodb = client("dynamodb")
    existing = set()
    for page in dynamodb.get_paginator("list_tables").paginate():
        existing.update(page["TableNames"])
    created = []
    for spec in table_specs():
        spec = dict(spec)
        ttl = spec.pop("TtlAttribute")
        if spec["TableName"] not in existing:
            dynamodb.create_table(**spec)
            dynamodb.get_waiter("table_exists").wait(TableName=spec["TableName"])
            created.append(spec["TableName"])
        else:
            _add_missing_indexes(dynamodb, spec)
        if ttl:
            status = dynamodb.describe_time_to_live(TableName=spec["TableName"])["TimeToLiveDescription"]
            if status.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
                dynamodb.update_time_to_live(
                    TableName=spec["TableName"],
                    TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl},
                )
    return created


def _add_missing_indexes(dynamodb, spec: dict) -> None:
    """An older table (e.g. a local stack from before an index existed) gets its new GSIs.
    DynamoDB creates one GSI per UpdateTable call."""
    have = {i["IndexName"] for i in dynamodb.describe_table(TableName=spec["TableName"])["Table"]
            .get("GlobalSecondaryIndexes", [])}
    for index in spec.get("GlobalSecondaryIndexes", []):
        if index["IndexName"] not in have:
            dynamodb.update_table(TableName=spec["TableName"], AttributeDefinitions=spec["AttributeDefinitions"],
                                  GlobalSecondaryIndexUpdates=[{"Create": index}])
