"""`make deploy` (infra/deploy.py) in a dry run: the AWS CLI commands a deployment runs, in order."""
from __future__ import annotations

import io
import json

import pytest

from infra.deploy import DeployError, Deployment, main
from infra.stage import load
from infra.template import merge_template
from tests.infra.stage_config import stage_with

CERTIFICATE = "arn:aws:acm:eu-west-1:123456789012:certificate/0b6f7b1e-1111-2222-3333-444455556666"


def dry_run(stage, **kwargs) -> list[list[str]]:
    deployment = Deployment(stage, certificate_arn=CERTIFICATE, region="eu-west-1", dry_run=True, out=io.StringIO(),
                            **kwargs)
    deployment.deploy()
    return deployment.commands


def test_deploy_uploads_the_package_deploys_one_stack_then_bootstraps_the_keys():
    stage = load("prod")
    commands = dry_run(stage, hosted_zone_id="Z123")
    verbs = [" ".join(c[1:3]) for c in commands]
    assert verbs == ["sts get-caller-identity", "s3api head-bucket", "cloudformation package",
                     "cloudformation deploy", "lambda invoke", "cloudformation describe-stacks"]
    deploy = commands[3]
    assert deploy[deploy.index("--stack-name") + 1] == "serverless-idp-prod"
    assert {"CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"} <= set(deploy)
    assert f"CertificateArn={CERTIFICATE}" in deploy and "HostedZoneId=Z123" in deploy
    assert all(c[-2:] == ["--region", "eu-west-1"] for c in commands[2:])
    invoke = commands[4]
    function = invoke[invoke.index("--function-name") + 1]
    assert function == merge_template(stage)["Resources"]["RotateSigningKeys"]["Properties"]["FunctionName"]
    event = json.loads(invoke[invoke.index("--payload") + 1])
    assert event["detail-type"] == "Scheduled Event" and event["region"] == "eu-west-1"


def test_with_kms_keys_the_operator_creates_them_with_the_admin_cli(tmp_path):
    stage = stage_with(tmp_path, KEY_BACKEND="kms", KMS_SIGNER_ROLE_NAME="serverless-idp-prod-api")
    commands = dry_run(stage)
    assert commands[4][0] == "env" and commands[4][1] == "AWS_REGION=eu-west-1"
    assert commands[4][-4:] == ["--stage", "prod", "keys", "ensure"]
    assert not any(c[1:3] == ["lambda", "invoke"] for c in commands)


def test_deploy_refuses_without_a_certificate_for_the_issuer_domain(monkeypatch, capsys):
    with pytest.raises(DeployError, match="login.example.com"):
        Deployment(load("prod"), certificate_arn="")
    monkeypatch.delenv("CERTIFICATE_ARN", raising=False)
    assert main(["--stage", "prod", "--dry-run"]) == 1
    assert "CERTIFICATE_ARN is required" in capsys.readouterr().err
