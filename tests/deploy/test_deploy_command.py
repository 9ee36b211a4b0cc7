"""`make deploy` (infra/deploy.py) in a dry run: the AWS CLI commands a deployment runs, in order."""
from __future__ import annotations

import io
import json
import stat
from pathlib import Path

import pytest

from infra.deploy import DeployError, Deployment, main
from infra.stage import StageError, load
from infra.template import merge_template
from tests.infra.stage_config import stage_with

CERTIFICATE = "arn:aws:acm:eu-west-1:123456789012:certificate/0b6f7b1e-1111-2222-3333-444455556666"
DIST = Path("/dist/prod")
REGION = ["--region", "eu-west-1"]


def dry_run(stage, **kwargs) -> list[list[str]]:
    deployment = Deployment(stage, certificate_arn=CERTIFICATE, region="eu-west-1", dry_run=True, out=io.StringIO(),
                            dist=DIST, **kwargs)
    deployment.deploy()
    return deployment.commands


def test_a_first_deploy_creates_a_private_versioned_encrypted_bucket_and_deploys_through_it():
    """The template is ~170 KB and CloudFormation takes 51,200 bytes inline: deploy must upload it."""
    bucket = "serverless-idp-artifacts-<account>-eu-west-1"
    commands = dry_run(load("prod"), hosted_zone_id="Z123", parameters={"AlarmTopicArn": "arn:aws:sns:eu-west-1:"
                                                                         "123456789012:ops"})
    invoke = commands[10]
    assert commands[:10] == [
        ["aws", "--version"],
        ["aws", "sts", "get-caller-identity", "--query", "Account", "--output", "text"],
        ["aws", "s3api", "head-bucket", "--bucket", bucket, "--expected-bucket-owner", "<account>", *REGION],
        ["aws", "s3api", "create-bucket", "--bucket", bucket, "--create-bucket-configuration",
         "LocationConstraint=eu-west-1", *REGION],
        ["aws", "s3api", "put-public-access-block", "--bucket", bucket, "--public-access-block-configuration",
         "BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true", *REGION],
        ["aws", "s3api", "put-bucket-encryption", "--bucket", bucket, "--server-side-encryption-configuration",
         '{"Rules":[{"ApplyServerSideEncryptionByDefault":{"SSEAlgorithm":"AES256"},"BucketKeyEnabled":true}]}',
         *REGION],
        ["aws", "s3api", "put-bucket-versioning", "--bucket", bucket, "--versioning-configuration", "Status=Enabled",
         *REGION],
        ["aws", "s3api", "put-bucket-lifecycle-configuration", "--bucket", bucket, "--lifecycle-configuration",
         '{"Rules":[{"ID":"expire-old-artifacts","Status":"Enabled","Filter":{},"NoncurrentVersionExpiration":'
         '{"NoncurrentDays":30},"AbortIncompleteMultipartUpload":{"DaysAfterInitiation":7}}]}', *REGION],
        ["aws", "cloudformation", "package", "--template-file", "/dist/prod/sam.json", "--s3-bucket", bucket,
         "--s3-prefix", "serverless-idp-prod", "--use-json", "--output-template-file", "/dist/prod/packaged.json",
         *REGION],
        ["aws", "cloudformation", "deploy", "--template-file", "/dist/prod/packaged.json",
         "--stack-name", "serverless-idp-prod", "--s3-bucket", bucket, "--s3-prefix", "serverless-idp-prod",
         "--no-fail-on-empty-changeset", "--capabilities", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND",
         "--parameter-overrides", f"CertificateArn={CERTIFICATE}", "HostedZoneId=Z123",
         "AlarmTopicArn=arn:aws:sns:eu-west-1:123456789012:ops",
         "--tags", "app=serverless-idp", "stage=prod", *REGION],
    ]
    event = json.loads(invoke[invoke.index("--payload") + 1])
    assert invoke[:4] == ["aws", "lambda", "invoke", "--function-name"]
    assert invoke[4] == merge_template(load("prod"))["Resources"]["RotateSigningKeys"]["Properties"]["FunctionName"]
    assert event["detail-type"] == "Scheduled Event" and event["region"] == "eu-west-1"
    assert invoke[-3:] == ["/dist/prod/first-rotation.json", *REGION]
    assert commands[11] == ["aws", "cloudformation", "describe-stacks", "--stack-name", "serverless-idp-prod",
                            "--query", "Stacks[0].Outputs", "--output", "table", *REGION]
    assert len(commands) == 12


def test_the_dry_run_says_which_resources_are_retained_except_on_create():
    out = io.StringIO()
    Deployment(load("prod"), certificate_arn=CERTIFICATE, region="eu-west-1", dry_run=True, out=out).deploy()
    kept = next(line for line in out.getvalue().splitlines() if line.startswith("# kept if the stack is deleted"))
    assert "RetainExceptOnCreate" in kept and "TableUsers" in kept and "SecretsKey" in kept


def test_in_us_east_1_the_bucket_is_created_without_a_location_constraint():
    deployment = Deployment(load("prod"), certificate_arn=CERTIFICATE, region="us-east-1", dry_run=True,
                            out=io.StringIO())
    deployment.deploy()
    create = next(c for c in deployment.commands if c[1:3] == ["s3api", "create-bucket"])
    assert create == ["aws", "s3api", "create-bucket", "--bucket", "serverless-idp-artifacts-<account>-us-east-1",
                      "--region", "us-east-1"]


def test_an_artifact_bucket_given_is_used_as_it_is_and_never_created():
    commands = dry_run(load("prod"), bucket="my-artifacts")
    s3 = [c for c in commands if c[1] == "s3api"]
    assert s3 == [["aws", "s3api", "head-bucket", "--bucket", "my-artifacts", "--expected-bucket-owner", "<account>",
                   *REGION]]
    for verb in ("package", "deploy"):
        command = next(c for c in commands if c[1:3] == ["cloudformation", verb])
        assert command[command.index("--s3-bucket") + 1] == "my-artifacts"


def test_with_kms_keys_the_operator_creates_them_with_the_admin_cli(tmp_path):
    stage = stage_with(tmp_path, KEY_BACKEND="kms", KMS_SIGNER_ROLE_NAME="serverless-idp-prod-api")
    commands = dry_run(stage)
    ensure = next(c for c in commands if c[0] == "env")
    assert ensure[1] == "AWS_REGION=eu-west-1" and ensure[-4:] == ["--stage", "prod", "keys", "ensure"]
    assert not any(c[1:3] == ["lambda", "invoke"] for c in commands)
    assert commands.index(ensure) == len(commands) - 2


def test_deploy_refuses_without_a_certificate_for_the_issuer_domain(monkeypatch, capsys):
    with pytest.raises(DeployError, match="login.example.com"):
        Deployment(load("prod"), certificate_arn="")
    monkeypatch.delenv("CERTIFICATE_ARN", raising=False)
    assert main(["--stage", "prod", "--dry-run"]) == 1
    assert "CERTIFICATE_ARN is required" in capsys.readouterr().err


def test_a_real_deploy_refuses_the_example_issuer_before_running_anything():
    deployment = Deployment(load("prod"), certificate_arn=CERTIFICATE, region="eu-west-1", out=io.StringIO())
    with pytest.raises(StageError, match="ISSUER is still the example https://login.example.com"):
        deployment.deploy()
    assert deployment.commands == []


@pytest.mark.parametrize("issuer", ["https://login.example.com", "https://idp.example.org/x", "https://sso.test",
                                    "https://example.net"])
def test_every_reserved_example_domain_counts_as_the_placeholder(tmp_path, issuer):
    from infra.stage import is_example_issuer

    assert is_example_issuer(stage_with(tmp_path, ISSUER=issuer))


def test_a_real_issuer_is_not_the_placeholder(tmp_path):
    from infra.stage import is_example_issuer

    assert not is_example_issuer(stage_with(tmp_path, ISSUER="https://login.example-corp.com"))
    assert not is_example_issuer(stage_with(tmp_path, ISSUER="https://notexample.com"))


def fake_aws(tmp_path, monkeypatch, version: str | None) -> None:
    """PATH holds only an `aws` printing `version` (or no `aws` at all)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if version is not None:
        script = bin_dir / "aws"
        script.write_text(f"#!/bin/sh\necho '{version}'\n")
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(bin_dir))


@pytest.mark.parametrize("version", ["aws-cli/1.33.4 Python/3.11.2 Linux/6.1 botocore/1.34.0", None])
def test_deploy_wants_the_aws_cli_v2_and_says_where_to_get_it(tmp_path, monkeypatch, version):
    fake_aws(tmp_path, monkeypatch, version)
    stage = stage_with(tmp_path, ISSUER="https://login.idp-owner.dev", EMAIL_FROM="no-reply@login.idp-owner.dev")
    deployment = Deployment(stage, certificate_arn=CERTIFICATE, region="eu-west-1", out=io.StringIO())
    with pytest.raises(DeployError) as refused:
        deployment.preflight()
    assert "AWS CLI v2" in str(refused.value)
    assert "https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html" in str(refused.value)
    assert (version or "no `aws` on PATH").split()[0] in str(refused.value)


def test_the_aws_cli_v2_passes_the_preflight(tmp_path, monkeypatch):
    fake_aws(tmp_path, monkeypatch, "aws-cli/2.17.0 Python/3.12.4 Linux/6.1 exe/x86_64")
    stage = stage_with(tmp_path, ISSUER="https://login.idp-owner.dev", EMAIL_FROM="no-reply@login.idp-owner.dev")
    out = io.StringIO()
    Deployment(stage, certificate_arn=CERTIFICATE, region="eu-west-1", out=out).preflight()
    assert out.getvalue() == "+ aws --version\n"


@pytest.mark.parametrize(("email_from", "message"), [
    (None, "EMAIL_FROM is not set"),
    ("Login <no-reply@login.example.com>", "EMAIL_FROM is still the example"),
    ("no-reply@mail.test", "EMAIL_FROM is still the example"),
])
def test_a_real_deploy_refuses_a_missing_or_example_sender_before_running_anything(tmp_path, email_from, message):
    stage = stage_with(tmp_path, ISSUER="https://login.idp-owner.dev", EMAIL_FROM=email_from)
    deployment = Deployment(stage, certificate_arn=CERTIFICATE, region="eu-west-1", out=io.StringIO())
    with pytest.raises(StageError, match=message):
        deployment.preflight()
    assert deployment.commands == []


def test_a_dry_run_only_warns_about_the_example_sender():
    out = io.StringIO()
    Deployment(load("prod"), certificate_arn=CERTIFICATE, region="eu-west-1", dry_run=True, out=out).preflight()
    assert "# warning: stage prod: EMAIL_FROM is still the example" in out.getvalue()


def test_a_sender_that_is_no_address_is_refused(tmp_path):
    with pytest.raises(StageError, match="EMAIL_FROM must be an address"):
        stage_with(tmp_path, EMAIL_FROM="Login Team")
