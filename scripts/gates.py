"""The static quality gates: `make lint` and `make check` run them, CI runs `make check` first.

    python scripts/gates.py lint      ruff, ruff format --check, YAML, sqlfluff (dbt templater)
    python scripts/gates.py check     lint + mypy + offline `dbt compile` of every target (which
                                      parses it first) + project structure + secrets + checkov
    python scripts/gates.py yaml [FILE ...]      every YAML file parses, no duplicate keys
    python scripts/gates.py secrets [FILE ...]   no secret that .secrets.baseline does not list
    python scripts/gates.py checkov [DIR ...]    checkov's generic checks of the CloudFormation
                                                 templates in infra/ (or in each DIR)

No gate starts an engine or needs a credential (scripts/offline_dbt.py). Independent gates run
side by side; each prints its output when it ends, and a summary with timings closes the run.
Exit status 1 when any gate failed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PYTHON = sys.executable
SCRIPTS = PROJECT_DIR / "scripts"
TARGETS = ("lake", "warehouse", "prod_lake", "prod_warehouse")
SQL_PATHS = ("models", "tests/dbt")
BASELINE = ".secrets.baseline"
# checkov runs from a virtualenv of its own (`make setup` builds it from requirements/checkov.lock):
# its pins conflict with the project's lock. Its skips, each with a reason, are in the config.
CHECKOV = PROJECT_DIR / ".venv-checkov" / "bin" / "checkov"
CHECKOV_CONFIG = PROJECT_DIR / "infra" / ".checkov.yaml"
SKIP_DIRS = {".git", ".venv", "target", "dbt_packages", "lake", "logs", "reports", "node_modules"}


@dataclass
class Gate:
    name: str
    command: list[str]


@dataclass
class Outcome:
    gate: Gate
    returncode: int
    seconds: float
    output: str


def lint_gates() -> list[Gate]:
    offline = [PYTHON, str(SCRIPTS / "offline_dbt.py")]
    return [
        Gate("sqlfluff", [*offline, "sqlfluff", "lint", *SQL_PATHS]),
        Gate("ruff", [str(BIN / "ruff"), "check", "."]),
        Gate("ruff format", [str(BIN / "ruff"), "format", "--check", "."]),
        Gate("yaml", [PYTHON, __file__, "yaml"]),
    ]


def check_gates() -> list[Gate]:
    """Everything, the slowest first so that the quick ones fill the gaps."""
    offline = [PYTHON, str(SCRIPTS / "offline_dbt.py")]
    sqlfluff, *quick_lint = lint_gates()
    compiles = [
        Gate(f"dbt compile {target}", [*offline, "dbt", "compile", "--target", target])
        for target in TARGETS
    ]
    return [
        sqlfluff,
        *compiles,
        Gate("mypy", [str(BIN / "mypy"), "ingestion", "lakehouse", "scripts"]),
        Gate("secrets", [PYTHON, __file__, "secrets"]),
        Gate("checkov", [PYTHON, __file__, "checkov"]),
        *quick_lint,
    ]


def structure_gate() -> Gate:
    manifests = [str(PROJECT_DIR / "target" / "gates" / t / "manifest.json") for t in TARGETS]
    return Gate("project structure", [PYTHON, str(SCRIPTS / "check_project.py"), *manifests])


def run_gate(gate: Gate) -> Outcome:
    started = time.perf_counter()
    result = subprocess.run(
        gate.command,
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
        env={**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "0"},
    )
    outcome = Outcome(gate, result.returncode, time.perf_counter() - started, result.stdout)
    status = "ok" if outcome.returncode == 0 else f"FAILED (exit {outcome.returncode})"
    quiet = outcome.returncode == 0 and gate.name.startswith("dbt compile")
    body = "" if quiet else outcome.output.rstrip()
    print(f"--- {gate.name}: {status} in {outcome.seconds:.1f}s\n{body}".rstrip(), flush=True)
    return outcome


def run_gates(gates: Sequence[Gate], with_structure: bool) -> int:
    started = time.perf_counter()
    workers = max(2, min(4, os.cpu_count() or 2))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = list(pool.map(run_gate, gates))
    if with_structure:
        compiled = all(o.returncode == 0 for o in outcomes if o.gate.name.startswith("dbt compile"))
        if compiled:
            outcomes.append(run_gate(structure_gate()))
        else:
            print("--- project structure: skipped, a dbt compile failed", flush=True)
            outcomes.append(Outcome(structure_gate(), 1, 0.0, "skipped"))
    failed = [o for o in outcomes if o.returncode != 0]
    print("\nquality gates:")
    for o in outcomes:
        print(f"  {'ok  ' if o.returncode == 0 else 'FAIL'} {o.gate.name:<26} {o.seconds:6.1f}s")
    total = time.perf_counter() - started
    verdict = f"{len(failed)} failed" if failed else "all passed"
    print(f"  {verdict} in {total:.0f}s")
    return 1 if failed else 0


# --- the file-level gates ----------------------------------------------------------------------


def project_files(suffixes: tuple[str, ...]) -> list[str]:
    """Tracked and untracked-but-not-ignored files (what the next commit could hold)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=PROJECT_DIR,
            capture_output=True,
            check=True,
        ).stdout.decode()
        names = [n for n in listed.split("\0") if n]
    except (OSError, subprocess.CalledProcessError):
        names = []
        for root, dirs, files in os.walk(PROJECT_DIR):
            dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.startswith(".")]
            names += [os.path.relpath(os.path.join(root, f), PROJECT_DIR) for f in files]
    return sorted(n for n in names if n.endswith(suffixes) and (PROJECT_DIR / n).is_file())


def check_yaml(files: Iterable[str]) -> int:
    """Every YAML file parses (CloudFormation's !Ref-style tags allowed) with no duplicate key."""
    import yaml  # type: ignore[import-untyped]

    class Loader(yaml.SafeLoader):  # type: ignore[misc]
        pass

    def any_tag(loader: Loader, suffix: str, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            return loader.construct_scalar(node)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node)
        return loader.construct_mapping(node)

    def no_duplicates(loader: Loader, node: yaml.MappingNode, deep: bool = False) -> Any:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen[key] = key_node.start_mark.line
        return loader.construct_mapping(node, deep=deep)

    Loader.add_multi_constructor("!", any_tag)
    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, no_duplicates)
    failures = 0
    for name in files:
        try:
            with open(PROJECT_DIR / name, encoding="utf-8") as stream:
                list(yaml.load_all(stream, Loader=Loader))
        except (yaml.YAMLError, UnicodeDecodeError) as error:
            failures += 1
            print(f"{name}: {error}")
    return 1 if failures else 0


def check_secrets(files: Iterable[str], baseline_file: str = BASELINE) -> int:
    """Secrets in the files that the committed baseline does not list (audited false positives
    and test fakes live there). Never rewrites the baseline: `detect-secrets scan --baseline
    .secrets.baseline` then `detect-secrets audit .secrets.baseline` do that on purpose."""
    from detect_secrets.core import baseline
    from detect_secrets.core.secrets_collection import SecretsCollection

    known = baseline.load(baseline.load_from_file(str(PROJECT_DIR / baseline_file)), baseline_file)
    found = SecretsCollection()  # file names relative to the project (the working directory)
    for name in files:
        if name != baseline_file:
            found.scan_file(name)
    new = found - known
    for filename, secret in sorted(new, key=lambda pair: (pair[0], pair[1].line_number or 0)):
        print(f"{filename}:{secret.line_number}: {secret.type} (not in {baseline_file})")
    if new:
        print(
            "A new secret? Move it to an environment variable. A fake for a test? Mark the line "
            "`# pragma: allowlist secret`, or add it to the baseline: "
            f"detect-secrets scan --baseline {baseline_file} && "
            f"detect-secrets audit {baseline_file}"
        )
        return 1
    return 0


def check_checkov(directories: Sequence[str]) -> int:
    """checkov over the CloudFormation templates of each directory (framework, output and skips
    from infra/.checkov.yaml); exit status 1 when a check fails or checkov is not installed."""
    if not CHECKOV.exists():
        print(
            f"{CHECKOV.relative_to(PROJECT_DIR)} is missing: run `make setup`, which builds "
            "checkov's own virtualenv from requirements/checkov.lock"
        )
        return 1
    # checkov logs cloudsplaining's enrichment warnings on every IAM policy: errors only.
    env = {**os.environ, "LOG_LEVEL": "ERROR"}
    failed = 0
    for directory in directories:
        command = [str(CHECKOV), "--config-file", str(CHECKOV_CONFIG), "--directory", directory]
        failed |= subprocess.run(command, cwd=PROJECT_DIR, env=env, check=False).returncode != 0
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("gate", choices=["lint", "check", "yaml", "secrets", "checkov"])
    parser.add_argument("files", nargs="*")
    args = parser.parse_args(argv)
    os.chdir(PROJECT_DIR)
    if args.gate == "lint":
        return run_gates(lint_gates(), with_structure=False)
    if args.gate == "check":
        return run_gates(check_gates(), with_structure=True)
    if args.gate == "yaml":
        return check_yaml(args.files or project_files((".yml", ".yaml")))
    if args.gate == "checkov":
        return check_checkov(args.files or ["infra"])
    return check_secrets(args.files or project_files(("",)))


if __name__ == "__main__":
    sys.exit(main())
