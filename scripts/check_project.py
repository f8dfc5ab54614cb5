"""The project's structure rules, checked on dbt's manifest (after dbt-project-evaluator).

    python scripts/check_project.py target/gates/*/manifest.json

Reads one or more manifests (one per target, as `make check` compiles them) and prints one line
per violation, `<rule>: <resource>: <what is wrong>`; exits 1 when there is any. The rules:

  naming          folder decides the prefix: silver stg_/slv_, gold fct_/dim_/int_, marts mart_
  staging         every source table is read by exactly one model, a staging model (stg_), and a
                  staging model reads exactly one source and nothing else
  layers          no layer is skipped: marts ref only gold; gold refs only silver and seeds;
                  silver reads only Bronze sources, silver and seeds
  hard-coded      no relation named in a model's SQL outside ref()/source() (`from silver.x`)
  docs            every model, source table and their columns have a description; every column
                  the compiled SQL selects is documented, and every documented column is selected
  primary-key     every model has unique + not_null on one column
  contracts       every Gold model has an enforced contract and public access
  freshness       every source table has a loaded_at field and a freshness threshold

Two rules take a written exception, kept beside the resource it excuses so it shows in the docs:

    config:
      meta:
        gate_exceptions:
          primary_key: "Grain is segment x segment; the combination is tested by ..."
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

# Gold also holds the dimensions' incremental state (int_*, models/gold/intermediate/).
LAYER_PREFIXES = {"silver": ("stg_", "slv_"), "gold": ("fct_", "dim_", "int_"), "marts": ("mart_",)}
# What each layer may depend on: model layers by folder, plus "seed" and "source".
ALLOWED_PARENTS = {
    "silver": {"source", "silver", "seed"},
    "gold": {"silver", "seed", "gold"},
    "marts": {"gold"},
}
EXCEPTION_RULES = ("primary_key", "freshness")


@dataclass
class Violation:
    rule: str
    resource: str
    message: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.resource}: {self.message}"


@dataclass
class Project:
    """The nodes of one or more manifests of the same project (one per target)."""

    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    tests: dict[str, dict[str, Any]] = field(default_factory=dict)
    seeds: dict[str, dict[str, Any]] = field(default_factory=dict)
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    compiled: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, manifest_paths: Iterable[Path]) -> Project:
        project = cls()
        for path in manifest_paths:
            manifest = json.loads(Path(path).read_text())
            package = manifest["metadata"].get("project_name", "lakehouse")
            for uid, node in manifest["nodes"].items():
                kind = node["resource_type"]
                if node.get("package_name") != package:
                    continue
                if kind == "model":
                    project.models.setdefault(uid, node)
                    if node.get("compiled_code"):
                        project.compiled.setdefault(uid, node["compiled_code"])
                elif kind == "test":
                    project.tests.setdefault(uid, node)
                elif kind == "seed":
                    project.seeds.setdefault(uid, node)
            for uid, source in manifest["sources"].items():
                project.sources.setdefault(uid, source)
        return project


def layer_of(model: dict[str, Any]) -> str:
    """The layer folder of a model: models/<layer>/..."""
    fqn = model["fqn"]
    return fqn[1] if len(fqn) > 2 else ""


def label(resource: dict[str, Any]) -> str:
    """How a violation names a model (name and file) or a source table (source.table)."""
    if resource.get("resource_type") == "source":
        return f"source {resource['source_name']}.{resource['name']}"
    return f"{resource['name']} ({resource['original_file_path']})"


def gate_exception(resource: dict[str, Any], rule: str) -> str | None:
    """The written reason a resource is excused from a rule, if any."""
    meta = {**resource.get("meta", {}), **resource.get("config", {}).get("meta", {})}
    reason = (meta.get("gate_exceptions") or {}).get(rule)
    return reason.strip() if isinstance(reason, str) and reason.strip() else None


# --- the rules ---------------------------------------------------------------------------------


def check_naming(project: Project) -> Iterator[Violation]:
    for model in project.models.values():
        layer = layer_of(model)
        prefixes = LAYER_PREFIXES.get(layer)
        if prefixes is None:
            yield Violation(
                "naming",
                label(model),
                f"models live in models/silver, models/gold or models/marts, not in "
                f"models/{layer or ''}",
            )
        elif not model["name"].startswith(prefixes):
            yield Violation(
                "naming",
                label(model),
                f"a {layer} model's name starts with {' or '.join(prefixes)}",
            )


def check_staging(project: Project) -> Iterator[Violation]:
    readers: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for model in project.models.values():
        for parent in model["depends_on"]["nodes"]:
            if parent.startswith("source."):
                readers[parent].append(model)
    for uid, source in sorted(project.sources.items()):
        name = label(source)
        models = readers.get(uid, [])
        if not models:
            yield Violation("staging", name, "no staging model reads it (stg_<source>__<table>)")
        elif len(models) > 1:
            names = ", ".join(sorted(m["name"] for m in models))
            yield Violation(
                "staging",
                name,
                f"read by {len(models)} models ({names}); only by its staging model",
            )
        for model in models:
            if not model["name"].startswith("stg_"):
                yield Violation(
                    "staging",
                    label(model),
                    f"reads {name} directly; only a staging model (stg_) reads a source",
                )
    for model in project.models.values():
        if not model["name"].startswith("stg_"):
            continue
        parents = model["depends_on"]["nodes"]
        sources = [p for p in parents if p.startswith("source.")]
        others = [p.split(".")[-1] for p in parents if not p.startswith("source.")]
        if len(sources) != 1 or others:
            yield Violation(
                "staging",
                label(model),
                f"a staging model reads exactly one source and nothing else; it reads "
                f"{len(sources)} source(s)" + (f" and refs {', '.join(others)}" if others else ""),
            )


def check_layers(project: Project) -> Iterator[Violation]:
    for model in project.models.values():
        layer = layer_of(model)
        allowed = ALLOWED_PARENTS.get(layer)
        if allowed is None:
            continue
        for parent in model["depends_on"]["nodes"]:
            kind = parent.split(".")[0]
            if kind == "model":
                parent_node = project.models.get(parent)
                parent_layer = layer_of(parent_node) if parent_node else "?"
                what = f"{parent_layer} model {parent.split('.')[-1]}"
            else:
                parent_layer = kind
                what = f"{kind} {'.'.join(parent.split('.')[2:])}"
            if parent_layer not in allowed:
                yield Violation(
                    "layers",
                    label(model),
                    f"depends on {what}; a {layer} model may only read "
                    f"{', '.join(sorted(allowed))}",
                )


def check_hard_coded(project: Project) -> Iterator[Violation]:
    for model in project.models.values():
        if model.get("language", "sql") != "sql":
            continue
        for name in hard_coded_relations(model["raw_code"]):
            yield Violation(
                "hard-coded",
                label(model),
                f"reads `{name}` by name; use ref() or source() so dbt knows the dependency",
            )


def check_docs(project: Project) -> Iterator[Violation]:
    for model in project.models.values():
        if not model.get("description", "").strip():
            yield Violation("docs", label(model), "the model has no description")
        documented = {}
        for column in model.get("columns", {}).values():
            documented[column["name"].lower()] = column
            if not column.get("description", "").strip():
                yield Violation("docs", label(model), f"column {column['name']} has no description")
        compiled = project.compiled.get(model["unique_id"])
        selected = output_columns(compiled) if compiled else None
        if selected is None:
            continue
        for column in selected:
            if column.lower() not in documented:
                yield Violation(
                    "docs", label(model), f"column {column} is selected but not documented"
                )
        selected_lower = {c.lower() for c in selected}
        for name, column in documented.items():
            if name not in selected_lower:
                yield Violation(
                    "docs",
                    label(model),
                    f"column {column['name']} is documented but the SQL does not select it",
                )
    for source in project.sources.values():
        name = label(source)
        if not source.get("description", "").strip():
            yield Violation("docs", name, "the source table has no description")
        for column in source.get("columns", {}).values():
            if not column.get("description", "").strip():
                yield Violation("docs", name, f"column {column['name']} has no description")


def check_primary_keys(project: Project) -> Iterator[Violation]:
    tested: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for test in project.tests.values():
        metadata = test.get("test_metadata") or {}
        column = test.get("column_name")
        model = test.get("attached_node")
        if metadata.get("name") in ("unique", "not_null") and column and model:
            if test.get("config", {}).get("where"):
                continue  # a filtered test does not make a key
            tested[model][column.strip('"`').lower()].add(metadata["name"])
    for uid, model in project.models.items():
        keys = [c for c, tests in tested[uid].items() if {"unique", "not_null"} <= tests]
        if keys or gate_exception(model, "primary_key"):
            continue
        yield Violation(
            "primary-key",
            label(model),
            "no column has both unique and not_null tests (or write a reason under "
            "config.meta.gate_exceptions.primary_key)",
        )


def check_contracts(project: Project) -> Iterator[Violation]:
    for model in project.models.values():
        # the intermediate state is read by the dimensions only: protected, no contract
        if layer_of(model) != "gold" or model["name"].startswith("int_"):
            continue
        if not model["config"].get("contract", {}).get("enforced"):
            yield Violation("contracts", label(model), "a Gold model's contract must be enforced")
        if model.get("access") != "public":
            yield Violation(
                "contracts",
                label(model),
                f"a Gold model's access is public, not {model.get('access')}",
            )


def check_freshness(project: Project) -> Iterator[Violation]:
    for source in project.sources.values():
        name = label(source)
        if gate_exception(source, "freshness"):
            continue
        freshness = source.get("freshness") or {}
        thresholds = [
            (freshness.get(level) or {}).get("count") for level in ("warn_after", "error_after")
        ]
        loaded_at = source.get("loaded_at_field") or source.get("loaded_at_query")
        if not any(thresholds) or not loaded_at:
            yield Violation(
                "freshness",
                name,
                "needs loaded_at_field and freshness warn_after/error_after (or a reason under "
                "meta.gate_exceptions.freshness)",
            )


def check_exception_reasons(project: Project) -> Iterator[Violation]:
    """An exception names a known rule and says why."""
    for resource in [*project.models.values(), *project.sources.values()]:
        meta = {**resource.get("meta", {}), **resource.get("config", {}).get("meta", {})}
        exceptions = meta.get("gate_exceptions") or {}
        if not isinstance(exceptions, dict):
            exceptions = {"?": exceptions}
        for rule, reason in exceptions.items():
            name = label(resource)
            if rule not in EXCEPTION_RULES:
                yield Violation(
                    "exceptions",
                    name,
                    f"gate_exceptions.{rule}: only {', '.join(EXCEPTION_RULES)} take an exception",
                )
            elif not isinstance(reason, str) or not reason.strip():
                yield Violation("exceptions", name, f"gate_exceptions.{rule} needs a reason")


RULES = (
    check_naming,
    check_staging,
    check_layers,
    check_hard_coded,
    check_docs,
    check_primary_keys,
    check_contracts,
    check_freshness,
    check_exception_reasons,
)


def check(project: Project) -> list[Violation]:
    return [violation for rule in RULES for violation in rule(project)]


# --- reading SQL without a parser: enough to find relation names and selected columns ----------

JINJA = re.compile(r"\{#.*?#\}|\{%.*?%\}|\{\{.*?\}\}", re.DOTALL)
TOKEN = re.compile(r"[A-Za-z_][\w$]*(?:\s*\.\s*(?:[A-Za-z_][\w$]*|\*))*|\d+(?:\.\d+)?|\S")
NOT_RELATIONS = {"values", "unnest", "lateral", "table"}


def strip_sql(text: str) -> str:
    """Drop comments, empty string literals, unquote identifiers (`x`, "x")."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if text.startswith("--", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
            out.append(" ")
        elif char == "'":
            i += 1
            while i < n and text[i] != "'":
                i += 2 if text[i] == "\\" else 1
            i += 1
            out.append("''")
        elif char in '`"':
            end = text.find(char, i + 1)
            end = n if end < 0 else end
            out.append(text[i + 1 : end])
            i = end + 1
        else:
            out.append(char)
            i += 1
    return "".join(out)


def tokens(sql: str) -> list[str]:
    return [re.sub(r"\s+", "", t) for t in TOKEN.findall(sql)]


def cte_names(toks: list[str]) -> set[str]:
    return {
        toks[i - 1].lower()
        for i in range(1, len(toks) - 1)
        if toks[i].lower() == "as" and toks[i + 1] == "("
    }


def hard_coded_relations(raw_code: str) -> list[str]:
    """Names read after FROM/JOIN in a query that are neither a CTE nor a ref()/source()."""
    rendered = JINJA.sub(lambda m: " __dbt__ " if m.group().startswith("{{") else " ", raw_code)
    sql = strip_sql(rendered)
    toks = tokens(sql)
    ctes = cte_names(toks)
    found: list[str] = []
    # One entry per open parenthesis: does it hold a query (a SELECT) or a function's arguments
    # (extract(day from x), trim(both from x))?
    in_query = [True]
    for i, tok in enumerate(toks):
        low = tok.lower()
        if tok == "(":
            in_query.append(False)
        elif tok == ")":
            if len(in_query) > 1:
                in_query.pop()
        elif low == "select":
            in_query[-1] = True
        elif low in ("from", "join") and in_query[-1] and i + 1 < len(toks):
            name = toks[i + 1]
            if name == "__dbt__" or name in ("(", "''") or name.lower() in NOT_RELATIONS:
                continue
            if not re.match(r"[A-Za-z_]", name):
                continue
            if "." in name or name.lower() not in ctes:
                found.append(name)
    return found


def _split_top_level(toks: list[str]) -> list[list[str]]:
    items: list[list[str]] = [[]]
    depth = 0
    for tok in toks:
        if tok == "(":
            depth += 1
        elif tok == ")":
            depth -= 1
        if tok == "," and depth == 0:
            items.append([])
        else:
            items[-1].append(tok)
    return [item for item in items if item]


def _cte_bodies(toks: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """The CTEs of a statement (name -> tokens of the body) and the main query's tokens."""
    bodies: dict[str, list[str]] = {}
    i = 0
    if toks and toks[0].lower() == "with":
        i = 1
        while i + 2 < len(toks) and toks[i + 1].lower() == "as" and toks[i + 2] == "(":
            name, start, depth, j = toks[i].lower(), i + 3, 1, i + 3
            while j < len(toks) and depth:
                depth += {"(": 1, ")": -1}.get(toks[j], 0)
                j += 1
            bodies[name] = toks[start : j - 1]
            i = j + 1 if j < len(toks) and toks[j] == "," else j
    return bodies, toks[i:]


def _select_list(query: list[str], bodies: dict[str, list[str]], seen: int = 0) -> list[str] | None:
    if not query or query[0].lower() != "select" or seen > 10:
        return None
    depth, end = 0, len(query)
    for j, tok in enumerate(query[1:], start=1):
        depth += {"(": 1, ")": -1}.get(tok, 0)
        if depth == 0 and tok.lower() == "from":
            end = j
            break
    items = _split_top_level(
        [t for t in query[1:end] if t.lower() not in ("distinct", "all")][: end - 1]
    )
    columns: list[str] = []
    for item in items:
        if len(item) >= 2 and item[-2].lower() == "as":
            columns.append(item[-1])
        elif item == ["*"] and end + 2 == len(query) and query[end + 1].lower() in bodies:
            inner = _select_list(bodies[query[end + 1].lower()], bodies, seen + 1)
            if inner is None:
                return None
            columns += inner
        elif len(item) == 1 and re.fullmatch(r"[A-Za-z_][\w$.]*", item[0]):
            columns.append(item[0].split(".")[-1])
        else:
            return None  # a wildcard over a join or an unnamed expression: unknown
    return columns


def output_columns(compiled_sql: str) -> list[str] | None:
    """The names of the columns a model's compiled SQL selects, or None when that cannot be
    told without a database (e.g. `select *` from a relation)."""
    bodies, main = _cte_bodies(tokens(strip_sql(compiled_sql)))
    if main and main[-1] == ";":
        main = main[:-1]
    return _select_list(main, bodies)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifests", nargs="+", type=Path, help="manifest.json of each target")
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.manifests if not p.is_file()]
    if missing:
        print(f"no manifest at {', '.join(missing)}: run dbt parse/compile first", file=sys.stderr)
        return 2
    project = Project.load(args.manifests)
    violations = check(project)
    for violation in violations:
        print(violation)
    print(
        f"check_project: {len(project.models)} models, {len(project.sources)} sources, "
        f"{len(violations)} violation(s)",
        file=sys.stderr,
    )
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
