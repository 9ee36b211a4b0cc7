"""Render the DynamoDB tables as CloudFormation resources from chalicelib/storage/tables.py.

The local bootstrap and the deployed stack read the same `table_specs()`, derived from the pynamodb
models, so the two cannot drift. Production tables also get point-in-time recovery, server-side
encryption and (for prod) deletion protection, and are kept when the stack is deleted or a table
replaced (`retention`).

    TABLE_PREFIX=idp-prod python -m infra.tables > tables.json
"""
from __future__ import annotations

import json
import re


def logical_id(name: str) -> str:
    """"clients" -> "TableClients"; any table name works ("idp-prod-clients" -> "TableIdpProdClients")."""
    return "Table" + "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", name))


def table_suffix(table_name: str) -> str:
    """"idp-test-clients" -> "clients": the models' names without this process's TABLE_PREFIX."""
    from chalicelib.config import table_prefix

    prefix = table_prefix() + "-"
    if not table_name.startswith(prefix):
        raise ValueError(f"table {table_name!r} is not named with TABLE_PREFIX {prefix!r}")
    return table_name[len(prefix):]


def specs_by_suffix() -> dict[str, dict]:
    from chalicelib.storage.tables import table_specs

    return {table_suffix(spec["TableName"]): spec for spec in table_specs()}


def retention(keep: bool) -> dict:
    """DeletionPolicy/UpdateReplacePolicy of a resource holding data.

    RetainExceptOnCreate, not Retain: a stack whose *first* creation fails rolls back, and Retain
    would leave the tables (and key) it had made behind, so every retry would fail on the fixed
    table names; with RetainExceptOnCreate a rollback of the creation deletes them, and once
    created they are kept like Retain. UpdateReplacePolicy has no such value: Retain keeps the
    old table when an update replaces it."""
    if not keep:
        return {"DeletionPolicy": "Delete", "UpdateReplacePolicy": "Delete"}
    return {"DeletionPolicy": "RetainExceptOnCreate", "UpdateReplacePolicy": "Retain"}


def cloudformation_resources(*, deletion_protection: bool, table_prefix: str | None = None) -> dict:
    """Table resources. With `table_prefix` (a stage's TABLE_PREFIX) tables are named for that stage
    and their logical ids are the prefix-free "Table<Name>" the stack template uses; without it
    they keep this process's names."""
    resources = {}
    for suffix, spec in specs_by_suffix().items():
        name = f"{table_prefix}-{suffix}" if table_prefix else spec["TableName"]
        properties = {
            "TableName": name,
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
        resources[logical_id(suffix if table_prefix else name)] = {
            "Type": "AWS::DynamoDB::Table",
            **retention(deletion_protection),
            "Properties": properties,
        }
    return resources


if __name__ == "__main__":
    import os

    print(json.dumps({"AWSTemplateFormatVersion": "2010-09-09",
                      "Resources": cloudformation_resources(deletion_protection=os.environ.get("STAGE") == "prod")},
                     indent=2))
