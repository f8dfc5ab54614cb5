"""The synthetic data generator (lakehouse/generator/dataset.py): determinism, the structure of
the real file, injected bad rows, daily batches and the API.

Every file is read back here with the csv module and judged by rules written out in this file
(including an independent re-implementation of Silver's validation), never with the generator's
own code. The comparison with the real dataset's statistics is in test_generator_stats.py.
"""

from __future__ import annotations

import builtins
import csv
import hashlib
import io
import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingestion.schema import EXPECTED_COLUMNS
from lakehouse.generator import BAD_ROW_KINDS, GeneratedDataset, write_dataset
from tests.python.bronze_oracle import CSV_HEADER, DEMOGRAPHICS, silver_rule_names

AGE_BANDS = {"0-17", "18-25", "26-35", "36-45", "46-50", "51-55", "55+"}
STAY_YEARS = {"0", "1", "2", "3", "4+"}
SILVER_REASONS = silver_rule_names()


# ------------------------------------------------------------------------------------- helpers


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _int(text: str) -> int | None:
    """Spark's try_cast(trim(x) as int): an optionally signed run of digits, else null."""
    text = text.strip()
    return int(text) if re.fullmatch(r"[+-]?[0-9]+", text) else None


def silver_rejections(row: dict[str, str]) -> list[str]:
    """Every Silver rule a raw row breaks (macros/validation.sql and stg_walmart__sales.sql,
    re-implemented: trim, upper, try_cast; empty strings are nulls)."""
    broken = []
    customer = _int(row["User_ID"])
    if customer is None or not 1_000_001 <= customer <= 9_999_999:
        broken.append("invalid_customer_id")
    if not re.fullmatch(r"P00[0-9]{5,6}", row["Product_ID"].strip().upper()):
        broken.append("invalid_product_id")
    if row["Gender"].strip().upper() not in {"M", "F"}:
        broken.append("invalid_gender")
    age = row["Age"].strip()
    if age not in AGE_BANDS:
        broken.append("invalid_age_band")
    occupation = _int(row["Occupation"])
    if occupation is None or not 0 <= occupation <= 20:
        broken.append("invalid_occupation_code")
    if row["City_Category"].strip().upper() not in {"A", "B", "C"}:
        broken.append("invalid_city_category")
    if row["Stay_In_Current_City_Years"].strip() not in STAY_YEARS:
        broken.append("invalid_years_in_city")
    marital = _int(row["Marital_Status"])
    if marital not in (0, 1):
        broken.append("invalid_marital_status")
    if age == "0-17" and marital == 1:
        broken.append("married_minor")
    category = _int(row["Product_Category"])
    if category is None or not 1 <= category <= 20:
        broken.append("invalid_product_category")
    purchase = _int(row["Purchase"])
    if purchase is None or purchase <= 0:
        broken.append("invalid_purchase_amount")
    return broken


def assert_real_structure(rows: list[dict[str, str]]) -> None:
    """What every row of the real file obeys, and what holds across its rows."""
    demographics: dict[str, tuple[str, ...]] = {}
    categories: dict[str, str] = {}
    pairs = Counter((row["User_ID"], row["Product_ID"]) for row in rows)
    assert max(pairs.values()) == 1, "a (user, product) pair repeats"
    for row in rows:
        assert silver_rejections(row) == [], row
        assert re.fullmatch(r"10[0-9]{5}", row["User_ID"]), row  # 7 digits, from 1000001
        assert row["Gender"] in {"M", "F"}
        assert row["City_Category"] in {"A", "B", "C"}
        assert row["Occupation"] == str(int(row["Occupation"]))  # no padding, 0..20
        assert row["Product_Category"] == str(int(row["Product_Category"]))
        assert row["Purchase"] == str(int(row["Purchase"]))
        values = tuple(row[c] for c in DEMOGRAPHICS)
        assert demographics.setdefault(row["User_ID"], values) == values, row["User_ID"]
        category = row["Product_Category"]
        assert categories.setdefault(row["Product_ID"], category) == category, row["Product_ID"]


# ------------------------------------------------------------------------------------ fixtures


@dataclass(frozen=True)
class Generated:
    dataset: GeneratedDataset
    rows: list[dict[str, str]]


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    path = tmp_path_factory.mktemp("clean") / "sales.csv"
    dataset = write_dataset(path, rows=60_000, seed=3)
    return Generated(dataset, read_rows(path))


@pytest.fixture(scope="module")
def with_bad_rows(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    path = tmp_path_factory.mktemp("bad") / "sales.csv"
    dataset = write_dataset(path, rows=40_000, seed=5, bad_rows=0.05)
    return Generated(dataset, read_rows(path))


@pytest.fixture(scope="module")
def daily(tmp_path_factory: pytest.TempPathFactory) -> GeneratedDataset:
    return write_dataset(tmp_path_factory.mktemp("days") / "out", rows=50_000, seed=9, days=5)


# --------------------------------------------------------------------------------- determinism


def test_same_arguments_give_the_same_bytes(tmp_path: Path) -> None:
    first = write_dataset(tmp_path / "a" / "x.csv", rows=30_000, seed=11, bad_rows=0.02)
    second = write_dataset(tmp_path / "b" / "x.csv", rows=30_000, seed=11, bad_rows=0.02)
    assert sha256(first.files[0]) == sha256(second.files[0])
    assert first.expected_file.read_bytes() == second.expected_file.read_bytes()


def test_same_arguments_give_the_same_bytes_over_days(tmp_path: Path) -> None:
    first = write_dataset(tmp_path / "a", rows=20_000, seed=2, days=3, bad_rows=0.01)
    second = write_dataset(tmp_path / "b", rows=20_000, seed=2, days=3, bad_rows=0.01)
    assert [sha256(f) for f in first.files] == [sha256(f) for f in second.files]


def test_another_seed_gives_other_data(tmp_path: Path) -> None:
    first = write_dataset(tmp_path / "a.csv", rows=30_000, seed=11)
    second = write_dataset(tmp_path / "b.csv", rows=30_000, seed=12)
    assert sha256(first.files[0]) != sha256(second.files[0])
    lines_a = set(first.files[0].read_text().splitlines()[1:])
    lines_b = set(second.files[0].read_text().splitlines()[1:])
    assert len(lines_a & lines_b) < 0.01 * len(lines_a)


# ----------------------------------------------------------------------------------- structure


def test_header_encoding_and_line_endings(clean: Generated) -> None:
    raw = clean.dataset.files[0].read_bytes()
    text = raw.decode("utf-8")
    assert ",".join(EXPECTED_COLUMNS) == CSV_HEADER
    assert text.startswith(CSV_HEADER + "\n")
    assert text.endswith("\n") and "\r" not in text and '"' not in text
    lines = text.splitlines()
    assert len(lines) == 60_001
    assert {line.count(",") for line in lines} == {9}


def test_values_look_like_the_real_file(clean: Generated) -> None:
    rows = clean.rows
    assert {row["Age"] for row in rows} == AGE_BANDS
    assert {row["Stay_In_Current_City_Years"] for row in rows} == STAY_YEARS
    assert {row["Marital_Status"] for row in rows} == {"0", "1"}
    assert {row["Occupation"] for row in rows} == {str(i) for i in range(21)}
    assert {row["Product_Category"] for row in rows} == {str(i) for i in range(1, 21)}
    products = {row["Product_ID"] for row in rows}
    ending_42 = sum(p.endswith("42") for p in products)
    assert ending_42 >= 0.97 * len(products)  # like the real ids; categories 19/20 differ
    assert all(re.fullmatch(r"P00[0-9]{5,6}", p) for p in products)
    assert any(len(p) == 8 for p in products) and any(len(p) == 9 for p in products)


def test_rows_obey_the_real_files_invariants(clean: Generated) -> None:
    assert_real_structure(clean.rows)  # constant demographics, one category, no repeats, ...
    married_minors = [r for r in clean.rows if r["Age"] == "0-17" and r["Marital_Status"] == "1"]
    assert married_minors == []


def test_users_and_products_scale_with_size(clean: Generated, tmp_path: Path) -> None:
    users = {int(row["User_ID"]) for row in clean.rows}
    assert len(users) == round(60_000 * 5_891 / 550_068) == clean.dataset.users
    assert min(users) == 1_000_001
    assert max(users) - min(users) + 1 <= 1.05 * len(users)  # consecutive-ish ids
    products = {row["Product_ID"] for row in clean.rows}
    assert len(products) == clean.dataset.products
    # sub-linear: ten times fewer rows, about sqrt(10) times fewer products
    small = write_dataset(tmp_path / "small.csv", rows=6_000, seed=3)
    assert 2.0 < clean.dataset.products / small.products < 4.5


def test_rows_per_user_are_heavy_tailed(clean: Generated) -> None:
    per_user = sorted(Counter(row["User_ID"] for row in clean.rows).values())
    mean = sum(per_user) / len(per_user)
    median = per_user[len(per_user) // 2]
    assert 88 < mean < 99
    assert per_user[0] >= 6
    assert median < 0.75 * mean  # a long right tail
    assert per_user[-1] > 4 * mean


def test_purchases_sit_on_five_price_tiers_per_product(clean: Generated) -> None:
    by_product: dict[str, list[int]] = defaultdict(list)
    for row in clean.rows:
        by_product[row["Product_ID"]].append(int(row["Purchase"]))
    centres = (0.21, 0.41, 0.60, 0.79, 0.98)
    near: Counter[float] = Counter()
    total = 0
    for prices in by_product.values():
        if len(prices) >= 100:  # the well-sold products sell at all five tiers, as in the head
            top = max(prices)
            total += len(prices)
            for price in prices:
                distance, centre = min((abs(price / top - c), c) for c in centres)
                if distance <= 0.04:
                    near[centre] += 1
    assert total > 10_000
    assert sum(near.values()) >= 0.9 * total
    assert all(near[centre] > 0.01 * total for centre in centres)


def test_tiny_datasets_are_still_valid(tmp_path: Path) -> None:
    for rows in (1, 5, 99, 500, 2_345):
        dataset = write_dataset(tmp_path / f"t{rows}.csv", rows=rows, seed=rows)
        written = read_rows(dataset.files[0])
        assert len(written) == rows == dataset.rows
        assert_real_structure(written)


# ------------------------------------------------------------------------------------ bad rows


def test_bad_rows_are_counted_exactly_per_kind(with_bad_rows: Generated) -> None:
    dataset = with_bad_rows.dataset
    assert tuple(dataset.bad_rows) == BAD_ROW_KINDS == SILVER_REASONS
    assert sum(dataset.bad_rows.values()) == round(0.05 * 40_000)
    assert max(dataset.bad_rows.values()) - min(dataset.bad_rows.values()) <= 1  # spread evenly
    found = Counter(reason for row in with_bad_rows.rows for reason in silver_rejections(row))
    assert found == Counter(dataset.bad_rows)


def test_each_bad_row_breaks_exactly_one_rule(with_bad_rows: Generated) -> None:
    broken = {
        line: reasons
        for line, row in enumerate(with_bad_rows.rows, start=2)
        if (reasons := silver_rejections(row))
    }
    assert all(len(reasons) == 1 for reasons in broken.values())
    expected = json.loads(with_bad_rows.dataset.expected_file.read_text())
    assert set(expected["bad_lines"]) == set(broken)
    assert expected["bad_rows_by_reason"] == with_bad_rows.dataset.bad_rows
    assert expected["rows"] == 40_000
    assert expected["valid_rows"] == 40_000 - len(broken)


def test_bad_rows_stay_well_formed_csv(with_bad_rows: Generated) -> None:
    text = with_bad_rows.dataset.files[0].read_text(encoding="utf-8")
    lines = text.split("\n")
    assert lines[-1] == "" and len(lines) == 40_002
    assert all(line.count(",") == 9 for line in lines[:-1])
    assert '"' not in text and "\r" not in text
    valid = [row for row in with_bad_rows.rows if not silver_rejections(row)]
    assert len(valid) == 40_000 - 2_000
    assert len({(r["User_ID"], r["Product_ID"]) for r in valid}) == len(valid)


def test_expected_counts_sit_next_to_the_file(tmp_path: Path) -> None:
    out = tmp_path / "day2.csv"
    dataset = write_dataset(out, rows=3_000, seed=7, bad_rows=0.05)
    assert dataset.files == (out,)
    assert dataset.expected_file == tmp_path / "day2.csv.expected.json"
    expected = json.loads(dataset.expected_file.read_text())
    assert sum(expected["bad_rows_by_reason"].values()) == 150


# ---------------------------------------------------------------------------------------- days


def test_days_write_one_file_per_day(daily: GeneratedDataset) -> None:
    names = [file.name for file in daily.files]
    assert names == [f"walmart_sales_day_{day:02d}.csv" for day in range(1, 6)]
    assert daily.expected_file.name == "expected.json"
    assert daily.expected_file.parent == daily.files[0].parent
    counted = [len(read_rows(file)) for file in daily.files]
    assert counted == list(daily.rows_per_file)
    assert sum(counted) == 50_000
    assert max(counted) - min(counted) <= 1


def test_customers_return_and_new_ones_arrive(daily: GeneratedDataset) -> None:
    seen: set[str] = set()
    all_rows = []
    for day, file in enumerate(daily.files, start=1):
        rows = read_rows(file)
        all_rows += rows
        users = {row["User_ID"] for row in rows}
        new, returning = users - seen, users & seen
        if day == 1:
            assert returning == set() and len(new) > 0.4 * daily.users
        else:
            assert len(returning) > 3 * len(new) > 0  # mostly returning, some new
        seen |= users
    assert len(seen) == daily.users
    assert_real_structure(all_rows)  # across days too: same demographics, no repeated pair


def test_days_with_bad_rows_report_per_file(tmp_path: Path) -> None:
    dataset = write_dataset(tmp_path / "d", rows=22_000, seed=4, days=2, bad_rows=0.1)
    expected = json.loads(dataset.expected_file.read_text())
    assert len(expected["files"]) == 2
    for entry, file, counts in zip(
        expected["files"], dataset.files, dataset.bad_rows_per_file, strict=True
    ):
        rows = read_rows(file)
        found = Counter(r for row in rows for r in silver_rejections(row))
        assert found == Counter(counts) == Counter(entry["bad_rows_by_reason"])
        assert entry["rows"] == len(rows)
    assert sum(dataset.bad_rows.values()) == 2_200


# ----------------------------------------------------------------------------------------- API


def test_progress_reports_rows_written(tmp_path: Path) -> None:
    seen: list[int] = []
    write_dataset(tmp_path / "p", rows=400_000, seed=1, days=2, progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == 400_000
    assert len(seen) > 2


@pytest.mark.parametrize(
    "arguments",
    [{"rows": 0}, {"rows": 10, "days": 11}, {"days": 0}, {"bad_rows": -0.1}, {"bad_rows": 1.5}],
)
def test_bad_arguments_are_refused(tmp_path: Path, arguments: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        write_dataset(tmp_path / "x.csv", **arguments)  # type: ignore[arg-type]


def test_the_generator_reads_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its calibration is in the package: it must run where shared/ does not exist."""
    opened: list[tuple[str, str]] = []
    real_open = io.open

    def spy(file: object, mode: str = "r", *args: object, **kwargs: object) -> object:
        opened.append((str(file), mode))
        return real_open(file, mode, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(io, "open", spy)
    monkeypatch.setattr(builtins, "open", spy)
    write_dataset(tmp_path / "x.csv", rows=5_000, seed=1)
    reads = [(f, m) for f, m in opened if "r" in m and "+" not in m]
    assert reads == [] and opened, opened


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.integers(min_value=1, max_value=4_000),
    seed=st.integers(min_value=0, max_value=2**32),
    days=st.integers(min_value=1, max_value=4),
    bad=st.sampled_from([0.0, 0.01, 0.2, 1.0]),
)
def test_any_arguments_give_consistent_files(
    tmp_path: Path, rows: int, seed: int, days: int, bad: float
) -> None:
    days = min(days, rows)
    out = tmp_path / f"h{rows}-{seed}-{days}-{bad}"
    dataset = write_dataset(out if days > 1 else out.with_suffix(".csv"), rows, seed, days, bad)
    written = [row for file in dataset.files for row in read_rows(file)]
    assert len(written) == rows == sum(dataset.rows_per_file)
    reasons = [silver_rejections(row) for row in written]
    assert all(len(r) <= 1 for r in reasons)
    assert Counter(r[0] for r in reasons if r) == Counter(dataset.bad_rows)
    assert sum(dataset.bad_rows.values()) == round(bad * rows)
    if bad == 0.0:
        assert_real_structure(written)
