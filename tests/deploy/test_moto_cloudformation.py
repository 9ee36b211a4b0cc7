"""Deploy the prod stage's stateful stack into moto through CloudFormation, then run the deployed
code against it exactly as Lambda would: configured only by the stage's function environment
(.chalice/config.json, which chalice package copies into the template) and the stack it created.
Twice: as shipped (KEY_BACKEND=kms-envelope, the deployed stages' default) and with the
secretsmanager backend an operator may choose instead (a copy of config.json changed in that one
setting and its key alias, which the "Lambda container" reads as its project's).

moto's CloudFormation has no SAM transform and no Lambda/API Gateway runtime, so the stack is the
stateful part of the template (tables, the secrets' KMS key and alias, log groups, roles); the
functions run in a subprocess ("a Lambda container"), the API through chalice.test.Client.
Every AWS call each function makes is checked against the policy of the role the stack gave it.
"""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import jwt
import pytest

from infra.stage import CONFIG, load
from infra.template import merge_template, stateful_template
from tests.deploy.iam import allows, granted_actions, needs

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
STAGE = "prod"
REGION = "us-east-1"


def boto(service: str, endpoint: str):
    import boto3

    return boto3.session.Session(aws_access_key_id="deploy", aws_secret_access_key="deploy").client(
        service, region_name=REGION, endpoint_url=endpoint)


#: KEY_BACKEND -> the changes to the shipped stage that select it (None: as shipped).
BACKENDS = {"kms-envelope": None,
            "secretsmanager": {"KEY_BACKEND": "secretsmanager", "ENVELOPE_KMS_KEY_ID": None,
                               "SECRETS_KMS_KEY_ID": "alias/serverless-idp-prod-secrets"}}


def project_with(directory: Path, changes: dict) -> Path:
    """A project directory whose .chalice/config.json is the shipped one with the stage's
    environment changed (None removes a variable)."""
    config = json.loads(CONFIG.read_text())
    env = config["stages"][STAGE]["environment_variables"]
    for key, value in changes.items():
        env.pop(key, None) if value is None else env.__setitem__(key, value)
    (directory / ".chalice").mkdir()
    (directory / ".chalice" / "config.json").write_text(json.dumps(config))
    return directory


@pytest.fixture(scope="module", params=list(BACKENDS))
def deployed(request, moto_server, tmp_path_factory):
    """Create the stack, run the stage's functions against it; yield what both produced."""
    import requests

    requests.post(f"{moto_server}/moto-api/reset", timeout=10).raise_for_status()
    changes = BACKENDS[request.param]
    project = project_with(tmp_path_factory.mktemp("project"), changes) if changes else ROOT
    stage = load(STAGE, project / ".chalice" / "config.json")
    assert stage.settings.key_backend == request.param
    cloudformation = boto("cloudformation", moto_server)
    cloudformation.create_stack(StackName=stage.stack_name, TemplateBody=json.dumps(stateful_template(stage)),
                                Capabilities=["CAPABILITY_NAMED_IAM"])
    cloudformation.get_waiter("stack_create_complete").wait(StackName=stage.stack_name,
                                                            WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    outputs = {o["OutputKey"]: o["OutputValue"]
               for o in cloudformation.describe_stacks(StackName=stage.stack_name)["Stacks"][0]["Outputs"]}
    # The operator's step (docs/deploy.md): verify EMAIL_FROM's domain in SES.
    boto("sesv2", moto_server).create_email_identity(EmailIdentity=stage.sender_address.rpartition("@")[2])

    # The function's environment: the stage's variables, nothing from this test process.
    env = {**stage.env, "PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "AWS_ENDPOINT_URL": moto_server,
           "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION, "AWS_ACCESS_KEY_ID": "lambda",
           "AWS_SECRET_ACCESS_KEY": "lambda", "LOG_LEVEL": "WARNING"}
    run = subprocess.run([sys.executable, "-m", "tests.deploy.stage_process", STAGE], cwd=project, env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr[-4000:]
    yield {"stage": stage, "outputs": outputs, "steps": json.loads(run.stdout), "endpoint": moto_server}
    requests.post(f"{moto_server}/moto-api/reset", timeout=10).raise_for_status()


def role_policy(deployed, role: str) -> dict:
    stage = deployed["stage"]
    document = boto("iam", deployed["endpoint"]).get_role_policy(
        RoleName=stage.role_name(role), PolicyName=f"{stage.role_name(role)}-policy")["PolicyDocument"]
    # moto keeps a policy created by CloudFormation as the repr of a dict.
    return json.loads(document) if document.startswith("{\"") else ast.literal_eval(document)


def resolver(deployed):
    """Names in recorded calls -> the ARNs IAM evaluates them against, looked up in the stack's account."""
    endpoint = deployed["endpoint"]
    secrets = boto("secretsmanager", endpoint)
    table_arns = {}

    def arn(kind: str, name: str):
        if kind == "table":
            if name not in table_arns:
                table_arns[name] = boto("dynamodb", endpoint).describe_table(TableName=name)["Table"]["TableArn"]
            return table_arns[name]
        if kind == "secret":
            return secrets.describe_secret(SecretId=name)["ARN"]
        if kind == "secret_key":
            key = secrets.describe_secret(SecretId=name).get("KmsKeyId")
            return kms_key_arn(endpoint, key) if key else None
        if kind == "kms_key":
            return kms_key_arn(endpoint, name)
        if kind == "ses_identity":
            # SES authorises a message against the identity it sends it under: the address when it is
            # verified on its own, else its domain.
            verified = {i["IdentityName"] for i in boto("sesv2", endpoint).list_email_identities()["EmailIdentities"]}
            identity = name if name in verified else name.rpartition("@")[2]
            return f"arn:aws:ses:{REGION}:123456789012:identity/{identity}"
        if kind == "ses_configuration_set":
            return f"arn:aws:ses:{REGION}:123456789012:configuration-set/{name}"
        raise KeyError(kind)

    return arn


def kms_key_arn(endpoint: str, key: str) -> str:
    """A key id, ARN or alias -> the key's ARN."""
    return boto("kms", endpoint).describe_key(KeyId=key)["KeyMetadata"]["Arn"]


def test_the_stack_outputs_are_the_stage_configuration(deployed):
    outputs, settings = deployed["outputs"], deployed["stage"].settings
    assert outputs["TablePrefix"] == settings.table_prefix == "idp-prod"
    assert outputs["SecretPrefix"] == settings.secret_prefix
    assert outputs["Issuer"] == settings.issuer
    assert outputs["KeyBackend"] == settings.key_backend
    alias = {"secretsmanager": settings.secrets_kms_key_id, "kms-envelope": settings.envelope_kms_key_id}
    assert outputs["SecretsKmsKeyAlias"] == alias[settings.key_backend]
    assert kms_key_arn(deployed["endpoint"], alias[settings.key_backend]) == outputs["SecretsKmsKeyArn"]


def test_the_stack_created_every_table_the_models_use_and_the_functions_created_none(deployed):
    from chalicelib.storage.tables import table_specs

    tables = boto("dynamodb", deployed["endpoint"]).list_tables()["TableNames"]
    suffixes = {spec["TableName"].split("-", 2)[2] for spec in table_specs()}
    assert set(tables) == {f"idp-prod-{suffix}" for suffix in suffixes}
    grants = boto("dynamodb", deployed["endpoint"]).describe_table(TableName="idp-prod-grants")["Table"]
    assert {i["IndexName"] for i in grants["GlobalSecondaryIndexes"]} == {"by_client"}
    operations = {c["operation"] for step in deployed["steps"].values() for c in step["calls"]}
    assert not operations & {"CreateTable", "UpdateTable", "UpdateTimeToLive", "CreateKey"}


def test_the_schedule_bootstraps_rotates_and_prunes_the_key_ring(deployed):
    steps = deployed["steps"]
    first = steps["rotation"]["result"]
    assert first["outcome"] == "not_due", first
    assert steps["rotation_due"]["result"]["outcome"] == "rotated"
    assert steps["rotation_due"]["result"]["current"] != first["current"]
    pruned = steps["rotation_prune"]["result"]
    assert (pruned["outcome"], pruned["pruned"]) == ("not_due", [first["current"]])
    calls = steps["rotation"]["calls"]
    # The bootstrap also makes the DPoP nonce key (chalicelib/oauth/dpop_binding.py) once, under the
    # account's AWS managed key, whatever the key backend; the rest is the key ring's.
    nonce_key = [c for c in calls if c["operation"] == "CreateSecret" and c["params"]["Name"] == "idp/prod/dpop-nonce"]
    assert len(nonce_key) == 1 and "KmsKeyId" not in nonce_key[0]["params"]
    calls = [c for c in calls if c not in nonce_key]
    if deployed["stage"].settings.key_backend == "secretsmanager":
        created = [c["params"] for c in calls if c["operation"] == "CreateSecret"]
        assert len(created) == 2, "a current and a next key"
        assert {c["KmsKeyId"] for c in created} == {deployed["outputs"]["SecretsKmsKeyAlias"]}
        assert all(c["Name"].startswith("idp/prod/signing-keys/") for c in created)
        return
    # kms-envelope: each key pair made by KMS under the stage's key, then sealed for its kid.
    pairs = [c["params"] for c in calls if c["operation"] == "GenerateDataKeyPair"]
    sealed = [c["params"] for c in calls if c["operation"] == "Encrypt"]
    assert len(pairs) == len(sealed) == 2, "a current and a next key"
    assert {p["KeyId"] for p in pairs + sealed} == {deployed["outputs"]["SecretsKmsKeyAlias"]}
    assert all(p["EncryptionContext"] == {"idp:stage": "prod"} and p["KeyPairSpec"] == "ECC_NIST_P256" for p in pairs)
    promoted = steps["rotation_due"]["result"]["current"]  # the bootstrap's next key
    assert sorted(s["EncryptionContext"]["idp:kid"] for s in sealed) == sorted([first["current"], promoted])
    assert not {c["service"] for c in calls} & {"secretsmanager"}


def test_a_client_credentials_token_from_the_deployed_app_verifies_against_its_jwks(deployed):
    api = deployed["steps"]["api"]["result"]
    assert api["discovery"]["status"] == 200
    assert api["discovery"]["body"]["issuer"] == deployed["outputs"]["Issuer"]
    assert api["token"]["status"] == 200, api["token"]
    token = api["token"]["body"]["access_token"]
    header = jwt.get_unverified_header(token)
    jwk = next(k for k in api["jwks"]["body"]["keys"] if k["kid"] == header["kid"])
    claims = jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=["ES256"], audience=deployed["outputs"]["Issuer"])
    assert claims["iss"] == deployed["outputs"]["Issuer"]
    assert claims["client_id"] == deployed["steps"]["admin"]["result"]["client_id"]
    assert header["kid"] == deployed["steps"]["rotation_due"]["result"]["current"], "signed by the promoted key"


def test_the_api_function_opens_only_the_signing_key_it_uses(deployed):
    """One read of the private key per container: kms-envelope decrypts it under the encryption
    context naming its kid (the condition the API role's kms:Decrypt requires), secretsmanager
    reads its secret."""
    calls = deployed["steps"]["api"]["calls"]
    kid = jwt.get_unverified_header(deployed["steps"]["api"]["result"]["token"]["body"]["access_token"])["kid"]
    reads = [(c["operation"], c["params"]) for c in calls if c["service"] in ("kms", "secretsmanager")]
    if deployed["stage"].settings.key_backend == "secretsmanager":
        assert reads == [("GetSecretValue", {"SecretId": f"idp/prod/signing-keys/{kid}"})]
        return
    assert [(operation, params["EncryptionContext"]) for operation, params in reads] == [
        ("Decrypt", {"idp:stage": "prod", "idp:kid": kid})]
    assert reads[0][1]["KeyId"] == deployed["outputs"]["SecretsKmsKeyArn"]


@pytest.mark.parametrize(("role", "steps"), [("rotation", ["rotation", "rotation_due", "rotation_prune"]),
                                             ("api", ["api", "mail"])])
def test_every_aws_call_a_function_makes_is_allowed_by_its_role(deployed, role, steps):
    document, arn = role_policy(deployed, role), resolver(deployed)
    required = [need for step in steps for call in deployed["steps"][step]["calls"] for need in needs(call, arn, REGION)]
    assert required, "the functions made AWS calls"
    denied = [str(need) for need in required if not allows(document, need)]
    assert denied == [], f"the {role} role's policy is missing: {denied}"
    for statement in document["Statement"]:
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        assert "*" not in resources and all(r.startswith("arn:aws:") for r in resources), statement


def test_the_deployed_api_function_sends_email_from_the_verified_sender(deployed):
    mail = deployed["steps"]["mail"]
    assert mail["result"] == {"sent": True}
    (call,) = [c for c in mail["calls"] if c["service"] == "sesv2"]
    assert call["operation"] == "SendEmail"
    assert call["params"]["FromEmailAddress"] == deployed["stage"].settings.email_from


def test_the_rotation_role_grants_nothing_a_rotation_cycle_does_not_use(deployed):
    document, arn = role_policy(deployed, "rotation"), resolver(deployed)
    used = {need.action for step in ("rotation", "rotation_due", "rotation_prune")
            for call in deployed["steps"][step]["calls"] for need in needs(call, arn, REGION)}
    assert granted_actions(document) - {"logs:CreateLogStream", "logs:PutLogEvents"} == used


def test_what_moto_deployed_is_the_stateful_part_of_the_packaged_template():
    stage = load(STAGE)
    packaged = merge_template(stage)["Resources"]
    for logical_id, resource in stateful_template(stage)["Resources"].items():
        assert packaged[logical_id] == resource, logical_id
