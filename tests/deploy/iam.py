"""Just enough IAM to check recorded AWS calls against a role's policy: which (action, resource,
request context) each call needs, and whether Allow statements grant it. Our policies use no
NotAction/NotResource/Deny and only StringEquals (a list value: any of them) and Null conditions;
anything else fails the check loudly. A KMS call's request context is its encryption context
(kms:EncryptionContext:<key>, https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html)
and, for GenerateDataKeyPair, kms:DataKeyPairSpec.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from email.utils import parseaddr


@dataclass(frozen=True)
class Need:
    action: str
    resource: str
    context: tuple = ()

    def __str__(self):
        return f"{self.action} on {self.resource}" + (f" with {dict(self.context)}" if self.context else "")


_TRANSACT = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem"}


def needs(call: dict, arn, region: str) -> list[Need]:
    """The permissions a recorded call needs. `arn` resolves names: arn("table", name),
    arn("secret", name) (the secret's real ARN), arn("kms_key", key id/ARN/alias), arn("secret_key", name),
    arn("ses_identity", from address) (the identity SES sends it under), arn("ses_configuration_set", name)."""
    service, operation, params = call["service"], call["operation"], call["params"]
    if service == "dynamodb":
        if operation == "TransactWriteItems":
            return [Need(f"dynamodb:{_TRANSACT[kind]}", arn("table", body["TableName"]))
                    for item in params["TransactItems"] for kind, body in item.items()]
        if operation == "BatchGetItem":
            return [Need("dynamodb:BatchGetItem", arn("table", name)) for name in params["RequestItems"]]
        table = arn("table", params["TableName"])
        resource = f"{table}/index/{params['IndexName']}" if params.get("IndexName") else table
        return [Need(f"dynamodb:{operation}", resource)]
    if service == "secretsmanager":
        name = params.get("SecretId") or params["Name"]
        required = [Need(f"secretsmanager:{operation}", arn("secret", name))]
        via = (("kms:ViaService", f"secretsmanager.{region}.amazonaws.com"),)
        if operation == "CreateSecret":
            if params.get("Tags"):
                required.append(Need("secretsmanager:TagResource", arn("secret", name)))
            if params.get("KmsKeyId"):
                key = arn("kms_key", params["KmsKeyId"])
                required += [Need("kms:GenerateDataKey", key, via), Need("kms:Decrypt", key, via)]
        if operation == "GetSecretValue" and arn("secret_key", name):
            required.append(Need("kms:Decrypt", arn("secret_key", name), via))
        return required
    if service == "kms":
        context = {f"kms:EncryptionContext:{key}": value for key, value in params.get("EncryptionContext", {}).items()}
        if operation == "GenerateDataKeyPair":
            context["kms:DataKeyPairSpec"] = params["KeyPairSpec"]
        return [Need(f"kms:{operation}", arn("kms_key", params["KeyId"]), tuple(sorted(context.items())))]
    if service == "sesv2" and operation == "SendEmail":
        sender = parseaddr(params["FromEmailAddress"])[1]
        from_address = (("ses:FromAddress", sender),)
        required = [Need("ses:SendEmail", arn("ses_identity", sender), from_address)]
        if params.get("ConfigurationSetName"):
            required.append(Need("ses:SendEmail", arn("ses_configuration_set", params["ConfigurationSetName"]),
                                 from_address))
        return required
    raise AssertionError(f"no IAM mapping for {service}:{operation}; extend tests/deploy/iam.py")


def allows(document: dict, need: Need) -> bool:
    context = dict(need.context)
    for statement in document["Statement"]:
        assert set(statement) <= {"Sid", "Effect", "Action", "Resource", "Condition"}, statement
        assert statement["Effect"] == "Allow", statement
        if not any(fnmatch.fnmatchcase(need.action, a) for a in _list(statement["Action"])):
            continue
        if not any(fnmatch.fnmatchcase(need.resource, r) for r in _list(statement["Resource"])):
            continue
        conditions = statement.get("Condition", {})
        assert set(conditions) <= {"StringEquals", "Null"}, conditions
        equal = all(context.get(key) in _list(value) for key, value in conditions.get("StringEquals", {}).items())
        # Null: "true" = the key must be absent from the request, "false" = present.
        present = all((key in context) == (value == "false") for key, value in conditions.get("Null", {}).items())
        if equal and present:
            return True
    return False


def granted_actions(document: dict) -> set[str]:
    return {action for statement in document["Statement"] for action in _list(statement["Action"])}


def _list(value) -> list:
    return value if isinstance(value, list) else [value]
