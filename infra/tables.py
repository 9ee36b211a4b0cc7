"""Render the DynamoDB tables as CloudFormation resources from chalicelib/storage/tables.py.

The local bootstrap and the deployed stack read the same `table_specs()`, derived from the pynamodb
models, so the two cannot drift. Production tables also get point-in-time recovery, server-side
encryption and (for prod) deletion protection.

    TABLE_PREFIX=idp-prod python -m infra.tables > tables.json
"""
from __future__ import annotations

import json
import re


def logical_id(table_name: str) -> str:
    return "Table" + "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", table_name))


def cloudformation_resources(*, deletion_protection: bool) -> dict:
    from chalicelib.storage.tables import table_specs

    resources = {}
    for spec in table_specs():
        properties = {
            "TableName": spec["TableName"],
            "AttributeDefinitions": spec["AttributeDefinitions"],
            "KeySchema": spec["KeySchema"],
            "BillingMode": spec["BillingMode"],
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "SSESpecification": {"SSEEnabled": True},
            "DeletionProtectionEnabled": deletion_protection,
        }
        if "GlobalSecondaryIndexes" in spec:
            properties["GlobalSecondaryIndexes"] = spec["GlobalSecondaryIndexes"]
        if spec["TtlAttribute"]:
            properties["TimeToLiveSpecification"] = {"AttributeName": spec["TtlAttribute"], "Enabled": True}
        resources[logical_id(spec["TableName"])] = {
            "Type": "AWS::DynamoDB::Table",
            "DeletionPolicy": "Retain" if deletion_protection else "Delete",
            "UpdateReplacePolicy": "Retain" if deletion_protection else "Delete",
            "Properties": properties,
        }
    return resources


if __name__ == "__main__":
    import os

    print(json.dumps({"AWSTemplateFormatVersion": "2010-09-09",
                      "Resources": cloudformation_resources(deletion_protection=os.environ.get("STAGE") == "prod")},
                     indent=2))
