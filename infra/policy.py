"""The Lambda functions' IAM policies: exactly the actions the code calls, on this stack's resources.

Chalice's policy generator cannot see pynamodb or our Secrets Manager/KMS calls, so the policies
are written here, from the table specs (a new table cannot be forgotten), as CloudFormation
documents whose resources are references to the stack's own tables, key and log groups (!GetAtt,
!Sub with AWS::Partition/Region/AccountId). Nothing is "*":

- tables: the table ARNs, and each GSI by name (`<table-arn>/index/<name>`) for Query;
- signing-key secrets: the stage's name prefix `secret:<SECRET_PREFIX>signing-keys/*`, the only
  way to name secrets the key ring creates later (their ARNs end in a random suffix);
- the secrets' KMS key by ARN, and only when Secrets Manager calls it for us (kms:ViaService);
- KEY_BACKEND=kms: no IAM statement at all; each signing key's own key policy names the API role.

Two roles: "api" (every HTTP request: only reads the key ring and its secrets) and
"rotation" (the daily schedule: creates, promotes and deletes signing keys). A DynamoDB
transaction (TransactWriteItems) is authorised item by item as PutItem/UpdateItem/DeleteItem/
ConditionCheckItem, so those actions cover it.

    .venv/bin/python -m infra.policy --stage prod     # print both roles' policies
"""
from __future__ import annotations

import json

from infra.stage import DEPLOYABLE as STAGES
from infra.stage import load
from infra.tables import logical_id, specs_by_suffix

#: Everything the storage layer does to a table (pynamodb: get/save/update/delete with conditions,
#: scans, batch gets, transactions).
TABLE_ACTIONS = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
                 "dynamodb:ConditionCheckItem", "dynamodb:Query", "dynamodb:Scan", "dynamodb:BatchGetItem"]
#: The key ring on its table: scan, create, promote, prune (transactions of puts, updates and deletes
#: with the summary item), refresh.
SIGNING_KEY_TABLE_ACTIONS = ["dynamodb:Scan", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
                             "dynamodb:DeleteItem"]
#: Logs: the log groups are stack resources, so the functions only write to them.
LOG_ACTIONS = ["logs:CreateLogStream", "logs:PutLogEvents"]
SIGNING_KEY_TABLE = "signing_keys"
SECRETS_KEY = "SecretsKey"
LOG_GROUPS = {"api": "ApiLogGroup", "rotation": "RotationLogGroup"}


def table_suffixes() -> list[str]:
    return sorted(specs_by_suffix())


def _table_arn(suffix: str) -> dict:
    return {"Fn::GetAtt": [logical_id(suffix), "Arn"]}


def _index_arns() -> list[dict]:
    return [{"Fn::Sub": f"${{{logical_id(suffix)}.Arn}}/index/{index['IndexName']}"}
            for suffix, spec in sorted(specs_by_suffix().items()) for index in spec.get("GlobalSecondaryIndexes", [])]


def _signing_key_secrets(stage) -> dict:
    return {"Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:"
                       f"{stage.settings.secret_prefix}signing-keys/*"}


def _via_secrets_manager() -> dict:
    return {"StringEquals": {"kms:ViaService": {"Fn::Sub": "secretsmanager.${AWS::Region}.amazonaws.com"}}}


def _document(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def _logs(role: str) -> dict:
    return {"Sid": "Logs", "Effect": "Allow", "Action": LOG_ACTIONS,
            "Resource": {"Fn::GetAtt": [LOG_GROUPS[role], "Arn"]}}


def api_policy(stage) -> dict:
    statements = [
        _logs("api"),
        {"Sid": "Tables", "Effect": "Allow", "Action": TABLE_ACTIONS,
         "Resource": [_table_arn(suffix) for suffix in table_suffixes() if suffix != SIGNING_KEY_TABLE]},
        # Requests only read the key ring (current key, /jwks: the summary item); changing it is the
        # rotation role's job. Scan: only until the rotation role has built the summary (storage/signing_keys.py).
        {"Sid": "SigningKeyTable", "Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:Scan"],
         "Resource": _table_arn(SIGNING_KEY_TABLE)},
    ]
    if _index_arns():
        statements.append({"Sid": "Indexes", "Effect": "Allow", "Action": ["dynamodb:Query"], "Resource": _index_arns()})
    if stage.settings.key_backend == "secretsmanager":
        statements += [
            {"Sid": "ReadSigningKeySecrets", "Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"],
             "Resource": _signing_key_secrets(stage)},
            {"Sid": "DecryptSigningKeySecrets", "Effect": "Allow", "Action": ["kms:Decrypt"],
             "Resource": {"Fn::GetAtt": [SECRETS_KEY, "Arn"]}, "Condition": _via_secrets_manager()},
        ]
    return _document(*statements)


def rotation_policy(stage) -> dict:
    statements = [_logs("rotation")]
    if stage.settings.key_backend == "secretsmanager":
        statements += [
            {"Sid": "SigningKeyTable", "Effect": "Allow", "Action": SIGNING_KEY_TABLE_ACTIONS,
             "Resource": _table_arn(SIGNING_KEY_TABLE)},
            # CreateSecret with Tags also needs TagResource; DescribeSecret checks a key still exists.
            {"Sid": "ManageSigningKeySecrets", "Effect": "Allow",
             "Action": ["secretsmanager:CreateSecret", "secretsmanager:TagResource", "secretsmanager:DescribeSecret",
                        "secretsmanager:DeleteSecret"],
             "Resource": _signing_key_secrets(stage)},
            {"Sid": "EncryptSigningKeySecrets", "Effect": "Allow", "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
             "Resource": {"Fn::GetAtt": [SECRETS_KEY, "Arn"]}, "Condition": _via_secrets_manager()},
        ]
    # KEY_BACKEND=kms: the schedule only logs that the operator rotates (chalicelib/blueprints/rotation.py).
    return _document(*statements)


def policy(stage: str) -> dict:
    """The API function's policy document for `stage` (CloudFormation references unresolved)."""
    return api_policy(load(stage))


def render(stage: str) -> str:
    loaded = load(stage)
    return json.dumps({"api": api_policy(loaded), "rotation": rotation_policy(loaded)}, indent=2) + "\n"


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stage", choices=STAGES, default="prod")
    print(render(parser.parse_args().stage), end="")
