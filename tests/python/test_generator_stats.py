"""A generated dataset of the real file's size (550,068 rows) against the real file's published
statistics, committed in tests/fixtures/walmart_published_stats.json (a copy of the relevant
parts of shared/data/walmart/walmart_published_stats.json, with its provenance), so that this
runs on a clone with nothing beside it.

Tolerances (one place, stated once):
- a value's share of rows (Gender, Age, City, Stay, Marital, Occupation, Product_Category):
  within 3% of the published share, or within 0.02 percentage points (110 rows; the latter only
  matters for values under 0.7% of the rows, e.g. occupation 8 or categories 9 and 17);
- users by value: within 5% of the published share, or within 0.5 percentage points;
- Purchase mean, std and median within 2%; first and third quartiles within 3%;
- each category's mean Purchase within 5%, and its values inside the category's real range;
- users within 5% of 5,891 and products within 10% of 3,631; rows per user: mean within 3% of
  93.4, min >= 6, max within 30% of 1,026.
"""

from __future__ import annotations

import csv
import hashlib
import json
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lakehouse.generator import write_dataset

PROJECT_DIR = Path(__file__).resolve().parents[2]
FIXTURE = PROJECT_DIR / "tests" / "fixtures" / "walmart_published_stats.json"
SHARED = PROJECT_DIR.parent / "shared" / "data" / "walmart" / "walmart_published_stats.json"
ROWS = 550_068

SHARE_RELATIVE = 0.03
SHARE_POINTS = 0.02
USER_SHARE_RELATIVE = 0.05
USER_SHARE_POINTS = 0.5
PURCHASE_MOMENTS = 0.02
PURCHASE_QUARTILES = 0.03
CATEGORY_MEAN = 0.05
USERS = 0.05
PRODUCTS = 0.10

MARGINALS = {
    "Gender": "Gender_counts",
    "Age": "Age_counts",
    "City_Category": "City_Category_counts",
    "Stay_In_Current_City_Years": "Stay_In_Current_City_Years_counts",
    "Marital_Status": "Marital_Status_counts",
    "Occupation": "Occupation_counts",
    "Product_Category": "Product_Category_counts",
}


def published() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(FIXTURE.read_text())
    return data


def counts_of(table: dict[str, Any]) -> dict[str, int]:
    return {key: int(value) for key, value in table.items() if key != "src"}


def share_failures(
    observed: Counter[str], expected: dict[str, int], relative: float, points: float
) -> list[str]:
    """The values whose share of the total drifted past the tolerance (or that should not be
    there at all)."""
    seen = sum(observed.values())
    total = sum(expected.values())
    failures = [f"{value!r} is not a real value" for value in observed if value not in expected]
    for value, count in expected.items():
        want = count / total
        got = observed.get(value, 0) / seen
        if abs(got / want - 1) > relative and abs(got - want) * 100 > points:
            failures.append(f"{value!r}: {got:.4%} of rows, published {want:.4%}")
    return failures


@dataclass(frozen=True)
class Columns:
    values: dict[str, list[str]]
    users: int
    products: int

    def ints(self, name: str) -> list[int]:
        return [int(v) for v in self.values[name]]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Columns:
    path = tmp_path_factory.mktemp("full") / "walmart.csv"
    dataset = write_dataset(path, rows=ROWS, seed=42)
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        columns: list[list[str]] = [[] for _ in header]
        for row in reader:
            for column, value in zip(columns, row, strict=True):
                column.append(value)
    assert dataset.rows == ROWS
    return Columns(dict(zip(header, columns, strict=True)), dataset.users, dataset.products)


@pytest.mark.parametrize("column", sorted(MARGINALS))
def test_row_marginals_match_the_real_file(generated: Columns, column: str) -> None:
    expected = counts_of(published()[MARGINALS[column]])
    observed = Counter(generated.values[column])
    assert share_failures(observed, expected, SHARE_RELATIVE, SHARE_POINTS) == []


@pytest.mark.parametrize(
    ("column", "key"),
    [
        ("Gender", "by_Gender"),
        ("Age", "by_Age"),
        ("City_Category", "by_City_Category"),
        ("Marital_Status", "by_Marital_Status"),
    ],
)
def test_users_by_value_match_the_real_file(generated: Columns, column: str, key: str) -> None:
    first: dict[str, str] = {}
    for user, value in zip(generated.values["User_ID"], generated.values[column], strict=True):
        first.setdefault(user, value)
    expected = counts_of(published()["users"][key])
    observed = Counter(first.values())
    assert share_failures(observed, expected, USER_SHARE_RELATIVE, USER_SHARE_POINTS) == []


def test_the_marginal_check_fails_when_a_marginal_drifts() -> None:
    gender = counts_of(published()["Gender_counts"])
    assert share_failures(Counter(gender), gender, SHARE_RELATIVE, SHARE_POINTS) == []
    drifted = Counter({"M": gender["M"] - 8_000, "F": gender["F"] + 8_000})  # 1.5 points
    assert share_failures(drifted, gender, SHARE_RELATIVE, SHARE_POINTS) != []
    occupation = counts_of(published()["Occupation_counts"])
    without_8 = Counter({k: v for k, v in occupation.items() if k != "8"})  # 0.28% of rows
    assert share_failures(without_8, occupation, SHARE_RELATIVE, SHARE_POINTS) != []
    category = counts_of(published()["Product_Category_counts"])
    halved_9 = Counter({**category, "9": category["9"] // 2})  # 410 -> 205 rows
    assert share_failures(halved_9, category, SHARE_RELATIVE, SHARE_POINTS) != []
    extra = Counter({**category, "21": 10})
    assert share_failures(extra, category, SHARE_RELATIVE, SHARE_POINTS) != []


def test_purchase_distribution_matches(generated: Columns) -> None:
    real = published()["Purchase_describe"]
    purchase = generated.ints("Purchase")
    q1, median, q3 = statistics.quantiles(purchase, n=4)
    assert statistics.fmean(purchase) == pytest.approx(real["mean"], rel=PURCHASE_MOMENTS)
    assert statistics.pstdev(purchase) == pytest.approx(real["std"], rel=PURCHASE_MOMENTS)
    assert median == pytest.approx(real["50%"], rel=PURCHASE_MOMENTS)
    assert q1 == pytest.approx(real["25%"], rel=PURCHASE_QUARTILES)
    assert q3 == pytest.approx(real["75%"], rel=PURCHASE_QUARTILES)
    assert real["min"] <= min(purchase) and max(purchase) <= real["max"]


def test_purchase_by_category_matches(generated: Columns) -> None:
    table = published()["Purchase_by_Product_Category_describe"]
    names = table["columns"]
    by_category: dict[str, list[int]] = {}
    for category, value in zip(
        generated.values["Product_Category"], generated.ints("Purchase"), strict=True
    ):
        by_category.setdefault(category, []).append(value)
    assert set(by_category) == {str(c) for c in range(1, 21)}
    for category, values in by_category.items():
        real = dict(zip(names, table[category], strict=True))
        mean = statistics.fmean(values)
        assert mean == pytest.approx(real["mean"], rel=CATEGORY_MEAN), category
        assert real["min"] <= min(values) and max(values) <= real["max"], category


def test_purchase_by_gender_matches(generated: Columns) -> None:
    real = published()["Purchase_by_Gender"]
    for gender in ("F", "M"):
        values = [
            int(p)
            for g, p in zip(generated.values["Gender"], generated.values["Purchase"], strict=True)
            if g == gender
        ]
        assert statistics.fmean(values) == pytest.approx(real[gender]["mean"], rel=0.02)


def test_users_and_products(generated: Columns) -> None:
    real = published()
    users = len(set(generated.values["User_ID"]))
    products = len(set(generated.values["Product_ID"]))
    assert users == generated.users
    assert users == pytest.approx(real["users"]["count"], rel=USERS)
    assert products == pytest.approx(real["products"]["count"], rel=PRODUCTS)
    ids = sorted(int(u) for u in set(generated.values["User_ID"]))
    first, last = real["User_ID_range"]
    assert ids[0] == first
    assert ids[-1] == pytest.approx(last, abs=0.01 * (last - first))


def test_rows_per_user(generated: Columns) -> None:
    real = published()["users"]["transactions_per_user"]
    per_user = Counter(generated.values["User_ID"]).values()
    assert statistics.fmean(per_user) == pytest.approx(real["mean"], rel=0.03)
    assert min(per_user) >= real["min"]
    assert max(per_user) == pytest.approx(real["max"], rel=0.3)


def test_fixture_is_a_faithful_copy_of_the_shared_statistics() -> None:
    if not SHARED.exists():
        pytest.skip("shared/data/walmart is not beside the project (a clone or CI)")
    raw = SHARED.read_bytes()
    shared = json.loads(raw)
    fixture = published()
    assert fixture["_provenance"]["copied_from_sha256"] == hashlib.sha256(raw).hexdigest()
    for key, value in fixture.items():
        if key == "_provenance":
            continue
        if key in ("users", "products"):
            for inner, inner_value in value.items():
                if isinstance(inner_value, dict) and inner in shared[key]:
                    for leaf, leaf_value in inner_value.items():
                        assert shared[key][inner][leaf] == leaf_value, (key, inner, leaf)
                else:
                    assert shared[key][inner] == inner_value, (key, inner)
        else:
            assert shared[key] == value, key
