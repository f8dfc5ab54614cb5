"""Offline security checks of the lakehouse CloudFormation templates (no AWS account needed).

The templates are rendered for a concrete parameter set by cloud-radar (its Template: Ref, Fn::Sub,
Fn::GetAtt, Fn::If, Fn::ImportValue, conditions, and the parameters' AllowedPattern, AllowedValues
and AWS-specific types checked as CloudFormation does before a deploy). What is left here is the
glue cloud-radar does not do: the resources' physical names and ARNs (it gives a logical id unless
told them), the template's Rules (it ignores them) and the rendered dict the checks read. Then each
check reads the rendered resources and returns a list of violations (empty = pass). Every check is
a plain function of a template dict, so a test can mutate a copy and see the check fail.

Two layers check the templates. checkov (the `checkov` gate, its own .venv-checkov, skips in
infra/.checkov.yaml) runs the generic checks on the templates as written: public access blocks,
versioning, `*` actions, admin and unconstrained-write policies, open trust policies, security
groups... (infra/README.md maps what it replaced). This module keeps what checkov cannot see or
does not check for CloudFormation: the project's IAM layering (runtime role, runner policy,
ingestion, Spectrum, KMS through S3, the workgroup's network and Redshift Serverless settings),
its stricter least-privilege rules (no wildcard in any Allow, no NotAction, no Resource "*", no
open account/region/bucket in an ARN), the TLS-only bucket policy, the lifecycle rules, and the
bucket's encryption (set by an Fn::If that checkov does not evaluate).

    .venv/bin/python infra/checks.py     # render both stacks, print violations, exit 1 if any

tests/python/test_infra.py runs the same checks, plus cfn-lint and mutation tests.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import json
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cfn_tools import load_yaml
from cloud_radar.cf.unit import Template
from cloud_radar.cf.unit import functions as cfn_functions

INFRA_DIR = Path(__file__).resolve().parent
LAKE_TEMPLATE = INFRA_DIR / "lake.yaml"
WAREHOUSE_TEMPLATE = INFRA_DIR / "warehouse.yaml"

FAKE_ACCOUNT = "123456789012"
FAKE_REGION = "eu-west-1"
PARTITION = "aws"
FAKE_KMS_KEY = f"arn:aws:kms:{FAKE_REGION}:{FAKE_ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
# The warehouse's network parameters have no defaults (a deploy must name them): example values, in
# the format of their AWS-specific parameter types (hex ids), which the renderer checks.
FAKE_NETWORK = {
    "VpcId": "vpc-0123456789abcdef0",
    "SubnetIds": "subnet-0123456789abcdef0,subnet-0123456789abcdef1,subnet-0123456789abcdef2",
    "ClientCidr": "10.0.0.0/16",
}

# ---------------------------------------------------------------------------------------------
# Rendering: cloud-radar resolves the intrinsic functions for one parameter set.
# ---------------------------------------------------------------------------------------------


class RenderError(ValueError):
    """A parameter set CloudFormation would refuse before creating anything (a value its parameter
    does not allow, a missing value or import, a broken Rule)."""


def _quietly(make: Callable[[], Template]) -> Template:
    # cloud-radar 0.17 prints every Template it constructs (HookProcessor.evaluate_template_hooks).
    with contextlib.redirect_stdout(io.StringIO()):
        return make()


@functools.cache
def _parsed(path: Path, modified: int) -> str:
    # cfn-flip's loader (the one cloud-radar's Template.from_yaml uses, which parses twice more),
    # as JSON: plain dicts instead of its ODicts, which cloud-radar cannot copy through YAML.
    return json.dumps(load_yaml(path.read_text(encoding="utf-8")), default=str)


def load_template(path: Path | str) -> dict[str, Any]:
    """The template as a dict with long-form intrinsic functions (cfn-flip reads the short forms);
    a fresh copy each call, parsed once per version of the file."""
    path = Path(path).resolve()
    template: dict[str, Any] = json.loads(_parsed(path, path.stat().st_mtime_ns))
    return template


def _rendered(
    template: dict[str, Any],
    parameters: dict[str, Any],
    imports: dict[str, str],
    account: str,
    region: str,
    stack_name: str,
) -> Template:
    """cloud-radar's Template rendered for one parameter set; its .template is the result.
    Template.render rather than create_stack, which returns the dict alone: the Rules and the
    parameters' values are read through the rendered Template. The account and stack name are set
    on this instance: the class attributes are every Template's defaults."""
    stack = _quietly(lambda: Template(copy.deepcopy(template), imports=imports))
    stack.AccountId = account
    stack.StackName = stack_name
    # cloud-radar's Fn::GetAZs downloads region data: refused (ValueError), nothing downloads here.
    stack.allowed_functions = {
        name: function for name, function in stack.allowed_functions.items() if name != "Fn::GetAZs"
    }
    try:
        stack.render(parameters, region=region)
    except (ValueError, KeyError, TypeError) as error:
        raise RenderError(str(error)) from error
    return stack


def _assert_rules(stack: Template) -> None:
    """cloud-radar leaves the Rules section alone: assert each rule, with its condition functions,
    as CloudFormation does before a deploy."""
    for name, rule in stack.template.get("Rules", {}).items():
        condition = rule.get("RuleCondition", True)
        if not stack.resolve_values(copy.deepcopy(condition)):
            continue
        for assertion in rule.get("Assertions", []):
            if not stack.resolve_values(copy.deepcopy(assertion["Assert"])):
                description = assertion.get("AssertDescription", "assertion failed")
                raise RenderError(f"rule {name}: {description}")


# The property CloudFormation takes a resource's physical name from; other resources (or without
# it) are named <stack>-<LogicalId> (CloudFormation adds a random suffix).
_NAME_PROPERTIES = {
    "AWS::S3::Bucket": "BucketName",
    "AWS::RedshiftServerless::Namespace": "NamespaceName",
    "AWS::RedshiftServerless::Workgroup": "WorkgroupName",
    "AWS::IAM::Role": "RoleName",
    "AWS::Logs::LogGroup": "LogGroupName",
}


def security_group_id(logical_id: str) -> str:
    """The GroupId a rendered security group gets."""
    return f"sg-{logical_id.lower()}"


def _names_only(template: dict[str, Any]) -> dict[str, Any]:
    """The template cut down to what the physical names depend on (parameters, conditions, each
    resource's name property) and its Rules: a first rendering of it is cheap."""
    resources = {}
    for logical_id, resource in template["Resources"].items():
        name = _NAME_PROPERTIES.get(resource["Type"])
        properties = resource.get("Properties", {})
        resources[logical_id] = {
            **{key: resource[key] for key in ("Type", "Condition") if key in resource},
            "Properties": {name: properties[name]} if name in properties else {},
        }
    kept = ("Parameters", "Conditions", "Rules")
    return {**{key: template[key] for key in kept if key in template}, "Resources": resources}


def _physical_ids(
    rendered: dict[str, Any], account: str, region: str, stack_name: str
) -> dict[str, dict[str, Any]]:
    """cloud-radar's Cloud-Radar metadata (what Ref and Fn::GetAtt give) for every resource of a
    first rendering: physical names and the ARNs and ids the checks compare."""
    metadata = {}
    for logical_id, resource in rendered["Resources"].items():
        kind = resource["Type"]
        name = str(
            resource["Properties"].get(_NAME_PROPERTIES.get(kind), f"{stack_name}-{logical_id}")
        )
        iam = f"arn:{PARTITION}:iam::{account}"
        workgroup = f"{logical_id.lower()}-0000"
        attributes = {
            "AWS::S3::Bucket": {"Arn": f"arn:{PARTITION}:s3:::{name}"},
            "AWS::IAM::Role": {"Arn": f"{iam}:role/{name}"},
            "AWS::EC2::SecurityGroup": {"GroupId": security_group_id(logical_id)},
            "AWS::RedshiftServerless::Workgroup": {
                "Workgroup.WorkgroupArn": (
                    f"arn:{PARTITION}:redshift-serverless:{region}:{account}:workgroup/{workgroup}"
                )
            },
        }.get(kind, {})
        ref = f"{iam}:policy/{name}" if kind == "AWS::IAM::ManagedPolicy" else name
        metadata[logical_id] = {"ref": ref, "attribute-values": attributes}
    return metadata


def render(
    template: dict[str, Any],
    parameters: dict[str, Any] | None = None,
    imports: dict[str, str] | None = None,
    *,
    account: str = FAKE_ACCOUNT,
    region: str = FAKE_REGION,
    stack_name: str = "lakehouse-dev-lake",
) -> dict[str, Any]:
    """The template with every intrinsic function resolved for `parameters` (defaults otherwise):
    Parameters (name -> value), the deployed Resources (Type, Properties), Outputs, and the
    PhysicalIds (what Ref gives) and RoleArns of the deployed resources."""
    where = (parameters or {}, imports or {}, account, region, stack_name)
    first = _rendered(_names_only(template), *where)
    _assert_rules(first)
    metadata = _physical_ids(first.template, account, region, stack_name)
    named = copy.deepcopy(template)
    for logical_id, cloud_radar in metadata.items():
        named["Resources"][logical_id].setdefault("Metadata", {})["Cloud-Radar"] = cloud_radar
    stack = _rendered(named, *where)
    resources = stack.template["Resources"]
    return {
        "Parameters": {
            name: cfn_functions.ref(stack, name) for name in stack.template.get("Parameters", {})
        },
        "PhysicalIds": {logical_id: meta["ref"] for logical_id, meta in metadata.items()},
        "RoleArns": {
            logical_id: meta["attribute-values"]["Arn"]
            for logical_id, meta in metadata.items()
            if resources[logical_id]["Type"] == "AWS::IAM::Role"
        },
        "Resources": {
            logical_id: {"Type": resource["Type"], "Properties": resource["Properties"]}
            for logical_id, resource in resources.items()
        },
        "Outputs": stack.template.get("Outputs", {}),
    }


def lake_exports(rendered_lake: dict[str, Any]) -> dict[str, str]:
    """The lake stack's exports, as the warehouse stack's Fn::ImportValue sees them."""
    return {
        output["Export"]["Name"]: output["Value"]
        for output in rendered_lake["Outputs"].values()
        if "Export" in output
    }


def render_both(
    lake_parameters: dict[str, Any] | None = None,
    warehouse_parameters: dict[str, Any] | None = None,
    lake_stack_name: str = "lakehouse-dev-lake",
) -> tuple[dict[str, Any], dict[str, Any]]:
    lake = render(load_template(LAKE_TEMPLATE), lake_parameters, stack_name=lake_stack_name)
    warehouse_parameters = {
        "LakeStackName": lake_stack_name,
        **FAKE_NETWORK,
        **(warehouse_parameters or {}),
    }
    warehouse = render(
        load_template(WAREHOUSE_TEMPLATE),
        warehouse_parameters,
        lake_exports(lake),
        stack_name="lakehouse-dev-warehouse",
    )
    return lake, warehouse


# ---------------------------------------------------------------------------------------------
# Policy helpers
# ---------------------------------------------------------------------------------------------

PolicyStatement = dict[str, Any]


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def resources_of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {lid: r for lid, r in template["Resources"].items() if r["Type"] == kind}


def policy_statements(template: dict[str, Any]) -> Iterator[tuple[str, str, PolicyStatement]]:
    """(resource logical id, policy name, statement) for every policy document in the template,
    trust policies included."""
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        documents: list[tuple[str, dict[str, Any]]] = []
        if resource["Type"] == "AWS::IAM::Role":
            documents.append(
                ("AssumeRolePolicyDocument", props.get("AssumeRolePolicyDocument", {}))
            )
            for policy in props.get("Policies", []):
                documents.append((policy["PolicyName"], policy["PolicyDocument"]))
        elif resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            documents.append((props.get("PolicyName", logical_id), props["PolicyDocument"]))
        elif resource["Type"] == "AWS::S3::BucketPolicy":
            documents.append(("BucketPolicy", props["PolicyDocument"]))
        for name, document in documents:
            for statement in as_list(document.get("Statement")):
                yield logical_id, name, statement


def role_statements(template: dict[str, Any], role_logical_id: str) -> list[PolicyStatement]:
    """Every permission statement that applies to one role: its inline policies and the
    AWS::IAM::Policy / ManagedPolicy resources attached to it (not its trust policy)."""
    role = template["Resources"][role_logical_id]
    statements: list[PolicyStatement] = []
    for policy in role["Properties"].get("Policies", []):
        statements.extend(as_list(policy["PolicyDocument"].get("Statement")))
    role_name = template["PhysicalIds"][role_logical_id]
    for resource in template["Resources"].values():
        if resource["Type"] not in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            continue
        if role_name in map(str, resource["Properties"].get("Roles", [])):
            statements.extend(as_list(resource["Properties"]["PolicyDocument"].get("Statement")))
    return statements


def split_arn(arn: str) -> dict[str, str]:
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        return {}
    return dict(
        zip(("arn", "partition", "service", "region", "account", "resource"), parts, strict=True)
    )


def _sid(statement: PolicyStatement) -> str:
    return str(statement.get("Sid", "<no Sid>"))


# ---------------------------------------------------------------------------------------------
# Checks. Each returns a list of human-readable violations; empty means the property holds.
# ---------------------------------------------------------------------------------------------


def check_no_wildcard_actions(template: dict[str, Any]) -> list[str]:
    """No statement anywhere uses the action "*" or NotAction; no Allow statement uses any
    wildcard at all (s3:*, s3:Get*, glue:*). A Deny may use a service wildcard (s3:*): a wildcard
    in a Deny only narrows what is allowed."""
    violations = []
    for logical_id, policy, statement in policy_statements(template):
        where = f"{logical_id}/{policy}/{_sid(statement)}"
        if "NotAction" in statement:
            violations.append(f"{where}: NotAction grants everything not listed")
        for action in as_list(statement.get("Action")):
            if action == "*":
                violations.append(f"{where}: action '*'")
            elif "*" in action and statement.get("Effect") == "Allow":
                violations.append(f"{where}: wildcard action {action!r} in an Allow")
    return violations


def check_no_wildcard_resources(
    template: dict[str, Any], allowed: dict[tuple[str, str], str] | None = None
) -> list[str]:
    """No Allow statement has Resource "*" (or NotResource) unless its (logical id, Sid) is
    allow-listed with a reason; no ARN leaves its region, account or S3 bucket name open."""
    allowed = allowed or {}
    violations = []
    for logical_id, policy, statement in policy_statements(template):
        if policy == "AssumeRolePolicyDocument" or statement.get("Effect") != "Allow":
            continue
        where = f"{logical_id}/{policy}/{_sid(statement)}"
        if "NotResource" in statement:
            violations.append(f"{where}: NotResource")
        for resource in as_list(statement.get("Resource")):
            if resource == "*":
                if (logical_id, _sid(statement)) not in allowed:
                    violations.append(f"{where}: resource '*' is not allow-listed")
                continue
            arn = split_arn(str(resource))
            if not arn:
                violations.append(f"{where}: resource {resource!r} is not an ARN")
                continue
            if "*" in arn["region"] or "*" in arn["account"] or "*" in arn["partition"]:
                violations.append(f"{where}: {resource} leaves region/account open")
            if arn["service"] == "s3" and "*" in arn["resource"].split("/", 1)[0]:
                violations.append(f"{where}: {resource} leaves the bucket name open")
    return violations


def _the_bucket(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    buckets = list(resources_of_type(template, "AWS::S3::Bucket").items())
    return buckets


def check_bucket_encryption(template: dict[str, Any]) -> list[str]:
    violations = []
    for logical_id, bucket in _the_bucket(template):
        rules = (
            bucket["Properties"]
            .get("BucketEncryption", {})
            .get("ServerSideEncryptionConfiguration", [])
        )
        algorithms = [r.get("ServerSideEncryptionByDefault", {}).get("SSEAlgorithm") for r in rules]
        if not algorithms or any(
            a not in ("AES256", "aws:kms", "aws:kms:dsse") for a in algorithms
        ):
            violations.append(
                f"{logical_id}: default encryption is not SSE-S3/SSE-KMS ({algorithms})"
            )
    return violations


def _rule_prefix(rule: dict[str, Any]) -> str | None:
    if "Prefix" in rule:
        return str(rule["Prefix"])
    return None


def check_lifecycle(template: dict[str, Any], bronze_prefix: str = "bronze/") -> list[str]:
    """Bronze moves to a Glacier class, non-current versions expire, unfinished multipart
    uploads are aborted - each by an enabled rule."""
    violations = []
    for logical_id, bucket in _the_bucket(template):
        rules = [
            r
            for r in bucket["Properties"].get("LifecycleConfiguration", {}).get("Rules", [])
            if r.get("Status") == "Enabled"
        ]
        bronze = [
            r
            for r in rules
            if _rule_prefix(r) == bronze_prefix
            and any(
                t.get("StorageClass") in ("GLACIER_IR", "GLACIER", "DEEP_ARCHIVE")
                and int(t.get("TransitionInDays", 0)) >= 30
                for t in r.get("Transitions", [])
            )
        ]
        if not bronze:
            violations.append(
                f"{logical_id}: no enabled rule moves {bronze_prefix} to Glacier after >= 30 days"
            )
        if not any(
            int(r.get("NoncurrentVersionExpiration", {}).get("NoncurrentDays", 0)) > 0
            and _rule_prefix(r) in (None, "")
            for r in rules
        ):
            violations.append(f"{logical_id}: no bucket-wide rule expires non-current versions")
        if not any(
            int(r.get("AbortIncompleteMultipartUpload", {}).get("DaysAfterInitiation", 0)) > 0
            and _rule_prefix(r) in (None, "")
            for r in rules
        ):
            violations.append(
                f"{logical_id}: no bucket-wide rule aborts incomplete multipart uploads"
            )
    return violations


def check_tls_only(template: dict[str, Any]) -> list[str]:
    """Each bucket has a bucket policy denying every S3 action, to everyone, on the bucket and
    its objects, when aws:SecureTransport is false."""
    violations = []
    policies = resources_of_type(template, "AWS::S3::BucketPolicy").values()
    for logical_id, bucket in _the_bucket(template):
        name = bucket["Properties"]["BucketName"]
        arn = f"arn:{PARTITION}:s3:::{name}"
        found = False
        for policy in policies:
            if policy["Properties"].get("Bucket") != name:
                continue
            for statement in as_list(policy["Properties"]["PolicyDocument"].get("Statement")):
                principal = statement.get("Principal")
                condition = statement.get("Condition", {}).get("Bool", {})
                if (
                    statement.get("Effect") == "Deny"
                    and principal in ("*", {"AWS": "*"})
                    and set(as_list(statement.get("Action"))) & {"s3:*", "*"}
                    and {arn, f"{arn}/*"} <= set(as_list(statement.get("Resource")))
                    and str(condition.get("aws:SecureTransport")).lower() == "false"
                ):
                    found = True
        if not found:
            violations.append(
                f"{logical_id}: no bucket policy denies requests without TLS"
                " (aws:SecureTransport false)"
            )
    return violations


S3_WRITE_ACTIONS = {
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:AbortMultipartUpload",
    "s3:PutObjectAcl",
    "s3:PutObjectTagging",
    "s3:RestoreObject",
}


def _listbucket_prefixes(statement: PolicyStatement) -> list[str] | None:
    condition = statement.get("Condition", {})
    for operator in ("StringLike", "StringEquals"):
        if "s3:prefix" in condition.get(operator, {}):
            return [str(p) for p in as_list(condition[operator]["s3:prefix"])]
    return None


def _prefix_within(prefix: str, layers: set[str]) -> bool:
    return any(
        prefix == layer or prefix == f"{layer}/*" or prefix.startswith(f"{layer}/")
        for layer in layers
    )


def check_s3_scope(
    statements: list[PolicyStatement],
    bucket_arn: str,
    readable: set[str],
    writable: set[str],
    who: str,
) -> list[str]:
    """S3 access of one role: only the lake bucket; objects only under the readable layer
    prefixes; write actions only under the writable ones; listing only with an s3:prefix
    condition inside the readable layers."""
    violations = []
    for statement in statements:
        if statement.get("Effect") != "Allow":
            continue
        actions = [a for a in as_list(statement.get("Action")) if a.startswith("s3:")]
        if not actions:
            continue
        where = f"{who}/{_sid(statement)}"
        for resource in as_list(statement.get("Resource")):
            resource = str(resource)
            if resource == bucket_arn:
                object_actions = [
                    a
                    for a in actions
                    if not a.startswith("s3:ListBucket") and a != "s3:GetBucketLocation"
                ]
                if object_actions:
                    violations.append(
                        f"{where}: object actions {object_actions} on the bucket itself"
                    )
                continue
            if not resource.startswith(f"{bucket_arn}/"):
                violations.append(f"{where}: {resource} is outside the lake bucket")
                continue
            key_pattern = resource[len(bucket_arn) + 1 :]
            layer = key_pattern.split("/", 1)[0]
            if (
                not key_pattern.endswith("/*")
                or "*" in key_pattern[:-2]
                or not _prefix_within(key_pattern, readable)
            ):
                violations.append(f"{where}: {resource} is not under {sorted(readable)}")
                continue
            writes = sorted(set(actions) & S3_WRITE_ACTIONS)
            if writes and layer not in writable:
                violations.append(f"{where}: write actions {writes} on {resource}")
        if any(a in ("s3:ListBucket", "s3:ListBucketVersions") for a in actions):
            prefixes = _listbucket_prefixes(statement)
            if prefixes is None:
                violations.append(f"{where}: s3:ListBucket without an s3:prefix condition")
            else:
                for prefix in prefixes:
                    if not _prefix_within(prefix, readable):
                        violations.append(
                            f"{where}: listing prefix {prefix!r} outside {sorted(readable)}"
                        )
    return violations


def check_glue_scope(
    statements: list[PolicyStatement],
    region: str,
    account: str,
    databases: set[str],
    who: str,
    read_only: bool = False,
    extra_resources: set[str] | None = None,
) -> list[str]:
    """Glue access of one role: the catalog, the named databases and their tables (and UDFs)."""
    base = f"arn:{PARTITION}:glue:{region}:{account}"
    allowed = {f"{base}:catalog"} | (extra_resources or set())
    for database in databases:
        allowed |= {
            f"{base}:database/{database}",
            f"{base}:table/{database}/*",
            f"{base}:userDefinedFunction/{database}/*",
        }
    violations = []
    for statement in statements:
        if statement.get("Effect") != "Allow":
            continue
        actions = [a for a in as_list(statement.get("Action")) if a.startswith("glue:")]
        if not actions:
            continue
        where = f"{who}/{_sid(statement)}"
        if read_only:
            writes = [a for a in actions if not a.split(":", 1)[1].startswith(("Get", "BatchGet"))]
            if writes:
                violations.append(f"{where}: non-read Glue actions {writes}")
        for resource in as_list(statement.get("Resource")):
            if str(resource) not in allowed:
                violations.append(f"{where}: Glue resource {resource} outside {sorted(databases)}")
    return violations


GLUE_SESSION_ACTIONS = {
    "glue:CreateSession",
    "glue:GetSession",
    "glue:StopSession",
    "glue:DeleteSession",
    "glue:ListSessions",
    "glue:RunStatement",
    "glue:GetStatement",
    "glue:ListStatements",
    "glue:CancelStatement",
    "glue:TagResource",
}
CATALOG_READ_ACTIONS = {"glue:GetDatabase", "glue:GetDatabases", "glue:GetTable", "glue:GetTables"}


def _bucket_arn(lake: dict[str, Any]) -> str:
    return f"arn:{PARTITION}:s3:::{lake['Resources']['LakeBucket']['Properties']['BucketName']}"


def _glue_base(region: str = FAKE_REGION, account: str = FAKE_ACCOUNT) -> str:
    return f"arn:{PARTITION}:glue:{region}:{account}"


def session_log_group_prefix(lake: dict[str, Any]) -> str:
    """This environment's session log group prefix (the profile's --custom-logGroup-prefix)."""
    return str(lake["Outputs"]["LakehouseGlueLogGroupPrefix"]["Value"])


def runner_session_resource(lake: dict[str, Any]) -> str:
    """The only session ARN pattern the runner may touch: dbt-glue's names for this runtime role."""
    role_name = lake["PhysicalIds"]["GlueRuntimeRole"]
    return f"{_glue_base()}:session/dbt-glue__{role_name}__*"


def _actions(statement: PolicyStatement) -> list[str]:
    return [str(a) for a in as_list(statement.get("Action"))]


def _resources(statement: PolicyStatement) -> list[str]:
    return [str(r) for r in as_list(statement.get("Resource"))]


def check_runtime_role(lake: dict[str, Any]) -> list[str]:
    """The runtime role (what Spark code in a session may do): trusted by Glue alone; S3 only on the
    lake's layer prefixes (Bronze read-only); Glue catalog only on the three databases (+ Spark's
    default/global_temp, read/create only), no database create/update on the stack's own; no session
    action, no iam:PassRole, no glue:TagResource; logs only in this environment's log groups."""
    who = "GlueRuntimeRole"
    prefix = lake["Parameters"]["SchemaPrefix"]
    bucket_arn = _bucket_arn(lake)
    statements = role_statements(lake, who)
    layers = {"bronze", f"{prefix}silver", f"{prefix}gold"}
    violations = check_s3_scope(statements, bucket_arn, layers, layers - {"bronze"}, who)
    base = _glue_base()
    spark_defaults = {
        f"{base}:database/default",
        f"{base}:database/global_temp",
        f"{base}:userDefinedFunction/default/*",
    }
    databases = {f"{prefix}bronze", f"{prefix}silver", f"{prefix}gold"}
    own_databases = {f"{base}:database/{database}" for database in databases}
    log_prefix = session_log_group_prefix(lake)
    logs_base = f"arn:{PARTITION}:logs:{FAKE_REGION}:{FAKE_ACCOUNT}:log-group:"
    allowed_logs = {f"{logs_base}{log_prefix}/output:*", f"{logs_base}{log_prefix}/error:*"}
    for statement in statements:
        where = f"{who}/{_sid(statement)}"
        actions = _actions(statement)
        resources = set(_resources(statement))
        if statement.get("Effect") != "Allow":
            continue
        session = sorted(set(actions) & GLUE_SESSION_ACTIONS)
        if session:
            violations.append(f"{where}: session actions {session} in the runtime role")
        if "iam:PassRole" in actions:
            violations.append(f"{where}: iam:PassRole in the runtime role")
        db_writes = {"glue:CreateDatabase", "glue:UpdateDatabase", "glue:DeleteDatabase"}
        if set(actions) & db_writes and resources & own_databases:
            violations.append(
                f"{where}: {sorted(set(actions) & db_writes)} on databases the stack owns"
            )
        if resources & spark_defaults:
            extra = {
                "glue:GetDatabase",
                "glue:CreateDatabase",
                "glue:GetTables",
                "glue:GetUserDefinedFunctions",
            }
            if set(actions) - extra:
                violations.append(
                    f"{where}: {sorted(set(actions) - extra)} on Spark's default databases"
                )
        log_actions = [a for a in actions if a.startswith("logs:")]
        if log_actions:
            if "logs:CreateLogGroup" in log_actions:
                violations.append(f"{where}: logs:CreateLogGroup (the stack creates the groups)")
            outside = sorted(resources - allowed_logs)
            if outside:
                violations.append(
                    f"{where}: log resources {outside} outside this environment's {log_prefix}/*"
                )
        others = [
            a
            for a in actions
            if not a.startswith(("s3:", "glue:", "logs:")) and a not in LAKE_KMS_ACTIONS
        ]
        if others:
            violations.append(f"{where}: actions {others} outside S3, Glue, logs and the lake key")
    violations += check_glue_scope(
        statements, FAKE_REGION, FAKE_ACCOUNT, databases, who, extra_resources=spark_defaults
    )
    trust = lake["Resources"][who]["Properties"]["AssumeRolePolicyDocument"]
    for statement in as_list(trust.get("Statement")):
        if statement.get("Principal") != {"Service": "glue.amazonaws.com"}:
            violations.append(f"{who} trust: {statement.get('Principal')} is not Glue alone")
    return violations


def check_runner_policy(lake: dict[str, Any]) -> list[str]:
    """The runner policy (the client that runs dbt): session actions only on this environment's
    dbt-glue session names; iam:PassRole only on the runtime role and only to Glue; Glue catalog
    reads only, on the three databases; nothing else (no S3, no catalog write). A runner role, if
    any, carries it and nothing else, for at most an hour (role chaining's cap)."""
    who = "DbtRunnerPolicy"
    prefix = lake["Parameters"]["SchemaPrefix"]
    sessions = runner_session_resource(lake)
    runtime_arn = lake["RoleArns"]["GlueRuntimeRole"]
    policy = lake["Resources"][who]["Properties"]["PolicyDocument"]
    statements = as_list(policy.get("Statement"))
    violations = []
    has_sessions = has_pass = False
    for statement in statements:
        where = f"{who}/{_sid(statement)}"
        actions = set(_actions(statement))
        resources = _resources(statement)
        if statement.get("Effect") != "Allow":
            continue
        session = actions & GLUE_SESSION_ACTIONS
        if session:
            has_sessions = True
            if "glue:TagResource" in session:
                violations.append(f"{where}: glue:TagResource (dbt-glue sets no session tags)")
            if resources != [sessions]:
                violations.append(f"{where}: session actions on {resources}, not only {sessions}")
        if "iam:PassRole" in actions:
            has_pass = True
            if resources != [runtime_arn]:
                violations.append(f"{where}: iam:PassRole on {resources}, not the runtime role")
            passed_to = (
                statement.get("Condition", {}).get("StringEquals", {}).get("iam:PassedToService")
            )
            if passed_to != "glue.amazonaws.com":
                violations.append(f"{where}: iam:PassRole not limited to glue.amazonaws.com")
        catalog = {a for a in actions if a.startswith("glue:")} - session
        if catalog - CATALOG_READ_ACTIONS:
            violations.append(f"{where}: catalog actions {sorted(catalog - CATALOG_READ_ACTIONS)}")
        others = {a for a in actions if not a.startswith("glue:") and a != "iam:PassRole"}
        if others:
            violations.append(f"{where}: actions {sorted(others)} beyond sessions/PassRole/catalog")
    if not has_sessions or not has_pass:
        violations.append(f"{who}: lacks the session actions or iam:PassRole dbt-glue needs")
    catalog_statements = [
        s for s in statements if set(_actions(s)) & CATALOG_READ_ACTIONS and "Resource" in s
    ]
    violations += check_glue_scope(
        catalog_statements,
        FAKE_REGION,
        FAKE_ACCOUNT,
        {f"{prefix}bronze", f"{prefix}silver", f"{prefix}gold"},
        who,
        extra_resources={sessions},
    )
    runner_role = lake["Resources"].get("DbtRunnerRole")
    if runner_role:
        props = runner_role["Properties"]
        if props.get("Policies") or props.get("ManagedPolicyArns") != [lake["PhysicalIds"][who]]:
            violations.append("DbtRunnerRole: carries more than the runner policy")
        if int(props.get("MaxSessionDuration", 3600)) > 3600:
            violations.append(
                "DbtRunnerRole: MaxSessionDuration above 1 h, which role chaining never grants"
            )
    return violations


def check_ingest_policy(lake: dict[str, Any]) -> list[str]:
    """The ingestion's managed policy reads and writes Bronze and nothing else (besides the lake's
    KMS key through S3, see check_kms)."""
    policy = lake["Resources"]["BronzeIngestPolicy"]["Properties"]["PolicyDocument"]
    statements = as_list(policy.get("Statement"))
    violations = check_s3_scope(
        statements, _bucket_arn(lake), {"bronze"}, {"bronze"}, "BronzeIngestPolicy"
    )
    for statement in statements:
        for action in as_list(statement.get("Action")):
            if not action.startswith("s3:") and action not in LAKE_KMS_ACTIONS:
                violations.append(f"BronzeIngestPolicy/{_sid(statement)}: {action} is not S3")
    return violations


LAKE_KMS_ACTIONS = {"kms:Decrypt", "kms:GenerateDataKey"}


def _kms_statements(statements: list[PolicyStatement]) -> list[PolicyStatement]:
    return [
        s
        for s in statements
        if s.get("Effect") == "Allow" and any(str(a).startswith("kms:") for a in _actions(s))
    ]


def check_kms(lake: dict[str, Any], warehouse: dict[str, Any]) -> list[str]:
    """With a customer key, every principal that touches lake objects can use it - the runtime role
    and the ingestion GenerateDataKey + Decrypt, Spectrum Decrypt - on that key only, only through
    S3 in the region (kms:ViaService), never kms:Encrypt. Spectrum's key is the lake's export, and
    the warehouse stack has no key parameter to get wrong. Without a key, no KMS grant in the
    lake."""
    key = lake["Parameters"]["KmsKeyArn"]
    export_value = str(lake["Outputs"]["LakeKmsKeyArn"]["Value"])
    via_s3 = f"s3.{FAKE_REGION}.amazonaws.com"
    principals: list[tuple[str, list[PolicyStatement], set[str], str]] = [
        (
            "GlueRuntimeRole",
            role_statements(lake, "GlueRuntimeRole"),
            {"kms:Decrypt", "kms:GenerateDataKey"},
            key,
        ),
        (
            "BronzeIngestPolicy",
            as_list(
                lake["Resources"]["BronzeIngestPolicy"]["Properties"]["PolicyDocument"].get(
                    "Statement"
                )
            ),
            {"kms:Decrypt", "kms:GenerateDataKey"},
            key,
        ),
        ("SpectrumRole", role_statements(warehouse, "SpectrumRole"), {"kms:Decrypt"}, export_value),
    ]
    violations = []
    for who, statements, needed, expected_key in principals:
        kms = _kms_statements(statements)
        if who != "SpectrumRole" and not key:
            if kms:
                violations.append(f"{who}: KMS grants although the bucket uses SSE-S3")
            continue
        granted: set[str] = set()
        for statement in kms:
            where = f"{who}/{_sid(statement)}"
            actions = set(_actions(statement))
            granted |= actions
            if actions - LAKE_KMS_ACTIONS:
                violations.append(f"{where}: {sorted(actions - LAKE_KMS_ACTIONS)} on the lake key")
            if _resources(statement) != [expected_key]:
                violations.append(f"{where}: KMS on {_resources(statement)}, not {expected_key}")
            via = statement.get("Condition", {}).get("StringEquals", {}).get("kms:ViaService")
            if via != via_s3:
                violations.append(f"{where}: KMS not limited to kms:ViaService {via_s3}")
        if needed - granted:
            violations.append(f"{who}: lacks {sorted(needed - granted)} on the lake key")
    if key and export_value != key:
        violations.append(f"LakeKmsKeyArn export {export_value} is not the bucket's key {key}")
    kms_parameters = [p for p in warehouse["Parameters"] if "kms" in p.lower()]
    if kms_parameters:
        violations.append(f"warehouse: key given by hand ({kms_parameters}), not imported")
    return violations


def check_network(warehouse: dict[str, Any], template: dict[str, Any] | None = None) -> list[str]:
    """The workgroup sits in the given subnets behind a security group the stack creates, which
    admits 5439 from a given source only (never 0.0.0.0/0); subnets and VPC have no default."""
    violations = []
    template = template or load_template(WAREHOUSE_TEMPLATE)
    for name in ("VpcId", "SubnetIds"):
        spec = template.get("Parameters", {}).get(name)
        if spec is None or "Default" in spec:
            violations.append(f"parameter {name} is missing or has a default")
    groups = resources_of_type(warehouse, "AWS::EC2::SecurityGroup")
    group_ids = {security_group_id(lid): lid for lid in groups}
    ingress = [
        r["Properties"]
        for r in resources_of_type(warehouse, "AWS::EC2::SecurityGroupIngress").values()
    ]
    for lid, group in groups.items():
        ingress += [
            {**rule, "GroupId": security_group_id(lid)}
            for rule in group["Properties"].get("SecurityGroupIngress", [])
        ]
    for logical_id, workgroup in resources_of_type(
        warehouse, "AWS::RedshiftServerless::Workgroup"
    ).items():
        props = workgroup["Properties"]
        if not props.get("SubnetIds"):
            violations.append(f"{logical_id}: no SubnetIds")
        own = [g for g in props.get("SecurityGroupIds", []) if g in group_ids]
        if not own or len(own) != len(props.get("SecurityGroupIds", [])):
            violations.append(f"{logical_id}: not (only) behind the security group the stack makes")
        rules = [r for r in ingress if r.get("GroupId") in own]
        if not rules:
            violations.append(f"{logical_id}: no ingress rule admits dbt on 5439")
        for rule in rules:
            ports = (int(rule.get("FromPort", -1)), int(rule.get("ToPort", -1)))
            if str(rule.get("IpProtocol")) != "tcp" or ports != (5439, 5439):
                violations.append(f"{logical_id}: ingress {rule} is not tcp 5439 alone")
            cidr = rule.get("CidrIp") or rule.get("CidrIpv6")
            if cidr is not None and str(cidr).endswith("/0"):
                violations.append(f"{logical_id}: ingress from {cidr}, the whole internet")
            if cidr is None and not rule.get("SourceSecurityGroupId"):
                violations.append(f"{logical_id}: ingress {rule} without a source")
    return violations


def check_spectrum_role(warehouse: dict[str, Any], bucket_arn: str, gold: str) -> list[str]:
    """The Spectrum role reads Gold and nothing else: Get/List on the Gold prefix only, Glue
    Get*/BatchGet* on the Gold database and its tables only, no other service but KMS Decrypt."""
    statements = role_statements(warehouse, "SpectrumRole")
    violations = check_s3_scope(statements, bucket_arn, {gold}, set(), "SpectrumRole")
    violations += check_glue_scope(
        statements, FAKE_REGION, FAKE_ACCOUNT, {gold}, "SpectrumRole", read_only=True
    )
    allowed_actions = {"s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation", "kms:Decrypt"}
    for statement in statements:
        for action in as_list(statement.get("Action")):
            if not action.startswith("glue:") and action not in allowed_actions:
                violations.append(
                    f"SpectrumRole/{_sid(statement)}: action {action} is more than reading Gold"
                )
    trust = warehouse["Resources"]["SpectrumRole"]["Properties"]["AssumeRolePolicyDocument"]
    for statement in as_list(trust.get("Statement")):
        services = set(as_list(statement.get("Principal", {}).get("Service")))
        if not services or services - {
            "redshift.amazonaws.com",
            "redshift-serverless.amazonaws.com",
        }:
            violations.append(
                f"SpectrumRole trust: {statement.get('Principal')} is not Redshift alone"
            )
    return violations


def check_redshift(warehouse: dict[str, Any]) -> list[str]:
    violations = []
    spectrum_arn = warehouse["RoleArns"]["SpectrumRole"]
    for logical_id, namespace in resources_of_type(
        warehouse, "AWS::RedshiftServerless::Namespace"
    ).items():
        props = namespace["Properties"]
        if props.get("ManageAdminPassword") is not True:
            violations.append(f"{logical_id}: ManageAdminPassword is not true")
        if "AdminUserPassword" in props:
            violations.append(f"{logical_id}: an admin password is in the template")
        if spectrum_arn not in props.get("IamRoles", []):
            violations.append(f"{logical_id}: the Spectrum role is not attached")
    workgroups = resources_of_type(warehouse, "AWS::RedshiftServerless::Workgroup")
    if not workgroups:
        violations.append("no Redshift Serverless workgroup")
    for logical_id, workgroup in workgroups.items():
        props = workgroup["Properties"]
        if props.get("PubliclyAccessible") is not False:
            violations.append(f"{logical_id}: PubliclyAccessible is not false")
        config = {p["ParameterKey"]: p["ParameterValue"] for p in props.get("ConfigParameters", [])}
        if str(config.get("require_ssl")).lower() != "true":
            violations.append(f"{logical_id}: require_ssl is not true")
    return violations


ENV_VAR_IN_DESCRIPTION = re.compile(r"^([A-Z][A-Z0-9_]+) - ")


def output_env_vars(*templates: dict[str, Any]) -> dict[str, str]:
    """env var -> output name, from the outputs whose description starts with `NAME - `."""
    mapping: dict[str, str] = {}
    for template in templates:
        for name, output in template.get("Outputs", {}).items():
            match = ENV_VAR_IN_DESCRIPTION.match(str(output.get("Description", "")))
            if match:
                mapping[match.group(1)] = name
    return mapping


def expected_output_name(env_var: str) -> str:
    """LAKEHOUSE_GLUE_ROLE_ARN -> LakehouseGlueRoleArn."""
    return "".join(part.capitalize() for part in env_var.lower().split("_"))


# ---------------------------------------------------------------------------------------------

PARAMETER_SETS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({}, {}),
    (
        {
            "SchemaPrefix": "dev_",
            "KmsKeyArn": FAKE_KMS_KEY,
            "DbtRunnerPrincipalArn": f"arn:aws:iam::{FAKE_ACCOUNT}:role/ci",
        },
        {
            "MaxCapacity": 64,
            "ClientCidr": "",
            "ClientSecurityGroupId": "sg-0123456789abcdef0",
        },
    ),
]


def all_violations(
    lake: dict[str, Any],
    warehouse: dict[str, Any],
    allowed: dict[tuple[str, str], str] | None = None,
) -> list[str]:
    prefix = lake["Parameters"]["SchemaPrefix"]
    bucket_arn = _bucket_arn(lake)
    checks: list[Callable[[], list[str]]] = [
        lambda: check_bucket_encryption(lake),
        lambda: check_lifecycle(lake),
        lambda: check_tls_only(lake),
        lambda: check_no_wildcard_actions(lake) + check_no_wildcard_actions(warehouse),
        lambda: (
            check_no_wildcard_resources(lake, allowed)
            + check_no_wildcard_resources(warehouse, allowed)
        ),
        lambda: check_runtime_role(lake),
        lambda: check_runner_policy(lake),
        lambda: check_ingest_policy(lake),
        lambda: check_kms(lake, warehouse),
        lambda: check_network(warehouse),
        lambda: check_spectrum_role(warehouse, bucket_arn, f"{prefix}gold"),
        lambda: check_redshift(warehouse),
    ]
    return [v for check in checks for v in check()]


def main() -> int:
    failures = 0
    for lake_params, warehouse_params in PARAMETER_SETS:
        lake, warehouse = render_both(lake_params, warehouse_params)
        violations = all_violations(copy.deepcopy(lake), copy.deepcopy(warehouse))
        label = lake_params or "defaults"
        print(f"{label}: {'OK' if not violations else f'{len(violations)} violation(s)'}")
        for violation in violations:
            print(f"  - {violation}")
        failures += len(violations)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
