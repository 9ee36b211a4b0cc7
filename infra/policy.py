"""The Lambda functions' IAM policies: exactly the actions the code calls, on this stack's resources.

Chalice's policy generator cannot see pynamodb or our Secrets Manager/KMS calls, so the policies
are written here, from the table specs (a new table cannot be forgotten), as CloudFormation
documents whose resources are references to the stack's own tables, key and log groups (!GetAtt,
!Sub with AWS::Partition/Region/AccountId). Nothing is "*":

- tables: per table exactly the actions chalicelib/storage/access.py declares for the role (the
  storage layer's own list of what it does), on the table's ARN, and on each GSI by name
  (`<table-arn>/index/<name>`) only what is declared for that index;
- signing-key secrets: the stage's name prefix `secret:<SECRET_PREFIX>signing-keys/*`, the only
  way to name secrets the key ring creates later (their ARNs end in a random suffix);
- the secrets' KMS key by ARN, and only when Secrets Manager calls it for us (kms:ViaService);
- upstream connection secrets (issue 15: client secrets and private keys of the identity providers
  users sign in through, chalicelib/federation/connections.py): GetSecretValue on the prefix
  `secret:<SECRET_PREFIX>connections/*`, whatever the key backend. The operator's CLI creates them
  under the account's AWS managed key for Secrets Manager, whose key policy lets Secrets Manager
  decrypt for any principal of the account allowed to read the secret: no KMS statement.
- the DPoP nonce key (chalicelib/oauth/dpop_binding.py): the API reads the one secret
  `secret:<SECRET_PREFIX>dpop-nonce-??????` (the suffix is the six random characters Secrets Manager
  appends), whatever the key backend; the key ring's bootstrap creates it (keyring.ensure_keys: the
  rotation function's first run with secretsmanager and kms-envelope; with KEY_BACKEND=kms the
  operator's `keys ensure`). It is kept under the
  account's AWS managed key for Secrets Manager, like the connection secrets: no KMS statement.
- KEY_BACKEND=kms: no IAM statement at all; each signing key's own key policy names the API role.
- KEY_BACKEND=kms-envelope: the stage's symmetric key by ARN, only with an encryption context of
  this stage that names a kid (kms:EncryptionContext:*). IAM cannot name the kids (they are made
  later), so which kid a ciphertext opens for is the code's: it passes the record's kid, and KMS
  refuses a ciphertext sealed for another (chalicelib/keys/backends.py).
- TOTP secrets (chalicelib/secret_box.py): no IAM statement; the stack's key for them
  (FACTOR_KMS_KEY_ID) has a key policy (`factors_key_policy`) letting the API role Encrypt and
  Decrypt with it only under an encryption context of this stage, a known purpose and a subject.
- email (chalicelib/mail.py): ses:SendEmail on EMAIL_FROM's identity only, whichever of its two
  forms the operator verified (the domain, as docs/deploy.md advises, or the single address: SES
  authorises a message against the identity it sends it under), only with EMAIL_FROM as the
  From address (ses:FromAddress), and on SES_CONFIGURATION_SET when one is set: a SendEmail that
  names a configuration set is authorised on it too (IAM's service authorization reference for SES
  v2: SendEmail, resource types identity and configuration-set).

Three roles: "api" (every HTTP request: only reads the key ring and its secrets; may put a message
on the logout queue), "rotation" (the daily schedule: creates, promotes and deletes signing keys)
and "logout" (back-channel logout delivery: reads grants and clients, signs, consumes the queue). A DynamoDB
transaction (TransactWriteItems) is authorised item by item as PutItem/UpdateItem/DeleteItem/
ConditionCheckItem, so those actions cover it. The admin CLI runs with the operator's
credentials: no role here may Scan the users table.

    .venv/bin/python -m infra.policy --stage prod     # print both roles' policies
"""
from __future__ import annotations

import json

from chalicelib.keys.backends import KMS_ALGS
from chalicelib.storage.access import (
    API_INDEX_ACTIONS,
    API_TABLE_ACTIONS,
    LOGOUT_TABLE_ACTIONS,
    ROTATION_TABLE_ACTIONS,
)
from infra.stage import DEPLOYABLE as STAGES
from infra.stage import load
from infra.tables import logical_id, specs_by_suffix

#: Logs: the log groups are stack resources, so the functions only write to them.
LOG_ACTIONS = ["logs:CreateLogStream", "logs:PutLogEvents"]
SECRETS_KEY = "SecretsKey"
#: The stack's key that seals TOTP secrets, and the API function's role (its key policy names it).
FACTORS_KEY = "FactorsKey"
API_ROLE = "ApiRole"
LOG_GROUPS = {"api": "ApiLogGroup", "rotation": "RotationLogGroup", "logout": "LogoutLogGroup"}
#: The queue of back-channel logout notifications (chalicelib/logout_queue.py) and its dead letters.
LOGOUT_QUEUE = "LogoutQueue"
LOGOUT_DEAD_LETTERS = "LogoutDeadLetterQueue"
#: What the delivery function's event source mapping does with the queue (Lambda polls with the
#: function's role), and the fan-out's SendMessageBatch (authorised as sqs:SendMessage).
SQS_CONSUMER_ACTIONS = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
                        "sqs:ChangeMessageVisibility", "sqs:SendMessage"]


def _table_arn(suffix: str) -> dict:
    return {"Fn::GetAtt": [logical_id(suffix), "Arn"]}


def _table_statements(declared: dict[str, tuple[str, ...]], indexes: dict[tuple[str, str], tuple[str, ...]],
                      *, every_table: bool) -> list[dict]:
    """One statement per table ("Table<Name>"), and one per declared index ("Table<Name>Index<Index>").
    With `every_table`, a table of the specs missing from `declared` is an error: a new table
    must be given its actions (none is a valid answer, an omission is not)."""
    specs = specs_by_suffix()
    unknown = (set(declared) | {table for table, _ in indexes}) - set(specs)
    missing = set(specs) - set(declared) if every_table else set()
    if unknown or missing:
        raise KeyError(f"chalicelib/storage/access.py: no such table {sorted(unknown)}" if unknown else
                       f"chalicelib/storage/access.py: declare the actions on {sorted(missing)}")
    statements = [{"Sid": logical_id(suffix), "Effect": "Allow", "Action": list(actions),
                   "Resource": _table_arn(suffix)}
                  for suffix, actions in sorted(declared.items()) if actions]
    for (suffix, index), actions in sorted(indexes.items()):
        if index not in {i["IndexName"] for i in specs[suffix].get("GlobalSecondaryIndexes", [])}:
            raise KeyError(f"chalicelib/storage/access.py: table {suffix} has no index {index}")
        statements.append({"Sid": logical_id(suffix) + "Index" + logical_id(index).removeprefix("Table"), "Effect": "Allow", "Action": list(actions),
                           "Resource": {"Fn::Sub": f"${{{logical_id(suffix)}.Arn}}/index/{index}"}})
    return statements


def _signing_key_secrets(stage) -> dict:
    return {"Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:"
                       f"{stage.settings.secret_prefix}signing-keys/*"}


def _connection_secrets(stage) -> dict:
    return {"Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:"
                       f"{stage.settings.secret_prefix}connections/*"}


def _dpop_nonce_secret(stage) -> dict:
    from chalicelib.oauth.dpop_binding import NONCE_SECRET

    return {"Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:"
                       f"{stage.settings.secret_prefix}{NONCE_SECRET}-??????"}


def _via_secrets_manager() -> dict:
    return {"StringEquals": {"kms:ViaService": {"Fn::Sub": "secretsmanager.${AWS::Region}.amazonaws.com"}}}


def _envelope_context(stage, **more) -> dict:
    """kms:Encrypt/Decrypt only of this stage's signing keys, each naming its kid."""
    return {"StringEquals": {"kms:EncryptionContext:idp:stage": stage.settings.stage, **more},
            "Null": {"kms:EncryptionContext:idp:kid": "false"}}


def factors_key_policy(stage) -> dict:
    """The key policy of the key that seals TOTP secrets (chalicelib/secret_box.py). The account's
    administrators manage it; the API role may kms:Encrypt and kms:Decrypt with it only under an
    encryption context of this stage, a known purpose and a subject. Granted here rather than in the
    role's IAM policy: the key exists for this one use, so its own policy says who uses it, and the
    role's policy keeps KMS for the signing keys alone."""
    from chalicelib.secret_box import PURPOSES

    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "AccountAdministers", "Effect": "Allow",
         "Principal": {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}},
         "Action": "kms:*", "Resource": "*"},
        {"Sid": "ApiSealsFactorSecrets", "Effect": "Allow", "Principal": {"AWS": {"Fn::GetAtt": [API_ROLE, "Arn"]}},
         "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*",
         "Condition": {"StringEquals": {"kms:EncryptionContext:idp:stage": stage.settings.stage,
                                        "kms:EncryptionContext:idp:purpose": list(PURPOSES)},
                       "Null": {"kms:EncryptionContext:idp:sub": "false"}}},
    ]}


def _document(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def _logs(role: str) -> dict:
    return {"Sid": "Logs", "Effect": "Allow", "Action": LOG_ACTIONS,
            "Resource": {"Fn::GetAtt": [LOG_GROUPS[role], "Arn"]}}


def _ses_arn(resource: str) -> dict:
    return {"Fn::Sub": f"arn:${{AWS::Partition}}:ses:${{AWS::Region}}:${{AWS::AccountId}}:{resource}"}


def send_email_statement(stage) -> dict:
    """ses:SendEmail from EMAIL_FROM only (see the module docstring)."""
    address = stage.sender_address
    resources = [_ses_arn(f"identity/{address.rpartition('@')[2]}"), _ses_arn(f"identity/{address}")]
    if stage.settings.ses_configuration_set:
        resources.append(_ses_arn(f"configuration-set/{stage.settings.ses_configuration_set}"))
    return {"Sid": "SendEmail", "Effect": "Allow", "Action": ["ses:SendEmail"], "Resource": resources,
            "Condition": {"StringEquals": {"ses:FromAddress": address}}}


def _logout_queue_statement(actions: list[str]) -> dict:
    return {"Sid": "LogoutQueue", "Effect": "Allow", "Action": actions,
            "Resource": {"Fn::GetAtt": [LOGOUT_QUEUE, "Arn"]}}


def _signing_key_reads(stage) -> list[dict]:
    """Reading the key ring's private keys to sign: the API's tokens, the logout function's logout tokens."""
    statements = []
    if stage.settings.key_backend == "secretsmanager":
        statements += [
            {"Sid": "ReadSigningKeySecrets", "Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"],
             "Resource": _signing_key_secrets(stage)},
            {"Sid": "DecryptSigningKeySecrets", "Effect": "Allow", "Action": ["kms:Decrypt"],
             "Resource": {"Fn::GetAtt": [SECRETS_KEY, "Arn"]}, "Condition": _via_secrets_manager()},
        ]
    if stage.settings.key_backend == "kms-envelope":
        # Once per container and key: the private key is decrypted, then signs in-process.
        statements.append({"Sid": "DecryptSigningKeys", "Effect": "Allow", "Action": ["kms:Decrypt"],
                           "Resource": {"Fn::GetAtt": [SECRETS_KEY, "Arn"]}, "Condition": _envelope_context(stage)})
    return statements


def logout_policy(stage) -> dict:
    """The back-channel logout delivery function: its log group, the tables it reads
    (storage/access.LOGOUT_TABLE_ACTIONS), the logout queue (consume, and send the fan-out), the
    signing keys as the API reads them. KEY_BACKEND=kms: each key's own key policy names only the
    API role (KMS_SIGNER_ROLE_NAME), so logout tokens cannot be signed: deploy such a stage with the
    envelope backend, as the deployed stages are, or add this role to the keys' policies."""
    return _document(_logs("logout"), *_table_statements(LOGOUT_TABLE_ACTIONS, {}, every_table=False),
                     _logout_queue_statement(SQS_CONSUMER_ACTIONS), *_signing_key_reads(stage))


def api_policy(stage) -> dict:
    statements = [_logs("api"), *_table_statements(API_TABLE_ACTIONS, API_INDEX_ACTIONS, every_table=True),
                  send_email_statement(stage),
                  {"Sid": "ReadConnectionSecrets", "Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"],
                   "Resource": _connection_secrets(stage)},
                  # A sign-out only enqueues (chalicelib/oauth/backchannel_logout.py): one SendMessage.
                  _logout_queue_statement(["sqs:SendMessage"]), *_signing_key_reads(stage),
                  # Once per container, for the first DPoP request (chalicelib/oauth/dpop_binding.py).
                  {"Sid": "ReadDpopNonceKey", "Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"],
                   "Resource": _dpop_nonce_secret(stage)}]
    return _document(*statements)


def rotation_policy(stage) -> dict:
    statements = [_logs("rotation")]
    if stage.settings.key_backend == "secretsmanager":
        statements += [
            *_table_statements(ROTATION_TABLE_ACTIONS, {}, every_table=False),
            # CreateSecret with Tags also needs TagResource; DescribeSecret checks a key still exists.
            {"Sid": "ManageSigningKeySecrets", "Effect": "Allow",
             "Action": ["secretsmanager:CreateSecret", "secretsmanager:TagResource", "secretsmanager:DescribeSecret",
                        "secretsmanager:DeleteSecret"],
             "Resource": _signing_key_secrets(stage)},
            {"Sid": "EncryptSigningKeySecrets", "Effect": "Allow", "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
             "Resource": {"Fn::GetAtt": [SECRETS_KEY, "Arn"]}, "Condition": _via_secrets_manager()},
        ]
    if stage.settings.key_backend == "kms-envelope":
        key = {"Fn::GetAtt": [SECRETS_KEY, "Arn"]}
        statements += [
            *_table_statements(ROTATION_TABLE_ACTIONS, {}, every_table=False),
            # A new key: GenerateDataKeyPair under the stage's context, then Encrypt under the kid's.
            {"Sid": "GenerateSigningKeyPairs", "Effect": "Allow", "Action": ["kms:GenerateDataKeyPair"],
             "Resource": key, "Condition": {"StringEquals": {
                 "kms:EncryptionContext:idp:stage": stage.settings.stage,
                 "kms:DataKeyPairSpec": sorted(spec for spec, _ in KMS_ALGS.values())}}},
            {"Sid": "SealSigningKeys", "Effect": "Allow", "Action": ["kms:Encrypt"], "Resource": key,
             "Condition": _envelope_context(stage)},
            # The bootstrap's check that the wrapping key still exists.
            {"Sid": "DescribeSigningKeysKey", "Effect": "Allow", "Action": ["kms:DescribeKey"], "Resource": key},
        ]
    if stage.settings.key_backend in ("secretsmanager", "kms-envelope"):
        # The schedule's bootstrap makes the DPoP nonce key once (CreateSecret with Tags needs TagResource).
        statements.append({"Sid": "CreateDpopNonceKey", "Effect": "Allow",
                           "Action": ["secretsmanager:CreateSecret", "secretsmanager:TagResource"],
                           "Resource": _dpop_nonce_secret(stage)})
    # KEY_BACKEND=kms: the schedule only logs that the operator rotates (chalicelib/blueprints/rotation.py).
    return _document(*statements)


def policy(stage: str) -> dict:
    """The API function's policy document for `stage` (CloudFormation references unresolved)."""
    return api_policy(load(stage))


def render(stage: str) -> str:
    loaded = load(stage)
    return json.dumps({"api": api_policy(loaded), "rotation": rotation_policy(loaded),
                       "logout": logout_policy(loaded)}, indent=2) + "\n"


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stage", choices=STAGES, default="prod")
    print(render(parser.parse_args().stage), end="")
