"""Offline security checks of the lakehouse CloudFormation templates (no AWS account needed).

The templates are rendered for a concrete parameter set by a small evaluator of the intrinsic
functions they use (Ref, Fn::Sub, Fn::GetAtt, Fn::If, Fn::Join, Fn::ImportValue, conditions), then
each check reads the rendered resources and returns a list of violations (empty = pass). Every check
is a plain function of a template dict, so a test can mutate a copy and see the check fail.

    .venv/bin/python infra/checks.py     # render both stacks, print violations, exit 1 if any

tests/python/test_infra.py runs the same checks, plus cfn-lint and mutation tests.
"""

from __future__ import annotations

import copy
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

INFRA_DIR = Path(__file__).resolve().parent
LAKE_TEMPLATE = INFRA_DIR / "lake.yaml"
WAREHOUSE_TEMPLATE = INFRA_DIR / "warehouse.yaml"

FAKE_ACCOUNT = "123456789012"
FAKE_REGION = "eu-west-1"
PARTITION = "aws"
FAKE_KMS_KEY = f"arn:aws:kms:{FAKE_REGION}:{FAKE_ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"

# ---------------------------------------------------------------------------------------------
# Loading: YAML short-form tags (!Sub, !Ref, ...) become the long form ({"Fn::Sub": ...}).
# ---------------------------------------------------------------------------------------------


class _CfnLoader(yaml.SafeLoader):
    pass


def _construct_intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else ("Condition" if suffix == "Condition" else f"Fn::{suffix}")
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template(path: Path | str) -> dict[str, Any]:
    """The template as a dict with long-form intrinsic functions."""
    with open(path, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_CfnLoader)


# ---------------------------------------------------------------------------------------------
# Rendering: resolve the intrinsic functions for one parameter set.
# ---------------------------------------------------------------------------------------------


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()
_SUB_VAR = re.compile(r"\$\{([^}!][^}]*)\}")


class RenderError(ValueError):
    pass


class _Renderer:
    def __init__(
        self,
        template: dict[str, Any],
        parameters: dict[str, Any],
        imports: dict[str, str],
        account: str,
        region: str,
        stack_name: str,
    ) -> None:
        self.template = template
        self.resources: dict[str, Any] = template.get("Resources", {})
        self.imports = imports
        self.stack_name = stack_name
        self.values: dict[str, Any] = {
            "AWS::AccountId": account,
            "AWS::Region": region,
            "AWS::Partition": PARTITION,
            "AWS::StackName": stack_name,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": NO_VALUE,
        }
        for name, spec in template.get("Parameters", {}).items():
            value = parameters.get(name, spec.get("Default"))
            if value is None:
                raise RenderError(f"parameter {name} has no value and no default")
            if spec.get("Type") == "CommaDelimitedList" and isinstance(value, str):
                value = value.split(",")
            self.values[name] = value
        unknown = set(parameters) - set(template.get("Parameters", {}))
        if unknown:
            raise RenderError(f"unknown parameters {sorted(unknown)}")
        self.conditions: dict[str, bool] = {}
        for name in template.get("Conditions", {}):
            self.condition(name)

    # -- conditions ------------------------------------------------------------------------
    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            self.conditions[name] = bool(self.eval_condition(self.template["Conditions"][name]))
        return self.conditions[name]

    def eval_condition(self, node: Any) -> Any:
        if isinstance(node, dict) and len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Fn::Equals":
                left, right = (self.resolve(a) for a in arg)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self.eval_condition(arg[0])
            if key == "Fn::And":
                return all(self.eval_condition(a) for a in arg)
            if key == "Fn::Or":
                return any(self.eval_condition(a) for a in arg)
            if key == "Condition":
                return self.condition(arg)
        return self.resolve(node)

    # -- references ------------------------------------------------------------------------
    def physical_name(self, logical_id: str) -> str:
        resource = self.resources[logical_id]
        props = resource.get("Properties", {})
        kind = resource["Type"]
        named = {
            "AWS::S3::Bucket": "BucketName",
            "AWS::RedshiftServerless::Namespace": "NamespaceName",
            "AWS::RedshiftServerless::Workgroup": "WorkgroupName",
            "AWS::IAM::Role": "RoleName",
        }
        if kind in named and named[kind] in props:
            return str(self.resolve(props[named[kind]]))
        return f"{self.stack_name}-{logical_id}"

    def ref(self, name: str) -> Any:
        if name in self.values:
            return self.values[name]
        if name not in self.resources:
            raise RenderError(f"Ref to unknown name {name}")
        kind = self.resources[name]["Type"]
        if kind == "AWS::IAM::ManagedPolicy":
            account = self.values["AWS::AccountId"]
            return f"arn:{PARTITION}:iam::{account}:policy/{self.physical_name(name)}"
        return self.physical_name(name)

    def get_att(self, logical_id: str, attribute: str) -> str:
        if logical_id not in self.resources:
            raise RenderError(f"GetAtt of unknown resource {logical_id}")
        kind = self.resources[logical_id]["Type"]
        account = self.values["AWS::AccountId"]
        if attribute == "Arn" and kind == "AWS::S3::Bucket":
            return f"arn:{PARTITION}:s3:::{self.physical_name(logical_id)}"
        if attribute == "Arn" and kind == "AWS::IAM::Role":
            return f"arn:{PARTITION}:iam::{account}:role/{self.physical_name(logical_id)}"
        if attribute == "Workgroup.WorkgroupArn":
            region = self.values["AWS::Region"]
            workgroup_id = f"{logical_id.lower()}-0000"
            return (
                f"arn:{PARTITION}:redshift-serverless:{region}:{account}:workgroup/{workgroup_id}"
            )
        return f"<{logical_id}.{attribute}>"

    def substitute(self, text: str, local: dict[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in local:
                return str(local[name])
            if name in self.values or name in self.resources:
                return str(self.ref(name))
            if "." in name:
                logical_id, attribute = name.split(".", 1)
                return self.get_att(logical_id, attribute)
            raise RenderError(f"Fn::Sub of unknown name {name}")

        return _SUB_VAR.sub(replace, text).replace("${!", "${")

    # -- everything ------------------------------------------------------------------------
    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            items = [self.resolve(item) for item in node]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                parts = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.get_att(parts[0], parts[1])
            if key == "Fn::Sub":
                if isinstance(arg, str):
                    return self.substitute(arg, {})
                text, local = arg
                return self.substitute(text, {k: self.resolve(v) for k, v in local.items()})
            if key == "Fn::If":
                name, when_true, when_false = arg
                return self.resolve(when_true if self.condition(name) else when_false)
            if key == "Fn::Join":
                separator, items = arg
                return separator.join(str(item) for item in self.resolve(items))
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(self.resolve(index))]
            if key == "Fn::Split":
                separator, text = arg
                return str(self.resolve(text)).split(separator)
            if key == "Fn::ImportValue":
                export = self.resolve(arg)
                if export not in self.imports:
                    raise RenderError(f"no value given for the import {export}")
                return self.imports[export]
        resolved = {key: self.resolve(value) for key, value in node.items()}
        return {key: value for key, value in resolved.items() if value is not NO_VALUE}

    def render(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Resources": {}, "Outputs": {}, "Parameters": {}}
        out["Parameters"] = {
            name: self.values[name] for name in self.template.get("Parameters", {})
        }
        out["PhysicalIds"] = {lid: self.ref(lid) for lid in self.resources}
        out["RoleArns"] = {
            lid: self.get_att(lid, "Arn")
            for lid, r in self.resources.items()
            if r["Type"] == "AWS::IAM::Role"
        }
        for logical_id, resource in self.resources.items():
            if "Condition" in resource and not self.condition(resource["Condition"]):
                continue
            rendered = {"Type": resource["Type"]}
            rendered["Properties"] = self.resolve(resource.get("Properties", {}))
            out["Resources"][logical_id] = rendered
        for name, output in self.template.get("Outputs", {}).items():
            if "Condition" in output and not self.condition(output["Condition"]):
                continue
            out["Outputs"][name] = self.resolve(output)
        return out


def render(
    template: dict[str, Any],
    parameters: dict[str, Any] | None = None,
    imports: dict[str, str] | None = None,
    *,
    account: str = FAKE_ACCOUNT,
    region: str = FAKE_REGION,
    stack_name: str = "lakehouse-dev-lake",
) -> dict[str, Any]:
    """The template with every intrinsic function resolved for `parameters` (defaults otherwise)."""
    return _Renderer(
        template, parameters or {}, imports or {}, account, region, stack_name
    ).render()


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
    warehouse_parameters = {"LakeStackName": lake_stack_name, **(warehouse_parameters or {})}
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


def check_public_access_block(template: dict[str, Any]) -> list[str]:
    violations = []
    keys = ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")
    for logical_id, bucket in _the_bucket(template):
        block = bucket["Properties"].get("PublicAccessBlockConfiguration", {})
        for key in keys:
            if block.get(key) is not True:
                violations.append(f"{logical_id}: PublicAccessBlockConfiguration.{key} is not true")
    return violations


def check_versioning(template: dict[str, Any]) -> list[str]:
    return [
        f"{logical_id}: versioning is not Enabled"
        for logical_id, bucket in _the_bucket(template)
        if bucket["Properties"].get("VersioningConfiguration", {}).get("Status") != "Enabled"
    ]


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


def check_glue_role(lake: dict[str, Any]) -> list[str]:
    """The dbt-glue role: S3 only on the lake's layer prefixes (Bronze read-only), Glue only on
    the three databases (+ Spark's default/global_temp, read/create only), sessions named
    dbt-glue*, PassRole only on itself and only to Glue."""
    params = lake["Parameters"]
    prefix = params["SchemaPrefix"]
    account, region = FAKE_ACCOUNT, FAKE_REGION
    bucket_name = lake["Resources"]["LakeBucket"]["Properties"]["BucketName"]
    bucket_arn = f"arn:{PARTITION}:s3:::{bucket_name}"
    role_arn = lake["RoleArns"]["GlueSessionRole"]
    statements = role_statements(lake, "GlueSessionRole")
    layers = {"bronze", f"{prefix}silver", f"{prefix}gold"}
    violations = check_s3_scope(
        statements, bucket_arn, layers, layers - {"bronze"}, "GlueSessionRole"
    )
    base = f"arn:{PARTITION}:glue:{region}:{account}"
    spark_defaults = {
        f"{base}:database/default",
        f"{base}:database/global_temp",
        f"{base}:userDefinedFunction/default/*",
    }
    sessions = {f"{base}:session/dbt-glue*"}
    glue_statements = []
    for statement in statements:
        actions = [a for a in as_list(statement.get("Action")) if a.startswith("glue:")]
        resources = set(map(str, as_list(statement.get("Resource"))))
        if resources & spark_defaults:
            extra = {
                "glue:GetDatabase",
                "glue:CreateDatabase",
                "glue:GetTables",
                "glue:GetUserDefinedFunctions",
            }
            if set(actions) - extra:
                violations.append(
                    f"GlueSessionRole/{_sid(statement)}: {sorted(set(actions) - extra)}"
                    " on Spark's default databases"
                )
        glue_statements.append(statement)
    violations += check_glue_scope(
        glue_statements,
        region,
        account,
        {f"{prefix}bronze", f"{prefix}silver", f"{prefix}gold"},
        "GlueSessionRole",
        extra_resources=spark_defaults | sessions,
    )
    for statement in statements:
        actions = as_list(statement.get("Action"))
        resources = list(map(str, as_list(statement.get("Resource"))))
        if any(
            (a.startswith("glue:") and "Session" in a) or a.endswith("Statement") for a in actions
        ):
            for resource in resources:
                if resource not in sessions and resource.split(":")[-1].startswith("session"):
                    violations.append(
                        f"GlueSessionRole/{_sid(statement)}: session resource {resource}"
                    )
        if "iam:PassRole" in actions:
            if resources != [role_arn]:
                violations.append(
                    f"GlueSessionRole/{_sid(statement)}: iam:PassRole on {resources},"
                    " not only itself"
                )
            passed_to = (
                statement.get("Condition", {}).get("StringEquals", {}).get("iam:PassedToService")
            )
            if passed_to != "glue.amazonaws.com":
                violations.append(
                    f"GlueSessionRole/{_sid(statement)}: iam:PassRole not limited to"
                    " glue.amazonaws.com"
                )
    return violations


def check_ingest_policy(lake: dict[str, Any]) -> list[str]:
    """The ingestion's managed policy reads and writes Bronze and nothing else."""
    bucket_name = lake["Resources"]["LakeBucket"]["Properties"]["BucketName"]
    bucket_arn = f"arn:{PARTITION}:s3:::{bucket_name}"
    policy = lake["Resources"]["BronzeIngestPolicy"]["Properties"]["PolicyDocument"]
    statements = as_list(policy.get("Statement"))
    violations = check_s3_scope(
        statements, bucket_arn, {"bronze"}, {"bronze"}, "BronzeIngestPolicy"
    )
    for statement in statements:
        for action in as_list(statement.get("Action")):
            if not action.startswith("s3:"):
                violations.append(f"BronzeIngestPolicy/{_sid(statement)}: {action} is not S3")
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
            "LakeKmsKeyArn": FAKE_KMS_KEY,
            "MaxCapacity": 64,
        },
    ),
]


def all_violations(
    lake: dict[str, Any],
    warehouse: dict[str, Any],
    allowed: dict[tuple[str, str], str] | None = None,
) -> list[str]:
    prefix = lake["Parameters"]["SchemaPrefix"]
    bucket_arn = (
        f"arn:{PARTITION}:s3:::{lake['Resources']['LakeBucket']['Properties']['BucketName']}"
    )
    checks: list[Callable[[], list[str]]] = [
        lambda: check_bucket_encryption(lake),
        lambda: check_public_access_block(lake),
        lambda: check_versioning(lake),
        lambda: check_lifecycle(lake),
        lambda: check_tls_only(lake),
        lambda: check_no_wildcard_actions(lake) + check_no_wildcard_actions(warehouse),
        lambda: (
            check_no_wildcard_resources(lake, allowed)
            + check_no_wildcard_resources(warehouse, allowed)
        ),
        lambda: check_glue_role(lake),
        lambda: check_ingest_policy(lake),
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
