"""Issue #15: a customer is a function of its User_ID and a product's category a function of
its Product_ID, not of the seed, the size or the run, so that files generated separately (the
days of the end-to-end story, the incremental benchmark, backfills) can be landed together
without a customer changing demographics between files, as no real customer file does."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from lakehouse.generator import write_dataset
from tests.python.bronze_oracle import DEMOGRAPHICS


def entities(
    files: tuple[Path, ...],
) -> tuple[dict[str, set[tuple[str, ...]]], dict[str, set[str]]]:
    customers: dict[str, set[tuple[str, ...]]] = {}
    products: dict[str, set[str]] = {}
    for path in files:
        with path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                customers.setdefault(row["User_ID"], set()).add(tuple(row[k] for k in DEMOGRAPHICS))
                products.setdefault(row["Product_ID"], set()).add(row["Product_Category"])
    return customers, products


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"rows": 20_000, "seed": 1}, {"rows": 20_000, "seed": 2}),
        ({"rows": 3_000, "seed": 7}, {"rows": 1_500, "seed": 11}),  # the story's day 2 and day 3
        ({"rows": 40_000, "seed": 42, "days": 3}, {"rows": 8_000, "seed": 99}),
    ],
)
def test_two_files_with_different_seeds_agree_on_every_shared_customer_and_product(
    tmp_path: Path, first: dict[str, int], second: dict[str, int]
) -> None:
    a = write_dataset(tmp_path / ("a" if first.get("days", 1) > 1 else "a.csv"), **first)
    b = write_dataset(tmp_path / ("b" if second.get("days", 1) > 1 else "b.csv"), **second)
    customers_a, products_a = entities(a.files)
    customers_b, products_b = entities(b.files)
    shared_customers = customers_a.keys() & customers_b.keys()
    shared_products = products_a.keys() & products_b.keys()
    # the files overlap enough for the check to mean something
    assert len(shared_customers) >= 0.5 * min(len(customers_a), len(customers_b))
    assert len(shared_products) >= 50
    for customer in shared_customers:
        assert len(customers_a[customer] | customers_b[customer]) == 1, customer
    for product in shared_products:
        assert len(products_a[product] | products_b[product]) == 1, product


def test_landing_two_seeds_together_gives_no_conflicting_demographics(tmp_path: Path) -> None:
    """What `assert_customer_demographics_agree` counts on a lake built from these two files."""
    day2 = write_dataset(tmp_path / "day2.csv", rows=3_000, seed=7)
    day3 = write_dataset(tmp_path / "day3.csv", rows=1_500, seed=11)
    customers, _ = entities((*day2.files, *day3.files))
    assert [c for c, values in customers.items() if len(values) > 1] == []
