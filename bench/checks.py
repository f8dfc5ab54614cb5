"""Did the DuckDB baseline do the same work as the lake? Compare what each produced.

The lake's Gold is read through the local warehouse (`$LAKEHOUSE_HOME/warehouse.duckdb`, schema
`gold`: views over the current Iceberg metadata of each Gold table), opened read-only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

DIMENSIONS = ("dim_customers", "dim_products")


def _connect(lake: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(
        str(lake / "warehouse.duckdb"),
        read_only=True,
        config={"extension_directory": str(lake / "_duckdb_extensions")},
    )


def lake_gold(lake: Path) -> dict[str, int]:
    """Row counts and the purchase sum of the lake's Gold tables."""
    con = _connect(lake)
    try:
        fct = con.execute(
            "select count(*), coalesce(sum(purchase_amount), 0) from gold.fct_sales"
        ).fetchone()
        counts = {f"{d}_rows": _scalar(con, f"select count(*) from gold.{d}") for d in DIMENSIONS}
    finally:
        con.close()
    assert fct is not None
    return {"fct_sales_rows": int(fct[0]), "fct_sales_purchase_amount": int(fct[1]), **counts}


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = con.execute(sql).fetchone()
    assert row is not None
    return int(row[0])


def differing_dimension_rows(lake: Path, baseline_gold: Path) -> dict[str, int]:
    """Rows of each dimension present on one side and not on the other (0 = identical)."""
    con = _connect(lake)
    try:
        found = {}
        for dimension in DIMENSIONS:
            lake_rel = f"gold.{dimension}"
            base_rel = f"read_parquet('{baseline_gold / dimension}.parquet')"
            columns = ", ".join(
                f'"{row[0]}"'
                for row in con.execute(
                    "select column_name from information_schema.columns "
                    "where table_schema = 'gold' and table_name = ? order by ordinal_position",
                    [dimension],
                ).fetchall()
            )
            found[dimension] = _scalar(
                con,
                f"select (select count(*) from (select {columns} from {lake_rel} "
                f"except all select {columns} from {base_rel})) + (select count(*) from "
                f"(select {columns} from {base_rel} except all select {columns} from {lake_rel}))",
            )
    finally:
        con.close()
    return found


def compare(lake: Path, baseline: dict[str, Any], baseline_gold: Path) -> dict[str, Any]:
    """The lake's figures, the baseline's, and whether they agree."""
    lake_counts = lake_gold(lake)
    keys = list(lake_counts)
    same = all(lake_counts[key] == baseline.get(key) for key in keys)
    differing = differing_dimension_rows(lake, baseline_gold)
    return {
        "lake": lake_counts,
        "baseline": {key: baseline.get(key) for key in keys},
        "counts_and_sum_equal": same,
        "dimension_rows_differing": differing,
        "same_work": same and not any(differing.values()),
    }
