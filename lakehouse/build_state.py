"""What a local build must do, decided before any engine starts.

A build of the lake depends on two things: the project's code and settings (models, macros,
seeds, tests, vars, the target) and its input, the Bronze ledger (one immutable entry per
committed batch). A build of the warehouse depends on the same code and on the Gold manifest the
lake build published. After a successful build we record both as fingerprints under
`$LAKEHOUSE_HOME/_runs/<target>.state.json`; the next build compares:

- nothing changed: nothing to do. The JVM is not even started (a no-op rebuild at 5.5 M rows
  used to cost 90 s of Spark work to find out the same thing);
- only the input changed (new batches): the build runs without the seeds and the unit tests,
  which depend on the code alone (selectors `lake_new_batches` / `warehouse_new_data`);
- the code changed, or there is no record, or --full-refresh: the whole build; its unit tests
  too, unless they already passed on this very code in this checkout.

Unit tests depend on the code alone (their inputs are fixtures), so dbt recommends running them
in development and CI rather than on every production build. Their record is therefore kept
beside dbt's other code-derived state (partial parsing), in the target's artifact folder of the
checkout: `<target folder>/unit_tests.passed.json`. A second lakehouse home built from the same
checkout, or a full refresh of unchanged code, leaves them out; any edit to the project runs
them again.

A build that fails or is killed records nothing, so the next one starts from the last success.
Only the local targets are planned this way: production Bronze lives on S3.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from lakehouse.settings import Paths, ledger_entries

# The local lake target's name (its state file is `_runs/lake.state.json`).
LAKE = "lake"

# Everything of the dbt project that changes what a build computes or checks.
CODE_PATHS = (
    "dbt_project.yml",
    "selectors.yml",
    "profiles/profiles.yml",
    "models",
    "macros",
    "seeds",
    "tests/dbt",
)


class Action(Enum):
    SKIP = "up to date"
    NEW_DATA = "new data, same code"
    FULL = "full build"


@dataclass(frozen=True)
class Fingerprints:
    code: str
    inputs: str


@dataclass(frozen=True)
class Plan:
    action: Action
    fingerprints: Fingerprints
    reason: str


def _digest(chunks: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(len(chunk).to_bytes(8, "big"))
        digest.update(chunk)
    return digest.hexdigest()


def code_fingerprint(project: Path, target: str, dbt_vars: dict[str, Any] | None) -> str:
    files: list[Path] = []
    for name in CODE_PATHS:
        path = project / name
        files += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    chunks = [target.encode(), json.dumps(dbt_vars or {}, sort_keys=True).encode()]
    for file in files:
        if file.is_file():
            chunks += [str(file.relative_to(project)).encode(), file.read_bytes()]
    return _digest(chunks)


def ledger_batches(lake: Paths) -> list[str]:
    """The ids of the committed Bronze batches (a ledger entry is `<batch_id>.json`)."""
    return sorted(p.stem for p in lake.ledger.glob("*.json")) if lake.ledger.is_dir() else []


def lake_inputs(lake: Paths) -> str:
    """The committed Bronze batches: ledger entries are written once and never changed."""
    return _digest(f"{batch}.json".encode() for batch in ledger_batches(lake))


def rows_to_build(lake: Paths, all_batches: bool = False) -> int:
    """Rows of the Bronze batches the next lake build reads: every batch with `all_batches`
    (--full-refresh) or when no build is recorded, else those the last successful lake build
    did not build (besides them it looks up only narrow history). Read before the JVM starts,
    to choose its JIT."""
    state = state_file(lake, LAKE)
    built = set()
    if state.is_file() and not all_batches:
        built = set(json.loads(state.read_text()).get("batches", []))
    return sum(int(e["rows"]) for e in ledger_entries(lake) if e["batch_id"] not in built)


def warehouse_inputs(lake: Paths) -> str:
    """The Gold tables' current state as the lake build published it (metadata file per table)."""
    manifest = lake.warehouse / "_gold_manifest"
    files = sorted(manifest.glob("*.parquet")) if manifest.is_dir() else []
    return _digest(p.read_bytes() for p in files)


def state_file(lake: Paths, target: str) -> Path:
    return lake.home / "_runs" / f"{target}.state.json"


def plan(state: Path, fingerprints: Fingerprints, full_refresh: bool) -> Plan:
    if full_refresh:
        return Plan(Action.FULL, fingerprints, "--full-refresh")
    if not state.is_file():
        return Plan(Action.FULL, fingerprints, "no successful build recorded")
    last = json.loads(state.read_text())
    if last.get("code") != fingerprints.code:
        return Plan(Action.FULL, fingerprints, "the project's code or settings changed")
    if last.get("inputs") != fingerprints.inputs:
        return Plan(Action.NEW_DATA, fingerprints, "new input since the last build")
    return Plan(Action.SKIP, fingerprints, "nothing new since the last build")


def _write(path: Path, content: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(content))
    temporary.replace(path)


def record(state: Path, fingerprints: Fingerprints, batches: list[str] | None = None) -> None:
    """Called after a successful build only; a lake build also records the batches it built
    (`ledger_batches` as planned: a batch landed during the build counts as built, which only
    makes the next build's JIT choice err towards C1)."""
    content: dict[str, Any] = {"code": fingerprints.code, "inputs": fingerprints.inputs}
    if batches is not None:
        content["batches"] = batches
    _write(state, content)


def unit_tests_file(target_folder: Path) -> Path:
    return target_folder / "unit_tests.passed.json"


# Code versions remembered: a checkout built with a few settings (vars, formats) keeps each.
UNIT_TEST_RECORDS_KEPT = 8


def unit_tests_passed(target_folder: Path, code: str) -> bool:
    """Whether the target's unit tests passed on exactly this code in this checkout."""
    return code in _passed_codes(target_folder)


def record_unit_tests(target_folder: Path, code: str) -> None:
    """Called after a successful build that ran the unit tests."""
    codes = [c for c in _passed_codes(target_folder) if c != code][-(UNIT_TEST_RECORDS_KEPT - 1) :]
    _write(unit_tests_file(target_folder), {"passed": [*codes, code]})


def _passed_codes(target_folder: Path) -> list[str]:
    record_file = unit_tests_file(target_folder)
    if not record_file.is_file():
        return []
    return list(json.loads(record_file.read_text()).get("passed", []))
