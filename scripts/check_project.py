"""The project's structure rules, checked on dbt's manifest: dbt-project-evaluator's default
rules that the project adopts (its hub package is unreachable here), plus the layering rule of
this lakehouse.

    python scripts/check_project.py target/gates/*/manifest.json

Reads one or more manifests (one per target, as `make check` compiles them) and prints one line
per violation, `<rule>: <resource>: <what is wrong>`; exits 1 when there is any. Rules named
`fct_*` are the evaluator's, under the name of the evaluator model that reports them, so its
documentation explains each; `project_*` rules are ours.

  structure      fct_model_naming_conventions, fct_model_directories, fct_source_directories,
                 fct_test_directories
  modeling       fct_root_models, fct_duplicate_sources, fct_direct_join_to_source,
                 fct_marts_or_intermediate_dependent_on_source,
                 fct_multiple_sources_joined, fct_source_fanout, fct_unused_sources,
                 fct_staging_dependent_on_staging, fct_hard_coded_references (sqlglot),
                 project_layers (marts read gold; gold reads silver, seeds and gold)
  documentation  fct_undocumented_models, fct_undocumented_sources, fct_undocumented_source_tables
                 (100% coverage), project_columns_documented (the columns the compiled SQL
                 selects, read by sqlglot, are the documented ones)
  testing        fct_missing_primary_key_tests, fct_test_coverage (100%),
                 fct_sources_without_freshness
  governance     fct_public_models_without_contract, fct_exposures_dependent_on_private_models,
                 project_gold_public (every Gold model is public)

The evaluator's vars configure it the way they configure the evaluator, under `vars:` in
dbt_project.yml (or `vars: {dbt_project_evaluator: ...}`): the model types (`model_types`, and
for each type `<type>_folder_name` and `<type>_prefixes`, so a project declares types of its own),
the primary-key test macros; what is not set there takes the evaluator's default. As in the
evaluator, a model's type is the one its prefix names, else the one of its deepest type folder,
else `other`.

Exceptions are written down with their reason, never silently: in
scripts/check_project_exceptions.yml (rule, resources, reason); or, for a primary-key or
freshness exception that belongs beside its resource (and so shows in the docs), in the
resource's YAML. The gate fails on an exception of either kind that no longer excuses anything.

    config: {meta: {gate_exceptions: {primary_key: "A view over ...; keyed in ..."}}}
    (sources: `meta: {gate_exceptions: {freshness: "..."}}` on the source table)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlglot
import yaml  # type: ignore[import-untyped]
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.qualify import qualify

PROJECT_DIR = Path(__file__).resolve().parent.parent
EXCEPTIONS_FILE = Path(__file__).with_name("check_project_exceptions.yml")

# dbt-project-evaluator's defaults for the vars this check reads; a project adds model types
# through `model_types` and, per added type, `<type>_folder_name` and `<type>_prefixes`
EVALUATOR_VARS: dict[str, Any] = {
    "model_types": ["staging", "intermediate", "marts", "other"],
    "staging_folder_name": "staging",
    "intermediate_folder_name": "intermediate",
    "marts_folder_name": "marts",
    "staging_prefixes": ["stg_"],
    "intermediate_prefixes": ["int_"],
    "marts_prefixes": ["fct_", "dim_"],
    "other_prefixes": ["rpt_"],
    "primary_key_test_macros": [
        ["dbt.test_unique", "dbt.test_not_null"],
        ["dbt_utils.test_unique_combination_of_columns"],
    ],
}
# Our layering: the folder a model lives in -> what it may read ("source", "seed", folders).
ALLOWED_PARENTS = {
    "silver": {"source", "silver", "seed"},
    # gold also reads gold: the dimensions sum their intermediate state, which reads fct_sales
    "gold": {"silver", "seed", "gold"},
    # marts also read marts: a coarser mart rolls up a finer one, so both count alike
    "marts": {"gold", "marts"},
}
# gate_exceptions keys accepted in a resource's meta, and the rule each excuses
META_EXCEPTIONS = {
    "primary_key": "fct_missing_primary_key_tests",
    "freshness": "fct_sources_without_freshness",
}
TYPE_VARS = ("folder_name", "prefixes")  # the evaluator's per-type vars: <type>_<var>
DIALECTS = {"glue": "spark", "spark": "spark", "duckdb": "duckdb", "redshift": "redshift"}
JINJA = re.compile(r"\{#.*?#\}|\{%.*?%\}|\{\{.*?\}\}", re.DOTALL)
DBT_RELATION = "__dbt_relation__"
EXPRESSION = re.compile(r"\{\{-?(?!\s*config\()")  # an expression that renders SQL, not config()


@dataclass
class Violation:
    rule: str
    resource: str
    message: str
    key: str = ""
    """How an exception names the resource: a model's or exposure's name, `source.table`."""

    def __str__(self) -> str:
        return f"{self.rule}: {self.resource}: {self.message}"


@dataclass
class Project:
    """The nodes of one or more manifests of the same project (one per target)."""

    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    tests: dict[str, dict[str, Any]] = field(default_factory=dict)
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    exposures: dict[str, dict[str, Any]] = field(default_factory=dict)
    dialects: dict[str, str] = field(default_factory=dict)
    vars: dict[str, Any] = field(default_factory=lambda: dict(EVALUATOR_VARS))

    @classmethod
    def load(cls, manifest_paths: Iterable[Path], project_dir: Path = PROJECT_DIR) -> Project:
        project = cls()
        for path in manifest_paths:
            manifest = json.loads(Path(path).read_text())
            package = manifest["metadata"].get("project_name", "lakehouse")
            dialect = DIALECTS.get(manifest["metadata"].get("adapter_type", ""), "spark")
            for uid, node in manifest["nodes"].items():
                if node.get("package_name") != package:
                    continue
                if node["resource_type"] == "model":
                    project.models.setdefault(uid, node)
                    project.dialects.setdefault(uid, dialect)
                elif node["resource_type"] == "test":
                    project.tests.setdefault(uid, node)
            project.sources.update(manifest["sources"])
            project.exposures.update(manifest.get("exposures", {}))
        dbt_project = yaml.safe_load((project_dir / "dbt_project.yml").read_text())
        declared = dict(dbt_project.get("vars") or {})
        # the evaluator's own scope (`vars: {dbt_project_evaluator: {...}}`) wins, as in dbt
        declared.update(declared.get("dbt_project_evaluator") or {})
        types = declared.get("model_types", EVALUATOR_VARS["model_types"])
        wanted = {*EVALUATOR_VARS, *(f"{kind}_{var}" for kind in types for var in TYPE_VARS)}
        project.vars.update({k: v for k, v in declared.items() if k in wanted})
        return project

    def type_var(self, kind: str, var: str) -> Any:
        """`<kind>_folder_name` or `<kind>_prefixes`, None when the project sets neither."""
        return self.vars.get(f"{kind}_{var}")

    def folder_type(self, path: str) -> str | None:
        """The type of the deepest folder of `path` that a type's folder var names, or None."""
        by_folder = {self.type_var(kind, "folder_name"): kind for kind in self.vars["model_types"]}
        for folder in reversed(Path(path).parts[:-1]):
            if folder in by_folder:
                return str(by_folder[folder])
        return None

    def model_type(self, model: dict[str, Any]) -> str:
        """The evaluator's model type (its int_all_graph_resources): the type whose prefixes hold
        the model's prefix (its name up to the first `_`), else the type of its deepest type
        folder, else `other`."""
        prefix = model["name"].split("_")[0] + "_"
        for kind in self.vars["model_types"]:
            if prefix in (self.type_var(kind, "prefixes") or []):
                return str(kind)
        return self.folder_type(model["original_file_path"]) or "other"

    def parents(self, model: dict[str, Any], kind: str) -> list[str]:
        return [p for p in model["depends_on"]["nodes"] if p.split(".")[0] == kind]


def layer_of(model: dict[str, Any]) -> str:
    """The layer folder of a model: models/<layer>/..."""
    fqn = model["fqn"]
    return str(fqn[1]) if len(fqn) > 2 else ""


def key_of(resource: dict[str, Any]) -> str:
    """How an exception names a resource: `source.table` for a source table, else its name."""
    if resource.get("resource_type") == "source":
        return f"{resource['source_name']}.{resource['name']}"
    return str(resource["name"])


def violation(rule: str, resource: dict[str, Any], message: str) -> Violation:
    """A violation naming a model (name and file), a source table or an exposure."""
    key, kind = key_of(resource), resource.get("resource_type")
    if kind in ("source", "exposure"):
        return Violation(rule, f"{kind} {key}", message, key)
    return Violation(rule, f"{key} ({resource['original_file_path']})", message, key)


def meta_exceptions(resource: dict[str, Any]) -> dict[str, Any]:
    meta = {**resource.get("meta", {}), **resource.get("config", {}).get("meta", {})}
    exceptions = meta.get("gate_exceptions") or {}
    return exceptions if isinstance(exceptions, dict) else {"?": exceptions}


def has_reason(reason: Any) -> bool:
    return isinstance(reason, str) and bool(reason.strip())


# --- structure ---------------------------------------------------------------------------------


def check_structure(project: Project) -> Iterator[Violation]:
    staging = project.vars["staging_folder_name"]
    for model in project.models.values():
        kind = project.model_type(model)
        prefixes = tuple(project.type_var(kind, "prefixes") or [])
        if not prefixes or not model["name"].startswith(prefixes):
            yield violation(
                "fct_model_naming_conventions",
                model,
                f"the name of a model of type {kind} starts with "
                f"{' or '.join(prefixes) or '(no prefix declared for the type)'}",
            )
        if not model["depends_on"]["nodes"]:
            yield violation("fct_root_models", model, "reads no ref(), source() or seed")
        folders = Path(model["original_file_path"]).parts[:-1]
        for uid in project.parents(model, "source") if kind == "staging" else []:
            source = project.sources[uid]["source_name"]
            if source not in folders:
                yield violation(
                    "fct_model_directories",
                    model,
                    f"a staging model lives in a folder named for its source: {staging}/{source}/",
                )
        # the evaluator's other half: a model's deepest type folder is its type's (a model in no
        # type folder is left alone, as the evaluator's `model_type <> model_type_folder` does)
        folder_kind = project.folder_type(model["original_file_path"])
        if folder_kind is not None and folder_kind != kind:
            yield violation(
                "fct_model_directories",
                model,
                f"a model of type {kind} lives in {project.type_var(kind, 'folder_name')}/, "
                f"not in a {folder_kind} folder ({project.type_var(folder_kind, 'folder_name')}/)",
            )

    relations: dict[str, list[str]] = defaultdict(list)
    for source in project.sources.values():
        relations[str(source.get("relation_name")).lower()].append(key_of(source))
        # as the evaluator: the YAML's folder path names the source (staging/<source>/ for a
        # staged source, beside its staging models)
        if source["source_name"] not in Path(source["original_file_path"]).parts[:-1]:
            yield violation(
                "fct_source_directories",
                source,
                f"a source is defined in a folder named for it: {staging}/{source['source_name']}/",
            )
    for relation, keys in sorted(relations.items()):
        if len(keys) > 1:
            yield Violation(
                "fct_duplicate_sources", f"relation {relation}", f"declared as {', '.join(keys)}"
            )


# --- modeling ----------------------------------------------------------------------------------


def check_sources_and_staging(project: Project) -> Iterator[Violation]:
    readers: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for model in project.models.values():
        sources = project.parents(model, "source")
        others = [p for p in model["depends_on"]["nodes"] if not p.startswith("source.")]
        for uid in sources:
            readers[uid].append(model)
        if sources and others:
            yield violation(
                "fct_direct_join_to_source",
                model,
                "reads a source and other models; only a staging model reads a source",
            )
        if sources and project.model_type(model) != "staging":
            yield violation(
                "fct_marts_or_intermediate_dependent_on_source",
                model,
                "reads a source directly; only a staging model reads a source",
            )
        if len(sources) > 1:
            yield violation(
                "fct_multiple_sources_joined", model, f"reads {len(sources)} sources; one only"
            )
        if project.model_type(model) == "staging" and others:
            names = ", ".join(p.split(".")[-1] for p in others)
            yield violation(
                "fct_staging_dependent_on_staging",
                model,
                f"a staging model reads its source and nothing else; it refs {names}",
            )
    for uid, source in sorted(project.sources.items()):
        models = readers.get(uid, [])
        if not models:
            yield violation(
                "fct_unused_sources", source, "no staging model reads it (stg_<source>__<table>)"
            )
        elif len(models) > 1:
            names = ", ".join(sorted(m["name"] for m in models))
            yield violation(
                "fct_source_fanout",
                source,
                f"read by {len(models)} models ({names}); only by its staging model",
            )


def check_layers(project: Project) -> Iterator[Violation]:
    for model in project.models.values():
        layer = layer_of(model)
        allowed = ALLOWED_PARENTS.get(layer)
        if allowed is None:
            yield violation(
                "project_layers",
                model,
                f"models live in models/{', models/'.join(ALLOWED_PARENTS)}, not models/{layer}",
            )
            continue
        for parent in model["depends_on"]["nodes"]:
            kind, name = parent.split(".")[0], ".".join(parent.split(".")[2:])
            parent_node = project.models.get(parent)
            parent_layer = layer_of(parent_node) if parent_node else kind
            if parent_layer not in allowed:
                what = f"{parent_layer} model" if parent_node else kind
                yield violation(
                    "project_layers",
                    model,
                    f"depends on {what} {name}; a {layer} model may only read "
                    f"{', '.join(sorted(allowed))}",
                )


def check_hard_coded(project: Project) -> Iterator[Violation]:
    for uid, model in project.models.items():
        if model.get("language", "sql") != "sql":
            continue
        try:
            names = hard_coded_relations(model["raw_code"], project.dialects[uid])
        except SqlglotError as error:
            yield violation("fct_hard_coded_references", model, f"SQL does not parse: {error}")
            continue
        for name in names:
            yield violation(
                "fct_hard_coded_references",
                model,
                f"reads `{name}` by name; use ref() or source() so dbt knows the dependency",
            )


def hard_coded_relations(raw_code: str, dialect: str) -> list[str]:
    """Tables a model's SQL reads that are neither a CTE nor a ref()/source() (which, like every
    other Jinja expression, stand in as one placeholder identifier; Jinja statements go)."""
    sql = JINJA.sub(lambda m: DBT_RELATION if EXPRESSION.match(m.group()) else " ", raw_code)
    found: list[str] = []
    for statement in sqlglot.parse(sql, dialect=dialect):
        if statement is None:
            continue
        ctes = {cte.alias_or_name.lower() for cte in statement.find_all(exp.CTE)}
        for table in statement.find_all(exp.Table):
            name = ".".join(part.name for part in table.parts)
            if not name or DBT_RELATION in name:
                continue
            if table.db or name.lower() not in ctes:
                found.append(name)
    return found


# --- documentation -----------------------------------------------------------------------------


def described(resource: dict[str, Any]) -> bool:
    return bool(resource.get("description", "").strip())


def check_docs(project: Project) -> Iterator[Violation]:
    for uid, model in project.models.items():
        if not described(model):
            yield violation("fct_undocumented_models", model, "the model has no description")
        documented = {}
        for column in model.get("columns", {}).values():
            documented[column["name"].lower()] = column
            if not described(column):
                yield violation(
                    "project_columns_documented",
                    model,
                    f"column {column['name']} has no description",
                )
        selected = output_columns(model.get("compiled_code") or "", project.dialects[uid])
        if selected is None:
            continue
        for column in selected:
            if column.lower() not in documented:
                yield violation(
                    "project_columns_documented",
                    model,
                    f"column {column} is selected but not documented",
                )
        selected_lower = {c.lower() for c in selected}
        for name, column in documented.items():
            if name not in selected_lower:
                yield violation(
                    "project_columns_documented",
                    model,
                    f"column {column['name']} is documented but the SQL does not select it",
                )
    undescribed_sources = set()
    for source in project.sources.values():
        if not source.get("source_description", "").strip():
            undescribed_sources.add(source["source_name"])
        if not described(source):
            yield violation(
                "fct_undocumented_source_tables", source, "the source table has no description"
            )
        for column in source.get("columns", {}).values():
            if not described(column):
                yield violation(
                    "project_columns_documented",
                    source,
                    f"column {column['name']} has no description",
                )
    for name in sorted(undescribed_sources):
        yield Violation("fct_undocumented_sources", f"source {name}", "no description", name)


def output_columns(compiled_sql: str, dialect: str) -> list[str] | None:
    """The names of the columns a model's compiled SQL selects (stars over CTEs expanded), or
    None when that cannot be told without a database (`select *` from a relation)."""
    if not compiled_sql.strip():
        return None
    try:
        query = qualify(
            sqlglot.parse_one(compiled_sql, dialect=dialect),
            dialect=dialect,
            validate_qualify_columns=False,
            identify=False,
        )
    except SqlglotError:
        return None
    names = query.named_selects if isinstance(query, exp.Query) else []
    return None if not names or "*" in names else list(names)


# --- testing -----------------------------------------------------------------------------------


def check_tests(project: Project) -> Iterator[Violation]:
    macros_by_column: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    tested: set[str] = set()
    misplaced: dict[str, set[str]] = defaultdict(set)
    for test in project.tests.values():
        model = test.get("attached_node")
        tested.update([model] if model else project.parents(test, "model"))  # singular: all
        if model in project.models and test["original_file_path"].endswith((".yml", ".yaml")):
            misplaced[model].add(test["original_file_path"])
        where = test.get("config", {}).get("where")
        # only a generic test on the model makes a key: unfiltered, or scoped to the batches just
        # built (__new_batches__, macros/test_scope.sql: keys embed the batch id, so per-batch
        # uniqueness is uniqueness)
        if not model or (where and where != "__new_batches__"):
            continue
        column = (test.get("column_name") or "").strip('"`').lower()
        for macro in test["depends_on"]["macros"]:
            macros_by_column[model][column].add(macro.removeprefix("macro."))
    for uid, files in sorted(misplaced.items()):
        home = Path(project.models[uid]["original_file_path"]).parent
        for where in sorted(f for f in files if Path(f).parent != home):
            yield violation(
                "fct_test_directories",
                project.models[uid],
                f"its tests are declared in {where}, not beside the model",
            )
    key_tests = [set(combination) for combination in project.vars["primary_key_test_macros"]]
    for uid, model in project.models.items():
        columns = macros_by_column[uid].values()
        if not any(combination <= macros for combination in key_tests for macros in columns):
            yield violation(
                "fct_missing_primary_key_tests",
                model,
                "no primary-key test: unique + not_null on one column, or one of "
                + ", ".join(" + ".join(c) for c in key_tests[1:]),
            )
        if uid not in tested:
            yield violation("fct_test_coverage", model, "the model has no test")
    for source in project.sources.values():
        freshness = source.get("freshness") or {}
        thresholds = [
            (freshness.get(level) or {}).get("count") for level in ("warn_after", "error_after")
        ]
        loaded_at = source.get("loaded_at_field") or source.get("loaded_at_query")
        if not any(thresholds) or not loaded_at:
            yield violation(
                "fct_sources_without_freshness",
                source,
                "needs loaded_at_field and freshness warn_after/error_after",
            )


# --- governance --------------------------------------------------------------------------------


def check_governance(project: Project) -> Iterator[Violation]:
    for model in project.models.values():
        public = model.get("access") == "public"
        if public and not model["config"].get("contract", {}).get("enforced"):
            yield violation(
                "fct_public_models_without_contract",
                model,
                "a public model's contract must be enforced",
            )
        # the dimensions' intermediate state (models/gold/intermediate) is protected on purpose
        if layer_of(model) == "gold" and not public and not model["name"].startswith("int_"):
            yield violation(
                "project_gold_public", model, f"a Gold model is public, not {model.get('access')}"
            )
    for exposure in project.exposures.values():
        for parent in project.parents(exposure, "model"):
            access = project.models[parent].get("access") if parent in project.models else "?"
            if access != "public":
                yield violation(
                    "fct_exposures_dependent_on_private_models",
                    exposure,
                    f"depends on {parent.split('.')[-1]}, which is {access}, not public",
                )


RULES = (
    check_structure,
    check_sources_and_staging,
    check_layers,
    check_hard_coded,
    check_docs,
    check_tests,
    check_governance,
)


# --- exceptions --------------------------------------------------------------------------------


def load_exceptions(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return list((yaml.safe_load(path.read_text()) or {}).get("exceptions") or [])


def check(project: Project, exceptions: list[dict[str, Any]] | None = None) -> list[Violation]:
    """Every violation not excused, then every exception that is malformed or excuses nothing."""
    found = [v for rule in RULES for v in rule(project)]
    problems: list[Violation] = []
    excused: set[tuple[str, str]] = set()
    for resource in [*project.models.values(), *project.sources.values()]:
        for key, reason in meta_exceptions(resource).items():
            if key not in META_EXCEPTIONS:
                message = f"gate_exceptions.{key}: only {', '.join(META_EXCEPTIONS)} take one"
                problems.append(violation("exceptions", resource, message))
            elif not has_reason(reason):
                message = f"gate_exceptions.{key} needs a reason"
                problems.append(violation("exceptions", resource, message))
            else:
                rule = META_EXCEPTIONS[key]
                if not any(v.rule == rule and v.key == key_of(resource) for v in found):
                    message = f"gate_exceptions.{key} excuses nothing (fixed? delete it)"
                    problems.append(violation("exceptions", resource, message))
                excused.add((rule, key_of(resource)))
    in_file = EXCEPTIONS_FILE.relative_to(PROJECT_DIR)
    for entry in exceptions or []:
        rule, resources = entry.get("rule", "?"), entry.get("resources") or []
        if not has_reason(entry.get("reason")):
            problems.append(Violation("exceptions", str(in_file), f"{rule}: needs a reason"))
            continue
        for key in resources:
            if not any(v.rule == rule and v.key == key for v in found):
                message = f"{rule} {key}: excuses nothing (fixed? delete the entry)"
                problems.append(Violation("exceptions", str(in_file), message))
            excused.add((rule, key))
    return [v for v in found if (v.rule, v.key) not in excused] + problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifests", nargs="+", type=Path, help="manifest.json of each target")
    parser.add_argument("--exceptions", type=Path, default=EXCEPTIONS_FILE)
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.manifests if not p.is_file()]
    if missing:
        print(f"no manifest at {', '.join(missing)}: run dbt parse/compile first", file=sys.stderr)
        return 2
    project = Project.load(args.manifests)
    violations = check(project, load_exceptions(args.exceptions))
    for v in violations:
        print(v)
    print(
        f"check_project: {len(project.models)} models, {len(project.sources)} sources, "
        f"{len(project.exposures)} exposures, {len(violations)} violation(s)",
        file=sys.stderr,
    )
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
