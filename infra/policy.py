"""Generate the least-privilege Lambda policies in .chalice/policy-<stage>.json.

Chalice's policy generator cannot see pynamodb or our KMS calls, so the policy is written by hand:
here, from the table specs, so a new table cannot be forgotten. A test checks that the committed
files equal what this renders.

    .venv/bin/python -m infra.policy      # rewrite .chalice/policy-*.json
"""
from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("local", "dev", "prod")
TABLE_ACTIONS = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
                 "dynamodb:ConditionCheckItem", "dynamodb:Query", "dynamodb:Scan", "dynamodb:BatchGetItem"]


def table_suffixes() -> list[str]:
    from chalicelib.config import table_prefix
    from chalicelib.storage.tables import table_specs

    prefix = table_prefix() + "-"
    return sorted(spec["TableName"][len(prefix):] for spec in table_specs())


def policy(stage: str) -> dict:
    prefix = f"idp-{stage}"
    tables = [f"arn:aws:dynamodb:*:*:table/{prefix}-{name}" for name in table_suffixes()]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Logs", "Effect": "Allow",
             "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
             "Resource": f"arn:aws:logs:*:*:log-group:/aws/lambda/serverless-idp-{stage}*"},
            {"Sid": "Tables", "Effect": "Allow", "Action": TABLE_ACTIONS,
             "Resource": tables + [f"{arn}/index/*" for arn in tables]},
            {"Sid": "SigningKeySecrets", "Effect": "Allow",
             "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
             "Resource": f"arn:aws:secretsmanager:*:*:secret:idp/{stage}/signing-keys/*"},
            {"Sid": "SigningKeysKms", "Effect": "Allow", "Action": ["kms:Sign", "kms:DescribeKey", "kms:GetPublicKey"],
             "Resource": "arn:aws:kms:*:*:key/*",
             "Condition": {"StringEquals": {"aws:ResourceTag/idp:stage": stage}}},
        ],
    }


def render(stage: str) -> str:
    return json.dumps(policy(stage), indent=2) + "\n"


if __name__ == "__main__":
    for stage in STAGES:
        (ROOT / ".chalice" / f"policy-{stage}.json").write_text(render(stage))
