"""The lakehouse pipeline as plain functions: build the lake and the warehouse with dbt, and
report what each layer holds. The CLI (`lakehouse`) is a thin layer over these.

dbt runs in this process (dbtRunner), so the Spark session that dbt-spark starts for the lake
build stays up for the following invocations: a second lake command skips the JVM start.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingestion.engines import apply_engine_environment
from ingestion.settings import PROJECT_DIR, Paths, paths

log = logging.getLogger(__name__)

LAKE_TARGET = "lake"
WAREHOUSE_TARGET = "warehouse"


class DbtFailed(RuntimeError):
    """A dbt command ended with errors; dbt has already printed which node failed and why."""


def run_dbt(args: Sequence[str], target: str | None = None, lake: Paths | None = None) -> Any:
    """Run one dbt command in-process against this project and fail loudly if it fails."""
    from dbt.cli.main import dbtRunner

    apply_engine_environment(lake)
    command = [*args, "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROJECT_DIR / "profiles")]
    if target:
        command += ["--target", target]
    log.info("dbt %s", " ".join(command))
    result = dbtRunner().invoke(command)
    if not result.success:
        raise DbtFailed(f"`dbt {' '.join(args)}` failed on target {target or 'default'}") from result.exception
    return result


@dataclass
class StageTimings:
    """Wall time of each stage, in seconds, in the order they ran."""

    seconds: dict[str, float] = field(default_factory=dict)

    def measure(self, stage: str, started: float) -> None:
        self.seconds[stage] = round(time.perf_counter() - started, 2)


def build(
    lake_target: str = LAKE_TARGET,
    warehouse_target: str = WAREHOUSE_TARGET,
    full_refresh: bool = False,
    dbt_vars: dict[str, Any] | None = None,
    timings: StageTimings | None = None,
) -> StageTimings:
    """Build and test the lake (Bronze sources, Silver, Gold), then the warehouse (marts)."""
    timings = timings or StageTimings()
    extra: list[str] = ["--full-refresh"] if full_refresh else []
    if dbt_vars:
        extra += ["--vars", json.dumps(dbt_vars)]
    for stage, target in (("lake build", lake_target), ("warehouse build", warehouse_target)):
        started = time.perf_counter()
        run_dbt(["build", *extra], target=target)
        timings.measure(stage, started)
    return timings


def bronze_is_empty(lake: Paths | None = None) -> bool:
    lake = lake or paths()
    return not any(lake.ledger.glob("*.json")) if lake.ledger.is_dir() else True


def bronze_ledger(lake: Paths | None = None) -> list[dict[str, Any]]:
    """The committed batches of the local Bronze layer, oldest first."""
    lake = lake or paths()
    if not lake.ledger.is_dir():
        return []
    entries = [json.loads(p.read_text()) for p in lake.ledger.glob("*.json")]
    return sorted(entries, key=lambda e: (e["ingest_date"], e["ingested_at"]))


def layer_counts(lake: Paths | None = None) -> dict[str, int]:
    """Rows per layer of the local lakehouse, read from the engines that hold them."""
    import duckdb

    lake = lake or paths()
    counts = {"bronze rows (ledger)": sum(int(e["rows"]) for e in bronze_ledger(lake))}
    counts.update(_silver_counts())
    if lake.duckdb_file.exists():
        env = apply_engine_environment(lake)
        con = duckdb.connect(
            str(lake.duckdb_file),
            read_only=True,
            config={"extension_directory": env["LAKEHOUSE_DUCKDB_EXTENSIONS"]},
        )
        try:
            for schema, table in con.execute(
                "select table_schema, table_name from information_schema.tables "
                "where table_schema in ('gold', 'marts') order by table_schema, table_name"
            ).fetchall():
                row = con.execute(f'select count(*) from "{schema}"."{table}"').fetchone()
                counts[f"{schema}.{table}"] = int(row[0]) if row else 0
        finally:
            con.close()
    return counts


def _silver_counts() -> dict[str, int]:
    """Valid and rejected Silver rows, from the Spark session the lake build left running."""
    from pyspark.sql import SparkSession

    # dbt-spark created the session in one of dbt's worker threads; the active-session lookup is
    # per thread, the instantiated session is not.
    spark = SparkSession.getActiveSession() or SparkSession._instantiatedSession
    if spark is None:
        return {}
    row = spark.sql(
        "select sum(case when is_valid then 1 else 0 end), sum(case when is_valid then 0 else 1 end) "
        "from silver.slv_sales_validated"
    ).first()
    if row is None:
        return {}
    return {"silver.slv_sales": int(row[0] or 0), "silver.slv_sales_rejected": int(row[1] or 0)}
