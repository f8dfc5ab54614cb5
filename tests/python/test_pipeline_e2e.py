"""End to end, through the `lakehouse` CLI, on the real engines: land real rows, build the lake
(Spark + Iceberg) and the warehouse (DuckDB over the same files), then change Bronze the ways a
user does - rebuild with nothing new, land the same file again, land a new day with bad rows,
kill a build half-way - and check after each step that no row was lost, duplicated or altered.

Expected numbers come from the input files themselves (read here with the csv module), never
from the pipeline's own output.
"""

from __future__ import annotations

import csv
import json
import signal
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.python.conftest import LAKEHOUSE, PROJECT_DIR, lakehouse_env, run_lakehouse

pytestmark = pytest.mark.spark

DAY1, DAY2, DAY3 = "2026-01-01", "2026-01-02", "2026-01-03"


@dataclass(frozen=True)
class CsvFacts:
    """What a source file holds, computed independently of the pipeline."""

    rows: int
    purchase_sum: int
    customers: frozenset[str]
    products: frozenset[str]


def csv_facts(path: Path, exclude_lines: set[int] = frozenset()) -> CsvFacts:  # type: ignore[assignment]
    rows = purchase = 0
    customers: set[str] = set()
    products: set[str] = set()
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        for line, record in enumerate(reader, start=2):
            if line in exclude_lines:
                continue
            rows += 1
            purchase += int(record["Purchase"])
            customers.add(record["User_ID"])
            products.add(record["Product_ID"])
    return CsvFacts(rows, purchase, frozenset(customers), frozenset(products))


@dataclass
class LakeState:
    """One observation of the lake: the summary the build wrote, and Gold read by DuckDB."""

    summary: dict[str, Any]
    fct_by_date: dict[str, tuple[int, int]]
    fct_sale_ids: int
    fct_metadata: str
    marts: dict[str, int] = field(default_factory=dict)


def observe(home: Path) -> LakeState:
    summary = json.loads((home / "_runs" / "lake_summary.json").read_text())
    con = duckdb.connect(
        str(home / "warehouse.duckdb"),
        read_only=True,
        config={"extension_directory": str(home / "_duckdb_extensions")},
    )
    try:
        by_date = {
            str(day): (int(rows), int(amount))
            for day, rows, amount in con.execute(
                "select ingest_date, count(*), sum(purchase_amount) from gold.fct_sales group by 1"
            ).fetchall()
        }
        distinct_ids = con.execute("select count(distinct sale_id) from gold.fct_sales").fetchone()
        metadata = con.execute(
            f"select location from read_parquet('{home}/warehouse/_gold_manifest/*.parquet') "
            "where table_name = 'fct_sales'"
        ).fetchone()
        marts = {
            name: int(con.execute(f"select count(*) from marts.{name}").fetchone()[0])  # type: ignore[index]
            for (name,) in con.execute(
                "select table_name from information_schema.tables where table_schema = 'marts'"
            ).fetchall()
        }
    finally:
        con.close()
    assert distinct_ids is not None and metadata is not None
    return LakeState(summary, by_date, int(distinct_ids[0]), str(metadata[0]), marts)


def ledger_entries(home: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in (home / "bronze" / "_ledger" / "walmart_sales").glob("*.json")]


@dataclass
class Story:
    home: Path
    real_rows: Path
    day2_csv: Path
    day2_expected: dict[str, Any]
    day3_csv: Path
    first: LakeState
    rebuilt: LakeState
    relanded_output: str
    after_day2: LakeState
    killed_returncode: int
    after_crash: LakeState


def build_killed_after(home: Path, marker: str) -> int:
    """Start `lakehouse build` and SIGKILL it as soon as dbt prints `marker`."""
    process = subprocess.Popen(
        [str(LAKEHOUSE), "build"],
        env=lakehouse_env(home),
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        if marker in line:
            process.send_signal(signal.SIGKILL)
            break
    returncode = process.wait(timeout=120)
    assert any(marker in line for line in seen), "".join(seen[-40:])
    return returncode


@pytest.fixture(scope="session")
def story(tmp_path_factory: pytest.TempPathFactory, real_rows_csv: Path) -> Story:
    home = tmp_path_factory.mktemp("story")
    data = tmp_path_factory.mktemp("story-data")

    run_lakehouse(home, "ingest", str(real_rows_csv), "--ingest-date", DAY1)
    run_lakehouse(home, "build")
    first = observe(home)

    run_lakehouse(home, "build")
    rebuilt = observe(home)

    relanded = run_lakehouse(home, "ingest", str(real_rows_csv), "--ingest-date", DAY2)

    day2 = data / "day2.csv"
    run_lakehouse(home, "generate", "--rows", "3000", "--seed", "7", "--bad-rows", "0.05", "--out", str(day2))
    expected_file = next(data.glob("day2*expected*.json"))
    run_lakehouse(home, "ingest", str(day2), "--ingest-date", DAY2)
    run_lakehouse(home, "build")
    after_day2 = observe(home)

    day3 = data / "day3.csv"
    run_lakehouse(home, "generate", "--rows", "1500", "--seed", "11", "--out", str(day3))
    run_lakehouse(home, "ingest", str(day3), "--ingest-date", DAY3)
    killed = build_killed_after(home, "OK created sql incremental model silver.slv_sales_validated")
    run_lakehouse(home, "build")
    after_crash = observe(home)

    return Story(
        home, real_rows_csv, day2, json.loads(expected_file.read_text()), day3,
        first, rebuilt, relanded.stdout + relanded.stderr, after_day2, killed, after_crash,
    )


def test_first_build_holds_every_real_row_once(story: Story) -> None:
    facts = csv_facts(story.real_rows)
    (batch,) = story.first.summary["silver_batches"]
    assert batch["bronze_rows"] == facts.rows
    assert batch["valid_rows"] == facts.rows  # the real data breaks no rule
    assert batch["rejected_rows"] == 0
    assert story.first.fct_by_date == {DAY1: (facts.rows, facts.purchase_sum)}
    assert story.first.fct_sale_ids == facts.rows
    gold = story.first.summary["gold"]
    assert gold["dim_customers_rows"] == len(facts.customers)
    assert gold["dim_products_rows"] == len(facts.products)


def test_first_build_fills_every_mart(story: Story) -> None:
    facts = csv_facts(story.real_rows)
    assert story.first.marts["mart_high_value_customers"] == len(facts.customers)
    assert story.first.marts["mart_top_products"] == len(facts.products)
    assert story.first.marts["mart_daily_sales"] == 1
    assert set(story.first.marts) == {
        "mart_top_products", "mart_high_value_customers", "mart_customer_segments",
        "mart_market_segments", "mart_category_performance", "mart_daily_sales",
    }


def test_rebuild_with_nothing_new_changes_nothing(story: Story) -> None:
    assert story.rebuilt.fct_by_date == story.first.fct_by_date
    assert story.rebuilt.summary == story.first.summary
    # no new Iceberg commit on the fact table: its current metadata file is the same one
    assert story.rebuilt.fct_metadata == story.first.fct_metadata


def test_landing_the_same_file_again_adds_nothing(story: Story) -> None:
    assert "already landed" in story.relanded_output
    batches = {e["batch_id"] for e in ledger_entries(story.home)}
    assert len(batches) == 3  # real rows, day 2, day 3: the re-landed file made no batch


def test_new_day_keeps_older_partition_and_adds_the_new_one(story: Story) -> None:
    assert story.after_day2.fct_by_date[DAY1] == story.first.fct_by_date[DAY1]
    bad_lines = set(story.day2_expected.get("bad_lines", []))
    expected_bad = sum(story.day2_expected["bad_rows_by_reason"].values())
    generated = csv_facts(story.day2_csv)
    assert generated.rows == 3000
    day2_rows, _ = story.after_day2.fct_by_date[DAY2]
    assert day2_rows == generated.rows - expected_bad
    if bad_lines:
        assert story.after_day2.fct_by_date[DAY2][1] == csv_facts(story.day2_csv, bad_lines).purchase_sum


def test_every_injected_bad_row_is_rejected_for_its_reason(story: Story) -> None:
    expected = {k: v for k, v in story.day2_expected["bad_rows_by_reason"].items() if v}
    assert story.after_day2.summary["rejected_by_reason"] == expected
    day2_batches = [b for b in story.after_day2.summary["silver_batches"] if b["ingest_date"] == DAY2]
    assert sum(b["bronze_rows"] for b in day2_batches) == 3000
    assert sum(b["valid_rows"] + b["rejected_rows"] for b in day2_batches) == 3000


def test_a_build_killed_half_way_then_rerun_holds_exactly_the_right_rows(story: Story) -> None:
    assert story.killed_returncode != 0
    day3 = csv_facts(story.day3_csv)
    assert story.after_crash.fct_by_date[DAY3] == (day3.rows, day3.purchase_sum)
    assert story.after_crash.fct_by_date[DAY1] == story.first.fct_by_date[DAY1]
    assert story.after_crash.fct_by_date[DAY2] == story.after_day2.fct_by_date[DAY2]
    total_rows = sum(rows for rows, _ in story.after_crash.fct_by_date.values())
    assert story.after_crash.fct_sale_ids == total_rows
    assert story.after_crash.marts["mart_daily_sales"] == 3


def test_parquet_lake_in_a_second_home_agrees_and_leaves_the_first_alone(
    story: Story, tmp_path_factory: pytest.TempPathFactory
) -> None:
    home = tmp_path_factory.mktemp("parquet-lake")
    run_lakehouse(home, "ingest", str(story.real_rows), "--ingest-date", DAY1)
    run_lakehouse(home, "build", "--format", "parquet")
    first_day = observe(home).fct_by_date
    run_lakehouse(home, "ingest", str(story.day2_csv), "--ingest-date", DAY2)
    run_lakehouse(home, "build", "--format", "parquet")
    parquet = observe(home)

    # insert_overwrite replaced only the new date's partition
    assert parquet.fct_by_date[DAY1] == first_day[DAY1]
    # same inputs, same answers as the Iceberg lake
    assert parquet.fct_by_date == {d: story.after_day2.fct_by_date[d] for d in (DAY1, DAY2)}
    assert parquet.summary["rejected_by_reason"] == story.after_day2.summary["rejected_by_reason"]
    assert not list((home / "warehouse").rglob("*.metadata.json"))  # no Iceberg here
    # the first lake is untouched by the second
    assert observe(story.home).fct_by_date == story.after_crash.fct_by_date
