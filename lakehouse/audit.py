"""The run and data-quality history: every build of every target, every dbt node it ran, the
batches it built, and every batch's quality, in schema `audit` of the local DuckDB warehouse.

Where it comes from:
- runs and nodes: dbt's own artifacts, `run_results.json` of the build (read with dbt-core's
  `RunResultsArtifact`, the same classes dbt writes it with) and the names in `manifest.json`;
  the local adapters report no `rows_affected` (Redshift and Glue do), so it is often null;
- the batches a target now holds and each batch's quality: the lake summary the pipeline writes
  after a successful lake build (`_runs/lake_summary.json`, counted by Spark per batch and per
  rejection reason) and the Bronze ledger (rows landed, landing time);
- the batches each lake model built: the Iceberg table property `lakehouse.last_built_batches`
  (macros/incremental_batches.sql), read in the build's own Spark session.

Append-only and idempotent: a run is keyed on dbt's invocation_id (a node on invocation_id and
unique_id), a batch is attributed to the first run of each target that held it and a batch's
quality is written once, so recording the same run twice, or a build with nothing new (which runs
no dbt and gets an id of its own), never counts a batch twice.

Why Python writes the tables rather than a dbt model: the history must also record the builds
that fail (a dbt model would not run after its upstream failed) and the builds that run no dbt at
all (nothing new), and it must not depend on a build to exist. Each record is first written as a
JSON file under `_runs/audit/pending/`, then flushed into DuckDB in one short read-write
connection; when the warehouse is locked by another process (an analyst's read-only session),
the record waits there and the next build flushes it. dbt sees the tables as the source `audit`
(models/audit/_audit__sources.yml), for the docs and for anyone who wants to model on them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from lakehouse.settings import Paths

log = logging.getLogger(__name__)

SCHEMA = "audit"
TEST_TYPES = ("test", "unit_test")
FAILED_STATUSES = ("error", "fail", "runtime error")
BUILT_BATCHES_PROPERTY = "lakehouse.last_built_batches"
SNAPSHOT_PROPERTY = "current-snapshot-id"
ALL_BATCHES_PROPERTY = "lakehouse.built_batches"

DDL = (
    f"create schema if not exists {SCHEMA}",
    f"""create table if not exists {SCHEMA}.runs (
        invocation_id varchar primary key,
        target varchar not null,
        action varchar not null,
        reason varchar,
        status varchar not null,
        selector varchar,
        started_at timestamp,
        completed_at timestamp,
        elapsed_seconds double,
        dbt_version varchar,
        nodes integer not null,
        failed_nodes integer not null,
        failed_tests integer not null,
        warned_tests integer not null,
        recorded_at timestamp not null
    )""",
    f"""create table if not exists {SCHEMA}.node_results (
        invocation_id varchar not null,
        unique_id varchar not null,
        target varchar not null,
        resource_type varchar not null,
        name varchar not null,
        relation_name varchar,
        status varchar not null,
        started_at timestamp,
        completed_at timestamp,
        execution_seconds double,
        rows_affected bigint,
        failures bigint,
        message varchar,
        batch_ids varchar,
        table_version varchar,
        primary key (invocation_id, unique_id)
    )""",
    f"""create table if not exists {SCHEMA}.run_batches (
        target varchar not null,
        batch_id varchar not null,
        ingest_date date,
        invocation_id varchar not null,
        primary key (target, batch_id)
    )""",
    f"""create table if not exists {SCHEMA}.batch_quality (
        batch_id varchar primary key,
        ingest_date date,
        ingested_at timestamp,
        source_name varchar,
        landed_rows bigint,
        valid_rows bigint,
        rejected_rows bigint,
        first_built_by varchar not null
    )""",
    f"""create table if not exists {SCHEMA}.batch_rejections (
        batch_id varchar not null,
        reason varchar not null,
        rejected_rows bigint not null,
        primary key (batch_id, reason)
    )""",
)


@dataclass
class NodeRecord:
    """One dbt node of one run, as run_results.json has it."""

    unique_id: str
    resource_type: str
    name: str
    relation_name: str | None
    status: str
    started_at: str | None
    completed_at: str | None
    execution_seconds: float
    rows_affected: int | None
    failures: int | None
    message: str | None
    batch_ids: list[str] | None = None
    table_version: str | None = None


@dataclass
class RunRecord:
    """One build of one target: what dbt ran, and the batches the target holds after it."""

    invocation_id: str
    target: str
    action: str
    reason: str
    status: str
    selector: str | None
    started_at: str | None
    completed_at: str | None
    elapsed_seconds: float | None
    dbt_version: str | None
    nodes: list[NodeRecord] = field(default_factory=list)
    batches: list[dict[str, Any]] = field(default_factory=list)
    quality: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunRecord:
        nodes = [NodeRecord(**node) for node in data.pop("nodes")]
        return cls(**data, nodes=nodes)


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat()


def now_utc() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


# ---------------------------------------------------------------------------------------------
# Reading dbt's artifacts


def _manifest_names(target_dir: Path) -> dict[str, tuple[str, str]]:
    """unique_id -> (resource_type, name) from manifest.json, when there is one.

    Only two fields of each node are read, as JSON: parsing the whole manifest into dbt's classes
    costs seconds and breaks on every manifest schema change, for nothing more.
    """
    manifest = target_dir / "manifest.json"
    if not manifest.is_file():
        return {}
    data = json.loads(manifest.read_text())
    names: dict[str, tuple[str, str]] = {}
    for section in ("nodes", "unit_tests", "sources"):
        for unique_id, node in data.get(section, {}).items():
            names[unique_id] = (str(node["resource_type"]), str(node["name"]))
    return names


def _from_unique_id(unique_id: str) -> tuple[str, str]:
    """`model.lakehouse.fct_sales` -> (model, fct_sales); tests end with a hash."""
    parts = unique_id.split(".")
    name = parts[-2] if parts[0] == "test" and len(parts) > 3 else parts[-1]
    return parts[0], name


def run_from_artifacts(
    target_dir: Path, target: str, action: str, reason: str, expected_invocation: str | None
) -> RunRecord | None:
    """The run dbt wrote in `target_dir/run_results.json`, or None when there is none or it is
    another invocation's (a dbt command that died before writing its own)."""
    from dbt.artifacts.schemas.run import RunResultsArtifact

    results_file = target_dir / "run_results.json"
    if not results_file.is_file():
        return None
    artifact = RunResultsArtifact.read_and_check_versions(str(results_file))
    metadata = artifact.metadata
    invocation_id = str(metadata.invocation_id)
    if expected_invocation is not None and invocation_id != expected_invocation:
        log.warning(
            "%s is from invocation %s, not %s: not recorded",
            results_file,
            invocation_id,
            expected_invocation,
        )
        return None
    names = _manifest_names(target_dir)
    nodes = []
    for result in artifact.results:
        resource_type, name = names.get(result.unique_id) or _from_unique_id(result.unique_id)
        timing = [t for t in result.timing if t.started_at is not None]
        response = result.adapter_response or {}
        rows = response.get("rows_affected")
        nodes.append(
            NodeRecord(
                unique_id=result.unique_id,
                resource_type=resource_type,
                name=name,
                relation_name=result.relation_name,
                status=str(result.status),
                started_at=_iso(timing[0].started_at) if timing else None,
                completed_at=_iso(timing[-1].completed_at) if timing else None,
                execution_seconds=round(float(result.execution_time or 0), 3),
                rows_affected=int(rows) if isinstance(rows, int) and rows >= 0 else None,
                failures=result.failures,
                message=result.message,
            )
        )
    failed = any(n.status in FAILED_STATUSES for n in nodes)
    args = artifact.args or {}
    return RunRecord(
        invocation_id=invocation_id,
        target=target,
        action=action,
        reason=reason,
        status="error" if failed else "success",
        selector=args.get("selector") or None,
        started_at=_iso(getattr(metadata, "invocation_started_at", None)),
        completed_at=_iso(metadata.generated_at),
        elapsed_seconds=round(float(artifact.elapsed_time), 2),
        dbt_version=metadata.dbt_version,
        nodes=nodes,
    )


def skipped_run(target: str, reason: str, started: datetime) -> RunRecord:
    """A build that found nothing to do: no dbt ran, so the run gets an id of its own."""
    finished = now_utc()
    return RunRecord(
        invocation_id=f"skip-{uuid.uuid4()}",
        target=target,
        action="up to date",
        reason=reason,
        status="skipped",
        selector=None,
        started_at=_iso(started),
        completed_at=_iso(finished),
        elapsed_seconds=round((finished - started).total_seconds(), 2),
        dbt_version=None,
    )


def failed_run(target: str, action: str, reason: str, started: datetime) -> RunRecord:
    """A dbt command that failed before writing its run_results (a parse or connection error)."""
    record = skipped_run(target, reason, started)
    record.invocation_id = f"failed-{uuid.uuid4()}"
    record.action, record.status = action, "error"
    return record


# ---------------------------------------------------------------------------------------------
# What the lake holds: batches, their quality, and what each lake model built


def _ledger(lake: Paths) -> dict[str, dict[str, Any]]:
    if not lake.ledger.is_dir():
        return {}
    entries = (json.loads(p.read_text()) for p in lake.ledger.glob("*.json"))
    return {str(e["batch_id"]): e for e in entries}


def attach_batches(record: RunRecord, lake: Paths) -> None:
    """The batches the lake holds after a successful build (from the lake summary), with each
    batch's quality: the lake target built them, the warehouse read them from Gold."""
    if record.status == "error" or not lake.lake_summary.is_file():
        return
    summary = json.loads(lake.lake_summary.read_text())
    ledger = _ledger(lake)
    for batch in summary.get("silver_batches", []):
        batch_id = str(batch["batch_id"])
        entry = ledger.get(batch_id, {})
        record.batches.append({"batch_id": batch_id, "ingest_date": str(batch["ingest_date"])})
        record.quality.append(
            {
                "batch_id": batch_id,
                "ingest_date": str(batch["ingest_date"]),
                "ingested_at": entry.get("ingested_at"),
                "source_name": entry.get("source_name"),
                "landed_rows": entry.get("rows", batch.get("bronze_rows")),
                "valid_rows": batch["valid_rows"],
                "rejected_rows": batch["rejected_rows"],
                "rejected_by_reason": batch.get("rejected_by_reason", {}),
            }
        )


def attach_model_batches(record: RunRecord, spark: Any) -> None:
    """For each lake model built, the batches it added (Iceberg table properties, read in the
    build's own Spark session) and the table version they belong to."""
    if spark is None:
        return
    for node in record.nodes:
        if node.resource_type != "model" or node.status != "success" or not node.relation_name:
            continue
        try:
            rows = spark.sql(f"show tblproperties {node.relation_name}").collect()
        except Exception as error:  # a view, a dropped table: no batches to tell
            log.info("no table properties for %s: %s", node.relation_name, error)
            continue
        properties = {str(row[0]): str(row[1]) for row in rows}
        if BUILT_BATCHES_PROPERTY not in properties:
            continue
        node.batch_ids = listed_property(properties, BUILT_BATCHES_PROPERTY)
        # Hive Parquet tables have no snapshot id: the batches they hold stand for their version
        held = ",".join(listed_property(properties, ALL_BATCHES_PROPERTY))
        node.table_version = properties.get(SNAPSHOT_PROPERTY) or (
            hashlib.sha256(held.encode()).hexdigest()[:16] if held else None
        )


def listed_property(properties: dict[str, str], key: str) -> list[str]:
    """A list the lake's post-hook keeps in numbered chunks (`key`, `key.1`, ...) because one
    statement must stay short (macros/batch_lists.sql)."""
    values: list[str] = []
    index = 0
    while (chunk_key := key if index == 0 else f"{key}.{index}") in properties:
        values.extend(value for value in properties[chunk_key].split(",") if value)
        index += 1
    return values


# ---------------------------------------------------------------------------------------------
# Writing: spool, then flush into DuckDB


def pending_dir(lake: Paths) -> Path:
    return lake.home / "_runs" / "audit" / "pending"


def spool(record: RunRecord, lake: Paths) -> Path:
    """Keep the record on disk until it is in the warehouse (written whole, then renamed)."""
    folder = pending_dir(lake)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{record.completed_at or ''}_{record.target}_{record.invocation_id}.json"
    temporary = target.with_suffix(".tmp")
    temporary.write_text(json.dumps(asdict(record), default=str))
    temporary.replace(target)
    return target


def flush(lake: Paths) -> int:
    """Write every pending record into the warehouse's audit schema; return how many were
    flushed. A locked warehouse leaves them pending for the next build."""
    files = sorted(pending_dir(lake).glob("*.json")) if pending_dir(lake).is_dir() else []
    if not files:
        return 0
    try:
        con = duckdb.connect(str(lake.duckdb_file))
    except duckdb.Error as error:
        log.warning("audit: %s is busy (%s); %d run(s) wait", lake.duckdb_file, error, len(files))
        return 0
    try:
        for statement in DDL:
            con.execute(statement)
        for file in files:
            record = RunRecord.from_json(json.loads(file.read_text()))
            con.begin()
            write_record(con, record)
            con.commit()
            file.unlink()
    finally:
        con.close()
    return len(files)


def write_record(con: duckdb.DuckDBPyConnection, record: RunRecord) -> None:
    """Append one run; nothing when the run is already there. One bulk insert per table: a
    statement per row cost a second per build, which a watch cycle pays every time."""
    if con.execute(
        f"select 1 from {SCHEMA}.runs where invocation_id = ?", [record.invocation_id]
    ).fetchone():
        return
    tests = [n for n in record.nodes if n.resource_type in TEST_TYPES]
    run = {
        "invocation_id": record.invocation_id,
        "target": record.target,
        "action": record.action,
        "reason": record.reason,
        "status": record.status,
        "selector": record.selector,
        "started_at": record.started_at,
        "completed_at": record.completed_at,
        "elapsed_seconds": record.elapsed_seconds,
        "dbt_version": record.dbt_version,
        "nodes": len(record.nodes),
        "failed_nodes": sum(1 for n in record.nodes if n.status in FAILED_STATUSES),
        "failed_tests": sum(1 for n in tests if n.status in FAILED_STATUSES),
        "warned_tests": sum(1 for n in tests if n.status == "warn"),
        "recorded_at": _iso(now_utc()),
    }
    _insert(con, "runs", [run])
    versions = dict(
        con.execute(
            f"select unique_id, arg_max(table_version, completed_at) from {SCHEMA}.node_results "
            "where table_version is not null group by unique_id"
        ).fetchall()
    )
    nodes = [
        {
            **asdict(node),
            "invocation_id": record.invocation_id,
            "target": record.target,
            "batch_ids": _new_batches(node, versions.get(node.unique_id)),
        }
        for node in record.nodes
    ]
    _insert(con, "node_results", nodes)
    batches = [
        {**batch, "target": record.target, "invocation_id": record.invocation_id}
        for batch in record.batches
    ]
    _insert(con, "run_batches", batches)
    quality = [
        {
            **q,
            "ingested_at": _iso(parse_time(q["ingested_at"])),
            "first_built_by": record.invocation_id,
        }
        for q in record.quality
    ]
    _insert(con, "batch_quality", quality)
    rejections = [
        {"batch_id": q["batch_id"], "reason": reason, "rejected_rows": rows}
        for q in record.quality
        for reason, rows in q["rejected_by_reason"].items()
    ]
    _insert(con, "batch_rejections", rejections)


def _insert(con: duckdb.DuckDBPyConnection, table: str, rows: list[dict[str, Any]]) -> None:
    """Insert the rows (keys beyond the table's columns ignored), skipping keys already there."""
    if not rows:
        return
    columns = [
        str(name)
        for (name,) in con.execute(
            "select column_name from information_schema.columns "
            "where table_schema = ? and table_name = ? order by ordinal_position",
            [SCHEMA, table],
        ).fetchall()
    ]
    frame = pa.Table.from_pylist([{c: row.get(c) for c in columns} for row in rows])
    con.register("audit_rows", frame)
    try:
        names = ", ".join(columns)
        con.execute(
            f"insert or ignore into {SCHEMA}.{table} ({names}) select {names} from audit_rows"
        )
    finally:
        con.unregister("audit_rows")


def _new_batches(node: NodeRecord, last_version: str | None) -> str | None:
    """The node's built batches, unless the table is the version an earlier run already recorded
    (a model that found nothing new keeps its last run's property)."""
    if node.batch_ids is None:
        return None
    if last_version is not None and last_version == node.table_version:
        return ""
    return ",".join(sorted(node.batch_ids))


def parse_time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def record(record: RunRecord, lake: Paths) -> None:
    """Spool one run and flush everything pending into the warehouse."""
    spool(record, lake)
    flushed = flush(lake)
    log.info("audit: %s run %s recorded (%d flushed)", record.target, record.invocation_id, flushed)
