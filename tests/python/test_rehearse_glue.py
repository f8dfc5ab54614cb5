"""`lakehouse rehearse glue` on the real fixture rows: the production lake build, through the real
dbt-glue adapter on the local Glue stand-in, builds the same Gold and Silver as the local lake,
first from one batch, then incrementally after a second batch that has rejected rows.

The rehearsal itself compares Gold (rows, key sets, sum of every numeric column), the Silver
reconciliation per batch, the snapshots an incremental Gold table gains (one per build with new
batches, none on a no-op) and `_tmp` tables left in the catalog, and exits non-zero on any
difference; this test checks its verdict and that the comparison really covered each table."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests.python.support import REAL_FIXTURE, run_lakehouse

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


def test_glue_rehearsal_matches_the_local_lake_first_and_incrementally(tmp_path: Path) -> None:
    home = tmp_path / "home"
    run_lakehouse(home, "ingest", str(REAL_FIXTURE), "--ingest-date", DAY1)

    first = run_lakehouse(home, "rehearse", "glue", timeout=1500)
    output = first.stdout + first.stderr
    assert "built the same Gold and Silver as the local lake" in output
    for table in ("fct_sales", "dim_customers", "dim_products"):
        assert f"{table}: rows" in output
    assert "DIFFERENT" not in output

    run_lakehouse(home, "ingest", str(day2_file(tmp_path)), "--ingest-date", DAY2)
    second = run_lakehouse(home, "rehearse", "glue", timeout=1500)
    output = second.stdout + second.stderr
    assert "built the same Gold and Silver as the local lake" in output
    # the new batch reached Glue incrementally: exactly one new snapshot on the fact table
    assert "fct_sales: snapshots added (1 new batch(es))" in " ".join(output.split())
    # and the rejected rows were reconciled on both engines
    assert "rejected_rows" in output
    assert "DIFFERENT" not in output


def test_rehearsal_refuses_an_empty_bronze(tmp_path: Path) -> None:
    result = run_lakehouse(tmp_path / "empty", "rehearse", "glue", check=False)
    assert result.returncode == 3
    assert "Bronze is empty" in result.stdout + result.stderr
