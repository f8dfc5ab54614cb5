"""The audit history of the end-to-end story (lakehouse_story.py): every build the story ran
through `lakehouse build` is recorded by the pipeline itself, so these tests cost no build of
their own. Expected values come from the story's input files and ledger, never from the audit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

from lakehouse.cli import ExitCode
from tests.python.lakehouse_story import (
    DAY1,
    DAY2,
    DAY3,
    Story,
    count_rows,
    ledger_entries,
    open_warehouse,
)
from tests.python.support import run_lakehouse

pytestmark = pytest.mark.spark

FULL, SKIP, NEW = "full build", "up to date", "new data, same code"
# What the story does to each target: first build, rebuild with nothing new, the day-2 build,
# then day 3: a build killed in the lake (it records nothing), a build whose lake stage resumes
# day 3 and whose warehouse stage is killed (the lake run is recorded, the warehouse's is not),
# and the last build, where the lake is up to date and the warehouse builds day 3.
STORY_RUNS = {
    "lake": [
        (FULL, "success"),
        (SKIP, "skipped"),
        (NEW, "success"),
        (NEW, "success"),
        (SKIP, "skipped"),
    ],
    "warehouse": [(FULL, "success"), (SKIP, "skipped"), (NEW, "success"), (NEW, "success")],
}


def query(home: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    con: duckdb.DuckDBPyConnection = open_warehouse(home)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def batch_of_day(story: Story) -> dict[str, str]:
    """ingest_date -> batch_id, from the ledger the ingestion wrote."""
    return {e["ingest_date"]: e["batch_id"] for e in ledger_entries(story.home)}


@pytest.mark.parametrize("target", ["lake", "warehouse"])
def test_every_build_of_the_story_is_one_run(story: Story, target: str) -> None:
    runs = query(
        story.home,
        "select action, status from audit.runs where target = ? order by completed_at",
        [target],
    )
    assert runs == STORY_RUNS[target]
    # a build with nothing new ran no dbt node
    assert query(
        story.home,
        "select count(*) from audit.node_results n join audit.runs r using (invocation_id) "
        "where r.status = 'skipped'",
    ) == [(0,)]


@pytest.mark.parametrize("target", ["lake", "warehouse"])
def test_each_batch_is_counted_once_by_the_build_that_first_held_it(
    story: Story, target: str
) -> None:
    days = batch_of_day(story)
    # run numbers among all runs of the target: 1 first build, 3 day 2, 4 after the kills
    ranks = dict(
        query(
            story.home,
            "select invocation_id, row_number() over (order by completed_at) from audit.runs "
            "where target = ?",
            [target],
        )
    )
    by_batch = {
        batch_id: ranks[invocation]
        for batch_id, invocation in query(
            story.home,
            "select batch_id, invocation_id from audit.run_batches where target = ?",
            [target],
        )
    }
    assert by_batch == {days[DAY1]: 1, days[DAY2]: 3, days[DAY3]: 4}


def test_the_fact_table_records_the_batches_each_build_added(story: Story) -> None:
    days = batch_of_day(story)
    built = query(
        story.home,
        "select r.action, n.batch_ids from audit.node_results n "
        "join audit.runs r using (invocation_id) "
        "where n.unique_id = 'model.lakehouse.fct_sales' order by r.completed_at",
    )
    assert built == [(FULL, days[DAY1]), (NEW, days[DAY2]), (NEW, days[DAY3])]


def test_batch_quality_is_what_each_file_held(story: Story) -> None:
    days = batch_of_day(story)
    bad = len(story.day2_expected["bad_lines"])
    expected = {
        days[DAY1]: (count_rows(story.real_rows), count_rows(story.real_rows), 0),
        days[DAY2]: (3000, 3000 - bad, bad),
        days[DAY3]: (count_rows(story.day3_csv), count_rows(story.day3_csv), 0),
    }
    found = {
        batch_id: (landed, valid, rejected)
        for batch_id, landed, valid, rejected in query(
            story.home,
            "select batch_id, landed_rows, valid_rows, rejected_rows from audit.batch_quality",
        )
    }
    assert found == expected
    reasons = dict(
        query(
            story.home,
            "select reason, rejected_rows from audit.batch_rejections where batch_id = ?",
            [days[DAY2]],
        )
    )
    by_reason = story.day2_expected["bad_rows_by_reason"]
    assert reasons == {reason: n for reason, n in by_reason.items() if n}


def test_no_node_of_the_story_failed(story: Story) -> None:
    assert query(
        story.home,
        "select count(*) from audit.node_results where status in ('fail', 'error')",
    ) == [(0,)]
    tests = query(
        story.home,
        "select count(*) from audit.node_results where resource_type in ('test', 'unit_test')",
    )
    assert tests[0][0] > 0


def test_status_of_the_story_is_healthy_until_the_sla_is_tightened(story: Story) -> None:
    healthy = run_lakehouse(story.home, "status", check=False, timeout=120)
    assert healthy.returncode == ExitCode.OK, healthy.stdout + healthy.stderr
    assert "healthy" in healthy.stdout
    tight = json.dumps({"marts_freshness_error_after_hours": 0})
    breached = run_lakehouse(story.home, "status", "--vars", tight, check=False, timeout=120)
    assert breached.returncode == ExitCode.SLA_BREACHED, breached.stdout + breached.stderr
    marts = {
        str(name)
        for (name,) in query(
            story.home,
            "select table_name from information_schema.tables where table_schema = 'marts'",
        )
    }
    assert len(marts) == 8
    for mart in marts:
        assert f"{mart} is " in breached.stdout, mart
    assert "bronze.walmart_sales_batches is" not in breached.stdout


def test_dbt_source_freshness_reads_the_sla_vars(story: Story, tmp_path: Path) -> None:
    """The Bronze SLA is one contract for dbt and for `lakehouse status`: a warn threshold of
    0 hours (the default is 48) makes dbt warn on the ledger's landing time, which is not stale
    enough to error (one Spark start, no build)."""
    done = run_lakehouse(
        story.home,
        "dbt",
        "source",
        "freshness",
        "--target",
        "lake",
        "--select",
        "source:walmart",
        "--vars",
        json.dumps({"bronze_freshness_warn_after_hours": 0}),
        check=False,
        extra_env={"DBT_TARGET_PATH": str(tmp_path / "target")},
    )
    said = done.stdout + done.stderr
    assert done.returncode == ExitCode.OK, said
    assert "WARN freshness of walmart.walmart_sales_batches" in said
    (result,) = json.loads((tmp_path / "target" / "sources.json").read_text())["results"]
    newest = max(e["ingested_at"] for e in ledger_entries(story.home))
    assert result["max_loaded_at"].startswith(newest[:19])
    assert result["status"] == "warn"
