"""`make deploy STAGE=...`: upload what `make package` built and create or update the stage's stack.

Runs the AWS CLI with your credentials (profile, SSO or environment), echoing each command first:

1. an artifact bucket for the Lambda code (ARTIFACT_BUCKET, or serverless-idp-artifacts-<account>-<region>,
   created if missing);
2. aws cloudformation package   (uploads dist/<stage>/deployment.zip, rewrites CodeUri);
3. aws cloudformation deploy    (one stack, serverless-idp-<stage>: tables, keys, roles, functions,
   API, custom domain, DNS record when HOSTED_ZONE_ID is given);
4. the first signing keys: KEY_BACKEND=secretsmanager invokes the rotation function once (which
   creates them and proves the function works); KEY_BACKEND=kms runs `./idp-admin keys ensure`
   with your credentials, because the functions are never allowed kms:CreateKey;
5. the stack's outputs.

DRY_RUN=1 prints the commands without running anything (no credentials needed).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from datetime import UTC, datetime

from infra.stage import DEPLOYABLE, ROOT, Stage, StageError, load


class DeployError(Exception):
    """A step failed or an input is missing; the message says which."""


def _scheduled_event(account: str, region: str) -> str:
    """What EventBridge sends the rotation function (Chalice's CloudWatchEvent reads every field)."""
    return json.dumps({"version": "0", "id": "make-deploy", "detail-type": "Scheduled Event", "source": "aws.events",
                       "account": account, "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                       "region": region, "resources": [], "detail": {}})


class Deployment:
    def __init__(self, stage: Stage, *, certificate_arn: str, hosted_zone_id: str = "", bucket: str = "",
                 region: str = "", dry_run: bool = False, out=sys.stdout):
        if not certificate_arn:
            raise DeployError(f"CERTIFICATE_ARN is required: an ACM certificate for {stage.domain_name} in the "
                              "stack's region (docs/deploy.md, \"Prerequisites\")")
        self.stage, self.certificate_arn, self.hosted_zone_id = stage, certificate_arn, hosted_zone_id
        self.bucket, self.region, self.dry_run, self.out = bucket, region, dry_run, out
        self.dist = ROOT / "dist" / stage.name
        self.commands: list[list[str]] = []

    def run(self, argv: list[str], *, capture: bool = False, check: bool = True, placeholder: str = "") -> str:
        self.commands.append(argv)
        print("+ " + shlex.join(argv), file=self.out, flush=True)
        if self.dry_run:
            return placeholder
        result = subprocess.run(argv, cwd=ROOT, text=True, capture_output=capture, check=False)
        if check and result.returncode != 0:
            raise DeployError(f"`{shlex.join(argv)}` failed with status {result.returncode}"
                              + (f": {result.stderr.strip()}" if capture and result.stderr else ""))
        return (result.stdout or "").strip() if result.returncode == 0 else ""

    def succeeds(self, argv: list[str]) -> bool:
        """Run a probe; in a dry run it is assumed to succeed."""
        self.commands.append(argv)
        print("+ " + shlex.join(argv), file=self.out, flush=True)
        return self.dry_run or subprocess.run(argv, cwd=ROOT, capture_output=True, check=False).returncode == 0

    def deploy(self) -> None:
        stage = self.stage
        if not self.dry_run and not (self.dist / "sam.json").exists():
            raise DeployError(f"{self.dist / 'sam.json'} is missing: run `make package STAGE={stage.name}` first")
        account = self.run(["aws", "sts", "get-caller-identity", "--query", "Account", "--output", "text"],
                           capture=True, placeholder="<account>")
        region = self.region or self.run(["aws", "configure", "get", "region"], capture=True, check=False,
                                         placeholder="<region>")
        if not region:
            raise DeployError("no AWS region: set AWS_REGION (or `aws configure set region ...`)")
        region_args = ["--region", region]
        bucket = self.bucket or f"{stage.app_name}-artifacts-{account}-{region}"
        if not self.succeeds(["aws", "s3api", "head-bucket", "--bucket", bucket, *region_args]):
            self.run(["aws", "s3", "mb", f"s3://{bucket}", *region_args])
        packaged = self.dist / "packaged.json"
        self.run(["aws", "cloudformation", "package", "--template-file", str(self.dist / "sam.json"),
                  "--s3-bucket", bucket, "--s3-prefix", stage.stack_name, "--use-json",
                  "--output-template-file", str(packaged), *region_args])
        self.run(["aws", "cloudformation", "deploy", "--template-file", str(packaged),
                  "--stack-name", stage.stack_name, "--no-fail-on-empty-changeset",
                  # NAMED_IAM: the roles have fixed names (KMS key policies name the API role);
                  # AUTO_EXPAND: the template uses the SAM transform.
                  "--capabilities", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND",
                  "--parameter-overrides", f"CertificateArn={self.certificate_arn}",
                  f"HostedZoneId={self.hosted_zone_id}",
                  "--tags", f"app={stage.app_name}", f"stage={stage.name}", *region_args])
        if stage.settings.key_backend == "secretsmanager":
            result = self.dist / "first-rotation.json"
            invoked = self.run(["aws", "lambda", "invoke", "--function-name", stage.function_name("rotation"),
                                "--cli-binary-format", "raw-in-base64-out", "--payload",
                                _scheduled_event(account, region), str(result), *region_args],
                               capture=True, placeholder="{}")
            if "FunctionError" in json.loads(invoked or "{}"):
                raise DeployError(f"the rotation function failed: {result.read_text().strip()} (its log group is "
                                  f"/aws/lambda/{stage.function_name('rotation')})")
            if not self.dry_run:
                print(f"first rotation run: {result.read_text().strip()}", file=self.out)
        else:
            # The admin CLI's settings come from config.json; its region must be the stack's.
            self.run(["env", f"AWS_REGION={region}", str(ROOT / "idp-admin"), "--stage", stage.name, "keys", "ensure"])
        self.run(["aws", "cloudformation", "describe-stacks", "--stack-name", stage.stack_name,
                  "--query", "Stacks[0].Outputs", "--output", "table", *region_args])
        print(self.next_steps(region), file=self.out)

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
    args = parser.parse_args(argv)
    env = os.environ
    try:
        Deployment(load(args.stage), certificate_arn=env.get("CERTIFICATE_ARN", ""),
                   hosted_zone_id=env.get("HOSTED_ZONE_ID", ""), bucket=env.get("ARTIFACT_BUCKET", ""),
                   region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION", ""), dry_run=args.dry_run).deploy()
    except (DeployError, StageError) as exc:
        print(f"deploy: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
