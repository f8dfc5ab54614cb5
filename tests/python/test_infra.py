"""Offline validation of infra/ (issues #8, #13, #16): cfn-lint, checkov's generic checks, the
project's security properties read from the templates themselves (incl. the runner/runtime split,
KMS through S3 and the workgroup's network), and the Gold external-schema macro.

checkov runs as the `checkov` gate does (scripts/gates.py, from .venv-checkov) on the real templates
and on copies with one planted fault per generic check it replaced in infra/checks.py. Every
project-specific assertion is a function in infra/checks.py; next to each "holds on the real
templates" test there is a mutation test that breaks a copy of the template and shows the same check
catches it, so no assertion here can pass vacuously. The deployment into moto and the landing of a
file into the deployed bucket are in test_infra_moto.py.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
import jinja2.ext
import pytest

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
TEMPLATES = sorted(p for p in INFRA.glob("*.yaml") if not p.name.startswith("."))  # not .checkov

_spec = importlib.util.spec_from_file_location("lakehouse_infra_checks", INFRA / "checks.py")
assert _spec and _spec.loader
checks = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = checks
_spec.loader.exec_module(checks)

# Statements allowed to use Resource "*", keyed by (logical id, Sid), each with the reason AWS gives
# no narrower resource. None is needed today: every Glue session action accepts the session ARN
# (narrowed to dbt-glue's "dbt-glue*" names), the catalog actions accept catalog/database/table
# ARNs, and ListSessions (the one session action that needs "*") is never called by dbt-glue.
# An entry added here must also be explained by a comment above its Sid in the template
# (test_allow_listed_wildcards_are_commented_in_the_template).
ALLOWED_STAR_RESOURCES: dict[tuple[str, str], str] = {}

KMS_KEY = checks.FAKE_KMS_KEY
PARAMETER_SETS = {
    "defaults": ({}, {}),
    "prefix+kms+runner": (
        {
            "SchemaPrefix": "dev_",
            "KmsKeyArn": KMS_KEY,
            "DbtRunnerPrincipalArn": f"arn:aws:iam::{checks.FAKE_ACCOUNT}:role/ci",
            "EnvironmentName": "prod",
        },
        {
            "MaxCapacity": 64,
            "EnvironmentName": "prod",
            "ClientCidr": "",
            "ClientSecurityGroupId": "sg-0123456789abcdef0",
        },
    ),
}


@pytest.fixture(params=sorted(PARAMETER_SETS), scope="module")
def stacks(request: pytest.FixtureRequest) -> tuple[dict[str, Any], dict[str, Any]]:
    lake_params, warehouse_params = PARAMETER_SETS[request.param]
    return checks.render_both(lake_params, warehouse_params)


def _bucket_arn(lake: dict[str, Any]) -> str:
    return f"arn:aws:s3:::{lake['Resources']['LakeBucket']['Properties']['BucketName']}"


def _gold(lake: dict[str, Any]) -> str:
    return f"{lake['Parameters']['SchemaPrefix']}gold"


# ------------------------------------------------------------------------------------------------
# cfn-lint
# ------------------------------------------------------------------------------------------------


def _cfn_lint() -> str:
    candidate = Path(sys.executable).with_name("cfn-lint")
    found = str(candidate) if candidate.exists() else shutil.which("cfn-lint")
    assert found, "cfn-lint is not installed (requirements: cfn-lint)"
    return found


def test_there_are_templates() -> None:
    assert {t.name for t in TEMPLATES} >= {"lake.yaml", "warehouse.yaml"}


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_cfn_lint_passes(template: Path) -> None:
    result = subprocess.run(
        [_cfn_lint(), str(template)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_cfn_lint_catches_a_broken_template(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    text = (INFRA / "warehouse.yaml").read_text()
    text = text.replace(
        "PubliclyAccessible: false", "PubliclyAccessible: false\n      NoSuchProperty: 1"
    )
    text = text.replace(
        "!GetAtt Workgroup.Workgroup.Endpoint.Address", "!GetAtt Workgroup.NoSuchAttribute"
    )
    broken.write_text(text)
    result = subprocess.run([_cfn_lint(), str(broken)], capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "NoSuchProperty" in result.stdout and "NoSuchAttribute" in result.stdout


# ------------------------------------------------------------------------------------------------
# checkov: the generic checks, from its own virtualenv, as the `checkov` gate runs them
# ------------------------------------------------------------------------------------------------

CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
CHECKOV_CONFIG = INFRA / ".checkov.yaml"
_CHECKOV_FAILURE = re.compile(
    r"Check: (CKV2?_\w+): .*\n\s*FAILED for resource: (\S+)\n\s*File: /?(\S+?):\d+-\d+"
)


def _checkov(directory: Path) -> tuple[int, set[tuple[str, str, str]], str]:
    """(exit status, {(file, check id, resource) failed}, output) of the gate on a directory."""
    assert CHECKOV.exists(), (
        f"{CHECKOV} is missing: run `make setup` (it builds checkov's own virtualenv from "
        "requirements/checkov.lock)"
    )
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gates.py"), "checkov", str(directory)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    failed = {(f, check, res) for check, res, f in _CHECKOV_FAILURE.findall(result.stdout)}
    return result.returncode, failed, output


def _skipped_checks() -> dict[str, str]:
    """check id -> the reason written beside it in infra/.checkov.yaml."""
    return dict(re.findall(r"^\s*- (CKV2?_\w+)\s*#\s*(.*\S)", CHECKOV_CONFIG.read_text(), re.M))


def test_checkov_passes_on_the_templates() -> None:
    status, failed, output = _checkov(INFRA)
    assert status == 0 and not failed, output
    passed = re.search(r"Passed checks: (\d+), Failed checks: 0", output)
    assert passed and int(passed.group(1)) >= 50, output  # it did check the templates


def test_every_checkov_skip_has_a_reason_and_is_still_needed(tmp_path: Path) -> None:
    """Each skipped check fails on the templates without the skip (so none is stale), and nothing
    else does. (checkov reads a .checkov.yaml of the directory it scans: scan copies.)"""
    skipped = _skipped_checks()
    listed = re.findall(r"^\s*- (CKV\S*)", CHECKOV_CONFIG.read_text(), re.M)
    assert sorted(skipped) == sorted(listed), "a skip in infra/.checkov.yaml without a reason"
    assert CHECKOV.exists(), "checkov is missing: run `make setup`"
    for template in TEMPLATES:
        shutil.copy(template, tmp_path)
    result = subprocess.run(
        [
            str(CHECKOV), "--directory", str(tmp_path), "--framework", "cloudformation",
            "--compact", "--quiet", "--skip-download",
        ],
        capture_output=True, text=True, timeout=600, env={**os.environ, "LOG_LEVEL": "ERROR"},
        cwd=tmp_path,
    )  # fmt: skip
    assert {check for check, _, _ in _CHECKOV_FAILURE.findall(result.stdout)} == set(skipped)


def _policy(template: dict[str, Any], logical_id: str) -> list[dict[str, Any]]:
    """The statements of a policy resource, or of a role's first inline policy."""
    props = template["Resources"][logical_id]["Properties"]
    document = props.get("PolicyDocument") or props["Policies"][0]["PolicyDocument"]
    statements: list[dict[str, Any]] = document["Statement"]
    return statements


def _lake_bucket(template: dict[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = template["Resources"]["LakeBucket"]["Properties"]
    return properties


BUCKET = "AWS::S3::Bucket.LakeBucket"

# name: (template, fault planted in a copy, the (check id, resource) checkov must report failed).
# The first four replace check_public_access_block and check_versioning of infra/checks.py; the
# rest are generic IAM checks checkov adds on top of the project's stricter wildcard rules.
CHECKOV_FAULTS: dict[str, tuple[Path, Callable[[dict[str, Any]], Any], set[tuple[str, str]]]] = {
    "public access block removed": (
        checks.LAKE_TEMPLATE,
        lambda t: _lake_bucket(t).pop("PublicAccessBlockConfiguration"),
        {(f"CKV_AWS_{n}", BUCKET) for n in (53, 54, 55, 56)},
    ),
    "public ACLs allowed": (
        checks.LAKE_TEMPLATE,
        lambda t: _lake_bucket(t)["PublicAccessBlockConfiguration"].update(BlockPublicAcls=False),
        {("CKV_AWS_53", BUCKET)},
    ),
    "public buckets not restricted": (
        checks.LAKE_TEMPLATE,
        lambda t: _lake_bucket(t)["PublicAccessBlockConfiguration"].pop("RestrictPublicBuckets"),
        {("CKV_AWS_56", BUCKET)},
    ),
    "versioning suspended": (
        checks.LAKE_TEMPLATE,
        lambda t: _lake_bucket(t)["VersioningConfiguration"].update(Status="Suspended"),
        {("CKV_AWS_21", BUCKET)},
    ),
    "action * in the runtime policy": (
        checks.LAKE_TEMPLATE,
        lambda t: _policy(t, "GlueRuntimePolicy")[0].update(Action="*"),
        {(c, "AWS::IAM::Policy.GlueRuntimePolicy") for c in ("CKV_AWS_63", "CKV_AWS_107")},
    ),
    "action * in the runner's managed policy": (
        checks.LAKE_TEMPLATE,
        lambda t: _policy(t, "DbtRunnerPolicy")[0].update(Action="*"),
        {("CKV_AWS_107", "AWS::IAM::ManagedPolicy.DbtRunnerPolicy")},
    ),
    "writes on every resource": (
        checks.LAKE_TEMPLATE,
        lambda t: _policy(t, "DbtRunnerPolicy").append(
            {"Sid": "Everywhere", "Effect": "Allow", "Action": "s3:PutObject", "Resource": "*"}
        ),
        {("CKV_AWS_111", "AWS::IAM::ManagedPolicy.DbtRunnerPolicy")},
    ),
    "administrator access": (
        checks.WAREHOUSE_TEMPLATE,
        lambda t: _policy(t, "SpectrumRole")[0].update(Action="*", Resource="*"),
        {(f"CKV_AWS_{n}", "AWS::IAM::Role.SpectrumRole") for n in (62, 63, *range(107, 112))},
    ),
    "role assumable by anyone": (
        checks.WAREHOUSE_TEMPLATE,
        lambda t: t["Resources"]["SpectrumRole"]["Properties"]["AssumeRolePolicyDocument"][
            "Statement"
        ][0].update(Principal={"AWS": "*"}),
        {("CKV_AWS_60", "AWS::IAM::Role.SpectrumRole")},
    ),
}


@pytest.fixture(scope="module")
def checkov_faults(tmp_path_factory: pytest.TempPathFactory) -> set[tuple[str, str, str]]:
    """One checkov run over a copy of a template per planted fault (JSON: the same template with
    long-form intrinsic functions), plus unchanged copies of both templates as controls."""
    directory = tmp_path_factory.mktemp("checkov")
    for template in (checks.LAKE_TEMPLATE, checks.WAREHOUSE_TEMPLATE):
        copied = json.dumps(checks.load_template(template))
        (directory / f"unchanged-{template.stem}.json").write_text(copied)
    for number, (template, plant, _) in enumerate(CHECKOV_FAULTS.values()):
        broken = checks.load_template(template)
        plant(broken)
        (directory / f"fault{number}.json").write_text(json.dumps(broken))
    status, failed, output = _checkov(directory)
    assert status == 1, output
    return failed


@pytest.mark.parametrize("fault", sorted(CHECKOV_FAULTS))
def test_checkov_reports_a_planted_fault(
    fault: str, checkov_faults: set[tuple[str, str, str]]
) -> None:
    number = list(CHECKOV_FAULTS).index(fault)
    reported = {(check, res) for f, check, res in checkov_faults if f == f"fault{number}.json"}
    assert reported == CHECKOV_FAULTS[fault][2]


def test_checkov_passes_the_unchanged_copies(checkov_faults: set[tuple[str, str, str]]) -> None:
    assert not {f for f, _, _ in checkov_faults if f.startswith("unchanged-")}


# ------------------------------------------------------------------------------------------------
# The renderer the checks rely on
# ------------------------------------------------------------------------------------------------


def test_renderer_resolves_names_and_conditions() -> None:
    lake, warehouse = checks.render_both({"SchemaPrefix": "dev_"}, {})
    bucket = lake["Resources"]["LakeBucket"]["Properties"]["BucketName"]
    assert bucket == f"lakehouse-dev-{checks.FAKE_ACCOUNT}-{checks.FAKE_REGION}"
    assert lake["Resources"]["GoldDatabase"]["Properties"]["DatabaseInput"]["Name"] == "dev_gold"
    assert lake["Outputs"]["LakehouseSchemaPrefix"]["Value"] == "dev_"
    spectrum = checks.role_statements(warehouse, "SpectrumRole")
    objects = next(s for s in spectrum if s["Sid"] == "GoldObjectsReadOnly")
    assert (
        objects["Resource"] == f"arn:aws:s3:::{bucket}/dev_gold/*"
    )  # imported from the lake stack
    # Ref and Fn::GetAtt give physical names and ARNs (our glue around cloud-radar), not logical ids
    assert lake["Resources"]["LakeBucketPolicy"]["Properties"]["Bucket"] == bucket
    runtime_role = lake["PhysicalIds"]["GlueRuntimeRole"]
    assert runtime_role == "lakehouse-dev-lake-GlueRuntimeRole"
    assert lake["Outputs"]["LakehouseGlueRoleArn"]["Value"] == (
        f"arn:aws:iam::{checks.FAKE_ACCOUNT}:role/{runtime_role}"
    )
    assert lake["Outputs"]["DbtRunnerPolicyArn"]["Value"] == (
        f"arn:aws:iam::{checks.FAKE_ACCOUNT}:policy/lakehouse-dev-lake-DbtRunnerPolicy"
    )
    assert warehouse["Resources"]["Namespace"]["Properties"]["IamRoles"] == [
        warehouse["RoleArns"]["SpectrumRole"]
    ]
    assert warehouse["Resources"]["Workgroup"]["Properties"]["SecurityGroupIds"] == [
        checks.security_group_id("WorkgroupSecurityGroup")
    ]
    default_lake, _ = checks.render_both()
    assert "LakehouseSchemaPrefix" not in default_lake["Outputs"]
    assert "DbtRunnerRole" not in default_lake["Resources"]  # Condition: HasRunner
    encryption = default_lake["Resources"]["LakeBucket"]["Properties"]["BucketEncryption"]
    assert encryption["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "AES256"
    }


# ------------------------------------------------------------------------------------------------
# Security properties: each holds on the real templates (for every parameter set) ...
# ------------------------------------------------------------------------------------------------

CheckFn = Callable[[dict[str, Any], dict[str, Any]], list[str]]

CHECKS: dict[str, CheckFn] = {
    "encryption": lambda lake, wh: checks.check_bucket_encryption(lake),
    "tls_only": lambda lake, wh: checks.check_tls_only(lake),
    "lifecycle": lambda lake, wh: checks.check_lifecycle(lake),
    "no_wildcard_actions": lambda lake, wh: (
        checks.check_no_wildcard_actions(lake) + checks.check_no_wildcard_actions(wh)
    ),
    "no_wildcard_resources": lambda lake, wh: (
        checks.check_no_wildcard_resources(lake, ALLOWED_STAR_RESOURCES)
        + checks.check_no_wildcard_resources(wh, ALLOWED_STAR_RESOURCES)
    ),
    "runtime_role_scope": lambda lake, wh: checks.check_runtime_role(lake),
    "runner_policy_scope": lambda lake, wh: checks.check_runner_policy(lake),
    "ingest_policy_bronze_only": lambda lake, wh: checks.check_ingest_policy(lake),
    "kms_through_s3": lambda lake, wh: checks.check_kms(lake, wh),
    "network": lambda lake, wh: checks.check_network(wh),
    "spectrum_gold_only": lambda lake, wh: checks.check_spectrum_role(
        wh, _bucket_arn(lake), _gold(lake)
    ),
    "redshift": lambda lake, wh: checks.check_redshift(wh),
}


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_security_property_holds(name: str, stacks: tuple[dict[str, Any], dict[str, Any]]) -> None:
    lake, warehouse = stacks
    assert CHECKS[name](copy.deepcopy(lake), copy.deepcopy(warehouse)) == []


# ------------------------------------------------------------------------------------------------
# ... and each fails when a copy of the template is broken the way it guards against.
# ------------------------------------------------------------------------------------------------


def _bucket(lake: dict[str, Any]) -> dict[str, Any]:
    return lake["Resources"]["LakeBucket"]["Properties"]


def _statement(template: dict[str, Any], sid: str) -> dict[str, Any]:
    for _, _, statement in checks.policy_statements(template):
        if statement.get("Sid") == sid:
            return statement
    raise KeyError(sid)


def _add_statement(template: dict[str, Any], logical_id: str, statement: dict[str, Any]) -> None:
    _policy(template, logical_id).append(statement)


def _mutate_rules(
    lake: dict[str, Any], rule_id: str, change: Callable[[dict[str, Any]], None]
) -> None:
    for rule in _bucket(lake)["LifecycleConfiguration"]["Rules"]:
        if rule["Id"] == rule_id:
            change(rule)


Mutation = Callable[[dict[str, Any], dict[str, Any]], None]

MUTATIONS: dict[str, tuple[str, Mutation, str]] = {
    # name: (check, mutation, text the violation must contain)
    "no encryption": (
        "encryption",
        lambda lake, wh: _bucket(lake).pop("BucketEncryption"),
        "default encryption",
    ),
    "no TLS deny": (
        "tls_only",
        lambda lake, wh: lake["Resources"]["LakeBucketPolicy"]["Properties"]["PolicyDocument"][
            "Statement"
        ].pop(0),
        "aws:SecureTransport",
    ),
    "TLS deny on the bucket but not its objects": (
        "tls_only",
        lambda lake, wh: _statement(lake, "DenyInsecureTransport")["Resource"].pop(1),
        "aws:SecureTransport",
    ),
    "TLS deny inverted": (
        "tls_only",
        lambda lake, wh: _statement(lake, "DenyInsecureTransport")["Condition"]["Bool"].update(
            {"aws:SecureTransport": "true"}
        ),
        "aws:SecureTransport",
    ),
    "bronze never archived": (
        "lifecycle",
        lambda lake, wh: _mutate_rules(
            lake, "bronze-to-glacier-instant-retrieval", lambda r: r.update(Status="Disabled")
        ),
        "Glacier",
    ),
    "bronze rule on the wrong prefix": (
        "lifecycle",
        lambda lake, wh: _mutate_rules(
            lake, "bronze-to-glacier-instant-retrieval", lambda r: r.update(Prefix="gold/")
        ),
        "Glacier",
    ),
    "noncurrent versions kept forever": (
        "lifecycle",
        lambda lake, wh: _mutate_rules(
            lake, "expire-noncurrent-versions", lambda r: r.pop("NoncurrentVersionExpiration")
        ),
        "non-current",
    ),
    "multipart uploads never aborted": (
        "lifecycle",
        lambda lake, wh: _mutate_rules(
            lake,
            "abort-incomplete-multipart-uploads",
            lambda r: r.pop("AbortIncompleteMultipartUpload"),
        ),
        "multipart",
    ),
    "action *": (
        "no_wildcard_actions",
        lambda lake, wh: _statement(lake, "BronzeReadOnly").update(Action="*"),
        "action '*'",
    ),
    "service wildcard in an Allow": (
        "no_wildcard_actions",
        lambda lake, wh: _statement(wh, "GoldObjectsReadOnly").update(Action="s3:Get*"),
        "wildcard action",
    ),
    "NotAction": (
        "no_wildcard_actions",
        lambda lake, wh: _statement(lake, "BronzeReadOnly").update(NotAction=["s3:DeleteObject"]),
        "NotAction",
    ),
    "resource * not allow-listed": (
        "no_wildcard_resources",
        lambda lake, wh: _add_statement(
            lake,
            "DbtRunnerPolicy",
            {"Sid": "ListAll", "Effect": "Allow", "Action": "glue:ListSessions", "Resource": "*"},
        ),
        "not allow-listed",
    ),
    "any bucket": (
        "no_wildcard_resources",
        lambda lake, wh: _statement(lake, "BronzeReadOnly").update(
            Resource="arn:aws:s3:::*/bronze/*"
        ),
        "bucket name open",
    ),
    "any account": (
        "no_wildcard_resources",
        lambda lake, wh: _statement(wh, "GoldCatalogReadOnly")["Resource"].append(
            "arn:aws:glue:eu-west-1:*:database/gold"
        ),
        "region/account open",
    ),
    "runtime role writes bronze": (
        "runtime_role_scope",
        lambda lake, wh: _statement(lake, "BronzeReadOnly")["Action"].append("s3:PutObject"),
        "write actions",
    ),
    "runtime role reads the whole bucket": (
        "runtime_role_scope",
        lambda lake, wh: _statement(lake, "SilverGoldReadWrite")["Resource"].append(
            f"{_bucket_arn(lake)}/*"
        ),
        "is not under",
    ),
    "runtime role reads another bucket": (
        "runtime_role_scope",
        lambda lake, wh: _statement(lake, "BronzeReadOnly").update(
            Resource="arn:aws:s3:::example-bucket/bronze/*"
        ),
        "outside the lake bucket",
    ),
    "runtime role lists the whole bucket": (
        "runtime_role_scope",
        lambda lake, wh: _statement(lake, "LakeBucketListLayerPrefixes").pop("Condition"),
        "without an s3:prefix condition",
    ),
    "runtime role touches another database": (
        "runtime_role_scope",
        lambda lake, wh: _statement(lake, "GlueCatalogLakeDatabases")["Resource"].append(
            f"arn:aws:glue:{checks.FAKE_REGION}:{checks.FAKE_ACCOUNT}:table/finance/*"
        ),
        "outside",
    ),
    "runtime role creates sessions": (
        "runtime_role_scope",
        lambda lake, wh: _add_statement(
            lake,
            "GlueRuntimePolicy",
            {
                "Sid": "Sessions",
                "Effect": "Allow",
                "Action": ["glue:CreateSession", "glue:RunStatement"],
                "Resource": checks.runner_session_resource(lake),
            },
        ),
        "session actions",
    ),
    "runtime role passes itself": (
        "runtime_role_scope",
        lambda lake, wh: _add_statement(
            lake,
            "GlueRuntimePolicy",
            {
                "Sid": "Pass",
                "Effect": "Allow",
                "Action": "iam:PassRole",
                "Resource": lake["RoleArns"]["GlueRuntimeRole"],
            },
        ),
        "iam:PassRole in the runtime role",
    ),
    "runtime role recreates the stack's databases": (
        "runtime_role_scope",
        lambda lake, wh: _statement(lake, "GlueCatalogLakeDatabases")["Action"].extend(
            ["glue:CreateDatabase", "glue:UpdateDatabase"]
        ),
        "databases the stack owns",
    ),
    "runtime role logs into every environment's groups": (
        "runtime_role_scope",
        lambda lake, wh: _statement(lake, "ThisEnvironmentsSessionLogs")["Resource"].append(
            f"arn:aws:logs:{checks.FAKE_REGION}:{checks.FAKE_ACCOUNT}:log-group:/aws-glue/*"
        ),
        "outside this environment's",
    ),
    "runtime role assumable by the CI principal": (
        "runtime_role_scope",
        lambda lake, wh: lake["Resources"]["GlueRuntimeRole"]["Properties"][
            "AssumeRolePolicyDocument"
        ]["Statement"].append(
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{checks.FAKE_ACCOUNT}:role/ci"},
                "Action": "sts:AssumeRole",
            }
        ),
        "not Glue alone",
    ),
    "runner reaches every environment's sessions": (
        "runner_policy_scope",
        lambda lake, wh: _statement(lake, "ThisEnvironmentsSessions").update(
            Resource=f"arn:aws:glue:{checks.FAKE_REGION}:{checks.FAKE_ACCOUNT}:session/dbt-glue*"
        ),
        "not only",
    ),
    "runner tags sessions": (
        "runner_policy_scope",
        lambda lake, wh: _statement(lake, "ThisEnvironmentsSessions")["Action"].append(
            "glue:TagResource"
        ),
        "glue:TagResource",
    ),
    "runner passes any role": (
        "runner_policy_scope",
        lambda lake, wh: _statement(lake, "PassRuntimeRoleToGlueOnly").update(
            Resource=f"arn:aws:iam::{checks.FAKE_ACCOUNT}:role/admin"
        ),
        "not the runtime role",
    ),
    "runner passes the runtime role to any service": (
        "runner_policy_scope",
        lambda lake, wh: _statement(lake, "PassRuntimeRoleToGlueOnly").pop("Condition"),
        "glue.amazonaws.com",
    ),
    "runner writes the catalog": (
        "runner_policy_scope",
        lambda lake, wh: _statement(lake, "CatalogReadOnly")["Action"].append("glue:UpdateTable"),
        "catalog actions",
    ),
    "runner writes gold directly": (
        "runner_policy_scope",
        lambda lake, wh: _add_statement(
            lake,
            "DbtRunnerPolicy",
            {
                "Sid": "Gold",
                "Effect": "Allow",
                "Action": "s3:PutObject",
                "Resource": f"{_bucket_arn(lake)}/dev_gold/*",
            },
        ),
        "beyond sessions",
    ),
    "runner role claims 4 h": (
        "runner_policy_scope",
        lambda lake, wh: lake["Resources"]["DbtRunnerRole"]["Properties"].update(
            MaxSessionDuration=14400
        ),
        "role chaining",
    ),
    "runner role carries more": (
        "runner_policy_scope",
        lambda lake, wh: lake["Resources"]["DbtRunnerRole"]["Properties"][
            "ManagedPolicyArns"
        ].append("arn:aws:iam::aws:policy/AdministratorAccess"),
        "more than the runner policy",
    ),
    "ingestion cannot use the key": (
        "kms_through_s3",
        lambda lake, wh: lake["Resources"]["BronzeIngestPolicy"]["Properties"]["PolicyDocument"][
            "Statement"
        ].pop(),
        "BronzeIngestPolicy: lacks",
    ),
    "ingestion cannot start a multipart upload": (
        "kms_through_s3",
        lambda lake, wh: lake["Resources"]["BronzeIngestPolicy"]["Properties"]["PolicyDocument"][
            "Statement"
        ][-1].update(Action=["kms:Decrypt"]),
        "kms:GenerateDataKey",
    ),
    "kms:Encrypt granted": (
        "kms_through_s3",
        lambda lake, wh: _statement(lake, "LakeKmsKeyThroughS3")["Action"].append("kms:Encrypt"),
        "kms:Encrypt",
    ),
    "key usable outside S3": (
        "kms_through_s3",
        lambda lake, wh: _statement(wh, "LakeKmsKeyDecryptThroughS3").pop("Condition"),
        "kms:ViaService",
    ),
    "spectrum decrypts with another key": (
        "kms_through_s3",
        lambda lake, wh: _statement(wh, "LakeKmsKeyDecryptThroughS3").update(
            Resource=f"arn:aws:kms:{checks.FAKE_REGION}:{checks.FAKE_ACCOUNT}:key/*"
        ),
        "not arn:aws:kms",
    ),
    "key typed into the warehouse by hand": (
        "kms_through_s3",
        lambda lake, wh: wh["Parameters"].update(LakeKmsKeyArn=KMS_KEY),
        "not imported",
    ),
    "workgroup open to the internet": (
        "network",
        lambda lake, wh: wh["Resources"]["WorkgroupIngressFromSecurityGroup"]["Properties"].update(
            CidrIp="0.0.0.0/0", SourceSecurityGroupId=None
        ),
        "whole internet",
    ),
    "workgroup open on every port": (
        "network",
        lambda lake, wh: wh["Resources"]["WorkgroupIngressFromSecurityGroup"]["Properties"].update(
            FromPort=0, ToPort=65535
        ),
        "not tcp 5439 alone",
    ),
    "workgroup without an ingress rule": (
        "network",
        lambda lake, wh: wh["Resources"].pop("WorkgroupIngressFromSecurityGroup"),
        "no ingress rule",
    ),
    "workgroup behind the VPC's default security group": (
        "network",
        lambda lake, wh: wh["Resources"]["Workgroup"]["Properties"].update(
            SecurityGroupIds=["sg-0123456789abcdef0"]
        ),
        "security group the stack makes",
    ),
    "workgroup in the default VPC's subnets": (
        "network",
        lambda lake, wh: wh["Resources"]["Workgroup"]["Properties"].pop("SubnetIds"),
        "no SubnetIds",
    ),
    "ingestion writes gold": (
        "ingest_policy_bronze_only",
        lambda lake, wh: _statement(lake, "BronzeReadWrite").update(
            Resource=[f"{_bucket_arn(lake)}/bronze/*", f"{_bucket_arn(lake)}/gold/*"]
        ),
        "is not under",
    ),
    "ingestion lists the whole bucket": (
        "ingest_policy_bronze_only",
        lambda lake, wh: _statement(lake, "BronzeList")["Condition"]["StringLike"].update(
            {"s3:prefix": ["*"]}
        ),
        "listing prefix",
    ),
    "spectrum reads silver": (
        "spectrum_gold_only",
        lambda lake, wh: _statement(wh, "GoldObjectsReadOnly").update(
            Resource=[
                _statement(wh, "GoldObjectsReadOnly")["Resource"],
                f"{_bucket_arn(lake)}/silver/*",
            ]
        ),
        "is not under",
    ),
    "spectrum lists bronze": (
        "spectrum_gold_only",
        lambda lake, wh: _statement(wh, "GoldPrefixList")["Condition"]["StringLike"][
            "s3:prefix"
        ].append("bronze/*"),
        "listing prefix",
    ),
    "spectrum writes gold": (
        "spectrum_gold_only",
        lambda lake, wh: _statement(wh, "GoldObjectsReadOnly").update(
            Action=["s3:GetObject", "s3:PutObject"]
        ),
        "more than reading Gold",
    ),
    "spectrum reads the silver database": (
        "spectrum_gold_only",
        lambda lake, wh: _statement(wh, "GoldCatalogReadOnly")["Resource"].append(
            f"arn:aws:glue:{checks.FAKE_REGION}:{checks.FAKE_ACCOUNT}:table/silver/*"
        ),
        "outside",
    ),
    "spectrum alters the catalog": (
        "spectrum_gold_only",
        lambda lake, wh: _statement(wh, "GoldCatalogReadOnly")["Action"].append("glue:UpdateTable"),
        "non-read Glue actions",
    ),
    "spectrum trusted by anyone": (
        "spectrum_gold_only",
        lambda lake, wh: wh["Resources"]["SpectrumRole"]["Properties"]["AssumeRolePolicyDocument"][
            "Statement"
        ][0].update(Principal={"AWS": f"arn:aws:iam::{checks.FAKE_ACCOUNT}:root"}),
        "not Redshift alone",
    ),
    "password in the template": (
        "redshift",
        lambda lake, wh: wh["Resources"]["Namespace"]["Properties"].update(
            ManageAdminPassword=False, AdminUserPassword="NotARealPassword1"
        ),
        "password",
    ),
    "public workgroup": (
        "redshift",
        lambda lake, wh: wh["Resources"]["Workgroup"]["Properties"].update(PubliclyAccessible=True),
        "PubliclyAccessible",
    ),
    "spectrum role not attached": (
        "redshift",
        lambda lake, wh: wh["Resources"]["Namespace"]["Properties"].update(IamRoles=[]),
        "Spectrum role",
    ),
    "TLS not required by redshift": (
        "redshift",
        lambda lake, wh: wh["Resources"]["Workgroup"]["Properties"].update(ConfigParameters=[]),
        "require_ssl",
    ),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_check_catches_violation(mutation: str) -> None:
    check, mutate, expected = MUTATIONS[mutation]
    lake, warehouse = checks.render_both(*PARAMETER_SETS["prefix+kms+runner"])
    assert CHECKS[check](copy.deepcopy(lake), copy.deepcopy(warehouse)) == []
    mutate(lake, warehouse)
    violations = CHECKS[check](lake, warehouse)
    assert violations, f"{check} did not notice: {mutation}"
    assert any(expected in v for v in violations), violations


@pytest.mark.parametrize(
    "network",
    [
        {"VpcId": None},
        {"SubnetIds": None},
        {"ClientCidr": ""},
        {"ClientCidr": "0.0.0.0/0"},
        {"ClientCidr": "", "ClientSecurityGroupId": "default"},
    ],
    ids=["no-vpc", "no-subnets", "no-ingress-source", "internet", "bad-security-group"],
)
def test_a_deploy_cannot_leave_the_network_out(network: dict[str, Any]) -> None:
    """VpcId and SubnetIds have no default, a Rule requires an ingress source, the CIDR pattern
    refuses /0: the renderer enforces these as CloudFormation does before creating anything
    (cloud-radar the parameters, checks.py the Rule, which cloud-radar does not evaluate)."""
    template = checks.load_template(checks.WAREHOUSE_TEMPLATE)
    parameters = {**checks.FAKE_NETWORK, **network}
    for name in [n for n, v in network.items() if v is None]:
        del parameters[name]
    lake, _ = checks.render_both()
    with pytest.raises(checks.RenderError):
        checks.render(template, parameters, checks.lake_exports(lake))
    checks.render(template, checks.FAKE_NETWORK, checks.lake_exports(lake))  # the example passes


def test_renderer_refuses_fn_getazs() -> None:
    """cloud-radar's Fn::GetAZs downloads region data; the renderer refuses it instead."""
    template = checks.load_template(checks.LAKE_TEMPLATE)
    template["Outputs"]["Zones"] = {"Value": {"Fn::Select": [0, {"Fn::GetAZs": ""}]}}
    with pytest.raises(checks.RenderError, match="Fn::GetAZs"):
        checks.render(template)


def test_network_check_notices_a_default_subnet_list() -> None:
    template = checks.load_template(checks.WAREHOUSE_TEMPLATE)
    _, warehouse = checks.render_both()
    assert checks.check_network(warehouse, template) == []
    template["Parameters"]["SubnetIds"]["Default"] = ""
    assert any("SubnetIds" in v for v in checks.check_network(warehouse, template))


def test_every_check_has_a_mutation() -> None:
    assert {check for check, _, _ in MUTATIONS.values()} == set(CHECKS)


def test_allow_list_admits_only_listed_statements() -> None:
    lake, _ = checks.render_both()
    _add_statement(
        lake,
        "DbtRunnerPolicy",
        {"Sid": "ListSessions", "Effect": "Allow", "Action": "glue:ListSessions", "Resource": "*"},
    )
    assert checks.check_no_wildcard_resources(lake, {}) != []
    allowed = {
        ("DbtRunnerPolicy", "ListSessions"): "ListSessions has no resource-level permissions"
    }
    assert checks.check_no_wildcard_resources(lake, allowed) == []


def test_allow_listed_wildcards_are_commented_in_the_template() -> None:
    texts = {path.name: path.read_text() for path in TEMPLATES}
    for (logical_id, sid), reason in ALLOWED_STAR_RESOURCES.items():
        assert reason.strip(), f"{logical_id}/{sid} has no reason"
        commented = [
            name
            for name, text in texts.items()
            if re.search(rf"#[^\n]*\n(\s*#[^\n]*\n)*\s*- Sid: {re.escape(sid)}\b", text)
        ]
        assert commented, f"{logical_id}/{sid} uses Resource '*' without a comment above it"


# ------------------------------------------------------------------------------------------------
# Outputs <-> the environment variables the prod targets read
# ------------------------------------------------------------------------------------------------


def _prod_env_vars() -> set[str]:
    """Every env var the prod_* targets of profiles/profiles.yml read, plus LAKEHOUSE_BRONZE_URI
    (dbt_project.yml's bronze_location on prod), LAKEHOUSE_SCHEMA_PREFIX (generate_schema_name on
    prod targets) and what the external-schema macro reads."""
    text = (ROOT / "profiles" / "profiles.yml").read_text()
    names: set[str] = set()
    for block in re.split(r"\n    (?=[a-z_]+:\n)", text):
        if block.startswith("prod"):
            names |= set(re.findall(r"env_var\('([A-Z0-9_]+)'", block))
    assert "LAKEHOUSE_GLUE_ROLE_ARN" in names and "LAKEHOUSE_REDSHIFT_WORKGROUP" in names, names
    project = (ROOT / "dbt_project.yml").read_text()
    names |= {
        n for n in re.findall(r"env_var\('([A-Z0-9_]+)'", project) if n == "LAKEHOUSE_BRONZE_URI"
    }
    for macro in ("redshift_external_schema.sql", "generate_schema_name.sql"):
        names |= set(re.findall(r"env_var\('([A-Z0-9_]+)'", (ROOT / "macros" / macro).read_text()))
    return names


# Read by the prod targets but deliberately not a stack output: the admin password stays in Secrets
# Manager (the runbook reads it from there when LAKEHOUSE_REDSHIFT_AUTH_METHOD=database).
NOT_AN_OUTPUT = {"LAKEHOUSE_REDSHIFT_PASSWORD"}


def test_outputs_map_one_to_one_to_the_env_vars() -> None:
    lake, warehouse = checks.render_both({"SchemaPrefix": "dev_"}, {})
    mapping = checks.output_env_vars(lake, warehouse)
    expected = _prod_env_vars() - NOT_AN_OUTPUT
    assert set(mapping) == expected
    for env_var, output in mapping.items():
        assert output == checks.expected_output_name(env_var), (env_var, output)
    assert (
        "LAKEHOUSE_REDSHIFT_PASSWORD"
        in warehouse["Outputs"]["LakehouseRedshiftNamespace"]["Description"]
    )


def test_outputs_check_notices_a_missing_output() -> None:
    lake, warehouse = checks.render_both({"SchemaPrefix": "dev_"}, {})
    del warehouse["Outputs"]["LakehouseRedshiftWorkgroup"]
    assert set(checks.output_env_vars(lake, warehouse)) != _prod_env_vars() - NOT_AN_OUTPUT


def test_no_secrets_or_real_account_ids_in_infra() -> None:
    for path in [*TEMPLATES, INFRA / "README.md", ROOT / "docs" / "runbook.md"]:
        if not path.exists():
            continue
        text = path.read_text()
        assert not re.search(r"AKIA[0-9A-Z]{16}", text), path
        accounts = set(re.findall(r"(?<![0-9])[0-9]{12}(?![0-9])", text))
        assert accounts <= {checks.FAKE_ACCOUNT}, (path, accounts)


# ------------------------------------------------------------------------------------------------
# macros/redshift_external_schema.sql
# ------------------------------------------------------------------------------------------------


class _CompilerError(Exception):
    pass


def _render_macro(env: dict[str, str], target_name: str = "prod_warehouse", **kwargs: Any) -> str:
    """Render the macro file with plain Jinja and stand-ins for dbt's context, the way dbt would."""
    executed: list[str] = []
    environment = jinja2.Environment(extensions=[jinja2.ext.do], undefined=jinja2.StrictUndefined)
    source = (ROOT / "macros" / "redshift_external_schema.sql").read_text()
    source += "\n" + (ROOT / "macros" / "generate_schema_name.sql").read_text()

    def env_var(name: str, default: str | None = None) -> str:
        if name in env:
            return env[name]
        if default is None:
            raise _CompilerError(f"Env var required but not provided: {name}")
        return default

    def raise_compiler_error(message: str) -> None:
        raise _CompilerError(message)

    def statement(
        name: str, fetch_result: bool = False, auto_begin: bool = True, caller: Any = None
    ) -> str:
        executed.append(caller())
        return ""

    module = environment.from_string(source).make_module(
        {
            "env_var": env_var,
            "target": {"name": target_name, "type": "redshift"},
            "exceptions": type(
                "E", (), {"raise_compiler_error": staticmethod(raise_compiler_error)}
            ),
            "modules": type("M", (), {"re": re}),
            "log": lambda message, info=False: "",
            "statement": statement,
        }
    )
    module.create_gold_external_schema(**kwargs)
    assert len(executed) == 1
    return " ".join(executed[0].split())


PROD_ENV = {
    "LAKEHOUSE_SPECTRUM_ROLE_ARN": f"arn:aws:iam::{checks.FAKE_ACCOUNT}:role/spectrum-EXAMPLE",
    "AWS_REGION": "eu-west-1",
}


def test_macro_renders_the_external_schema_statement() -> None:
    sql = _render_macro(PROD_ENV)
    assert sql == (
        "create external schema if not exists gold from data catalog database 'gold' "
        f"iam_role '{PROD_ENV['LAKEHOUSE_SPECTRUM_ROLE_ARN']}' region 'eu-west-1'"
    )


def test_macro_applies_the_schema_prefix_and_grants() -> None:
    sql = _render_macro(
        {**PROD_ENV, "LAKEHOUSE_SCHEMA_PREFIX": "dev_"}, grant_usage_to="IAMR:ci-dbt"
    )
    assert sql.startswith(
        "create external schema if not exists dev_gold from data catalog database 'dev_gold' "
    )
    assert sql.endswith('; grant usage on schema dev_gold to "IAMR:ci-dbt"')


@pytest.mark.parametrize(
    "env",
    [
        {"AWS_REGION": "eu-west-1"},  # no role
        {
            **PROD_ENV,
            "LAKEHOUSE_SPECTRUM_ROLE_ARN": "arn:aws:iam::123456789012:role/x' ; drop table t; --",
        },
        {**PROD_ENV, "AWS_REGION": "not a region"},
        {**PROD_ENV, "LAKEHOUSE_SCHEMA_PREFIX": "Dev-"},
    ],
    ids=["missing-role", "quote-in-role", "bad-region", "bad-prefix"],
)
def test_macro_refuses_values_that_do_not_fit(env: dict[str, str]) -> None:
    with pytest.raises(_CompilerError):
        _render_macro(env)
