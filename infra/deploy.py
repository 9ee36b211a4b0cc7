"""`make deploy STAGE=...`: upload what `make package` built and create or update the stage's stack.

Runs the AWS CLI v2 with your credentials (profile, SSO or environment), echoing each command first:

0. preflight, before `make package` spends minutes: the AWS CLI is v2, CERTIFICATE_ARN is given,
   ISSUER is not the example one, EMAIL_FROM is set and not on an example domain;
1. the artifact bucket: ARTIFACT_BUCKET (which must exist in your account), or
   serverless-idp-artifacts-<account>-<region>, created when missing: versioned, encrypted (SSE-S3),
   all public access blocked, old versions expiring after 30 days;
2. aws cloudformation package   (uploads dist/<stage>/deployment.zip, rewrites CodeUri);
3. aws cloudformation deploy --s3-bucket   (uploads the template, which behind a REST API is far
   over the 51,200 bytes the CloudFormation API accepts inline, then creates or updates one stack,
   serverless-idp-<stage>: tables, keys, roles, functions, API, custom domain, alarms, DNS record
   when HOSTED_ZONE_ID is given);
4. the first signing keys: KEY_BACKEND=secretsmanager or kms-envelope invokes the rotation function once (which
   creates them and proves the function works); KEY_BACKEND=kms runs `./idp-admin keys ensure`
   with your credentials, because the functions are never allowed kms:CreateKey;
5. the stack's outputs.

Optional stack parameters from the environment: ALARM_TOPIC_ARN (an SNS topic for the alarms),
RESERVED_CONCURRENCY (of the API function), API_RATE_LIMIT and API_BURST_LIMIT (the API stage's
throttle). DRY_RUN=1 prints every command (the bucket's creation as if it were missing) without
running anything: no AWS CLI or credentials needed.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from infra.stage import DEPLOYABLE, ROOT, Stage, StageError, load, require_real_issuer, require_real_sender


class DeployError(Exception):
    """A step failed or an input is missing; the message says which."""


def _scheduled_event(account: str, region: str) -> str:
    """What EventBridge sends the rotation function (Chalice's CloudWatchEvent reads every field)."""
    return json.dumps({"version": "0", "id": "make-deploy", "detail-type": "Scheduled Event", "source": "aws.events",
                       "account": account, "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                       "region": region, "resources": [], "detail": {}})


#: What the stack needs from `aws`: v2 (v1 lacks the options used here and is no longer developed).
CLI_INSTALL = "https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html"
#: Old versions of uploaded templates and code are kept this long (a rollback needs the previous code).
NONCURRENT_VERSION_DAYS = 30
#: Stack parameters that come from the environment when set (infra/template.py `parameters`).
OPTIONAL_PARAMETERS = {"ALARM_TOPIC_ARN": "AlarmTopicArn", "RESERVED_CONCURRENCY": "ReservedConcurrency",
                       "API_RATE_LIMIT": "ApiRateLimit", "API_BURST_LIMIT": "ApiBurstLimit"}


def bucket_setup(bucket: str, region: str) -> list[list[str]]:
    """The commands that create the artifact bucket: versioned, encrypted, never public."""
    where = ["--region", region]
    location = [] if region == "us-east-1" else ["--create-bucket-configuration", f"LocationConstraint={region}"]
    encryption = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
                             "BucketKeyEnabled": True}]}
    lifecycle = {"Rules": [{"ID": "expire-old-artifacts", "Status": "Enabled", "Filter": {},
                            "NoncurrentVersionExpiration": {"NoncurrentDays": NONCURRENT_VERSION_DAYS},
                            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}}]}
    s3api = ["aws", "s3api"]
    return [
        [*s3api, "create-bucket", "--bucket", bucket, *location, *where],
        [*s3api, "put-public-access-block", "--bucket", bucket, "--public-access-block-configuration",
         "BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true", *where],
        [*s3api, "put-bucket-encryption", "--bucket", bucket, "--server-side-encryption-configuration",
         json.dumps(encryption, separators=(",", ":")), *where],
        [*s3api, "put-bucket-versioning", "--bucket", bucket, "--versioning-configuration", "Status=Enabled", *where],
        [*s3api, "put-bucket-lifecycle-configuration", "--bucket", bucket, "--lifecycle-configuration",
         json.dumps(lifecycle, separators=(",", ":")), *where],
    ]


def retained_resources(stage: Stage) -> dict[str, str]:
    """Logical id -> DeletionPolicy of every resource the stack keeps when it is deleted."""
    from infra.template import stateful_template

    return {name: resource["DeletionPolicy"] for name, resource in stateful_template(stage)["Resources"].items()
            if resource.get("DeletionPolicy", "Delete") != "Delete"}


class Deployment:
    def __init__(self, stage: Stage, *, certificate_arn: str, hosted_zone_id: str = "", bucket: str = "",
                 region: str = "", parameters: dict | None = None, dist: Path | None = None, dry_run: bool = False,
                 out=sys.stdout):
        if not certificate_arn:
            raise DeployError(f"CERTIFICATE_ARN is required: an ACM certificate for {stage.domain_name} in the "
                              "stack's region (docs/deploy.md, \"Prerequisites\")")
        self.stage, self.certificate_arn, self.hosted_zone_id = stage, certificate_arn, hosted_zone_id
        self.bucket, self.region, self.dry_run, self.out = bucket, region, dry_run, out
        self.parameters = parameters or {}
        self.dist = dist or ROOT / "dist" / stage.name
        self.commands: list[list[str]] = []

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def run(self, argv: list[str], *, capture: bool = False, check: bool = True, placeholder: str = "") -> str:
        self.commands.append(argv)
        self.say("+ " + shlex.join(argv))
        if self.dry_run:
            return placeholder
        result = subprocess.run(argv, cwd=ROOT, text=True, capture_output=capture, check=False)
        if check and result.returncode != 0:
            raise DeployError(f"`{shlex.join(argv)}` failed with status {result.returncode}"
                              + (f": {result.stderr.strip()}" if capture and result.stderr else ""))
        return (result.stdout or "").strip() if result.returncode == 0 else ""

    def succeeds(self, argv: list[str], *, in_a_dry_run: bool) -> bool:
        """Run a probe; a dry run takes `in_a_dry_run` as its answer."""
        self.commands.append(argv)
        self.say("+ " + shlex.join(argv))
        if self.dry_run:
            return in_a_dry_run
        return subprocess.run(argv, cwd=ROOT, capture_output=True, check=False).returncode == 0

    def preflight(self) -> None:
        """What must hold before anything is built or changed: AWS CLI v2, a real issuer and a real
        EMAIL_FROM."""
        for require in (require_real_issuer, require_real_sender):
            try:
                require(self.stage)
            except StageError as exc:
                if not self.dry_run:
                    raise
                self.say(f"# warning: {exc} (a dry run goes on)")
        self.commands.append(["aws", "--version"])
        self.say("+ aws --version")
        if self.dry_run:
            return
        try:
            version = subprocess.run(["aws", "--version"], capture_output=True, text=True, check=False)
        except FileNotFoundError:
            version = None
        found = ((version.stdout or version.stderr).strip() if version else "") or "no `aws` on PATH"
        if not found.startswith("aws-cli/2."):
            raise DeployError(f"make deploy needs the AWS CLI v2 (found: {found}). Install it from {CLI_INSTALL} "
                              "(the pip package `awscli` is v1 and will not do), then check `aws --version`")

    def artifact_bucket(self, account: str, region: str) -> str:
        """ARTIFACT_BUCKET, which must exist in this account, or this account's own, created when missing."""
        bucket = self.bucket or f"{self.stage.app_name}-artifacts-{account}-{region}"
        probe = ["aws", "s3api", "head-bucket", "--bucket", bucket, "--expected-bucket-owner", account,
                 "--region", region]
        if self.succeeds(probe, in_a_dry_run=bool(self.bucket)):
            return bucket
        if self.bucket:
            raise DeployError(f"ARTIFACT_BUCKET {bucket} does not exist in account {account} (or you may not read "
                              "it); create it, or leave ARTIFACT_BUCKET unset to have one created")
        if self.dry_run:
            self.say(f"# {bucket} is created when it does not exist yet:")
        for command in bucket_setup(bucket, region):
            self.run(command)
        return bucket

    def deploy(self) -> None:
        stage = self.stage
        self.preflight()
        if not self.dry_run and not (self.dist / "sam.json").exists():
            raise DeployError(f"{self.dist / 'sam.json'} is missing: run `make package STAGE={stage.name}` first")
        account = self.run(["aws", "sts", "get-caller-identity", "--query", "Account", "--output", "text"],
                           capture=True, placeholder="<account>")
        region = self.region or self.run(["aws", "configure", "get", "region"], capture=True, check=False,
                                         placeholder="<region>")
        if not region:
            raise DeployError("no AWS region: set AWS_REGION (or `aws configure set region ...`)")
        region_args = ["--region", region]
        bucket = self.artifact_bucket(account, region)
        packaged = self.dist / "packaged.json"
        self.run(["aws", "cloudformation", "package", "--template-file", str(self.dist / "sam.json"),
                  "--s3-bucket", bucket, "--s3-prefix", stage.stack_name, "--use-json",
                  "--output-template-file", str(packaged), *region_args])
        kept = retained_resources(stage)
        if kept:
            self.say(f"# kept if the stack is deleted, deleted only if their first creation rolls back "
                     f"(DeletionPolicy {'/'.join(sorted(set(kept.values())))}): {', '.join(sorted(kept))}")
        overrides = [f"CertificateArn={self.certificate_arn}", f"HostedZoneId={self.hosted_zone_id}",
                     *(f"{name}={value}" for name, value in sorted(self.parameters.items()))]
        self.run(["aws", "cloudformation", "deploy", "--template-file", str(packaged),
                  "--stack-name", stage.stack_name,
                  # The template is uploaded too: the API takes at most 51,200 bytes inline.
                  "--s3-bucket", bucket, "--s3-prefix", stage.stack_name,
                  "--no-fail-on-empty-changeset",
                  # NAMED_IAM: the roles have fixed names (KMS key policies name the API role);
                  # AUTO_EXPAND: the template uses the SAM transform.
                  "--capabilities", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND",
                  "--parameter-overrides", *overrides,
                  "--tags", f"app={stage.app_name}", f"stage={stage.name}", *region_args])
        if stage.settings.key_backend in ("secretsmanager", "kms-envelope"):
            result = self.dist / "first-rotation.json"
            invoked = self.run(["aws", "lambda", "invoke", "--function-name", stage.function_name("rotation"),
                                "--cli-binary-format", "raw-in-base64-out", "--payload",
                                _scheduled_event(account, region), str(result), *region_args],
                               capture=True, placeholder="{}")
            if "FunctionError" in json.loads(invoked or "{}"):
                raise DeployError(f"the rotation function failed: {result.read_text().strip()} (its log group is "
                                  f"/aws/lambda/{stage.function_name('rotation')})")
            if not self.dry_run:
                self.say(f"first rotation run: {result.read_text().strip()}")
        else:
            # The admin CLI's settings come from config.json; its region must be the stack's.
            self.run(["env", f"AWS_REGION={region}", str(ROOT / "idp-admin"), "--stage", stage.name, "keys", "ensure"])
        self.run(["aws", "cloudformation", "describe-stacks", "--stack-name", stage.stack_name,
                  "--query", "Stacks[0].Outputs", "--output", "table", *region_args])
        self.say(self.next_steps(region))

    def next_steps(self, region: str) -> str:
        stage = self.stage
        done = "Dry run, nothing was changed; a deployment would create" if self.dry_run else "Deployed"
        dns = ("" if self.hosted_zone_id else
               f"\n  DNS: point {stage.domain_name} at the RegionalDomainName output (CNAME, or a Route 53 alias).")
        return f"""
{done} {stage.stack_name}; issuer {stage.settings.issuer}{dns}
  curl {stage.settings.issuer}/.well-known/openid-configuration
  export AWS_REGION={region}    # ./idp-admin must use the stack's region
  ./idp-admin --stage {stage.name} clients create --name "My app" --redirect-uri https://app.example.com/callback
  ./idp-admin --stage {stage.name} users create --email you@example.com
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stage", choices=DEPLOYABLE, required=True)
    parser.add_argument("--dry-run", action="store_true", default=os.environ.get("DRY_RUN") not in (None, "", "0"))
    parser.add_argument("--dist", type=Path, help="what `make package` built (default: dist/<stage>)")
    parser.add_argument("--preflight", action="store_true", help="only check the AWS CLI and the stage (make deploy "
                                                                 "runs this before packaging)")
    args = parser.parse_args(argv)
    env = os.environ
    try:
        deployment = Deployment(
            load(args.stage), certificate_arn=env.get("CERTIFICATE_ARN", ""),
            hosted_zone_id=env.get("HOSTED_ZONE_ID", ""), bucket=env.get("ARTIFACT_BUCKET", ""),
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION", ""), dry_run=args.dry_run,
            dist=args.dist.resolve() if args.dist else None,
            parameters={parameter: env[name] for name, parameter in OPTIONAL_PARAMETERS.items() if env.get(name)})
        if args.preflight:
            deployment.preflight()
        else:
            deployment.deploy()
    except (DeployError, StageError) as exc:
        print(f"deploy: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
