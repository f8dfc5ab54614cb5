"""The lakehouse pipeline as plain functions: build the lake and the warehouse with dbt, and
report what each layer holds. The CLI (`lakehouse`) is a thin layer over these.

dbt runs in this process (dbtRunner), so the Spark session that dbt-spark starts for the lake
build stays up for the following invocations: a second lake command skips the JVM start.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lakehouse import audit, build_state
from lakehouse.engines import apply_engine_environment, connect_warehouse, wait_until_writable
from lakehouse.settings import Paths, ledger_entries, paths, profiles_dir, project_dir

log = logging.getLogger(__name__)

LAKE_TARGET = build_state.LAKE
WAREHOUSE_TARGET = "warehouse"


class DbtFailed(RuntimeError):
    """A dbt command ended with errors; dbt has already printed which node failed and why."""


def effective_target(args: Sequence[str], target: str | None = None) -> str:
    """The target a dbt command runs on: given, named in its arguments, or the profile's default."""
    if target:
        return target
    for position, arg in enumerate(args):
        if arg in ("--target", "-t") and position + 1 < len(args):
            return args[position + 1]
        if arg.startswith("--target="):
            return arg.split("=", 1)[1]
    return os.environ.get("LAKEHOUSE_TARGET", LAKE_TARGET)


def target_path(target: str) -> Path:
    """dbt's artifacts folder: `<root>/<target>/`, the root being the project's `target/` (or
    $LAKEHOUSE_DBT_TARGET_ROOT); $DBT_TARGET_PATH, when set, is taken as it is.

    One folder per target because dbt keeps its partial-parse state there, and that state is
    thrown away whenever the target changes: lake and warehouse builds alternating in one
    folder re-parsed the whole project on every command (seconds each).
    """
    configured = os.environ.get("DBT_TARGET_PATH")
    if configured:
        folder = Path(configured)
        return folder if folder.is_absolute() else project_dir() / folder
    root = os.environ.get("LAKEHOUSE_DBT_TARGET_ROOT")
    return (Path(root) if root else project_dir() / "target") / target


def run_dbt(args: Sequence[str], target: str | None = None, lake: Paths | None = None) -> Any:
    """Run one dbt command in-process against this project and fail loudly if it fails."""
    from dbt.cli.main import dbtRunner

    apply_engine_environment(lake, reads_all_batches="--full-refresh" in args)
    ran_on = effective_target(args, target)
    command = [
        *args,
        "--project-dir",
        str(project_dir()),
        "--profiles-dir",
        str(profiles_dir()),
    ]
    if target:
        command += ["--target", target]
    if "--target-path" not in args:
        command += ["--target-path", str(target_path(ran_on))]
    log.info("dbt %s", " ".join(command))
    result = dbtRunner().invoke(command)
    if not result.success:
        raise DbtFailed(f"`dbt {' '.join(args)}` failed on target {ran_on}") from result.exception
    return result


def release_warehouse() -> None:
    """Close the DuckDB connection dbt-duckdb keeps open in this process after a dbt command.

    dbt-duckdb holds its database in a class-level environment that outlives the dbt command
    (and so the write lock on the file): a long-running process (`lakehouse watch`) calls this
    between builds so that other processes can open the warehouse, read-only or not. The next
    dbt command opens it again.
    """
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:  # no warehouse adapter installed: nothing is open
        return
    with DuckDBConnectionManager._LOCK:
        environment = DuckDBConnectionManager._ENV
        if environment is not None:
            environment.close()  # the next command's connection opens the database again


@dataclass
class StageTimings:
    """Wall time of each stage, in seconds, in the order they ran, and what each stage decided."""

    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def measure(self, stage: str, started: float) -> None:
        self.seconds[stage] = round(time.perf_counter() - started, 2)


# The selectors a build with new data and unchanged code runs (selectors.yml): no seeds and no
# unit tests, which depend on the code alone and passed on the last build of the same code.
NEW_DATA_SELECTORS = {LAKE_TARGET: "lake_new_batches", WAREHOUSE_TARGET: "warehouse_new_data"}


@dataclass(frozen=True)
class Selection:
    args: list[str]
    leaves_out_unit_tests: bool


def _selection(target: str, plan: build_state.Plan) -> Selection:
    """What a planned local build of `target` selects (lakehouse.build_state explains why)."""
    if plan.action is build_state.Action.NEW_DATA:
        return Selection(["--selector", NEW_DATA_SELECTORS[target]], True)
    if build_state.unit_tests_passed(target_path(target), plan.fingerprints.code):
        return Selection(["--exclude-resource-type", "unit_test"], True)
    return Selection([], False)


def build(
    lake_target: str = LAKE_TARGET,
    warehouse_target: str | None = WAREHOUSE_TARGET,
    full_refresh: bool = False,
    dbt_vars: dict[str, Any] | None = None,
    timings: StageTimings | None = None,
) -> StageTimings:
    """Build and test the lake (Bronze sources, Silver, Gold), then the warehouse (marts).

    The local targets build only what changed since their last successful build (see
    `lakehouse.build_state`); production targets always run the whole build.
    """
    timings = timings or StageTimings()
    lake = paths()
    extra: list[str] = ["--full-refresh"] if full_refresh else []
    if dbt_vars:
        extra += ["--vars", json.dumps(dbt_vars)]
    stages = [("lake build", lake_target, build_state.lake_inputs)]
    if warehouse_target is not None:  # None: the lake alone
        stages.append(("warehouse build", warehouse_target, build_state.warehouse_inputs))
    for stage, target, inputs in stages:
        started = time.perf_counter()
        if target not in NEW_DATA_SELECTORS:
            with recorded(target, build_state.Action.FULL.value, "production target", lake):
                run_dbt(["build", *extra], target=target)
            timings.measure(stage, started)
            continue
        state = build_state.state_file(lake, target)
        fingerprints = build_state.Fingerprints(
            build_state.code_fingerprint(project_dir(), target, dbt_vars), inputs(lake)
        )
        built = build_state.ledger_batches(lake) if target == LAKE_TARGET else None
        plan = build_state.plan(state, fingerprints, full_refresh)
        timings.notes.append(f"{stage}: {plan.action.value} ({plan.reason})")
        with recorded(target, plan.action.value, plan.reason, lake):
            if plan.action is not build_state.Action.SKIP:
                selection = _selection(target, plan)
                if selection.leaves_out_unit_tests and plan.action is build_state.Action.FULL:
                    timings.notes.append(f"{stage}: unit tests passed on this code already")
                if target == WAREHOUSE_TARGET:
                    _build_warehouse(["build", *extra, *selection.args], lake)
                else:
                    run_dbt(["build", *extra, *selection.args], target=target)
                if target == LAKE_TARGET:
                    write_lake_summary()
                build_state.record(state, fingerprints, built)
                if not selection.leaves_out_unit_tests:
                    build_state.record_unit_tests(target_path(target), fingerprints.code)
        timings.measure(stage, started)
    return timings


# DuckDB's message when another process holds the file (dbt-duckdb raises it as it connects).
DUCKDB_LOCK_CONFLICT = "Could not set lock on file"


def _build_warehouse(args: list[str], lake: Paths) -> None:
    """The local warehouse build, once no other process has the DuckDB file open. A reader can
    still open it between that wait and dbt's own connect (the watch benchmark's probe, polling
    the marts, did so in 1 cycle of 10): a lock conflict when dbt connects, before any node ran,
    is waited out and the build tried once more. A file still held when the wait gave up is no
    race: that build fails at once, after one wait, not two."""
    for attempt in (1, 2):
        free = wait_until_writable(lake.duckdb_file)
        if not free:
            log.warning("%s is still open in another process", lake.duckdb_file)
        try:
            run_dbt(args, target=WAREHOUSE_TARGET)
            return
        except DbtFailed as failed:
            if attempt == 2 or not free or DUCKDB_LOCK_CONFLICT not in str(failed.__cause__):
                raise
            log.warning("%s was opened by another process as the build started", lake.duckdb_file)


@contextmanager
def recorded(target: str, action: str, reason: str, lake: Paths) -> Iterator[None]:
    """Record the build of one target in the audit history, whether it succeeds or fails: the
    run dbt wrote in its artifacts (this invocation's only), or a run of its own when nothing was
    built. Recording never hides the build's own outcome."""
    from dbt_common.invocation import get_invocation_id

    started = audit.now_utc()
    before = get_invocation_id()
    failed = False
    try:
        yield
    except DbtFailed:
        failed = True
        raise
    finally:
        try:
            _record(target, action, reason, lake, started, before, get_invocation_id(), failed)
        except Exception:  # the history must never change a build's outcome
            log.warning("audit: the %s build could not be recorded", target, exc_info=True)


def _record(
    target: str,
    action: str,
    reason: str,
    lake: Paths,
    started: Any,
    before: str,
    invocation: str,
    failed: bool,
) -> None:
    if action == build_state.Action.SKIP.value:
        run: audit.RunRecord | None = audit.skipped_run(target, reason, started)
    elif invocation == before:
        run = audit.failed_run(target, action, reason, started) if failed else None
    else:
        run = audit.run_from_artifacts(target_path(target), target, action, reason, invocation)
        if run is None and failed:
            run = audit.failed_run(target, action, reason, started)
    if run is not None:
        if not failed:
            audit.attach_batches(run, lake)
        if target == LAKE_TARGET:
            audit.attach_model_batches(run, _spark_session_if_started())
        audit.record(run, lake)


def generate_docs(lake_target: str = LAKE_TARGET, warehouse_target: str = WAREHOUSE_TARGET) -> Path:
    """The dbt docs site for the whole project: one lineage graph from the Bronze sources to the
    exposures, with the column types of every layer.

    A catalog only describes the relations of one target, so docs are generated on the lake
    (sources, Silver, Gold) and on the warehouse (marts), and the two catalogs are merged.
    """
    run_dbt(["docs", "generate"], target=warehouse_target)
    warehouse_catalog = json.loads((target_path(warehouse_target) / "catalog.json").read_text())
    run_dbt(["docs", "generate"], target=lake_target)
    target_dir = target_path(lake_target)
    catalog = json.loads((target_dir / "catalog.json").read_text())
    for section in ("nodes", "sources"):
        catalog[section] = {**catalog.get(section, {}), **warehouse_catalog.get(section, {})}
    (target_dir / "catalog.json").write_text(json.dumps(catalog))
    return target_dir / "index.html"


def bronze_is_empty(lake: Paths | None = None) -> bool:
    lake = lake or paths()
    return not any(lake.ledger.glob("*.json")) if lake.ledger.is_dir() else True


def bronze_ledger(lake: Paths | None = None) -> list[dict[str, Any]]:
    """The committed batches of the local Bronze layer, oldest first."""
    entries = ledger_entries(lake or paths())
    return sorted(entries, key=lambda e: (e["ingest_date"], e["ingested_at"]))


def layer_counts(lake: Paths | None = None) -> dict[str, int]:
    """Rows per layer of the local lakehouse, read from the engines that hold them."""
    lake = lake or paths()
    counts = {"bronze rows (ledger)": sum(int(e["rows"]) for e in bronze_ledger(lake))}
    counts.update(_silver_counts())
    if lake.duckdb_file.exists():
        # the warehouse's models (Gold as it reads it, the marts) where its last build put them
        models = set(manifest_model_tables(target_path(WAREHOUSE_TARGET)).values())
        con = connect_warehouse(lake.duckdb_file)
        try:
            for schema, table in con.execute(
                "select table_schema, table_name from information_schema.tables "
                "where table_catalog = current_database() order by table_schema, table_name"
            ).fetchall():
                if (schema, table) in models:
                    row = con.execute(f'select count(*) from "{schema}"."{table}"').fetchone()
                    counts[f"{schema}.{table}"] = int(row[0]) if row else 0
        finally:
            con.close()
    return counts


def _silver_counts() -> dict[str, int]:
    """Valid and rejected Silver rows, from the summary the last lake build wrote."""
    summary_file = paths().lake_summary
    if not summary_file.exists():
        return {}
    batches = json.loads(summary_file.read_text())["silver_batches"]
    relations = relation_names(LAKE_TARGET)
    return {
        relations.get("slv_sales", "slv_sales"): sum(b["valid_rows"] for b in batches),
        relations.get("slv_sales_rejected", "slv_sales_rejected"): sum(
            b["rejected_rows"] for b in batches
        ),
    }


def relation_names(target: str) -> dict[str, str]:
    """Model name -> the relation dbt builds it as on `target` (schema prefix and all), from the
    manifest of the target's last dbt command; empty before the first one."""
    return manifest_relation_names(target_path(target))


def manifest_relation_names(artifacts: Path) -> dict[str, str]:
    """Model name -> relation, from the dbt manifest in the `artifacts` folder (empty if none)."""
    return {
        str(node["name"]): str(node["relation_name"])
        for node in _manifest_models(artifacts)
        if node.get("relation_name")
    }


def manifest_model_tables(artifacts: Path) -> dict[str, tuple[str, str]]:
    """Model name -> (schema, table) it is built as, from the dbt manifest in `artifacts`."""
    return {
        str(node["name"]): (str(node["schema"]), str(node.get("alias") or node["name"]))
        for node in _manifest_models(artifacts)
    }


def _manifest_models(artifacts: Path) -> list[dict[str, Any]]:
    manifest = artifacts / "manifest.json"
    if not manifest.is_file():
        return []
    nodes = json.loads(manifest.read_text())["nodes"].values()
    return [node for node in nodes if node["resource_type"] == "model"]


def _spark_session_if_started() -> Any:
    """The Spark session of this process, without importing Spark when no lake build ran here."""
    import sys

    return _spark_session() if "pyspark" in sys.modules else None


def _spark_session() -> Any:
    """The Spark session dbt-spark started in this process, if any."""
    from pyspark.sql import SparkSession

    # dbt-spark created the session in one of dbt's worker threads; the active-session lookup is
    # per thread, the instantiated session is not.
    return SparkSession.getActiveSession() or SparkSession._instantiatedSession


# One row per batch, in batch order, as slv_batch_quality made it (the model is the one place
# per-batch counts are made). The relations are the models' names in braces, filled in from dbt's
# manifest (`relation_names`).
BATCH_QUALITY_SQL = """
select
    batch_id,
    cast(ingest_date as string) as ingest_date,
    ledger_rows,
    bronze_rows,
    valid_rows,
    rejected_rows,
    valid_purchase_amount,
    rejected_by_reason
from {slv_batch_quality}
order by ingest_date, landed_at, batch_id
"""


def write_lake_summary(lake: Paths | None = None) -> dict[str, Any] | None:
    """What the local lake holds after a build, per batch and per rejection reason, as JSON.

    Read by `lakehouse run`'s summary, the audit history, the benchmarks and the end-to-end
    tests. Only for the local Spark session (prod lake builds run on Glue). The batches are
    slv_batch_quality's rows (one per batch: a small table), the totals by reason their sum.
    Gold's row counts are not in it: they cost a scan of fct_sales after every build (0.4 s of
    a 1% watch cycle at 550k rows), and the warehouse serves them (`layer_counts`).
    """
    spark = _spark_session()
    if spark is None:
        return None
    lake = lake or paths()

    def rows(sql: str) -> list[dict[str, Any]]:
        return [row.asDict() for row in spark.sql(sql).collect()]

    relations = relation_names(LAKE_TARGET)
    batches = rows(BATCH_QUALITY_SQL.format(**relations))
    by_reason: dict[str, int] = {}
    for batch in batches:
        for reason, count in batch["rejected_by_reason"].items():
            by_reason[reason] = by_reason.get(reason, 0) + count
    summary: dict[str, Any] = {
        "silver_batches": batches,
        "rejected_by_reason": by_reason,
    }
    lake.lake_summary.parent.mkdir(parents=True, exist_ok=True)
    lake.lake_summary.write_text(json.dumps(summary, indent=2, default=str))
    return summary
