"""The run and data-quality history (`lakehouse.audit`) and `lakehouse status`, without Spark:
dbt's artifacts are written here the way dbt writes them (run-results v6), the Bronze ledger and
the lake summary as the ingestion and the pipeline write them, and `pipeline.build` runs with
dbt replaced by a stand-in that writes those artifacts.

Expected rows are the inputs these tests wrote, counted here; never the recorder's output.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from dbt_common.invocation import get_invocation_id, reset_invocation_id

from lakehouse import audit, build_state, pipeline
from lakehouse.cli import ExitCode
from lakehouse.settings import Paths
from tests.python.support import PROJECT_DIR, run_lakehouse

MARTS = ("mart_daily_sales", "mart_top_products")


@dataclass(frozen=True)
class Batch:
    batch_id: str
    ingest_date: str
    landed: int
    rejected_by_reason: dict[str, int]
    hours_ago: float = 1.0

    @property
    def rejected(self) -> int:
        # every row rejected here has exactly one reason
        return sum(self.rejected_by_reason.values())


BATCHES = (
    Batch("aaaa000000000001", "2026-01-01", 100, {}),
    Batch("bbbb000000000002", "2026-01-02", 50, {"purchase_not_positive": 3, "gender": 2}),
)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def land(lake: Paths, batches: tuple[Batch, ...] = BATCHES) -> None:
    """Ledger entries as `ingestion.landing` writes them, and the lake summary of a build."""
    lake.ledger.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    for batch in batches:
        entry = {
            "batch_id": batch.batch_id,
            "ingest_date": batch.ingest_date,
            "source_name": f"{batch.batch_id}.csv",
            "rows": batch.landed,
            "ingested_at": iso(now - timedelta(hours=batch.hours_ago)),
        }
        (lake.ledger / f"{batch.batch_id}.json").write_text(json.dumps(entry))
    summary = {
        "silver_batches": [
            {
                "batch_id": b.batch_id,
                "ingest_date": b.ingest_date,
                "bronze_rows": b.landed,
                "valid_rows": b.landed - b.rejected,
                "rejected_rows": b.rejected,
                "rejected_by_reason": b.rejected_by_reason,
            }
            for b in batches
        ]
    }
    lake.lake_summary.parent.mkdir(parents=True, exist_ok=True)
    lake.lake_summary.write_text(json.dumps(summary))


def result(unique_id: str, status: str, failures: int | None = None) -> dict[str, Any]:
    return {
        "status": status,
        "timing": [
            {
                "name": "execute",
                "started_at": "2026-01-02T10:00:01.000000Z",
                "completed_at": "2026-01-02T10:00:03.500000Z",
            }
        ],
        "thread_id": "Thread-1",
        "execution_time": 2.5,
        "adapter_response": {"_message": "OK", "rows_affected": 7},
        "message": "Got 3 results, configured to fail if != 0" if status == "fail" else "OK",
        "failures": failures,
        "unique_id": unique_id,
        "compiled": True,
        "compiled_code": "select 1",
        "relation_name": None,
        "batch_results": None,
    }


def write_artifacts(folder: Path, invocation_id: str, results: list[dict[str, Any]]) -> None:
    """run_results.json (run-results v6, dbt 1.10) and the manifest names it refers to."""
    folder.mkdir(parents=True, exist_ok=True)
    run_results = {
        "metadata": {
            "dbt_schema_version": "https://schemas.getdbt.com/dbt/run-results/v6.json",
            "dbt_version": "1.10.23",
            "generated_at": "2026-01-02T10:00:05.000000Z",
            "invocation_id": invocation_id,
            "invocation_started_at": "2026-01-02T10:00:00.000000Z",
            "env": {},
        },
        "results": results,
        "elapsed_time": 5.0,
        "args": {"which": "build", "selector": "warehouse_new_data"},
    }
    (folder / "run_results.json").write_text(json.dumps(run_results))
    nodes = {
        r["unique_id"]: {
            "resource_type": r["unique_id"].split(".")[0],
            "name": r["unique_id"].split(".")[2],
        }
        for r in results
    }
    (folder / "manifest.json").write_text(json.dumps({"nodes": nodes}))


def warehouse_results(failing_test: bool = False) -> list[dict[str, Any]]:
    results = [result(f"model.lakehouse.{mart}", "success") for mart in MARTS]
    unique_test = "test.lakehouse.unique_mart_daily_sales_ingest_date.0c687bb148"
    results.append(result(unique_test, "pass", 0))
    results.append(
        result(
            "test.lakehouse.not_null_mart_top_products_product_id.55aead8479",
            "fail" if failing_test else "pass",
            3 if failing_test else 0,
        )
    )
    return results


def rows(lake: Paths, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(lake.duckdb_file), read_only=True) as con:
        return con.execute(sql).fetchall()


def table_counts(lake: Paths) -> dict[str, int]:
    tables = ("runs", "node_results", "run_batches", "batch_quality", "batch_rejections")
    return {t: rows(lake, f"select count(*) from audit.{t}")[0][0] for t in tables}


@pytest.fixture
def lake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Paths]:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("LAKEHOUSE_HOME", str(home))
    monkeypatch.setenv("DBT_PROJECT_DIR", str(PROJECT_DIR))
    monkeypatch.setenv("LAKEHOUSE_DBT_TARGET_ROOT", str(tmp_path / "target"))
    yield Paths(home)


def record_from_artifacts(
    lake: Paths, invocation_id: str, failing_test: bool = False, target: str = "warehouse"
) -> None:
    folder = lake.home / "artifacts" / invocation_id
    write_artifacts(folder, invocation_id, warehouse_results(failing_test))
    run = audit.run_from_artifacts(folder, target, "new data, same code", "test", None)
    assert run is not None
    if run.status != "error":
        audit.attach_batches(run, lake)
    audit.record(run, lake)


# ---------------------------------------------------------------------------------------------
# Recording


def test_a_run_is_recorded_once_however_often_it_is_recorded(lake: Paths) -> None:
    land(lake)
    invocation = str(uuid.uuid4())
    record_from_artifacts(lake, invocation)
    first = table_counts(lake)
    record_from_artifacts(lake, invocation)
    assert table_counts(lake) == first
    assert first == {
        "runs": 1,
        "node_results": len(warehouse_results()),
        "run_batches": len(BATCHES),
        "batch_quality": len(BATCHES),
        "batch_rejections": sum(len(b.rejected_by_reason) for b in BATCHES),
    }
    assert rows(lake, "select invocation_id, target, status, nodes from audit.runs") == [
        (invocation, "warehouse", "success", len(warehouse_results()))
    ]
    assert not list(audit.pending_dir(lake).glob("*.json"))


def test_nodes_keep_what_dbt_reported(lake: Paths) -> None:
    land(lake)
    invocation = str(uuid.uuid4())
    record_from_artifacts(lake, invocation)
    found = rows(
        lake,
        "select name, resource_type, status, execution_seconds, rows_affected, started_at "
        "from audit.node_results where unique_id = 'model.lakehouse.mart_daily_sales'",
    )
    assert found == [
        ("mart_daily_sales", "model", "success", 2.5, 7, datetime(2026, 1, 2, 10, 0, 1))
    ]
    # a test's name is its unique_id without the hash
    names = {name for (name,) in rows(lake, "select name from audit.node_results")}
    assert "not_null_mart_top_products_product_id" in names


def test_batch_quality_is_what_landed_and_what_silver_judged(lake: Paths) -> None:
    land(lake)
    record_from_artifacts(lake, str(uuid.uuid4()))
    quality = rows(
        lake,
        "select batch_id, landed_rows, valid_rows, rejected_rows from audit.batch_quality "
        "order by batch_id",
    )
    assert quality == [(b.batch_id, b.landed, b.landed - b.rejected, b.rejected) for b in BATCHES]
    reasons = rows(
        lake, "select batch_id, reason, rejected_rows from audit.batch_rejections order by 1, 2"
    )
    expected = sorted(
        (b.batch_id, reason, n) for b in BATCHES for reason, n in b.rejected_by_reason.items()
    )
    assert reasons == expected


def test_a_failed_test_is_a_failure_row(lake: Paths) -> None:
    land(lake)
    invocation = str(uuid.uuid4())
    record_from_artifacts(lake, invocation, failing_test=True)
    assert rows(
        lake,
        "select name, status, failures from audit.node_results where status = 'fail'",
    ) == [("not_null_mart_top_products_product_id", "fail", 3)]
    assert rows(lake, "select status, failed_nodes, failed_tests from audit.runs") == [
        ("error", 1, 1)
    ]
    # a failed build holds no new batch
    assert table_counts(lake)["run_batches"] == 0


def test_a_locked_warehouse_keeps_the_run_pending(lake: Paths) -> None:
    land(lake)
    duckdb.connect(str(lake.duckdb_file)).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only=True); "
            "print('held', flush=True); time.sleep(60)",
            str(lake.duckdb_file),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        record_from_artifacts(lake, str(uuid.uuid4()))
        assert len(list(audit.pending_dir(lake).glob("*.json"))) == 1
    finally:
        holder.kill()  # the process this test started
        holder.wait(timeout=10)
    assert audit.flush(lake) == 1
    assert table_counts(lake)["runs"] == 1


# ---------------------------------------------------------------------------------------------
# Through pipeline.build: dbt replaced by a stand-in that writes its artifacts


def skip_next_build(lake: Paths) -> None:
    """Record both targets as built with the current code and inputs: the next build skips."""
    for target, inputs in (
        (pipeline.LAKE_TARGET, build_state.lake_inputs),
        (pipeline.WAREHOUSE_TARGET, build_state.warehouse_inputs),
    ):
        fingerprints = build_state.Fingerprints(
            build_state.code_fingerprint(PROJECT_DIR, target, None), inputs(lake)
        )
        build_state.record(build_state.state_file(lake, target), fingerprints)


def test_a_build_with_nothing_new_is_a_run_and_counts_no_batch_twice(lake: Paths) -> None:
    land(lake)
    record_from_artifacts(lake, str(uuid.uuid4()), target="lake")
    record_from_artifacts(lake, str(uuid.uuid4()))
    before = table_counts(lake)
    assert before["run_batches"] == 2 * len(BATCHES)  # each batch once per target
    skip_next_build(lake)
    timings = pipeline.build()
    assert all("up to date" in note for note in timings.notes), timings.notes
    after = table_counts(lake)
    assert after["runs"] == before["runs"] + 2  # one per target
    assert after["run_batches"] == before["run_batches"]
    assert after["batch_quality"] == before["batch_quality"]
    skipped = rows(
        lake,
        "select target, action, nodes from audit.runs where status = 'skipped' order by target",
    )
    assert skipped == [("lake", "up to date", 0), ("warehouse", "up to date", 0)]
    pipeline.build()
    assert table_counts(lake)["run_batches"] == before["run_batches"]
    assert table_counts(lake)["runs"] == before["runs"] + 4


def test_a_failing_build_is_recorded_and_still_fails(
    lake: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dbt runs (a new invocation id), a mart test fails: the run is recorded from the
    artifacts, with its failure, and the build raises as before."""
    land(lake)
    invocations: list[str] = []

    def failing_dbt(args: list[str], target: str | None = None, lake: Any = None) -> None:
        reset_invocation_id()
        invocations.append(get_invocation_id())
        write_artifacts(
            pipeline.target_path(target or ""), invocations[-1], warehouse_results(True)
        )
        raise pipeline.DbtFailed("`dbt build` failed")

    monkeypatch.setattr(pipeline, "run_dbt", failing_dbt)
    with pytest.raises(pipeline.DbtFailed):
        pipeline.build()
    assert len(invocations) == 1  # the lake failed: the warehouse never started
    assert rows(lake, "select invocation_id, target, status, failed_tests from audit.runs") == [
        (invocations[0], "lake", "error", 1)
    ]


def test_a_build_that_dies_before_its_artifacts_is_recorded(
    lake: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    land(lake)

    def broken_dbt(args: list[str], target: str | None = None, lake: Any = None) -> None:
        raise pipeline.DbtFailed("profile not found")

    monkeypatch.setattr(pipeline, "run_dbt", broken_dbt)
    with pytest.raises(pipeline.DbtFailed):
        pipeline.build()
    assert rows(lake, "select target, action, status, nodes from audit.runs") == [
        ("lake", "full build", "error", 0)
    ]


# ---------------------------------------------------------------------------------------------
# lakehouse status


def status(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_lakehouse(home, "status", *args, check=False, timeout=120)


def test_status_on_a_new_home_says_what_to_do(tmp_path: Path) -> None:
    done = status(tmp_path / "new")
    assert done.returncode == ExitCode.OK, done.stderr
    assert "nothing landed and nothing built yet" in done.stdout
    assert "lakehouse ingest" in done.stdout


def test_status_is_healthy_when_fresh_and_breached_when_old(lake: Paths) -> None:
    land(lake)
    record_from_artifacts(lake, str(uuid.uuid4()))
    fresh = status(lake.home)
    assert fresh.returncode == ExitCode.OK, fresh.stdout + fresh.stderr
    assert "healthy" in fresh.stdout
    for mart in MARTS:
        assert mart in fresh.stdout
    # the same lake against an SLA of a few minutes: both batches landed an hour ago
    tiny = json.dumps(
        {"bronze_freshness_error_after_hours": 0.1, "marts_freshness_error_after_hours": 0.1}
    )
    breached = status(lake.home, "--vars", tiny)
    assert breached.returncode == ExitCode.SLA_BREACHED, breached.stdout + breached.stderr
    assert "SLA breach(es)" in breached.stdout
    assert "bronze.walmart_sales_batches is 1.0 h old" in breached.stdout


def test_status_breaches_on_old_bronze_and_on_a_failing_test(lake: Paths) -> None:
    old = tuple(Batch(b.batch_id, b.ingest_date, b.landed, {}, hours_ago=24 * 30) for b in BATCHES)
    land(lake, old)
    record_from_artifacts(lake, str(uuid.uuid4()), failing_test=True)
    done = status(lake.home)
    assert done.returncode == ExitCode.SLA_BREACHED
    assert "bronze.walmart_sales_batches is 30.0 days old" in done.stdout
    assert "test not_null_mart_top_products_product_id fail" in done.stdout
    # no successful warehouse build holds a batch: no mart is fresh
    assert "mart_daily_sales reflects no landed batch" in done.stdout
