"""The end-to-end story, through the `lakehouse` CLI, on the real engines: land real rows,
build the lake (Spark + Iceberg) and the warehouse (DuckDB over the same files), then change
Bronze the ways a user does - rebuild with nothing new, land the same file again, land a new day
with bad rows, kill a build half-way - and observe after each step what every layer holds.

Expected numbers come from the input files themselves (read with the csv module), never from
the pipeline's own output."""

from __future__ import annotations

import csv
import json
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.python.bronze_oracle import DEMOGRAPHICS
from tests.python.support import LAKEHOUSE, PROJECT_DIR, lakehouse_env, run_lakehouse

pytestmark = pytest.mark.spark

DAY1, DAY2, DAY3 = "2026-01-01", "2026-01-02", "2026-01-03"


@dataclass(frozen=True)
class CsvFacts:
    """What a source file holds, computed independently of the pipeline."""

    rows: int
    purchase_sum: int
    customers: frozenset[str]
    products: frozenset[str]


def count_rows(path: Path) -> int:
    with path.open(newline="") as handle:
        return sum(1 for _ in csv.DictReader(handle))


def valid_records(path: Path, exclude_lines: frozenset[int] = frozenset()) -> list[dict[str, str]]:
    """The rows of a file (csv module), leaving out the given lines (the injected bad rows)."""
    with path.open(newline="") as handle:
        return [
            record
            for line, record in enumerate(csv.DictReader(handle), start=2)
            if line not in exclude_lines
        ]


def csv_facts(path: Path, exclude_lines: frozenset[int] = frozenset()) -> CsvFacts:
    """Rows, purchase sum, customers and products of a file, leaving out the given lines (the
    injected bad rows, whose Purchase may not be a number)."""
    records = valid_records(path, exclude_lines)
    return CsvFacts(
        len(records),
        sum(int(record["Purchase"]) for record in records),
        frozenset(record["User_ID"] for record in records),
        frozenset(record["Product_ID"] for record in records),
    )


def dimension_totals(
    records: list[dict[str, str]],
) -> tuple[dict[int, tuple[int, int, int]], dict[str, int]]:
    """What the dimensions must hold for these valid records, counted with plain Python:
    per customer (distinct products, purchases, total spent), per product distinct customers."""
    customers: dict[int, tuple[set[str], int, int]] = {}
    products: dict[str, set[str]] = {}
    for record in records:
        bought, rows, spent = customers.get(int(record["User_ID"]), (set(), 0, 0))
        bought.add(record["Product_ID"])
        customers[int(record["User_ID"])] = (bought, rows + 1, spent + int(record["Purchase"]))
        products.setdefault(record["Product_ID"], set()).add(record["User_ID"])
    return (
        {key: (len(bought), rows, spent) for key, (bought, rows, spent) in customers.items()},
        {product: len(buyers) for product, buyers in products.items()},
    )


CONFLICTS_ENV = "LAKEHOUSE_DEMOGRAPHIC_CONFLICTS_ALLOWED"


def demographic_conflicts(*files: tuple[Path, frozenset[int]]) -> int:
    """Customers whose valid rows disagree on a demographic, over several files (each with the
    lines of its injected bad rows, which Silver rejects): what assert_customer_demographics_agree
    must count. The generator agrees with itself; the real head's User_IDs collide with it."""
    seen: dict[str, set[tuple[str, ...]]] = {}
    for path, exclude_lines in files:
        for record in valid_records(path, exclude_lines):
            values = tuple(record[k] for k in DEMOGRAPHICS)
            seen.setdefault(record["User_ID"], set()).add(values)
    return sum(1 for values in seen.values() if len(values) > 1)


def reported_conflicts(build_output: str) -> int:
    """The count assert_customer_demographics_agree reported in a build's log."""
    found = re.search(
        r"(PASS|WARN (\d+)|FAIL (\d+)) assert_customer_demographics_agree", build_output
    )
    assert found, "assert_customer_demographics_agree did not run in this build"
    return 0 if found.group(1) == "PASS" else int(found.group(2) or found.group(3))


@dataclass
class LakeState:
    """One observation of the lake: the summary the build wrote, and Gold read by DuckDB."""

    summary: dict[str, Any]
    fct_by_date: dict[str, tuple[int, int]]
    fct_sale_ids: int
    fct_metadata: str
    marts: dict[str, int] = field(default_factory=dict)
    dimensions: dict[str, int] = field(default_factory=dict)


def open_warehouse(home: Path) -> duckdb.DuckDBPyConnection:
    """The lake's DuckDB warehouse, read-only, as an analyst would open it."""
    return duckdb.connect(
        str(home / "warehouse.duckdb"),
        read_only=True,
        config={"extension_directory": str(home / "_duckdb_extensions")},
    )


def gold_locations(con: duckdb.DuckDBPyConnection, home: Path) -> dict[str, str]:
    """Gold table -> where its current state lives, from the manifest the lake build publishes
    (the current Iceberg metadata file, or the Hive Parquet folder)."""
    rows = con.execute(
        "select table_name, location "
        f"from read_parquet('{home}/warehouse/_gold_manifest/*.parquet')"
    ).fetchall()
    return {str(name): str(location) for name, location in rows}


def observe(home: Path) -> LakeState:
    summary = json.loads((home / "_runs" / "lake_summary.json").read_text())
    con = open_warehouse(home)
    try:
        by_date = {
            str(day): (int(rows), int(amount))
            for day, rows, amount in con.execute(
                "select ingest_date, count(*), sum(purchase_amount) from gold.fct_sales group by 1"
            ).fetchall()
        }
        distinct_ids = con.execute("select count(distinct sale_id) from gold.fct_sales").fetchone()
        fct_metadata = gold_locations(con, home)["fct_sales"]

        def row_count(relation: str) -> int:
            return int(con.execute(f"select count(*) from {relation}").fetchone()[0])  # type: ignore[index]

        dimensions = {name: row_count(f"gold.{name}") for name in ("dim_customers", "dim_products")}
        marts = {
            name: row_count(f"marts.{name}")
            for (name,) in con.execute(
                "select table_name from information_schema.tables where table_schema = 'marts'"
            ).fetchall()
        }
    finally:
        con.close()
    assert distinct_ids is not None
    return LakeState(summary, by_date, int(distinct_ids[0]), fct_metadata, marts, dimensions)


def ledger_entries(home: Path) -> list[dict[str, Any]]:
    return [
        json.loads(p.read_text())
        for p in (home / "bronze" / "_ledger" / "walmart_sales").glob("*.json")
    ]


@dataclass
class Story:
    home: Path
    real_rows: Path
    day2_csv: Path
    day2_expected: dict[str, Any]
    day3_csv: Path
    first: LakeState
    first_run_output: str
    rebuilt: LakeState
    relanded_output: str
    dev_loop_outputs: tuple[str, str]  # dim_customers, slv_sales_validated
    after_day2: LakeState
    day2_conflicts_expected: int
    day2_conflicts_reported: int
    killed_returncodes: tuple[int, int]
    after_crash: LakeState


def build_killed_after(
    home: Path, marker: str, extra_env: dict[str, str] | None = None, delay: float = 0.0
) -> int:
    """Start `lakehouse build` and SIGKILL it `delay` seconds after dbt prints `marker`."""
    process = subprocess.Popen(
        [str(LAKEHOUSE), "build"],
        env=lakehouse_env(home, extra_env),
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
            time.sleep(delay)
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
    # the first build is `lakehouse run`, what `make demo` runs: with Bronze landed it builds,
    # tests, writes the report and prints the rows of every layer
    ran = run_lakehouse(home, "run")
    first = observe(home)

    run_lakehouse(home, "build")
    rebuilt = observe(home)

    relanded = run_lakehouse(home, "ingest", str(real_rows_csv), "--ingest-date", DAY2)

    day2 = data / "day2.csv"
    run_lakehouse(
        home, "generate", "--rows", "3000", "--seed", "7", "--bad-rows", "0.05", "--out", str(day2)
    )
    expected_file = next(data.glob("day2*expected*.json"))
    run_lakehouse(home, "ingest", str(day2), "--ingest-date", DAY2)
    day2_expected = json.loads(expected_file.read_text())
    day2_files: tuple[tuple[Path, frozenset[int]], ...] = (
        (real_rows_csv, frozenset()),
        (day2, frozenset(day2_expected["bad_lines"])),
    )
    conflicts = demographic_conflicts(*day2_files)
    # an analytics engineer's dev loop while day 2 waits in Bronze: one Gold model, which reads
    # Gold and Silver tables alone and so leaves Bronze as it is, then the Silver model, which
    # reads Bronze through the staging views; the build after them must still hold every
    # landed row once (after_day2)
    dev_loop = [
        run_lakehouse(home, "dbt", "run", "--select", model, "--target", "lake")
        for model in ("dim_customers", "slv_sales_validated")
    ]
    built = run_lakehouse(home, "build", extra_env={CONFLICTS_ENV: str(conflicts)})
    after_day2 = observe(home)

    day3 = data / "day3.csv"
    run_lakehouse(home, "generate", "--rows", "1500", "--seed", "11", "--out", str(day3))
    run_lakehouse(home, "ingest", str(day3), "--ingest-date", DAY3)
    allowed = {CONFLICTS_ENV: str(demographic_conflicts(*day2_files, (day3, frozenset())))}
    # killed while the fact table merges day 3 (Iceberg commits atomically: the merge is in or
    # out, and the rerun must find out which), then killed again while the warehouse builds
    # (the lake is then complete and up to date: only the warehouse runs on the last build)
    killed_in_lake = build_killed_after(
        home, "START sql incremental model gold.fct_sales", allowed, delay=0.5
    )
    killed_in_warehouse = build_killed_after(home, "START sql table model marts.", allowed)
    run_lakehouse(home, "build", extra_env=allowed)
    after_crash = observe(home)

    return Story(
        home,
        real_rows_csv,
        day2,
        day2_expected,
        day3,
        first,
        ran.stdout + ran.stderr,
        rebuilt,
        relanded.stdout + relanded.stderr,
        (dev_loop[0].stdout + dev_loop[0].stderr, dev_loop[1].stdout + dev_loop[1].stderr),
        after_day2,
        conflicts,
        reported_conflicts(built.stdout + built.stderr),
        (killed_in_lake, killed_in_warehouse),
        after_crash,
    )
