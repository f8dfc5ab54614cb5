"""`lakehouse rehearse glue` on the real fixture rows: the production lake build, through the real
dbt-glue adapter on the local Glue stand-in, builds the same Gold and Silver as the local lake,
first from two batches, then incrementally after a third batch that has rejected rows. The first
build takes the path of a long history (batch lists too long for one Glue statement).

The rehearsal itself compares Gold (rows, key sets, sum of every numeric column), the Silver
reconciliation per batch, the snapshots an incremental Gold table gains (one per build with new
batches, none on a no-op) and `_tmp` tables left in the catalog, and exits non-zero on any
difference; this test checks its verdict and that the comparison really covered each table."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lakehouse import rehearse
from lakehouse.settings import Paths
from tests.python.support import PROJECT_DIR, REAL_FIXTURE, run_lakehouse

pytestmark = pytest.mark.spark

DAY1, DAY2 = "2026-01-01", "2026-01-02"
# Rows of day 2 made invalid, one rule each (Silver keeps them as rejected rows).
BAD_VALUES = {3: ("Gender", "X"), 7: ("Purchase", "12x"), 11: ("Age", "99-100")}


def day2_file(folder: Path) -> Path:
    """300 real rows in another order (a new file, so a new batch), three of them made invalid."""
    with REAL_FIXTURE.open(newline="") as handle:
        reader = csv.DictReader(handle)
        fields = list(reader.fieldnames or [])
        rows = list(reader)[-300:][::-1]
    for index, (column, value) in BAD_VALUES.items():
        rows[index][column] = value
    path = folder / "walmart_day2.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


def split_fixture(folder: Path) -> list[Path]:
    """The real fixture rows as two files (two batches of the first day)."""
    lines = REAL_FIXTURE.read_text().splitlines(keepends=True)
    header, rows = lines[0], lines[1:]
    halves = [rows[: len(rows) // 2], rows[len(rows) // 2 :]]
    paths = []
    for number, half in enumerate(halves, start=1):
        path = folder / f"walmart_day1_part{number}.csv"
        path.write_text(header + "".join(half))
        paths.append(path)
    return paths


# Lists of batches longer than this many characters leave the statement (macros/batch_lists.sql):
# at 30, two batches already take the path of a long history (temporary views, chunked table
# properties) that keeps every Glue statement under its 68,000-character limit.
LONG_HISTORY_ENV = {"LAKEHOUSE_BATCH_LIST_MAX_CHARS": "30"}


@pytest.fixture(scope="module")
def rehearsed_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, str]]:
    """A home rehearsed twice: day 1 (two batches, lists handled as a long history's), then
    day 2 (one batch with rejected rows, lists as literals); both outputs."""
    home = tmp_path_factory.mktemp("rehearsal") / "home"
    data = tmp_path_factory.mktemp("rehearsal-data")
    run_lakehouse(home, "ingest", *map(str, split_fixture(data)), "--ingest-date", DAY1)
    first = run_lakehouse(home, "rehearse", "glue", timeout=1500, extra_env=LONG_HISTORY_ENV)
    glue_fct_sql = (
        rehearse.rehearsal_folder(Paths(home)) / "target/run/lakehouse/models/gold/fct_sales.sql"
    ).read_text()
    assert "lakehouse_list_" in glue_fct_sql, "the first build did not take the long-list path"
    run_lakehouse(home, "ingest", str(day2_file(data)), "--ingest-date", DAY2)
    second = run_lakehouse(home, "rehearse", "glue", timeout=1500)
    yield home, first.stdout + first.stderr, second.stdout + second.stderr


def test_glue_rehearsal_matches_the_local_lake_first_and_incrementally(
    rehearsed_home: tuple[Path, str, str],
) -> None:
    _, first, second = rehearsed_home
    for output in (first, second):
        assert "built the same Gold and Silver as the local lake" in output
        for table in ("fct_sales", "dim_customers", "dim_products"):
            assert f"{table}: rows" in output
        assert "DIFFERENT" not in output
    # the new batch reached Glue incrementally: exactly one new snapshot on the fact table
    assert "fct_sales: snapshots added (1 new batch(es))" in " ".join(second.split())
    # and the rejected rows were reconciled on both engines
    assert "rejected_rows" in second


def test_glue_enforces_on_schema_change_fail(
    rehearsed_home: tuple[Path, str, str], tmp_path: Path
) -> None:
    """dbt-glue's Iceberg merge ignores on_schema_change 'fail'; the project's glue__get_merge_sql
    does not: a column added to an incremental model fails its Glue build, and on-run-end drops
    the `_tmp` table the failed merge left."""
    home = rehearsed_home[0]
    project = tmp_path / "project"
    shutil.copytree(
        PROJECT_DIR,
        project,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "target", "logs", "lake", "reports", "bench"
        ),
    )
    model = project / "models" / "silver" / "slv_sales_validated.sql"
    sql = model.read_text()
    assert "        ingest_date\n    from judged" in sql
    model.write_text(
        sql.replace(
            "        ingest_date\n    from judged",
            "        ingest_date,\n        1 as added_column\n    from judged",
        )
    )

    lake = Paths(home)
    standin = rehearse.start_standin(rehearse.rehearsal_folder(lake))
    try:
        env = {**os.environ, **rehearse.glue_environment(lake, standin.url)}
        env["DBT_TARGET_PATH"] = str(tmp_path / "target")
        env["DBT_LOG_PATH"] = str(tmp_path / "logs")
        result = subprocess.run(
            [
                str(Path(sys.executable).parent / "dbt"),
                "run",
                "--target",
                "prod_lake",
                "--select",
                "slv_sales_validated",
                "--project-dir",
                str(project),
                "--profiles-dir",
                str(project / "profiles"),
            ],
            env={k: v for k, v in env.items() if v != ""},
            capture_output=True,
            text=True,
            timeout=900,
        )
        tables = [
            t["Name"]
            for t in rehearse.glue_client(standin.url).get_tables(DatabaseName="silver")[
                "TableList"
            ]
        ]
    finally:
        standin.stop()
    assert result.returncode == 1, result.stdout[-3000:]
    assert "out of sync (on_schema_change: 'fail')" in result.stdout
    assert "added_column" in result.stdout
    assert "slv_sales_validated" in tables
    assert not [t for t in tables if t.endswith("_tmp")]


def test_rehearsal_refuses_an_empty_bronze(tmp_path: Path) -> None:
    result = run_lakehouse(tmp_path / "empty", "rehearse", "glue", check=False)
    assert result.returncode == 3
    assert "Bronze is empty" in result.stdout + result.stderr
