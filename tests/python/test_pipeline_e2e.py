"""End to end, through the `lakehouse` CLI, on the real engines (see lakehouse_story.py for the
story the `story` fixture plays: first build, rebuild, re-land, new day with bad rows, killed
build). Expected numbers come from the input files, read here with the csv module."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.python.lakehouse_story import (
    CONFLICTS_ENV,
    DAY1,
    DAY2,
    DAY3,
    Story,
    count_rows,
    csv_facts,
    dimension_totals,
    gold_locations,
    ledger_entries,
    observe,
    open_warehouse,
    valid_records,
)
from tests.python.support import run_lakehouse

pytestmark = pytest.mark.spark


def test_first_build_holds_every_real_row_once(story: Story) -> None:
    facts = csv_facts(story.real_rows)
    (batch,) = story.first.summary["silver_batches"]
    assert batch["bronze_rows"] == facts.rows
    assert batch["valid_rows"] == facts.rows  # the real data breaks no rule
    assert batch["rejected_rows"] == 0
    assert story.first.fct_by_date == {DAY1: (facts.rows, facts.purchase_sum)}
    assert story.first.fct_sale_ids == facts.rows
    assert story.first.dimensions == {
        "dim_customers": len(facts.customers),
        "dim_products": len(facts.products),
    }


def printed_counts(output: str) -> dict[str, int]:
    """The rows per layer in the table `lakehouse run` prints (`│ name │ 1,234 │`)."""
    counts = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.split("│")]
        if len(cells) == 4 and cells[2].replace(",", "").isdigit():
            counts[cells[1]] = int(cells[2].replace(",", ""))
    return counts


def test_lakehouse_run_prints_every_layer_and_writes_the_report(story: Story) -> None:
    """The story's first build is `lakehouse run`, what `make demo` runs, on landed Bronze."""
    facts = csv_facts(story.real_rows)
    printed = printed_counts(story.first_run_output)
    assert printed["bronze rows (ledger)"] == facts.rows
    assert printed["silver.slv_sales"] == facts.rows
    assert printed["silver.slv_sales_rejected"] == 0
    assert printed["gold.fct_sales"] == facts.rows
    assert printed["gold.dim_customers"] == len(facts.customers)
    assert printed["marts.mart_top_products"] == len(facts.products)
    assert "Bronze is empty" not in story.first_run_output  # it landed nothing of its own
    (report,) = (story.home / "reports").glob("*.html")
    assert "<html" in report.read_text()[:1000].lower()


def test_first_build_fills_every_mart(story: Story) -> None:
    facts = csv_facts(story.real_rows)
    assert story.first.marts["mart_high_value_customers"] == len(facts.customers)
    assert story.first.marts["mart_top_products"] == len(facts.products)
    assert story.first.marts["mart_daily_sales"] == 1
    assert story.first.marts["mart_insights_summary"] == 1
    assert set(story.first.marts) == {
        "mart_top_products",
        "mart_high_value_customers",
        "mart_customer_segments",
        "mart_market_segments",
        "mart_city_age_markets",
        "mart_category_performance",
        "mart_daily_sales",
        "mart_insights_summary",
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
    bad_lines = frozenset(story.day2_expected["bad_lines"])
    assert len(bad_lines) == sum(story.day2_expected["bad_rows_by_reason"].values())
    assert count_rows(story.day2_csv) == 3000
    valid = csv_facts(story.day2_csv, bad_lines)
    assert story.after_day2.fct_by_date[DAY2] == (3000 - len(bad_lines), valid.purchase_sum)


BRONZE_LEFT_ALONE = "Bronze left as it is"


def test_a_dev_loop_run_registers_bronze_only_when_it_reads_it(story: Story) -> None:
    gold_model, silver_model = story.dev_loop_outputs
    # `dbt run --select dim_customers` between day 2's landing and its build reads Gold and
    # Silver tables only: it skips registering Bronze (a second of a cold command) ...
    assert BRONZE_LEFT_ALONE in gold_model
    assert "Completed successfully" in gold_model
    # ... where the Silver model, which reads Bronze through the staging views, registers it,
    # as a build does; the day they left half-built reaches every layer whole on the next build
    # (test_new_day_keeps_older_partition_and_adds_the_new_one)
    assert BRONZE_LEFT_ALONE not in silver_model
    assert "Completed successfully" in silver_model
    assert BRONZE_LEFT_ALONE not in story.first_run_output


def test_every_injected_bad_row_is_rejected_for_its_reason(story: Story) -> None:
    expected = {k: v for k, v in story.day2_expected["bad_rows_by_reason"].items() if v}
    assert story.after_day2.summary["rejected_by_reason"] == expected
    day2_batches = [
        b for b in story.after_day2.summary["silver_batches"] if b["ingest_date"] == DAY2
    ]
    assert sum(b["bronze_rows"] for b in day2_batches) == 3000
    assert sum(b["valid_rows"] + b["rejected_rows"] for b in day2_batches) == 3000


def test_demographic_conflicts_are_counted_exactly(story: Story) -> None:
    """assert_customer_demographics_agree is an error at the first conflict (the real rows have
    none, generated files agree with each other); the story mixes the real head with generated
    days whose User_IDs collide with real customers, so it allows exactly the count it computes
    from the CSV files, and the test must report that very count."""
    assert story.day2_conflicts_reported == story.day2_conflicts_expected


def test_builds_killed_in_the_fact_merge_and_in_the_warehouse_recover_exactly(
    story: Story,
) -> None:
    assert all(code != 0 for code in story.killed_returncodes)
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
    # the same real + generated rows as the story's day 2, so the same demographic conflicts
    allowed = {CONFLICTS_ENV: str(story.day2_conflicts_expected)}
    run_lakehouse(home, "ingest", str(story.real_rows), "--ingest-date", DAY1)
    run_lakehouse(home, "build", "--format", "parquet", extra_env=allowed)
    first_day = observe(home).fct_by_date
    run_lakehouse(home, "ingest", str(story.day2_csv), "--ingest-date", DAY2)
    run_lakehouse(home, "build", "--format", "parquet", extra_env=allowed)
    parquet = observe(home)

    # insert_overwrite replaced only the new date's partition
    assert parquet.fct_by_date[DAY1] == first_day[DAY1]
    # same inputs, same answers as the Iceberg lake
    assert parquet.fct_by_date == {d: story.after_day2.fct_by_date[d] for d in (DAY1, DAY2)}
    assert parquet.summary["rejected_by_reason"] == story.after_day2.summary["rejected_by_reason"]
    # Silver and Gold are Hive Parquet here (only the seed lookups stay Iceberg)
    for table in ("silver.db/slv_sales_validated", "gold.db/fct_sales", "gold.db/dim_customers"):
        assert not list((home / "warehouse" / table).rglob("*.metadata.json")), table
        assert list((home / "warehouse" / table).rglob("*.parquet")), table
    # the first lake is untouched by the second
    assert observe(story.home).fct_by_date == story.after_crash.fct_by_date


def test_dimensions_kept_incrementally_match_the_input_files(story: Story) -> None:
    """The dimensions are sums of per-batch state (three batches, one of them re-run after a
    killed build): their totals and distinct counts must equal what the three input files hold,
    counted here with the csv module."""
    records = [
        *valid_records(story.real_rows, frozenset()),
        *valid_records(story.day2_csv, frozenset(story.day2_expected["bad_lines"])),
        *valid_records(story.day3_csv, frozenset()),
    ]
    customers, products = dimension_totals(records)
    con = open_warehouse(story.home)
    try:
        dim_customers = {
            int(customer): (int(distinct), int(rows), int(spent))
            for customer, distinct, rows, spent in con.execute(
                "select customer_id, distinct_products, purchase_count, total_spent "
                "from gold.dim_customers"
            ).fetchall()
        }
        dim_products = dict(
            con.execute("select product_id, distinct_customers from gold.dim_products").fetchall()
        )
    finally:
        con.close()
    assert dim_customers == customers
    assert dim_products == products


def test_batch_commits_keep_each_gold_tables_manifests_merged(story: Story) -> None:
    """Each batch commits to every incremental Gold table (three batches here), and each commit
    adds a manifest that every later scan plans from: a watch cycle grew by 4 s over 20 batches
    until commits merged them (macros/lake_config.sql). Read from the current metadata files
    the warehouse reads Gold through."""
    incremental = ("fct_sales", "int_customer_batch_sales", "int_product_batch_sales")
    con = open_warehouse(story.home)
    try:
        locations = gold_locations(con, story.home)
        shape = {
            name: con.execute(
                "select count(distinct manifest_path), count(distinct file_path) "
                "from iceberg_metadata(?)",
                [locations[name]],
            ).fetchone()
            for name in incremental
        }
    finally:
        con.close()
    for name in incremental:
        manifests, data_files = shape[name]  # type: ignore[misc]
        assert data_files >= 3, f"{name}: one file per batch at least"
        assert manifests == 1, f"{name}: {manifests} manifests for {data_files} data files"


def test_dimensions_are_replaced_in_one_commit_and_leave_no_file_behind(story: Story) -> None:
    """A dimension is rebuilt in full whenever it changes: replaced in one Iceberg commit, its
    earlier states kept as snapshots (which Iceberg's expire_snapshots can clear). Dropped and
    created again instead (dbt-spark took the session catalog's Iceberg tables for Hive ones),
    each build left the old files on disk, referenced by nothing (macros/iceberg_relations.sql).
    Read from the metadata files the warehouse reads Gold by."""
    con = open_warehouse(story.home)
    try:
        locations = gold_locations(con, story.home)
        history = {}
        for name in ("dim_customers", "dim_products"):
            snapshots = con.execute(
                "select snapshot_id from iceberg_snapshots(?)", [locations[name]]
            ).fetchall()
            referenced = {
                str(path).removeprefix("file:")
                for (snapshot_id,) in snapshots
                for (path,) in con.execute(
                    "select file_path from iceberg_metadata(?, snapshot_from_id => ?)",
                    [locations[name], snapshot_id],
                ).fetchall()
            }
            history[name] = (len(snapshots), referenced)
    finally:
        con.close()
    for name, (states, referenced) in history.items():
        data = Path(locations[name].removeprefix("file:")).parent.parent / "data"
        on_disk = {str(path) for path in data.rglob("*.parquet")}
        assert on_disk == referenced, (
            f"{name}: files no snapshot references: {on_disk - referenced}"
        )
        assert states > 1, f"{name}: replaced, its earlier states are snapshots"
    # dim_customers was also rebuilt by the dev loop's run of it alone: one state more
    assert history["dim_customers"][0] == history["dim_products"][0] + 1
