"""infra/ renders the very table specs the local bootstrap creates, and the policies that reach them."""
from __future__ import annotations

import json

from chalicelib.storage.models import ALL_MODELS
from chalicelib.storage.tables import table_specs
from infra.tables import cloudformation_resources


def test_every_model_table_is_rendered_once_with_its_key_and_ttl():
    resources = cloudformation_resources(deletion_protection=True)
    rendered = {r["Properties"]["TableName"]: r["Properties"] for r in resources.values()}
    assert set(rendered) == {m.Meta.table_name for m in ALL_MODELS}
    for spec in table_specs():
        props = rendered[spec["TableName"]]
        assert props["KeySchema"] == spec["KeySchema"]
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        ttl = props.get("TimeToLiveSpecification")
        assert (ttl or {}).get("AttributeName") == spec["TtlAttribute"]


def test_ephemeral_tables_have_ttl_and_durable_ones_do_not():
    ttl = {s["TableName"].rsplit("-", 1)[1]: s["TtlAttribute"] for s in table_specs()}
    assert ttl["codes"] == ttl["sessions"] == ttl["authorization_requests"] == ttl["throttles"] == "expires_at"
    assert ttl["clients"] is None and ttl["users"] is None and ttl["signing_keys"] is None


def test_deletion_protection_only_when_asked():
    for resource in cloudformation_resources(deletion_protection=False).values():
        assert resource["Properties"]["DeletionProtectionEnabled"] is False
        assert resource["DeletionPolicy"] == "Delete"
    for resource in cloudformation_resources(deletion_protection=True).values():
        assert resource["Properties"]["DeletionProtectionEnabled"] is True
        assert (resource["DeletionPolicy"], resource["UpdateReplacePolicy"]) == ("RetainExceptOnCreate", "Retain")


def test_rendered_template_passes_cfn_lint(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    template = tmp_path / "tables.json"
    template.write_text(json.dumps({"AWSTemplateFormatVersion": "2010-09-09",
                                    "Resources": cloudformation_resources(deletion_protection=True)}))
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    result = subprocess.run([str(cfn_lint), str(template)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_stage_prefix_renames_every_table_and_keeps_prefix_free_logical_ids():
    resources = cloudformation_resources(deletion_protection=False, table_prefix="idp-prod")
    names = {r["Properties"]["TableName"] for r in resources.values()}
    assert names == {m.Meta.table_name.replace("idp-test-", "idp-prod-") for m in ALL_MODELS}
    assert resources["TableClients"]["Properties"]["TableName"] == "idp-prod-clients"
    assert resources["TableGrants"]["Properties"]["GlobalSecondaryIndexes"] == next(
        s["GlobalSecondaryIndexes"] for s in table_specs() if s["TableName"].endswith("-grants"))
