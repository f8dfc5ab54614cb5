"""The lake's health, read from the Bronze ledger and the audit history (`lakehouse.audit`):
the last build of each target, freshness of Bronze and of each mart against the SLA, the tests
failing in the last build, and the rejection rate of the latest batches.

`lakehouse status` prints it and exits non-zero on a breach; the insights report shows it.

Freshness is the age of the newest batch, by its landing time (`ingested_at` in the ledger):
- Bronze: the newest committed batch, the same figure `dbt source freshness` checks on the
  ledger source;
- a mart: the newest batch reflected by the mart's last successful build (the batches a
  warehouse run read from Gold are in `audit.run_batches`).
The thresholds are the project's dbt vars `bronze_freshness_*_after_hours` and
`marts_freshness_*_after_hours` (dbt_project.yml), overridable like dbt's `--vars`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import yaml  # type: ignore[import-untyped,unused-ignore]

from lakehouse.audit import FAILED_STATUSES, SCHEMA, TEST_TYPES, now_utc, parse_time
from lakehouse.engines import connect_warehouse
from lakehouse.settings import Paths, project_dir

LATEST_BATCHES = 5
OK, WARN, ERROR = "ok", "warn", "error"

Row = dict[str, Any]


@dataclass(frozen=True)
class Sla:
    warn_after_hours: float
    error_after_hours: float

    def judge(self, age_hours: float | None) -> str:
        if age_hours is None or age_hours > self.error_after_hours:
            return ERROR
        return WARN if age_hours > self.warn_after_hours else OK


def slas(overrides: dict[str, Any] | None = None) -> dict[str, Sla]:
    """The freshness SLAs, from the project's vars and any overrides (like dbt's --vars)."""
    project = yaml.safe_load((project_dir() / "dbt_project.yml").read_text())
    values = {**(project.get("vars") or {}), **(overrides or {})}
    return {
        layer: Sla(
            float(values[f"{layer}_freshness_warn_after_hours"]),
            float(values[f"{layer}_freshness_error_after_hours"]),
        )
        for layer in ("bronze", "marts")
    }


@dataclass(frozen=True)
class Freshness:
    """How old the newest data of one relation is, against its SLA."""

    name: str
    sla: Sla
    newest_landed_at: datetime | None
    newest_ingest_date: str | None
    built_at: datetime | None = None

    @property
    def age_hours(self) -> float | None:
        if self.newest_landed_at is None:
            return None
        return round((now_utc() - self.newest_landed_at).total_seconds() / 3600, 2)

    @property
    def state(self) -> str:
        return self.sla.judge(self.age_hours)


@dataclass
class Health:
    home: Path
    bronze_batches: int
    bronze: Freshness | None
    marts: list[Freshness] = field(default_factory=list)
    last_runs: list[Row] = field(default_factory=list)
    failing_tests: list[Row] = field(default_factory=list)
    batches: list[Row] = field(default_factory=list)
    runs: list[Row] = field(default_factory=list)
    rejections: list[Row] = field(default_factory=list)
    audited: bool = False

    @property
    def empty(self) -> bool:
        return self.bronze_batches == 0 and not self.runs

    @property
    def latest_batches(self) -> list[Row]:
        """The newest batches, newest first."""
        return list(reversed(self.batches[-LATEST_BATCHES:]))

    @property
    def freshness(self) -> list[Freshness]:
        """Bronze first, then every mart."""
        return [*([self.bronze] if self.bronze else []), *self.marts]

    @property
    def breaches(self) -> list[str]:
        """What breaks the contract: freshness past error_after, a test failing now."""
        found = [
            f"{f.name} reflects no landed batch"
            if f.age_hours is None
            else f"{f.name} is {_age_text(f.age_hours)} old "
            f"(error after {f.sla.error_after_hours:g} h)"
            for f in self.freshness
            if f.state == ERROR
        ]
        if self.bronze_batches and not self.marts:
            found.append("no mart has been built from the landed batches")
        found += [
            f"{t['target']}: {t['resource_type']} {t['name']} {t['status']}"
            for t in self.failing_tests
            if t["status"] in FAILED_STATUSES
        ]
        return found


def _age_text(hours: float) -> str:
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def bronze_freshness(lake: Paths, sla: Sla) -> tuple[int, Freshness | None]:
    """Committed batches and the newest landing time, from the ledger itself (no engine)."""
    entries = (
        [json.loads(p.read_text()) for p in lake.ledger.glob("*.json")]
        if lake.ledger.is_dir()
        else []
    )
    if not entries:
        return 0, None
    newest = max(entries, key=lambda e: parse_time(e["ingested_at"]) or datetime.min)
    return len(entries), Freshness(
        "bronze.walmart_sales_batches",
        sla,
        parse_time(newest["ingested_at"]),
        str(newest["ingest_date"]),
    )


def read_health(
    lake: Paths,
    warehouse_target: str = "warehouse",
    sla_overrides: dict[str, Any] | None = None,
    duckdb_file: Path | None = None,
) -> Health:
    """Everything `lakehouse status` and the report's health section show (the warehouse is
    the lake's own unless `duckdb_file` names another copy)."""
    levels = slas(sla_overrides)
    batches, bronze = bronze_freshness(lake, levels["bronze"])
    health = Health(lake.home, batches, bronze)
    warehouse = duckdb_file or lake.duckdb_file
    if not warehouse.is_file():
        return health
    con = connect_warehouse(warehouse)
    try:
        read_audit(con, health, warehouse_target, levels["marts"])
    finally:
        con.close()
    return health


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> list[Row]:
    cursor = con.execute(sql, params or [])
    columns = [str(c[0]) for c in cursor.description or ()]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def read_audit(
    con: duckdb.DuckDBPyConnection, health: Health, warehouse_target: str, marts_sla: Sla
) -> None:
    """Fill `health` from the audit schema of an open warehouse (nothing if it has none)."""
    found = con.execute(
        "select count(*) from information_schema.tables "
        "where table_schema = ? and table_catalog = current_database()",
        [SCHEMA],
    ).fetchone()
    if not found or not found[0]:
        return
    health.audited = True
    health.runs = _rows(con, RUNS_SQL)
    health.last_runs = _rows(con, LAST_RUNS_SQL)
    health.failing_tests = _rows(con, FAILING_TESTS_SQL, [list(TEST_TYPES)])
    health.batches = _rows(con, BATCHES_SQL)
    health.rejections = _rows(con, REJECTIONS_SQL)
    health.marts = [
        Freshness(
            str(row["name"]),
            marts_sla,
            row["newest_landed_at"],
            None if row["newest_ingest_date"] is None else str(row["newest_ingest_date"]),
            row["built_at"],
        )
        for row in _rows(con, MART_FRESHNESS_SQL, [warehouse_target])
    ]


RUNS_SQL = f"""
select invocation_id, target, action, status, started_at, completed_at, elapsed_seconds,
       nodes, failed_nodes, failed_tests, warned_tests,
       (select count(*) from {SCHEMA}.node_results n
        where n.invocation_id = r.invocation_id and n.resource_type in ('test', 'unit_test')
          and n.status = 'pass') as passed_tests,
       (select count(*) from {SCHEMA}.run_batches b
        where b.invocation_id = r.invocation_id) as new_batches
from {SCHEMA}.runs r
order by completed_at, invocation_id
"""

# Per target: the last run of any kind, and the last run in which dbt built successfully.
LAST_RUNS_SQL = f"""
select target,
       arg_max(completed_at, completed_at) as last_run_at,
       arg_max(action, completed_at) as last_action,
       arg_max(status, completed_at) as last_status,
       max(completed_at) filter (where status = 'success') as last_success_at,
       arg_max(elapsed_seconds, completed_at) filter (where status = 'success')
           as last_success_seconds,
       count(*) as runs
from {SCHEMA}.runs
group by target
order by target
"""

# The tests of the last run of each target in which dbt ran (a run with nothing new ran none).
FAILING_TESTS_SQL = f"""
with last_built as (
    select target, arg_max(invocation_id, completed_at) as invocation_id
    from {SCHEMA}.runs
    where status <> 'skipped'
    group by target
)
select n.target, n.resource_type, n.name, n.status, n.failures, n.message
from {SCHEMA}.node_results n
inner join last_built using (target, invocation_id)
where n.resource_type in (select unnest(?::varchar[]))
  and n.status in ('fail', 'error', 'runtime error', 'warn')
order by n.target, n.status, n.name
"""

# Every batch's quality, oldest first.
BATCHES_SQL = f"""
select batch_id, ingest_date, ingested_at, source_name, landed_rows, valid_rows, rejected_rows,
       round(100.0 * rejected_rows / nullif(landed_rows, 0), 2) as rejected_pct
from {SCHEMA}.batch_quality
order by ingested_at nulls first, batch_id
"""

REJECTIONS_SQL = f"""
select q.batch_id, q.ingest_date, q.ingested_at, q.landed_rows, r.reason, r.rejected_rows
from {SCHEMA}.batch_rejections r
inner join {SCHEMA}.batch_quality q using (batch_id)
order by q.ingested_at, q.batch_id, r.reason
"""

# Each mart: its last successful build, and the newest batch the warehouse had read by then.
MART_FRESHNESS_SQL = f"""
with built as (
    select n.target, n.name, max(r.completed_at) as built_at
    from {SCHEMA}.node_results n
    inner join {SCHEMA}.runs r using (invocation_id)
    where n.resource_type = 'model' and n.status = 'success' and n.target = ?
    group by n.target, n.name
),

reflected as (
    select built.name, built.built_at, q.ingested_at, q.ingest_date
    from built
    inner join {SCHEMA}.run_batches b on b.target = built.target
    inner join {SCHEMA}.runs r on r.invocation_id = b.invocation_id
    inner join {SCHEMA}.batch_quality q on q.batch_id = b.batch_id
    where r.completed_at <= built.built_at
)

select built.name, built.built_at,
       max(reflected.ingested_at) as newest_landed_at,
       max(reflected.ingest_date) as newest_ingest_date
from built
left join reflected on reflected.name = built.name
group by built.name, built.built_at
order by built.name
"""
