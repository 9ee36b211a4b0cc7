"""`make package`: the real `chalice package --merge-template` and cfn-lint, into a scratch directory.

Chalice downloads Linux wheels for the deployment package from PyPI on a cold cache (as `make test`
installs from it); no AWS account or credentials are involved.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from infra.stage import load
from infra.template import stateful_template

ROOT = Path(__file__).resolve().parents[2]


CERTIFICATE = "arn:aws:acm:eu-west-1:123456789012:certificate/0b6f7b1e-1111-2222-3333-444455556666"


def without_aws(**extra) -> dict:
    """This environment without any AWS account, region or flag of `make deploy`."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")
               and k not in ("DRY_RUN", "ALLOW_EXAMPLE_ISSUER", "ARTIFACT_BUCKET", "CERTIFICATE_ARN")}, **extra}


@pytest.fixture(scope="module")
def packaged(tmp_path_factory):
    """`make deploy DRY_RUN=1`: the preflight, the real `make package`, then the deployment's commands."""
    import compileall

    # What a developer's checkout holds after running the tests: this Python's bytecode next to
    # the sources. None of it may reach the zip.
    assert compileall.compile_dir(ROOT / "chalicelib", quiet=1)
    dist = tmp_path_factory.mktemp("dist") / "prod"
    result = subprocess.run(["make", "--no-print-directory", "deploy", "STAGE=prod", f"DIST={dist}", "DRY_RUN=1",
                             f"CERTIFICATE_ARN={CERTIFICATE}"], cwd=ROOT, env=without_aws(AWS_REGION="eu-west-1"),
                            capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return {"dir": dist, "template": json.loads((dist / "sam.json").read_text()), "output": result.stdout,
            "errors": result.stderr}


def test_make_package_refuses_the_example_issuer_unless_told_it_is_only_a_check(tmp_path):
    result = subprocess.run(["make", "--no-print-directory", "package", "STAGE=prod", f"DIST={tmp_path / 'prod'}"],
                            cwd=ROOT, env=without_aws(PYTHON313="/nonexistent"), capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode != 0
    assert "ISSUER is still the example https://login.example.com" in result.stderr
    assert not (tmp_path / "prod" / "deployment.zip").exists()


def test_make_deploy_dry_run_prints_the_upload_through_the_bucket_and_the_retained_resources(packaged, packaged_rest):
    lines = packaged["output"].splitlines()
    commands = [line for line in lines if line.startswith("+ aws ")]
    # make deploy's preflight (before packaging) checks the CLI, and the deployment checks it again.
    assert [" ".join(c.split()[1:4]) for c in commands] == [
        "aws --version", "aws --version", "aws sts get-caller-identity", "aws s3api head-bucket", "aws s3api create-bucket",
        "aws s3api put-public-access-block", "aws s3api put-bucket-encryption", "aws s3api put-bucket-versioning",
        "aws s3api put-bucket-lifecycle-configuration", "aws cloudformation package", "aws cloudformation deploy",
        "aws lambda invoke", "aws cloudformation describe-stacks"]
    deploy = next(c for c in commands if c.startswith("+ aws cloudformation deploy "))
    assert f"--template-file {packaged['dir'] / 'packaged.json'}" in deploy
    assert "--s3-bucket 'serverless-idp-artifacts-<account>-eu-west-1'" in deploy
    assert any(line.startswith("# kept if the stack is deleted") and "RetainExceptOnCreate" in line for line in lines)
    assert "ISSUER is still the example" in packaged["errors"], "the dry run warns about the example issuer"
    # Why the template goes through the bucket: the REST API's (one resource per route) is over the
    # API's inline limit; the HTTP API's (about 40 KB) is not, but a few more routes would make it so.
    assert len((packaged_rest["dir"] / "sam.json").read_bytes()) > 51_200


def test_make_package_builds_one_template_and_the_code_and_cfn_lint_finds_nothing(packaged):
    assert (packaged["dir"] / "deployment.zip").stat().st_size > 0
    assert "cfn-lint found nothing" in packaged["output"]
    assert packaged["template"]["Transform"] == "AWS::Serverless-2016-10-31"


def test_the_packaged_functions_run_with_the_stack_roles_and_the_stage_environment(packaged):
    resources, stage = packaged["template"]["Resources"], load("prod")
    api, rotation = resources["APIHandler"]["Properties"], resources["RotateSigningKeys"]["Properties"]
    assert api["Role"] == {"Fn::GetAtt": ["ApiRole", "Arn"]}
    assert rotation["Role"] == {"Fn::GetAtt": ["RotationRole", "Arn"]}
    assert (api["FunctionName"], rotation["FunctionName"]) == ("serverless-idp-prod-api", "serverless-idp-prod-rotation")
    logout = resources["DeliverLogout"]["Properties"]
    queue_url = {"LOGOUT_QUEUE_URL": {"Ref": "LogoutQueue"}}
    assert rotation["Environment"]["Variables"] == stage.env
    assert api["Environment"]["Variables"] == logout["Environment"]["Variables"] == {**stage.env, **queue_url}
    assert rotation["Handler"] == "chalicelib.blueprints.rotation.rotate_signing_keys"
    assert rotation["Events"]["RotateSigningKeysEvent"]["Properties"]["Schedule"] == "rate(1 day)"
    assert logout["Role"] == {"Fn::GetAtt": ["LogoutDeliveryRole", "Arn"]}
    assert logout["Handler"] == "chalicelib.blueprints.logout_delivery.deliver_logout"
    assert logout["Events"]["DeliverLogoutSqsEventSource"]["Properties"]["Queue"] == {
        "Fn::GetAtt": ["LogoutQueue", "Arn"]}
    assert not any(r.get("Type") == "AWS::IAM::Role" and name not in ("ApiRole", "RotationRole", "LogoutDeliveryRole",
                                                                       "ApiGatewayLogRole")
                   for name, r in resources.items()), "Chalice made no roles of its own"


def test_the_packaged_template_contains_the_stateful_stack_the_moto_test_deploys(packaged):
    resources = packaged["template"]["Resources"]
    for logical_id, resource in stateful_template(load("prod"))["Resources"].items():
        assert resources[logical_id] == resource, logical_id


def test_no_packaged_policy_grants_dynamodb_kms_or_secrets_manager_on_star(packaged):
    statements = [s for r in packaged["template"]["Resources"].values() if r.get("Type") == "AWS::IAM::Role"
                  for p in r["Properties"].get("Policies", []) for s in p["PolicyDocument"]["Statement"]]
    scoped = [s for s in statements if any(a.startswith(("dynamodb:", "kms:", "secretsmanager:"))
                                           for a in s["Action"])]
    assert scoped
    for statement in scoped:
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        assert all(r != "*" and isinstance(r, dict) for r in resources), statement


def test_both_functions_run_python_3_13_on_arm64(packaged):
    resources = packaged["template"]["Resources"]
    for name in ("APIHandler", "RotateSigningKeys"):
        assert resources[name]["Properties"]["Runtime"] == "python3.13", name
        assert resources[name]["Properties"]["Architectures"] == ["arm64"], name


def test_the_api_function_has_snapstart_on_a_published_version_behind_an_alias(packaged):
    api = packaged["template"]["Resources"]["APIHandler"]["Properties"]
    assert api["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    assert api["AutoPublishAlias"] == "live"


@pytest.fixture(scope="module")
def packaged_rest(tmp_path_factory):
    """`make package`'s steps for the prod stage behind the REST API front door, in a copy of the
    project whose config.json says API_FRONT_DOOR=rest (the shipped stages use the HTTP API)."""
    import shutil
    import sys

    copy = tmp_path_factory.mktemp("rest-project")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("chalicelib", "infra"):
        shutil.copytree(ROOT / folder, copy / folder, ignore=ignore)
    for file in ("app.py", "requirements.txt"):
        shutil.copy2(ROOT / file, copy / file)
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    config["stages"]["prod"]["environment_variables"]["API_FRONT_DOOR"] = "rest"
    (copy / ".chalice").mkdir()
    (copy / ".chalice" / "config.json").write_text(json.dumps(config))
    dist = copy / "dist" / "prod"
    dist.mkdir(parents=True)
    env = without_aws(ALLOW_EXAMPLE_ISSUER="1", AWS_DEFAULT_REGION="eu-west-1")
    (dist / "merge-template.json").write_text(subprocess.run(
        [sys.executable, "-m", "infra.template", "--stage", "prod"], cwd=copy, env=env, capture_output=True,
        text=True, check=True).stdout)
    build = subprocess.run([sys.executable, "-m", "infra.package", "--stage", "prod", "--dist", str(dist)], cwd=copy,
                           env=env, capture_output=True, text=True, timeout=900, check=False)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    lint = subprocess.run([str(Path(sys.executable).parent / "cfn-lint"), str(dist / "sam.json")], cwd=copy,
                          capture_output=True, text=True, timeout=300, check=False)
    assert lint.returncode == 0, lint.stdout[-3000:]
    return {"dir": dist, "template": json.loads((dist / "sam.json").read_text())}


def test_api_gateway_invokes_the_alias_never_the_unpublished_function(packaged, packaged_rest):
    """SnapStart applies to published versions only: an integration calling ${APIHandler.Arn} would
    run $LATEST, initialized from scratch on every cold start. Both front doors, as packaged."""
    resources = packaged_rest["template"]["Resources"]
    alias_uri = {"Fn::Sub": "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/"
                            "${APIHandlerAliaslive}/invocations"}
    integrations = [method["x-amazon-apigateway-integration"]
                    for path in resources["RestAPI"]["Properties"]["DefinitionBody"]["paths"].values()
                    for method in path.values() if method["x-amazon-apigateway-integration"]["type"] == "aws_proxy"]
    assert len(integrations) > 10
    assert all(integration["uri"] == alias_uri for integration in integrations)
    assert resources["APIHandlerInvokePermission"]["Properties"]["FunctionName"] == {"Ref": "APIHandlerAliaslive"}

    resources = packaged["template"]["Resources"]
    assert resources["HttpApiIntegration"]["Properties"]["IntegrationUri"] == {"Ref": "APIHandlerAliaslive"}
    assert resources["APIHandlerInvokePermission"]["Properties"]["FunctionName"] == {"Ref": "APIHandlerAliaslive"}


def test_the_http_front_door_package_has_no_rest_api_and_the_rest_one_no_http_api(packaged, packaged_rest):
    http, rest = packaged["template"], packaged_rest["template"]
    assert "RestAPI" not in http["Resources"] and not {"RestAPIId", "EndpointURL"} & set(http["Outputs"])
    assert {n for n, r in http["Resources"].items() if r["Type"].startswith("AWS::ApiGateway::")} == {"ApiDomain"}
    assert http["Resources"]["HttpApiDefaultRoute"]["Properties"]["RouteKey"] == "$default"
    assert "RestAPI" in rest["Resources"]
    assert not any(r["Type"].startswith("AWS::ApiGatewayV2::") for r in rest["Resources"].values())
    assert "cfn-lint found nothing" in packaged["output"], "the REST package passed cfn-lint in its fixture"


def test_the_zip_holds_only_aarch64_libraries_and_its_code_was_imported_on_python_3_13(packaged):
    from infra.package import check_binaries

    assert check_binaries(packaged["dir"] / "deployment.zip") >= 3  # cryptography, cffi, markupsafe
    assert "all aarch64;" in packaged["output"]
    assert "the code imports and serves discovery on Python 3.13" in packaged["output"]


def test_the_zip_carries_no_developer_bytecode(packaged):
    import zipfile

    with zipfile.ZipFile(packaged["dir"] / "deployment.zip") as zipped:
        bytecode = [n for n in zipped.namelist() if n.endswith(".pyc")]
    assert bytecode and all(n.endswith(".cpython-313.pyc") and "/__pycache__/" in f"/{n}" for n in bytecode)
    assert any((ROOT / "chalicelib" / "__pycache__").glob("*.cpython-311.pyc")), "there was some to leave out"


def test_a_zip_with_a_developer_pyc_is_refused(tmp_path):
    import zipfile

    from infra.package import PackageError, count_bytecode

    package = tmp_path / "deployment.zip"
    with zipfile.ZipFile(package, "w") as zipped:
        zipped.writestr("chalicelib/web.py", "")
        zipped.writestr("chalicelib/__pycache__/web.cpython-313.pyc", b"")
        zipped.writestr("chalicelib/__pycache__/web.cpython-311.pyc", b"")
    with pytest.raises(PackageError, match="web.cpython-311.pyc"):
        count_bytecode(package)


def test_the_zip_carries_python_3_13_bytecode_for_the_code_and_its_dependencies(packaged):
    """/var/task is read-only: without .pyc files every cold start not restored from a snapshot
    compiles botocore and the rest from source (about a second of CPU)."""
    import zipfile

    from infra.package import count_bytecode

    compiled = count_bytecode(packaged["dir"] / "deployment.zip")
    with zipfile.ZipFile(packaged["dir"] / "deployment.zip") as zipped:
        names = set(zipped.namelist())
    assert "botocore/__pycache__/client.cpython-313.pyc" in names
    assert "chalicelib/storage/__pycache__/grants.cpython-313.pyc" in names
    assert compiled > 400 and f"{compiled} modules compiled for Python 3.13" in packaged["output"]
