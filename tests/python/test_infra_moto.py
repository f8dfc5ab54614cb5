"""Deploy infra/ into moto's CloudFormation (a real HTTP endpoint on 127.0.0.1) and land a file
with the project's ingestion into the bucket the lake stack created.

moto's CloudFormation cannot create every resource type the templates use. The deployed copies are
trimmed of exactly those (and of what refers to them), and the test pins the list, so a template
change or a moto upgrade that changes it shows up here:

  lake.yaml       AWS::Glue::Database x3, AWS::S3::BucketPolicy
                  -> created right after through the Glue and S3 APIs of the same moto server from
                     the rendered template (botocore validates their shape, moto stores them)
  warehouse.yaml  AWS::RedshiftServerless::Namespace, AWS::RedshiftServerless::Workgroup, and the
                  managed policy and outputs that refer to the workgroup/namespace
                  -> not deployed anywhere offline; cfn-lint and test_infra.py cover them

moto's S3 model also ignores, from CloudFormation, everything on a bucket but its encryption and
tags (versioning, public access block, lifecycle): those properties are asserted on the template
itself in test_infra.py, not on the moto bucket.
"""

from __future__ import annotations

import ast
import copy
import importlib.util
import json
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from cfnlint.helpers import REGEX_SUB_PARAMETERS  # ${Name} / ${Name.Attr} in an Fn::Sub

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "walmart_head_2000rows.csv"
REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's default account
LAKE_STACK = "lakehouse-test-lake"
WAREHOUSE_STACK = "lakehouse-test-warehouse"
PREFIX = "test_"
OTHER_LAKE_STACK = "lakehouse-other-lake"
OTHER_WAREHOUSE_STACK = "lakehouse-other-warehouse"
OTHER_PREFIX = "other_"

_spec = importlib.util.spec_from_file_location(
    "lakehouse_infra_checks", ROOT / "infra" / "checks.py"
)
assert _spec and _spec.loader
checks = sys.modules.get(_spec.name) or importlib.util.module_from_spec(_spec)
if _spec.name not in sys.modules:
    sys.modules[_spec.name] = checks
    _spec.loader.exec_module(checks)

moto_server = pytest.importorskip("moto.server")

# What moto's CloudFormation cannot create, per template (resource types), and what the trimmed
# copies must therefore lose (logical ids, outputs).
EXPECTED_UNSUPPORTED_TYPES = {
    "lake.yaml": {"AWS::Glue::Database", "AWS::S3::BucketPolicy"},
    "warehouse.yaml": {"AWS::RedshiftServerless::Namespace", "AWS::RedshiftServerless::Workgroup"},
}
EXPECTED_DROPPED = {
    "lake.yaml": (
        {"BronzeDatabase", "SilverDatabase", "GoldDatabase", "LakeBucketPolicy"},
        set(),
    ),
    "warehouse.yaml": (
        {"Namespace", "Workgroup", "WarehouseDbtUserPolicy"},
        {
            "LakehouseRedshiftHost",
            "LakehouseRedshiftNamespace",
            "LakehouseRedshiftWorkgroup",
            "WarehouseDbtUserPolicyArn",
        },
    ),
}


def _references(node: Any) -> set[str]:
    """Logical ids a piece of template refers to (Ref, Fn::GetAtt, ${X} / ${X.Attr} in Fn::Sub)."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value[0] if isinstance(value, list) else value.split(".")[0])
            elif key == "Fn::Sub":
                text = value if isinstance(value, str) else value[0]
                found |= {name.split(".")[0] for name in REGEX_SUB_PARAMETERS.findall(text)}
                found |= _references(value if isinstance(value, str) else value[1])
            else:
                found |= _references(value)
    elif isinstance(node, list):
        for item in node:
            found |= _references(item)
    return found


def trim_for_moto(template: dict[str, Any]) -> tuple[dict[str, Any], set[str], set[str], set[str]]:
    """(trimmed copy, unsupported types, dropped resources, dropped outputs)."""
    from moto.cloudformation.parsing import get_model_map

    supported = set(get_model_map())
    trimmed = copy.deepcopy(template)
    resources = trimmed["Resources"]
    unsupported_types = {r["Type"] for r in resources.values() if r["Type"] not in supported}
    dropped = {lid for lid, r in resources.items() if r["Type"] in unsupported_types}
    while True:  # drop whatever refers to a dropped resource, transitively
        more = {
            lid for lid, r in resources.items() if lid not in dropped and _references(r) & dropped
        }
        if not more:
            break
        dropped |= more
    for lid in dropped:
        del resources[lid]
    dropped_outputs = {
        name for name, o in trimmed.get("Outputs", {}).items() if _references(o) & dropped
    }
    for name in dropped_outputs:
        del trimmed["Outputs"][name]
    return trimmed, unsupported_types, dropped, dropped_outputs


def _policy_document(response: dict[str, Any]) -> dict[str, Any]:
    document = response["PolicyDocument"]
    if isinstance(document, dict):
        return document
    try:
        return dict(json.loads(document))
    except json.JSONDecodeError:
        # moto keeps a role's inline Policies created by CloudFormation as a Python repr.
        return dict(ast.literal_eval(document))


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _managed_document(iam: Any, arn: str) -> dict[str, Any]:
    version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    document = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]
    return _policy_document({"PolicyDocument": document["Document"]})


def _role_statements(iam: Any, role_name: str) -> list[dict[str, Any]]:
    """Every statement of a role's inline and attached managed policies, as moto stored them."""
    statements: list[dict[str, Any]] = []
    for name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]:
        document = _policy_document(iam.get_role_policy(RoleName=role_name, PolicyName=name))
        statements += _list(document["Statement"])
    for attached in iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]:
        statements += _list(_managed_document(iam, attached["PolicyArn"])["Statement"])
    return statements


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def aws(endpoint: str) -> Any:
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )

    def client(service: str) -> Any:
        return session.client(service, endpoint_url=endpoint)

    return client


def _deploy(cfn: Any, name: str, template_path: Path, parameters: dict[str, str]) -> dict[str, str]:
    template, _, _, _ = trim_for_moto(checks.load_template(template_path))
    cfn.create_stack(
        StackName=name,
        TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def _create_skipped_lake_resources(aws: Any, parameters: dict[str, str], stack: str) -> Any:
    """What moto's CloudFormation skipped, through the service APIs, from the same template."""
    rendered = checks.render(
        checks.load_template(checks.LAKE_TEMPLATE),
        parameters,
        account=ACCOUNT,
        region=REGION,
        stack_name=stack,
    )
    glue = aws("glue")
    for kind in ("Bronze", "Silver", "Gold"):
        glue.create_database(
            DatabaseInput=rendered["Resources"][f"{kind}Database"]["Properties"]["DatabaseInput"]
        )
    return rendered


@pytest.fixture(scope="module")
def deployed(aws: Any) -> dict[str, Any]:
    """Two environments in one account, as the runbook allows: "test" (SSE-S3, prefix test_) and
    "other" (a KMS key, prefix other_, a CI runner role), each with a lake and a warehouse stack
    (trimmed of what moto cannot create); a VPC with three subnets for the workgroups."""
    cfn = aws("cloudformation")
    lake_params = {"EnvironmentName": "test", "SchemaPrefix": PREFIX}
    outputs = _deploy(cfn, LAKE_STACK, checks.LAKE_TEMPLATE, lake_params)
    rendered = _create_skipped_lake_resources(aws, lake_params, LAKE_STACK)
    policy = rendered["Resources"]["LakeBucketPolicy"]["Properties"]
    s3 = aws("s3")
    s3.put_bucket_policy(Bucket=policy["Bucket"], Policy=json.dumps(policy["PolicyDocument"]))
    stored_policy = json.loads(s3.get_bucket_policy(Bucket=policy["Bucket"])["Policy"])
    # moto evaluates bucket-policy conditions without any request context: aws:SecureTransport is
    # never set, so the TLS-only Deny would deny every request, HTTPS or not. The policy is checked
    # for being accepted and stored, then removed so the landing below can run.
    s3.delete_bucket_policy(Bucket=policy["Bucket"])

    key_arn = aws("kms").create_key(Description="lake key of the other environment")["KeyMetadata"][
        "Arn"
    ]
    other_params = {
        "EnvironmentName": "other",
        "SchemaPrefix": OTHER_PREFIX,
        "KmsKeyArn": key_arn,
        "DbtRunnerPrincipalArn": f"arn:aws:iam::{ACCOUNT}:role/ci-dbt",
    }
    other = _deploy(cfn, OTHER_LAKE_STACK, checks.LAKE_TEMPLATE, other_params)
    other_rendered = _create_skipped_lake_resources(aws, other_params, OTHER_LAKE_STACK)
    # moto's CloudFormation ignores a role's ManagedPolicyArns: attach what the template lists (the
    # runner policy, and only it - check_runner_policy asserts that) through the IAM API.
    iam = aws("iam")
    runner_role = other["DbtRunnerRoleArn"].rsplit("/", 1)[1]
    listed = other_rendered["Resources"]["DbtRunnerRole"]["Properties"]["ManagedPolicyArns"]
    assert listed == [other_rendered["PhysicalIds"]["DbtRunnerPolicy"]]
    if not iam.list_attached_role_policies(RoleName=runner_role)["AttachedPolicies"]:
        iam.attach_role_policy(RoleName=runner_role, PolicyArn=other["DbtRunnerPolicyArn"])

    ec2 = aws("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(
            VpcId=vpc, CidrBlock=f"10.20.{i}.0/24", AvailabilityZone=f"{REGION}{zone}"
        )["Subnet"]["SubnetId"]
        for i, zone in enumerate("abc")
    ]
    tunnel_sg = ec2.create_security_group(
        GroupName="tunnel", Description="SSM tunnel instance", VpcId=vpc
    )["GroupId"]
    network = {"VpcId": vpc, "SubnetIds": ",".join(subnets)}
    outputs |= _deploy(
        cfn,
        WAREHOUSE_STACK,
        checks.WAREHOUSE_TEMPLATE,
        {"EnvironmentName": "test", "LakeStackName": LAKE_STACK, "ClientCidr": "10.20.0.0/16"}
        | network,
    )
    other |= _deploy(
        cfn,
        OTHER_WAREHOUSE_STACK,
        checks.WAREHOUSE_TEMPLATE,
        {
            "EnvironmentName": "other",
            "LakeStackName": OTHER_LAKE_STACK,
            "ClientSecurityGroupId": tunnel_sg,
        }
        | network,
    )
    return {
        "outputs": outputs,
        "other": other,
        "key_arn": key_arn,
        "tunnel_sg": tunnel_sg,
        "rendered_lake": rendered,
        "bucket_policy": stored_policy,
    }


@pytest.mark.parametrize("name", sorted(EXPECTED_DROPPED))
def test_trimmed_copies_drop_only_what_moto_cannot_deploy(name: str) -> None:
    _, unsupported, dropped, dropped_outputs = trim_for_moto(
        checks.load_template(checks.INFRA_DIR / name)
    )
    assert unsupported == EXPECTED_UNSUPPORTED_TYPES[name]
    assert (dropped, dropped_outputs) == EXPECTED_DROPPED[name]


def test_lake_stack_deploys_with_its_outputs(deployed: dict[str, Any], aws: Any) -> None:
    outputs = deployed["outputs"]
    bucket = f"lakehouse-test-{ACCOUNT}-{REGION}"
    assert outputs["LakehouseS3LakeUri"] == f"s3://{bucket}"
    assert outputs["LakehouseBronzeUri"] == f"s3://{bucket}/bronze"
    assert outputs["LakehouseSchemaPrefix"] == PREFIX
    assert outputs["AwsRegion"] == REGION
    assert outputs["LakehouseGlueWorkers"] == "2" and outputs["LakehouseGlueWorkerType"] == "G.1X"
    assert outputs["LakehouseGlueRoleArn"].startswith(f"arn:aws:iam::{ACCOUNT}:role/")

    s3 = aws("s3")
    encryption = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"][
        "Rules"
    ]
    assert encryption[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    policy = deployed["bucket_policy"]
    assert {s["Sid"] for s in policy["Statement"]} == {"DenyInsecureTransport", "DenyOutdatedTls"}

    names = {
        d["Name"]: d["LocationUri"]
        for d in aws("glue").get_databases()["DatabaseList"]
        if d["Name"].startswith(PREFIX)
    }
    assert names == {
        f"{PREFIX}bronze": f"s3://{bucket}/bronze/",
        f"{PREFIX}silver": f"s3://{bucket}/{PREFIX}silver/",
        f"{PREFIX}gold": f"s3://{bucket}/{PREFIX}gold/",
    }

    iam = aws("iam")
    role_name = outputs["LakehouseGlueRoleArn"].rsplit("/", 1)[1]
    trust = iam.get_role(RoleName=role_name)["Role"]["AssumeRolePolicyDocument"]
    assert [s["Principal"] for s in trust["Statement"]] == [{"Service": "glue.amazonaws.com"}]
    (policy_name,) = iam.list_role_policies(RoleName=role_name)["PolicyNames"]
    document = _policy_document(iam.get_role_policy(RoleName=role_name, PolicyName=policy_name))
    by_sid = {s["Sid"]: s for s in document["Statement"]}
    assert by_sid["BronzeReadOnly"]["Resource"] == f"arn:aws:s3:::{bucket}/bronze/*"
    assert "LakeKmsKeyThroughS3" not in by_sid  # SSE-S3 stack: no KMS statement
    assert not any(a == "iam:PassRole" for s in document["Statement"] for a in _list(s["Action"]))

    prefix = outputs["LakehouseGlueLogGroupPrefix"]
    assert prefix == "/aws-glue/sessions/lakehouse-test"
    groups = aws("logs").describe_log_groups(logGroupNamePrefix=prefix)["logGroups"]
    assert {g["logGroupName"] for g in groups} == {f"{prefix}/output", f"{prefix}/error"}
    assert all(g.get("retentionInDays") == 30 for g in groups)

    runner = _managed_document(iam, outputs["DbtRunnerPolicyArn"])
    runner_by_sid = {s["Sid"]: s for s in runner["Statement"]}
    assert runner_by_sid["PassRuntimeRoleToGlueOnly"]["Resource"] == outputs["LakehouseGlueRoleArn"]
    assert runner_by_sid["ThisEnvironmentsSessions"]["Resource"].endswith(
        f":session/dbt-glue__{role_name}__*"
    )
    assert "DbtRunnerRoleArn" not in outputs  # no DbtRunnerPrincipalArn: no runner role


def test_warehouse_spectrum_role_imports_the_lake_stack(deployed: dict[str, Any], aws: Any) -> None:
    outputs = deployed["outputs"]
    bucket = f"lakehouse-test-{ACCOUNT}-{REGION}"
    iam = aws("iam")
    role_name = outputs["LakehouseSpectrumRoleArn"].rsplit("/", 1)[1]
    by_sid = {s["Sid"]: s for s in _role_statements(iam, role_name)}
    assert by_sid["GoldObjectsReadOnly"]["Resource"] == f"arn:aws:s3:::{bucket}/{PREFIX}gold/*"
    assert by_sid["GoldPrefixList"]["Condition"]["StringLike"]["s3:prefix"] == [
        f"{PREFIX}gold",
        f"{PREFIX}gold/*",
    ]
    assert (
        f"arn:aws:glue:{REGION}:{ACCOUNT}:table/{PREFIX}gold/*"
        in by_sid["GoldCatalogReadOnly"]["Resource"]
    )
    assert outputs["LakehouseRedshiftDatabase"] == "dev"
    assert outputs["LakehouseRedshiftAuthMethod"] == "iam"
    # SSE-S3 lake: the imported key is key/none, which no key can be, so the grant is inert.
    kms = by_sid["LakeKmsKeyDecryptThroughS3"]
    assert kms["Resource"] == f"arn:aws:kms:{REGION}:{ACCOUNT}:key/none"
    assert kms["Condition"] == {"StringEquals": {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}}

    # The other environment's warehouse imports its lake's real key.
    other_role = deployed["other"]["LakehouseSpectrumRoleArn"].rsplit("/", 1)[1]
    other_kms = {s["Sid"]: s for s in _role_statements(iam, other_role)}[
        "LakeKmsKeyDecryptThroughS3"
    ]
    assert other_kms["Resource"] == deployed["key_arn"]


def test_workgroup_security_groups_admit_5439_from_the_given_source_only(
    deployed: dict[str, Any], aws: Any
) -> None:
    ec2 = aws("ec2")

    def ingress(group_id: str) -> list[dict[str, Any]]:
        (group,) = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"]
        return list(group["IpPermissions"])

    (rule,) = ingress(deployed["outputs"]["WorkgroupSecurityGroupId"])
    assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 5439, 5439)
    assert [r["CidrIp"] for r in rule["IpRanges"]] == ["10.20.0.0/16"]
    assert not rule.get("UserIdGroupPairs")

    (rule,) = ingress(deployed["other"]["WorkgroupSecurityGroupId"])
    assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 5439, 5439)
    assert [p["GroupId"] for p in rule["UserIdGroupPairs"]] == [deployed["tunnel_sg"]]
    assert not rule.get("IpRanges")


def test_ingestion_lands_a_file_in_the_deployed_bucket(deployed: dict[str, Any], aws: Any) -> None:
    if not (ROOT / "ingestion" / "landing.py").exists():
        pytest.skip("ingestion/landing.py (land_file, S3Destination) is not in the tree yet")
    from ingestion.destinations import S3Destination
    from ingestion.landing import land_file

    # Where LAKEHOUSE_BRONZE_URI (a stack output) points: s3://<bucket>/bronze, the Bronze root the
    # ingestion's keys are relative to - what `lakehouse ingest --to s3://<bucket>` lands into.
    bucket, _, bronze_root = (
        deployed["outputs"]["LakehouseBronzeUri"].removeprefix("s3://").partition("/")
    )
    assert bucket == deployed["outputs"]["LakehouseS3LakeUri"].removeprefix("s3://")
    s3 = aws("s3")
    result = land_file(FIXTURE, S3Destination(s3, bucket, prefix=bronze_root))
    assert result.status == "landed"
    assert result.rows == 2000

    keys = [
        obj["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for obj in page.get("Contents", [])
    ]
    parts = [
        k for k in keys if k.startswith("bronze/walmart_sales/ingest_date=") and "/batch_id=" in k
    ]
    assert parts, keys
    assert all(k.startswith("bronze/") for k in keys), keys  # everything lands under Bronze
    # The bucket default encryption applies to what the ingestion wrote.
    head = s3.head_object(Bucket=bucket, Key=parts[0])
    assert head.get("ServerSideEncryption") == "AES256"


# ------------------------------------------------------------------------------------------------
# IAM policy simulation over the policies moto stored for the deployed stacks, evaluated by moto's
# own IAM statement evaluator (moto.iam.access_control). Two adjustments make it follow AWS's
# rules where moto is lenient or terse, so a "cannot" below is not an artefact of the evaluator:
#   - a condition key the request does not carry makes the statement not apply (moto would treat it
#     as satisfied), and a condition operator moto does not evaluate fails the simulation instead
#     of being ignored;
#   - an Allow whose condition does not hold simply does not apply (moto answers "denied").
# ------------------------------------------------------------------------------------------------


def _simulate(
    statements: list[dict[str, Any]],
    action: str,
    resource: str,
    context: dict[str, str] | None = None,
) -> bool:
    from moto.iam.access_control import IAMPolicyStatement, PermissionResult

    context = context or {}
    allowed = False
    for statement in statements:
        conditions = statement.get("Condition", {})
        if any(key not in context for keys in conditions.values() for key in keys):
            continue
        result = IAMPolicyStatement(statement).is_action_permitted(action, resource, None, context)
        if result == PermissionResult.NEUTRAL:
            continue
        if set(conditions) - {"StringEquals"}:
            raise NotImplementedError(f"condition {sorted(conditions)} in {statement.get('Sid')}")
        if statement["Effect"] == "Deny" and result == PermissionResult.DENIED:
            return False
        allowed = allowed or result == PermissionResult.PERMITTED
    return allowed


def _session_arn(runtime_role_arn: str, suffix: str = "0f1e2d3c") -> str:
    """The ARN of a session dbt-glue would create for this runtime role."""
    name = runtime_role_arn.rsplit("/", 1)[1]
    return f"arn:aws:glue:{REGION}:{ACCOUNT}:session/dbt-glue__{name}__{suffix}"


@pytest.fixture(scope="module")
def principals(deployed: dict[str, Any], aws: Any) -> dict[str, Any]:
    iam = aws("iam")
    test, other = deployed["outputs"], deployed["other"]
    return {
        "runtime": _role_statements(iam, test["LakehouseGlueRoleArn"].rsplit("/", 1)[1]),
        "runner": _list(_managed_document(iam, test["DbtRunnerPolicyArn"])["Statement"]),
        "other_runner_role": _role_statements(iam, other["DbtRunnerRoleArn"].rsplit("/", 1)[1]),
        "ingest": _list(_managed_document(iam, test["BronzeIngestPolicyArn"])["Statement"]),
        "other_ingest": _list(_managed_document(iam, other["BronzeIngestPolicyArn"])["Statement"]),
        "test_runtime_arn": test["LakehouseGlueRoleArn"],
        "other_runtime_arn": other["LakehouseGlueRoleArn"],
        "test_bucket": test["LakeBucketName"],
        "other_bucket": other["LakeBucketName"],
        "key_arn": deployed["key_arn"],
    }


TO_GLUE = {"iam:PassedToService": "glue.amazonaws.com"}
VIA_S3 = {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}


def test_simulation_runtime_role_cannot_create_sessions_or_pass_roles(
    principals: dict[str, Any],
) -> None:
    runtime, own = principals["runtime"], principals["test_runtime_arn"]
    session = _session_arn(own)
    for action in ("glue:CreateSession", "glue:RunStatement", "glue:GetStatement"):
        assert not _simulate(runtime, action, session), action
    assert not _simulate(runtime, "iam:PassRole", own, TO_GLUE)
    assert not _simulate(runtime, "iam:PassRole", principals["other_runtime_arn"], TO_GLUE)
    # ... while it does what Spark code in the session needs (the evaluator does see its allows).
    bucket = principals["test_bucket"]
    assert _simulate(runtime, "s3:PutObject", f"arn:aws:s3:::{bucket}/{PREFIX}silver/t/f.parquet")
    assert not _simulate(runtime, "s3:PutObject", f"arn:aws:s3:::{bucket}/bronze/walmart_sales/")
    assert _simulate(
        runtime, "glue:UpdateTable", f"arn:aws:glue:{REGION}:{ACCOUNT}:table/{PREFIX}gold/dim_store"
    )


def test_simulation_runner_reaches_only_its_own_environments_sessions(
    principals: dict[str, Any],
) -> None:
    runner, other_runner = principals["runner"], principals["other_runner_role"]
    own, other = principals["test_runtime_arn"], principals["other_runtime_arn"]
    for action in ("glue:CreateSession", "glue:RunStatement", "glue:GetStatement"):
        assert _simulate(runner, action, _session_arn(own)), action
        assert not _simulate(runner, action, _session_arn(other)), action
        assert _simulate(other_runner, action, _session_arn(other)), action
        assert not _simulate(other_runner, action, _session_arn(own)), action
    assert _simulate(runner, "iam:PassRole", own, TO_GLUE)
    assert not _simulate(runner, "iam:PassRole", own, {"iam:PassedToService": "ec2.amazonaws.com"})
    assert not _simulate(runner, "iam:PassRole", other, TO_GLUE)
    # No data access of its own: everything goes through the session as the runtime role.
    bucket = principals["test_bucket"]
    assert not _simulate(runner, "s3:PutObject", f"arn:aws:s3:::{bucket}/{PREFIX}gold/x")
    assert not _simulate(
        runner, "glue:UpdateTable", f"arn:aws:glue:{REGION}:{ACCOUNT}:table/{PREFIX}gold/x"
    )


def test_simulation_notices_the_account_wide_session_pattern(principals: dict[str, Any]) -> None:
    """The same simulation on the pre-#16 resource (session/dbt-glue*) lets one environment's runner
    run statements in another's session: the test above is not vacuous."""
    widened = copy.deepcopy(principals["runner"])
    for statement in widened:
        if statement["Sid"] == "ThisEnvironmentsSessions":
            statement["Resource"] = f"arn:aws:glue:{REGION}:{ACCOUNT}:session/dbt-glue*"
    other_session = _session_arn(principals["other_runtime_arn"])
    assert _simulate(widened, "glue:RunStatement", other_session)


def test_simulation_ingestion_writes_bronze_with_the_key_and_nothing_else(
    principals: dict[str, Any],
) -> None:
    ingest, key, bucket = (
        principals["other_ingest"],
        principals["key_arn"],
        principals["other_bucket"],
    )
    part = f"arn:aws:s3:::{bucket}/bronze/walmart_sales/ingest_date=2026-01-01/batch_id=b/part-0"
    for action in ("s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"):
        assert _simulate(ingest, action, part), action
    # PutObject / CreateMultipartUpload need GenerateDataKey, GetObject and completion Decrypt.
    assert _simulate(ingest, "kms:GenerateDataKey", key, VIA_S3)
    assert _simulate(ingest, "kms:Decrypt", key, VIA_S3)
    # ... and nothing else: not the key outside S3, not Encrypt, not another key, no other layer,
    # no other environment's bucket, no Glue.
    assert not _simulate(ingest, "kms:Decrypt", key, {"kms:ViaService": "glue.amazonaws.com"})
    assert not _simulate(ingest, "kms:Decrypt", key)
    assert not _simulate(ingest, "kms:Encrypt", key, VIA_S3)
    other_key = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/00000000-0000-4000-8000-000000000000"
    assert not _simulate(ingest, "kms:GenerateDataKey", other_key, VIA_S3)
    for layer in (f"{OTHER_PREFIX}silver", f"{OTHER_PREFIX}gold", "_other"):
        assert not _simulate(ingest, "s3:PutObject", f"arn:aws:s3:::{bucket}/{layer}/x"), layer
    test_bucket = principals["test_bucket"]
    assert not _simulate(ingest, "s3:PutObject", f"arn:aws:s3:::{test_bucket}/bronze/x")
    assert not _simulate(
        ingest, "glue:CreateSession", _session_arn(principals["other_runtime_arn"])
    )
    # The SSE-S3 environment's ingestion has no KMS grant at all.
    assert not _simulate(principals["ingest"], "kms:GenerateDataKey", key, VIA_S3)
