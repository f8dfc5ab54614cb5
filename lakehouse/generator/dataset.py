"""Synthetic Walmart (Black Friday) sales at any size, shaped like the real 550,068-row file.

`write_dataset` writes CSV files with the ten columns of `ingestion.schema.EXPECTED_COLUMNS`,
calibrated on the real file's published statistics and on its first 29,116 rows (see
`lakehouse/generator/walmart_profile.py`; nothing outside the package is read at run time).

How a dataset is built, all vectorised with numpy (no per-row Python):

1. Users. ``rows * 5,891 / 550,068`` users (93.4 rows each, as in the real file), with ids from
   1000001 and a few gaps (the real 5,891 users span 1000001..1006040). Each user's demographics
   (gender, age, occupation, city, stay, marital status) are one profile of the head's 3,908 real
   users, from the profile table re-weighted to the published users-by-gender/age/city/marital
   counts, picked by the user id alone (a Weyl sequence over the ids, as even as systematic
   sampling): the same User_ID has the same demographics whatever the seed, size or run, so
   separately generated files can be landed together. No minor is married.
2. Rows per user: a minimum of 6 plus a log-normal amount, softly capped near 1,026 (the real
   min and max), scaled by one factor per (gender, value) cell of the five published
   gender-by-attribute row tables, fitted by iterative proportional fitting. Every row marginal
   (gender, age, occupation, city, stay, marital) therefore matches the real file to within
   rounding, while rows per user stay heavy-tailed (city-A users buy 2.6x more than city-C users,
   as in the real data).
3. Products. ``3,631 * sqrt(rows / 550,068)`` products (Heaps-like sub-linear growth), at least
   min(rows, 400) so that small files still have a catalogue wider than a heavy user's basket, and
   at most 2 x 3,626 + 5 so that ids stay in the real `P00nnnn42` style; split over categories
   like the real catalogue. Each product has one category, a function of its id alone (each id
   number belongs to one category for ever), a log-normal popularity (the top
   ones bending towards 27% of users), and per gender an exact number of rows: the published
   gender-by-category row table, scaled.
4. Who bought what: per gender, the users' row slots (user after user) are matched with the
   products' row slots laid out in random order, each product's slots spread evenly over it (a
   configuration model, jittered), then rows swap products until no (user, product) pair
   repeats. Row marginals and category totals are therefore exact, with no duplicate rows.
5. Purchase: all products of a category share a price grid, the category's top base
   (max / 1.02) times five tiers (0.216, 0.412, 0.607, 0.803, 1.0) plus a uniform +-2% spread.
   Most products sell at all five tiers; little-sold ones may stop at tier 4, 3 or 2. Tier
   shares per category were fitted to the published describe(); the draws are stratified per
   category, so each category's tier split (and so its mean) holds exactly.
6. Days: every user arrives at a time in [0, 1) (half of them at 0: the existing customer base)
   and spreads their rows uniformly between arrival and the end; the rows are cut into `days`
   equal batches by that time. Day 1 is all new customers; later days are mostly returning
   customers plus the ones arriving that day. Within a file, rows come in passes over the users
   sorted by id, like the real file.
7. Bad rows: ``round(bad_rows * rows)`` rows, spread evenly over `BAD_ROW_KINDS`, each with
   exactly one of Silver's rules broken (the rest of the row stays valid), replacing good rows.
8. CSV: chunks rendered on two threads (prices are drawn there) by pyarrow's CSV writer over five
   dictionary-encoded columns (the six demographics are one value per user), with a separator
   byte turned into commas afterwards; no quoting, LF line ends, UTF-8.

Sizes: users grow linearly with rows; products as sqrt(rows), floored at min(rows, 400) and
capped at twice the real catalogue (7,257), which keeps ids in the real style. At 5.5 M rows a
product then has about 760 rows, a user still about 93.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.csv as pacsv

from ingestion.schema import EXPECTED_COLUMNS
from lakehouse.generator import walmart_profile as wp

log = logging.getLogger(__name__)

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
Bool = npt.NDArray[np.bool_]
Keys = npt.NDArray[np.signedinteger[Any]]
Progress = Callable[[int], None]

DEFAULT_ROWS: Final = wp.FULL_ROWS
DAY_FILE_TEMPLATE: Final = "walmart_sales_day_{day:0{width}d}.csv"
EXPECTED_FILE_NAME: Final = "expected.json"
EXPECTED_SUFFIX: Final = ".expected.json"

# The reasons Silver rejects a row for (macros/validation.sql), in the order it checks them.
BAD_ROW_KINDS: Final[tuple[str, ...]] = (
    "invalid_customer_id",
    "invalid_product_id",
    "invalid_gender",
    "invalid_age_band",
    "invalid_occupation_code",
    "invalid_city_category",
    "invalid_years_in_city",
    "invalid_marital_status",
    "married_minor",
    "invalid_product_category",
    "invalid_purchase_amount",
)
# Values that break exactly their own rule, after Silver's trim/upper/try_cast: none contains a
# comma, quote or line break, and none becomes valid once trimmed, upper-cased or cast.
BAD_VALUES: Final[dict[str, tuple[str, ...]]] = {
    "invalid_customer_id": ("", "0", "999999", "10000000", "-1000001", "U1000001"),
    "invalid_product_id": ("", "P0012", "P001234567", "X00069042", "P00ABC42", "00069042"),
    "invalid_gender": ("", "X", "U", "MF", "0"),
    "invalid_age_band": ("", "17-25", "56+", "0_17", "unknown", "100"),
    "invalid_occupation_code": ("", "21", "-1", "99", "x"),
    "invalid_city_category": ("", "D", "Z", "AB", "0"),
    "invalid_years_in_city": ("", "5", "-1", "4-", "ten"),
    "invalid_marital_status": ("", "2", "-1", "Y", "9"),
    "invalid_product_category": ("", "0", "21", "-3", "x"),
    "invalid_purchase_amount": ("", "0", "-1", "-8370", "NaN"),
}

# Shape parameters (see the module docstring). Rows per user: log-normal sigma of the per-user
# draw before the cell factors. The published statistics give mean 93.4, min 6 and max 1,026;
# with this sigma the full-size file has mean 93.4, min 7, max ~1,010, median ~56.
_USER_ACTIVITY_SIGMA: Final = 0.95
# Product popularity: log-normal sigma, the share of users the most popular products bend
# towards (the real top product was bought by 32% of users), and the most rows one product may
# have per gender, as a share of that gender's users (a hard limit that keeps matching feasible).
_PRODUCT_POPULARITY_SIGMA: Final = 1.2
_PRODUCT_TOP_USER_SHARE: Final = 0.27
_PRODUCT_MAX_USER_SHARE: Final = 0.45
_MIN_PRODUCTS: Final = 400
_MAX_PRODUCT_SCALE: Final = 2.0
# Noise (in log rows) on the popularity ranking that decides which products lack top tiers.
_TOP_TIER_RANK_NOISE: Final = 0.7
# Days: share of users already customers on day 1 (arrival time 0).
_EXISTING_CUSTOMER_SHARE: Final = 0.5
# Rows are laid out in passes over the users sorted by id, like the real file.
_PASSES: Final = 16
_CHUNK_ROWS: Final = 131_072
# Vectorised swap rounds; the last few repeats (if any) go to an exact row-by-row pass.
_SWAP_ROUNDS: Final = 200
_SWAP_HANDOVER: Final = 4


@dataclass(frozen=True)
class GeneratedDataset:
    """What `write_dataset` wrote."""

    files: tuple[Path, ...]
    rows_per_file: tuple[int, ...]
    # injected bad rows per kind (every kind of BAD_ROW_KINDS, zeros included), all files together
    bad_rows: dict[str, int]
    bad_rows_per_file: tuple[dict[str, int], ...]
    expected_file: Path
    seed: int
    users: int
    products: int

    @property
    def rows(self) -> int:
        return sum(self.rows_per_file)

    @property
    def bad_row_count(self) -> int:
        return sum(self.bad_rows.values())


def write_dataset(
    out: Path,
    rows: int = DEFAULT_ROWS,
    seed: int = 42,
    days: int = 1,
    bad_rows: float = 0.0,
    progress: Progress | None = None,
) -> GeneratedDataset:
    """Write `rows` synthetic sales as CSV and return what was written.

    With `days == 1` and `out` ending in `.csv`, `out` is the file and the bad-row counts go to
    `<out>.expected.json`; otherwise `out` is a directory that receives
    `walmart_sales_day_01.csv`, ... and `expected.json`. `bad_rows` is the fraction of rows made
    invalid. `progress` is called with the number of rows written so far. The bytes depend only on
    (rows, seed, days, bad_rows).
    """
    _check_arguments(rows, seed, days, bad_rows)
    out = Path(out)
    single_file = days == 1 and out.suffix.lower() == ".csv"
    streams = np.random.SeedSequence(seed).spawn(8)
    rng = [np.random.default_rng(stream) for stream in streams]

    users = _sample_users(rng[0], _user_count(rows))
    per_user = _rows_per_user(rng[1], users, rows)
    catalogue = _make_catalogue(rng[2], users, per_user, rows)
    user_of_row = np.repeat(np.arange(users.count, dtype=np.int32), per_user)
    product_of_row = _match_rows(rng[3], user_of_row, users, catalogue)
    order, day_sizes = _schedule(rng[5], user_of_row, per_user, days)
    user_of_row = user_of_row[order]
    product_of_row = product_of_row[order]
    del order
    strata, category_rows = _category_strata(rng[4], catalogue.category[product_of_row])
    bad = _choose_bad_rows(rng[6], rows, bad_rows)

    if single_file:
        files = [out]
        expected_file = out.with_name(out.name + EXPECTED_SUFFIX)
    else:
        width = max(2, len(str(days)))
        files = [out / DAY_FILE_TEMPLATE.format(day=day, width=width) for day in range(1, days + 1)]
        expected_file = out / EXPECTED_FILE_NAME
    for file in files:
        file.parent.mkdir(parents=True, exist_ok=True)

    # prices are drawn while writing, chunk by chunk, on the writer threads
    writer = _Writer(users, catalogue, bad, progress, seed, category_rows)
    start = 0
    per_file_bad: list[dict[str, int]] = []
    per_file_lines: list[list[int]] = []
    for number, (file, size) in enumerate(zip(files, day_sizes, strict=True)):
        stop = start + size
        counts, lines = writer.write_file(
            file,
            user_of_row[start:stop],
            product_of_row[start:stop],
            strata[start:stop],
            start,
            number,
        )
        per_file_bad.append(counts)
        per_file_lines.append(lines)
        start = stop

    totals = {kind: sum(c[kind] for c in per_file_bad) for kind in BAD_ROW_KINDS}
    dataset = GeneratedDataset(
        files=tuple(files),
        rows_per_file=tuple(int(size) for size in day_sizes),
        bad_rows=totals,
        bad_rows_per_file=tuple(per_file_bad),
        expected_file=expected_file,
        seed=seed,
        users=users.count,
        products=int(np.count_nonzero(catalogue.degrees.sum(axis=1))),
    )
    _write_expected(dataset, bad_rows, days, per_file_lines)
    log.info(
        "wrote %d rows (%d users, %d products, %d bad) to %d file(s)",
        rows,
        dataset.users,
        dataset.products,
        dataset.bad_row_count,
        len(files),
    )
    return dataset


def _check_arguments(rows: int, seed: int, days: int, bad_rows: float) -> None:
    if rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    if days < 1 or days > rows:
        raise ValueError(f"days must be between 1 and rows ({rows}), got {days}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if not 0.0 <= bad_rows <= 1.0:
        raise ValueError(f"bad_rows is a fraction of rows in [0, 1], got {bad_rows}")


# --------------------------------------------------------------------------------------- users


@dataclass(frozen=True)
class _Users:
    ids: I64
    # value indices into walmart_profile's GENDERS, AGE_BANDS, OCCUPATIONS, ... (int8)
    attributes: npt.NDArray[np.int8]  # shape (users, 6): gender, age, occ, city, stay, marital

    @property
    def count(self) -> int:
        return int(self.ids.size)

    @property
    def gender(self) -> npt.NDArray[np.int8]:
        return self.attributes[:, 0]


_ATTRIBUTE_SIZES: Final = (
    len(wp.GENDERS),
    len(wp.AGE_BANDS),
    len(wp.OCCUPATIONS),
    len(wp.CITY_CATEGORIES),
    len(wp.STAY_YEARS),
    len(wp.MARITAL_STATUSES),
)


def _user_count(rows: int) -> int:
    return max(1, round(rows * wp.FULL_USERS / wp.FULL_ROWS))


@lru_cache(maxsize=1)
def _profile_weights() -> tuple[npt.NDArray[np.int8], F64]:
    """The head's user profiles, re-weighted (raking) to the published users-by-value counts."""
    profiles, counts = wp.user_profiles()
    table = np.array(profiles, dtype=np.int8)
    minors = table[:, 1] == wp.AGE_BANDS.index("0-17")
    married = table[:, 5] == wp.MARITAL_STATUSES.index("1")
    keep = ~(minors & married)  # none in the head; kept as a guarantee
    table = table[keep]
    weights = np.array(counts, dtype=np.float64)[keep]
    margins = (
        (0, wp.USERS_BY_GENDER),
        (1, wp.USERS_BY_AGE),
        (3, wp.USERS_BY_CITY),
        (5, wp.USERS_BY_MARITAL),
    )
    for _ in range(100):
        for column, target in margins:
            wanted = np.asarray(target, dtype=np.float64)
            wanted *= weights.sum() / wanted.sum()
            current = np.bincount(table[:, column], weights=weights, minlength=wanted.size)
            factor = np.divide(wanted, current, out=np.ones_like(wanted), where=current > 0)
            weights = weights * factor[table[:, column]]
    weights /= weights.sum()
    table.setflags(write=False)  # cached: shared by every call
    weights.setflags(write=False)
    return table, weights


def _sample_users(rng: np.random.Generator, count: int) -> _Users:
    span = max(count, round(count * wp.USER_ID_SPAN / wp.FULL_USERS))
    if count <= 2 or span == count:
        offsets = np.arange(count, dtype=np.int64)
        if count == 2:
            offsets[1] = span - 1
    else:
        inner = rng.choice(np.arange(1, span - 1, dtype=np.int64), count - 2, replace=False)
        offsets = np.concatenate(([0], np.sort(inner), [span - 1])).astype(np.int64)
    ids = wp.USER_ID_FIRST + offsets
    if int(ids[-1]) > 9_999_999:
        raise ValueError("too many rows: user ids would pass 9,999,999")
    return _Users(ids=ids, attributes=_demographics_of(ids))


# Irrational step of the sequence that turns a user id into a point of [0, 1) (Weyl sequence):
# consecutive ids spread evenly over [0, 1), as systematic sampling does.
_USER_ID_STEP: Final = (math.sqrt(5) - 1) / 2


def _demographics_of(ids: I64) -> npt.NDArray[np.int8]:
    """Each user's demographics, a function of the user id alone (not of the seed, the size or
    the run): files generated separately agree on every user they share, as a real store's files
    do, so they can be landed together. The id's point of the Weyl sequence picks one profile of
    the re-weighted profile table by inverse CDF, so a run of ids matches the weights as closely
    as systematic sampling did."""
    table, weights = _profile_weights()
    points = np.modf((ids - wp.USER_ID_FIRST).astype(np.float64) * _USER_ID_STEP + 0.5)[0]
    cumulative = np.cumsum(weights)
    chosen = np.minimum(np.searchsorted(cumulative, points, side="right"), weights.size - 1)
    return table[chosen]


# ------------------------------------------------------------------------------- rows per user


def _soft_cap(values: F64, cap: float) -> F64:
    """About `values` below `cap`, bending smoothly towards `cap` above it (never reaching it):
    cap * r / (1 + r^4)^(1/4) with r = values / cap, computed without overflow."""
    ratio = values / cap
    small = ratio <= 1.0
    inverse = np.where(small, ratio, 1.0 / np.maximum(ratio, 1.0))
    inverse *= inverse
    inverse *= inverse
    root = np.sqrt(np.sqrt(1.0 + inverse))
    result: F64 = cap * np.where(small, ratio, 1.0) / root
    return result


def _largest_remainder(total: int, weights: F64) -> I64:
    """Split `total` into integers proportional to `weights` (deterministic)."""
    if total <= 0 or weights.sum() <= 0:
        return np.zeros(weights.size, dtype=np.int64)
    exact: F64 = weights / weights.sum() * total
    floor: I64 = np.floor(exact).astype(np.int64)
    short = total - int(floor.sum())
    if short > 0:
        floor[np.argsort(-(exact - floor), kind="stable")[:short]] += 1
    return floor


def _rows_per_user(rng: np.random.Generator, users: _Users, rows: int) -> I64:
    count = users.count
    if count == 1:
        return np.array([rows], dtype=np.int64)
    low = min(wp.ROWS_PER_USER_MIN, rows // count)
    products = _catalogue_size(rows)
    high = max(-(-rows // count), min(wp.ROWS_PER_USER_MAX, products // 2))
    excess = float(rows - low * count)
    base = np.exp(_USER_ACTIVITY_SIGMA * rng.standard_normal(count))
    gender = users.gender.astype(np.int64)
    scale = rows / wp.FULL_ROWS
    cells: list[tuple[I64, F64]] = []
    tables = (
        (1, wp.ROWS_GENDER_X_AGE),
        (2, wp.ROWS_GENDER_X_OCCUPATION),
        (3, wp.ROWS_GENDER_X_CITY),
        (4, wp.ROWS_GENDER_X_STAY),
        (5, wp.ROWS_GENDER_X_MARITAL),
    )
    for column, table in tables:
        values = len(table[0])
        cell = gender * values + users.attributes[:, column].astype(np.int64)
        present = np.bincount(cell, minlength=2 * values)
        target = np.asarray(table, dtype=np.float64).ravel() * scale - low * present
        target = np.where(present > 0, np.maximum(target, 0.5 * present), 0.0)
        cells.append((cell, target * excess / target.sum()))

    cap = float(high - low)
    factor = np.ones(count)
    for _ in range(100):
        worst = 0.0
        for cell, target in cells:
            extra = _soft_cap(base * factor, cap)
            current = np.bincount(cell, weights=extra, minlength=target.size)
            ratio = np.divide(target, current, out=np.ones_like(target), where=current > 0)
            factor *= np.clip(ratio, 0.2, 5.0)[cell]
            worst = max(worst, float(np.max(np.abs(ratio - 1.0))))
        if worst < 1e-5:
            break
    extra = _soft_cap(base * factor, cap)
    return low + _round_to_total(extra, rows - low * count, high - low)


def _round_to_total(values: F64, total: int, high: int) -> I64:
    """Integers in [0, high], close to `values`, summing to `total` (<= high * size): floors,
    then +-1 steps on the largest remainders."""
    result = np.clip(np.floor(values), 0, high).astype(np.int64)
    remainder = values - result
    while (short := total - int(result.sum())) != 0:
        if short > 0:
            priority = np.where(result < high, remainder, -np.inf)
        else:
            priority = np.where(result > 0, -remainder, -np.inf)
        order = np.argsort(-priority, kind="stable")[: abs(short)]
        order = order[np.isfinite(priority[order])]
        if order.size == 0:
            raise ValueError(f"cannot split {total} into {values.size} parts of at most {high}")
        step = 1 if short > 0 else -1
        result[order] += step
        remainder[order] -= step
    return result


# ----------------------------------------------------------------------------------- catalogue


@dataclass(frozen=True)
class _Catalogue:
    ids: tuple[str, ...]
    category: npt.NDArray[np.int8]  # 0-based category index per product
    # the product's highest price tier (5 = all five tiers): `top_tier` on a share `top_share` of
    # its rows and `top_tier - 1` on the rest (a share < 1 only on the product that straddles two
    # tiers in the row-weighted split, so that each category's split is exact)
    top_tier: npt.NDArray[np.int8]
    top_share: npt.NDArray[np.float32]
    degrees: I64  # shape (products, 2): rows per product for F, M users


def _catalogue_size(rows: int) -> int:
    """Products of categories 1-18 for a dataset of `rows` rows (sub-linear growth, capped)."""
    main = sum(wp.PRODUCTS_PER_CATEGORY[:18])
    scaled = round(main * math.sqrt(rows / wp.FULL_ROWS))
    return int(min(max(scaled, min(rows, _MIN_PRODUCTS)), round(_MAX_PRODUCT_SCALE * main)))


def _make_catalogue(
    rng: np.random.Generator, users: _Users, per_user: I64, rows: int
) -> _Catalogue:
    rows_by_gender = np.bincount(users.gender, weights=per_user, minlength=2).astype(np.int64)
    users_by_gender = np.bincount(users.gender, minlength=2)
    # rows per (category, gender): the published gender x category table, scaled
    by_category = np.stack(
        [
            _largest_remainder(
                int(rows_by_gender[g]), np.asarray(wp.ROWS_GENDER_X_CATEGORY[g], np.float64)
            )
            for g in range(2)
        ],
        axis=1,
    )
    cap = np.maximum(1, np.floor(_PRODUCT_MAX_USER_SHARE * users_by_gender)).astype(np.int64)

    # products per category: the real split of the scaled catalogue (categories 19 and 20 keep
    # their few products), never more than the category's rows, never too few to hold them
    wanted = np.zeros(20, dtype=np.int64)
    wanted[:18] = np.maximum(
        1,
        _largest_remainder(
            _catalogue_size(rows), np.asarray(wp.PRODUCTS_PER_CATEGORY[:18], np.float64)
        ),
    )
    wanted[18:] = wp.PRODUCTS_PER_CATEGORY[18:]
    totals = by_category.sum(axis=1)
    needed = np.max(-(-by_category // cap[None, :]), axis=1)
    per_category = np.minimum(np.maximum(wanted, needed), totals)

    categories = np.repeat(np.arange(20, dtype=np.int8), per_category)
    popularity = np.exp(_PRODUCT_POPULARITY_SIGMA * rng.standard_normal(categories.size))
    degrees = np.zeros((categories.size, 2), dtype=np.int64)
    top_tier = np.zeros(categories.size, dtype=np.int8)
    top_share = np.ones(categories.size, dtype=np.float32)
    start = 0
    for c in range(20):
        k = int(per_category[c])
        if k == 0:
            continue
        span = slice(start, start + k)
        # the most popular products bend towards 27% of the users (the real top one: 32%)
        expected = totals[c] * popularity[span] / popularity[span].sum()
        weight = _soft_cap(expected, _PRODUCT_TOP_USER_SHARE * users.count)
        degrees[span] = _category_degrees(rng, by_category[c], weight, cap)
        top_tier[span], top_share[span] = _top_tiers(rng, c, degrees[span].sum(axis=1))
        start += k
    ids = _product_ids(rng, per_category)
    return _Catalogue(
        ids=ids, category=categories, top_tier=top_tier, top_share=top_share, degrees=degrees
    )


def _category_degrees(rng: np.random.Generator, rows: I64, weight: F64, cap: I64) -> I64:
    """Rows per product and gender in one category: every product gets at least one row, then
    the rows go out in proportion to popularity, at most `cap[g]` per product and gender."""
    k = weight.size
    total = int(rows.sum())
    females = round(k * rows[0] / total)
    females = min(max(females, k - int(rows[1])), int(rows[0]))
    first = np.zeros((k, 2), dtype=np.int64)
    first[:, 1] = 1
    first[rng.permutation(k)[:females], :] = (1, 0)
    result = np.zeros((k, 2), dtype=np.int64)
    for g in range(2):
        result[:, g] = _capped_allocation(rng, int(rows[g]), weight, first[:, g], int(cap[g]))
    return result


def _capped_allocation(
    rng: np.random.Generator, total: int, weight: F64, low: I64, high: int
) -> I64:
    """Integers x with sum `total`, low <= x <= high, x about proportional to `weight`."""
    if total == 0:
        return np.zeros(weight.size, dtype=np.int64)
    lo, hi = -60.0, 60.0
    for _ in range(48):  # bisection on log(lambda) for sum(clip(lambda * w, low, high)) = total
        mid = (lo + hi) / 2
        if np.clip(math.exp(mid) * weight, low, high).sum() < total:
            lo = mid
        else:
            hi = mid
    exact = np.clip(math.exp(hi) * weight, low, high)
    result = np.floor(exact).astype(np.int64)
    short = total - int(result.sum())
    jitter = rng.random(weight.size) * 1e-9
    while short != 0:
        if short > 0:
            key = np.where(result < high, exact - result + jitter, -np.inf)
            take = np.argsort(-key, kind="stable")[:short]
            take = take[np.isfinite(key[take])]
            result[take] += 1
        else:
            key = np.where(result > low, result - exact + jitter, -np.inf)
            take = np.argsort(-key, kind="stable")[:-short]
            take = take[np.isfinite(key[take])]
            result[take] -= 1
        if take.size == 0:
            raise RuntimeError("product rows do not fit the catalogue")  # pragma: no cover
        short = total - int(result.sum())
    return result


def _top_tiers(
    rng: np.random.Generator, category: int, degree: I64
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float32]]:
    """Each product's top price tier. In the head, popular products sell at all five tiers and
    the products missing top tiers are the little-sold ones; so products are ranked by rows
    (with noise), laid end to end by rows, and the tiers go out down that line in the row
    shares of `CATEGORY_TOP_TIER_SHARES`; a product across a boundary gets both tiers."""
    shares = np.asarray(wp.CATEGORY_TOP_TIER_SHARES[category], dtype=np.float64)
    bounds = np.cumsum(shares / shares.sum())[:-1]
    rank = np.log(np.maximum(degree, 1)) + _TOP_TIER_RANK_NOISE * rng.standard_normal(degree.size)
    order = np.argsort(-rank, kind="stable")
    total = max(float(degree.sum()), 1.0)
    end = np.cumsum(degree[order].astype(np.float64)) / total
    start = end - degree[order] / total
    first = np.searchsorted(bounds, start, side="right")  # option at the product's start
    crossing = first < np.searchsorted(bounds, np.maximum(start, end - 1e-12), side="right")
    share = np.ones(degree.size)
    edge = bounds[np.minimum(first, bounds.size - 1)]
    share[crossing] = ((edge - start) / np.maximum(end - start, 1e-12))[crossing]
    options = np.asarray(wp.PRODUCT_TOP_TIERS, dtype=np.int8)
    tiers = np.empty(degree.size, dtype=np.int8)
    tiers[order] = options[first]
    top_share = np.empty(degree.size, dtype=np.float32)
    top_share[order] = share
    return tiers, top_share


def _product_ids(rng: np.random.Generator, per_category: I64) -> tuple[str, ...]:
    """`P00` + 4-digit number + `42` (a few `P00` + 3-digit + `42`) for categories 1-18, and
    `P0037` + 4 digits not ending in 42 for categories 19-20, like the real ids; in category
    order (the products of category 1 first).

    A product's category is a function of its id alone (not of the seed or the size): every id
    number belongs to one category (`_id_categories`), and a category draws its products from
    the lowest numbers it owns. Files generated separately therefore agree on every product they
    share, as a real store's files do."""
    main = int(per_category[:18].sum())
    five = min(round(main * wp.FIVE_DIGIT_PRODUCT_SHARE), 902)
    five_per_category = _largest_remainder(five, per_category[:18].astype(np.float64))
    six_numbers = np.arange(1, 10_000)
    five_numbers = np.arange(98, 1_000)
    six_owner = _id_categories(six_numbers.size, wp.PRODUCTS_PER_CATEGORY[:18])
    five_owner = _id_categories(five_numbers.size, wp.PRODUCTS_PER_CATEGORY[:18])
    ids: list[str] = []
    for c in range(18):
        short = _draw_owned(rng, five_numbers[five_owner == c], int(five_per_category[c]))
        long = _draw_owned(rng, six_numbers[six_owner == c], int(per_category[c]) - short.size)
        names = [f"P00{n:04d}42" for n in long] + [f"P00{n:03d}42" for n in short]
        ids += [names[i] for i in rng.permutation(len(names))]
    tail_numbers = np.array([n for n in range(10_000) if n % 100 != 42])
    tail_owner = _id_categories(tail_numbers.size, wp.PRODUCTS_PER_CATEGORY[18:])
    for c in range(2):
        chosen = _draw_owned(rng, tail_numbers[tail_owner == c], int(per_category[18 + c]))
        ids += [f"P0037{n:04d}" for n in chosen]
    return tuple(ids)


def _id_categories(size: int, products: Sequence[int]) -> npt.NDArray[np.int64]:
    """The category owning each of `size` id numbers, fixed for ever: the categories interleave
    in proportion to their real product counts (every category owning at least 1% of the numbers,
    so that small ones have room), as a stride scheduler would."""
    weights = np.asarray(products, dtype=np.float64)
    weights = np.maximum(weights, 0.01 * weights.sum())
    shares = weights / weights.sum()
    due = np.concatenate(
        [(np.arange(math.ceil(size * share) + 1) + 0.5) / share for share in shares]
    )
    owner = np.concatenate(
        [np.full(math.ceil(size * share) + 1, c) for c, share in enumerate(shares)]
    )
    return owner[np.argsort(due, kind="stable")[:size]]


def _draw_owned(rng: np.random.Generator, owned: I64, count: int) -> I64:
    """`count` of a category's id numbers, drawn from its lowest ones (about the real span)."""
    if count > owned.size:
        raise ValueError(f"a category needs {count} product ids, it owns {owned.size}")
    window = owned[: min(owned.size, max(count, math.ceil(count * wp.PRODUCT_NUMBER_SPAN / 3_626)))]
    return np.sort(rng.choice(window, count, replace=False))


# ------------------------------------------------------------------------------------ matching


def _match_rows(
    rng: np.random.Generator, user_of_row: I32, users: _Users, catalogue: _Catalogue
) -> I32:
    """Which product each row is: per gender, a random matching of the users' row slots with the
    products' row slots, then swaps until every (user, product) pair is unique."""
    products = len(catalogue.ids)
    # (user, product) keys fit 32 bits up to ~7 M rows; int32 sorts and searches faster
    key_type: type[np.signedinteger[Any]] = (
        np.int32 if users.count * products < 2**31 - 1 else np.int64
    )
    result = np.empty(user_of_row.size, dtype=np.int32)
    row_gender = users.gender[user_of_row]
    leftovers: list[I64] = []
    for g in range(2):
        positions = np.flatnonzero(row_gender == g)
        if positions.size == 0:
            continue
        slots = _shuffled_slots(rng, catalogue.degrees[:, g]).astype(key_type)
        owner: Keys = user_of_row[positions].astype(key_type)
        keys: Keys = owner * products
        keys += slots
        del slots
        keys.sort()  # user-major like `positions`: each user keeps their own rows
        product: Keys = keys - owner * products
        left = _resolve_duplicates(rng, keys, owner, product, products)
        result[positions] = product
        leftovers.append(positions[left])
    remaining = np.concatenate(leftovers) if leftovers else np.zeros(0, dtype=np.int64)
    if remaining.size:
        _resolve_leftovers(rng, remaining, user_of_row, row_gender, result, products)
    return result


def _shuffled_slots(rng: np.random.Generator, degrees: I64) -> I64:
    """Each product repeated `degrees` times, in random order, with each product's copies spread
    evenly over the order (jittered, from a random offset): a user, whose rows take a stretch
    of the order, then rarely gets the same product twice (only when a heavy user meets a very
    popular product). Sorting keys with the product in the low bits is also several times
    faster than `Generator.shuffle`."""
    products = degrees.size
    bits = max(1, (products - 1).bit_length())
    slots = np.repeat(np.arange(products, dtype=np.int64), degrees)
    first = np.repeat(np.cumsum(degrees) - degrees, degrees)
    position = np.arange(slots.size, dtype=np.float64)
    position -= first  # the copy's number within its product
    del first
    position += rng.random(slots.size)
    position /= np.maximum(degrees, 1)[slots]
    position += rng.random(products)[slots]
    position %= 1.0
    keys = (position * float(1 << (62 - bits))).astype(np.int64)
    del position
    keys <<= bits
    keys |= slots
    del slots
    keys.sort()
    keys &= (1 << bits) - 1
    return keys


def _contains(sorted_sets: Sequence[Keys], probe: Keys) -> Bool:
    """Whether each probe is in any of the sorted arrays (probes searched in order, which is
    cache-friendly on large arrays)."""
    found = np.zeros(probe.size, dtype=bool)
    if probe.size == 0:
        return found
    order = np.argsort(probe)
    ordered = probe[order]
    hit = np.zeros(probe.size, dtype=bool)
    for keys in sorted_sets:
        if keys.size:
            at = np.searchsorted(keys, ordered)
            np.minimum(at, keys.size - 1, out=at)
            hit |= keys[at] == ordered
    found[order] = hit
    return found


def _resolve_duplicates(
    rng: np.random.Generator, keys: Keys, owner: Keys, product: Keys, products: int
) -> I64:
    """Swap the product of each repeated (user, product) row with a random other row's, when
    neither user holds the other's product. `keys` is the sorted state before any swap and
    `added` the keys each round created; keys removed since are treated as still there (a swap
    is refused, never wrong). Returns the rows still repeated (a few, or none)."""
    n = keys.size
    duplicate = np.flatnonzero(keys[1:] == keys[:-1]) + 1
    added: list[Keys] = []
    busy = np.zeros(n, dtype=bool)
    for _ in range(_SWAP_ROUNDS):
        if duplicate.size <= _SWAP_HANDOVER:
            break
        # the last, hard repeats (a heavy user's popular product) get several tries per round
        tries = max(1, min(16, 65_536 // duplicate.size))
        here = np.tile(duplicate, tries)
        partner = rng.integers(0, n, here.size)
        busy[duplicate] = True
        usable = ~busy[partner]
        busy[duplicate] = False
        new_here = owner[here] * products + product[partner]
        new_there = owner[partner] * products + product[here]
        for probe in (new_here, new_there):
            usable &= ~_contains([keys, *added], probe)
        # one swap per repeated row (its first usable try) and per partner row
        chosen = np.flatnonzero(usable)
        chosen = chosen[np.unique(here[chosen], return_index=True)[1]]
        chosen = chosen[np.unique(partner[chosen], return_index=True)[1]]
        # and no two swaps may create the same key
        created = np.concatenate((new_here[chosen], new_there[chosen]))
        unique, counts = np.unique(created, return_counts=True)
        clash = unique[counts > 1]
        if clash.size:
            keep = ~(np.isin(new_here[chosen], clash) | np.isin(new_there[chosen], clash))
            chosen = chosen[keep]
        i, j = here[chosen], partner[chosen]
        product[i], product[j] = product[j], product[i].copy()
        added.append(np.sort(np.concatenate((new_here[chosen], new_there[chosen]))))
        if len(added) > 8:
            added = [np.sort(np.concatenate(added))]
        busy[i] = True
        duplicate = duplicate[~busy[duplicate]]
        busy[i] = False
    return duplicate


def _resolve_leftovers(
    rng: np.random.Generator,
    rows: I64,
    user_of_row: I32,
    row_gender: npt.NDArray[np.int8],
    product: I32,
    products: int,
) -> None:
    """The few repeats left by the vectorised rounds: swap each with a row of another user
    (of the same gender when possible), checking the exact current state."""
    bounds = np.flatnonzero(np.diff(user_of_row)) + 1
    starts = np.concatenate(([0], bounds))
    ends = np.concatenate((bounds, [user_of_row.size]))
    by_gender = [np.flatnonzero(row_gender == g) for g in range(2)]

    def held(user: int) -> set[int]:
        return set(product[starts[user] : ends[user]].tolist())

    unresolved = 0
    for row in rows.tolist():
        user = int(user_of_row[row])
        if np.count_nonzero(product[starts[user] : ends[user]] == product[row]) < 2:
            continue
        mine = held(user)
        same = by_gender[int(row_gender[row])]
        candidates = np.concatenate(
            (same[rng.integers(0, same.size, 1_000)], rng.integers(0, user_of_row.size, 1_000))
        )
        for other in candidates.tolist():
            them = int(user_of_row[other])
            if them == user or int(product[other]) in mine or int(product[row]) in held(them):
                continue
            product[row], product[other] = product[other], product[row]
            break
        else:
            free = sorted(set(range(products)) - mine)
            if free:
                product[row] = free[int(rng.integers(0, len(free)))]
            else:
                unresolved += 1
    if unresolved:
        log.warning("%d (user, product) pairs repeat: users hold every product", unresolved)


# ------------------------------------------------------------------------------------- prices


def _category_strata(rng: np.random.Generator, category: npt.NDArray[np.int8]) -> tuple[F32, I64]:
    """For each row, (its rank among its category's rows, in random order) / (those rows): the
    stratum its price-tier draw comes from, so that each category's tier shares hold exactly."""
    n = category.size
    index_bits = max(1, (n - 1).bit_length())
    random_bits = 58 - index_bits
    if random_bits < 8:
        raise ValueError(f"too many rows for one dataset: {n:,}")
    keys = category.astype(np.int64) << (random_bits + index_bits)
    keys |= rng.integers(0, 1 << random_bits, n, dtype=np.int64) << index_bits
    keys |= np.arange(n, dtype=np.int64)
    keys.sort()  # by category, then at random
    keys &= (1 << index_bits) - 1
    counts = np.bincount(category, minlength=20)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    strata = np.empty(n, dtype=np.float32)
    strata[keys] = (np.arange(n) - first) / np.repeat(np.maximum(counts, 1), counts)
    return strata, counts.astype(np.int64)


def _purchases(
    rng: np.random.Generator,
    product_of_row: I32,
    strata: F32,
    category_rows: I64,
    catalogue: _Catalogue,
) -> I32:
    """Each row's price: a tier of the category's price grid, drawn (within the row's stratum)
    from the category's tier shares shifted down to the product's top tier, plus a uniform
    spread."""
    n = product_of_row.size
    category = catalogue.category[product_of_row]
    draw = rng.random(n) / np.maximum(category_rows, 1).astype(np.float64)[category]
    draw += strata
    draw += category
    # the tier of a full product: one search of (category + draw) among every category's
    # cumulative share thresholds (4 per category, offset by the category index)
    shares = np.asarray(wp.CATEGORY_TIER_SHARES, dtype=np.float64)
    cumulative = np.cumsum(shares / shares.sum(axis=1, keepdims=True), axis=1)[:, :-1]
    thresholds = (np.arange(cumulative.shape[0])[:, None] + cumulative).ravel()
    tier = np.searchsorted(thresholds, draw, side="right").astype(np.int16)
    del draw
    tier -= 4 * category.astype(np.int16)
    # shifted down to the product's top tier (its missing tiers' shares fall on the lowest)
    top = catalogue.top_tier.astype(np.int16)[product_of_row]
    share = catalogue.top_share[product_of_row]
    partial = np.flatnonzero(share < 1.0)
    top[partial] -= rng.random(partial.size) >= share[partial]
    tier -= 5 - top
    np.maximum(tier, 0, out=tier)
    fraction = np.asarray(wp.PRICE_TIER_CENTERS, dtype=np.float32)[tier]
    del tier
    fraction += rng.uniform(-wp.PRICE_SPREAD, wp.PRICE_SPREAD, n).astype(np.float32)
    highest = np.asarray(wp.CATEGORY_PURCHASE_MAX, dtype=np.float32)
    price = np.rint(highest[category] / np.float32(wp.PRICE_TOP_BASE_DIVISOR) * fraction)
    low = np.asarray(wp.CATEGORY_PURCHASE_MIN, dtype=np.float32)
    result: I32 = np.clip(price, low[category], highest[category]).astype(np.int32)
    return result


# ------------------------------------------------------------------------------ days and order


def _schedule(
    rng: np.random.Generator, user_of_row: I32, per_user: I64, days: int
) -> tuple[I64, list[int]]:
    """The output order (day, then pass over users by id) and the rows of each day."""
    n = user_of_row.size
    passes = rng.integers(0, _PASSES, n, dtype=np.uint8)
    if days == 1:
        order = np.argsort(passes, kind="stable").astype(np.int64)
        return order, [n]
    arrival = np.where(
        rng.random(per_user.size) < _EXISTING_CUSTOMER_SHARE, 0.0, rng.random(per_user.size)
    )
    start = arrival[user_of_row]
    time = start + (1.0 - start) * rng.random(n)
    first_rows = np.concatenate(([0], np.cumsum(per_user)[:-1]))
    time[first_rows] = arrival  # each user's first purchase is at their arrival
    del start
    kth = [n * d // days for d in range(1, days)]
    cuts = np.partition(time, kth)[kth] if days <= 16 else np.sort(time)[kth]
    day = np.searchsorted(cuts, time, side="right").astype(np.int64)
    del time
    key = day * _PASSES + passes
    order = np.argsort(
        key.astype(np.uint32 if days * _PASSES > 65_535 else np.uint16), kind="stable"
    )
    sizes = np.bincount(day, minlength=days).tolist()
    return order.astype(np.int64), [int(s) for s in sizes]


# ------------------------------------------------------------------------------------ bad rows


@dataclass(frozen=True)
class _BadRows:
    rows: I64  # sorted positions in the output (all files together)
    kind: npt.NDArray[np.int8]  # index into BAD_ROW_KINDS
    choice: npt.NDArray[np.int8]  # index into BAD_VALUES[kind] (where the kind has values)


def _choose_bad_rows(rng: np.random.Generator, rows: int, fraction: float) -> _BadRows:
    count = min(rows, round(fraction * rows))
    kinds = len(BAD_ROW_KINDS)
    per_kind = np.full(kinds, count // kinds, dtype=np.int64)
    per_kind[rng.permutation(kinds)[: count % kinds]] += 1
    positions = np.sort(rng.choice(rows, count, replace=False)).astype(np.int64)
    kind = np.repeat(np.arange(kinds, dtype=np.int8), per_kind)
    rng.shuffle(kind)
    choice = (
        rng.integers(0, 1 << 30, count)
        % np.array([len(BAD_VALUES.get(k, ("",))) for k in BAD_ROW_KINDS])[kind]
    )
    return _BadRows(positions, kind, choice.astype(np.int8))


# ------------------------------------------------------------------------------------- writing


# The demographic columns, in file order, as indices into a user's attribute row.
_DEMOGRAPHIC_KINDS: Final[dict[str, int]] = {
    "invalid_gender": 0,
    "invalid_age_band": 1,
    "invalid_occupation_code": 2,
    "invalid_city_category": 3,
    "invalid_years_in_city": 4,
    "invalid_marital_status": 5,
}
_VOCABULARIES: Final[tuple[tuple[str, ...], ...]] = (
    wp.GENDERS,
    wp.AGE_BANDS,
    wp.OCCUPATIONS,
    wp.CITY_CATEGORIES,
    wp.STAY_YEARS,
    wp.MARITAL_STATUSES,
)
# pyarrow refuses a delimiter inside an unquoted value, so rows are written with this byte
# between the five dictionary columns (User_ID, Product_ID, the six demographics as one
# "F,0-17,10,A,2,0" value, Product_Category, Purchase) and the byte becomes a comma afterwards:
# half the work of ten columns. No value contains it.
_SEPARATOR: Final = "\x1f"
_WRITE_OPTIONS: Final = pacsv.WriteOptions(
    include_header=False, quoting_style="none", delimiter=_SEPARATOR, batch_size=65_536
)


def _strings(values: Sequence[str] | pa.Array, bad_kind: str | None = None) -> pa.Array:
    """A dictionary: `values`, then the bad values of `bad_kind` (at len(values) + choice)."""
    extra = pa.array(BAD_VALUES[bad_kind] if bad_kind else (), type=pa.string())
    head = values if isinstance(values, pa.Array) else pa.array(values, type=pa.string())
    return pa.concat_arrays([head.cast(pa.string()), extra])


@dataclass
class _Writer:
    users: _Users
    catalogue: _Catalogue
    bad: _BadRows
    progress: Progress | None
    seed: int
    category_rows: I64
    written: int = 0

    def __post_init__(self) -> None:
        attributes = self.users.attributes
        code = np.zeros(self.users.count, dtype=np.int64)
        for column, size in enumerate(_ATTRIBUTE_SIZES):
            code = code * size + attributes[:, column]
        _, first, self._user_demo = np.unique(code, return_index=True, return_inverse=True)
        self._demographics = pa.array(
            [self._demo_text(attributes[i].tolist()) for i in first], type=pa.string()
        )
        self._user_ids = _strings(pa.array(self.users.ids), "invalid_customer_id")
        self._product_ids = _strings(self.catalogue.ids, "invalid_product_id")
        self._categories = _strings(wp.PRODUCT_CATEGORIES, "invalid_product_category")
        top = max(wp.CATEGORY_PURCHASE_MAX)
        self._purchases = _strings(pa.array(np.arange(top + 1)), "invalid_purchase_amount")
        self._category = self.catalogue.category.astype(np.int8)
        self._sizes = {
            "invalid_customer_id": self.users.count,
            "invalid_product_id": len(self.catalogue.ids),
            "invalid_product_category": len(wp.PRODUCT_CATEGORIES),
            "invalid_purchase_amount": top + 1,
        }

    @staticmethod
    def _demo_text(values: Sequence[int], replace: dict[int, str] | None = None) -> str:
        parts = [_VOCABULARIES[k][v] for k, v in enumerate(values)]
        for k, text in (replace or {}).items():
            parts[k] = text
        return ",".join(parts)

    def write_file(
        self, path: Path, user: I32, product: I32, strata: F32, offset: int, number: int
    ) -> tuple[dict[str, int], list[int]]:
        """Write one CSV (rows `offset`.. of the dataset, file `number`); return its bad rows
        per kind and their line numbers (header = 1)."""
        n = user.size
        lo, hi = np.searchsorted(self.bad.rows, [offset, offset + n])
        bad_rows = self.bad.rows[lo:hi] - offset
        bad_kind = self.bad.kind[lo:hi]
        bad_choice = self.bad.choice[lo:hi]
        counts = np.bincount(bad_kind, minlength=len(BAD_ROW_KINDS))
        temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        header = (",".join(EXPECTED_COLUMNS) + "\n").encode()
        try:
            with temporary.open("wb") as handle, ThreadPoolExecutor(2) as pool:
                handle.write(header)
                pending: deque[tuple[Future[pa.Buffer], int]] = deque()
                for chunk, start in enumerate(range(0, n, _CHUNK_ROWS)):
                    stop = min(n, start + _CHUNK_ROWS)
                    a, b = np.searchsorted(bad_rows, [start, stop])
                    task = pool.submit(
                        self._render,
                        np.random.default_rng([self.seed, 4, number, chunk]),
                        user[start:stop],
                        product[start:stop],
                        strata[start:stop],
                        bad_rows[a:b] - start,
                        bad_kind[a:b],
                        bad_choice[a:b],
                    )
                    pending.append((task, stop - start))
                    while len(pending) > 3:
                        self._flush(handle, *pending.popleft())
                while pending:
                    self._flush(handle, *pending.popleft())
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        os.replace(temporary, path)
        lines = (bad_rows + 2).tolist()
        return {kind: int(counts[i]) for i, kind in enumerate(BAD_ROW_KINDS)}, lines

    def _render(
        self,
        rng: np.random.Generator,
        user: I32,
        product: I32,
        strata: F32,
        bad_rows: I64,
        bad_kind: npt.NDArray[np.int8],
        bad_choice: npt.NDArray[np.int8],
    ) -> pa.Buffer:
        """The CSV text of one chunk of rows (on a writer thread)."""
        purchase = _purchases(rng, product, strata, self.category_rows, self.catalogue)
        return _serialise(self._table(user, product, purchase, bad_rows, bad_kind, bad_choice))

    def _flush(self, handle: BinaryIO, future: Future[pa.Buffer], rows: int) -> None:
        handle.write(future.result())
        self.written += rows
        if self.progress is not None:
            self.progress(self.written)

    def _table(
        self,
        user: I32,
        product: I32,
        purchase: I32,
        bad_rows: I64,
        bad_kind: npt.NDArray[np.int8],
        bad_choice: npt.NDArray[np.int8],
    ) -> pa.Table:
        user_index = user.copy()
        product_index = product.copy()
        demo_index = self._user_demo[user].astype(np.int32)
        category_index = self._category[product]
        purchase_index = purchase
        extra_demographics: list[str] = []
        for k, kind in enumerate(BAD_ROW_KINDS):
            chosen = bad_kind == k
            rows = bad_rows[chosen]
            if rows.size == 0:
                continue
            choice = bad_choice[chosen].astype(np.int64)
            if kind == "invalid_customer_id":
                user_index[rows] = self._sizes[kind] + choice
            elif kind == "invalid_product_id":
                product_index[rows] = self._sizes[kind] + choice
            elif kind == "invalid_product_category":
                category_index[rows] = self._sizes[kind] + choice
            elif kind == "invalid_purchase_amount":
                purchase_index[rows] = self._sizes[kind] + choice
            else:
                base = len(self._demographics) + len(extra_demographics)
                demo_index[rows] = base + np.arange(rows.size)
                for row, c in zip(rows.tolist(), choice.tolist(), strict=True):
                    values = self.users.attributes[user[row]].tolist()
                    if kind == "married_minor":
                        replace = {1: "0-17", 5: "1"}
                    else:
                        replace = {_DEMOGRAPHIC_KINDS[kind]: BAD_VALUES[kind][c]}
                    extra_demographics.append(self._demo_text(values, replace))
        demographics = self._demographics
        if extra_demographics:
            demographics = pa.concat_arrays(
                [demographics, pa.array(extra_demographics, type=pa.string())]
            )
        return pa.table(
            [
                pa.DictionaryArray.from_arrays(pa.array(user_index), self._user_ids),
                pa.DictionaryArray.from_arrays(pa.array(product_index), self._product_ids),
                pa.DictionaryArray.from_arrays(pa.array(demo_index), demographics),
                pa.DictionaryArray.from_arrays(pa.array(category_index), self._categories),
                pa.DictionaryArray.from_arrays(pa.array(purchase_index), self._purchases),
            ],
            names=["user", "product", "demographics", "category", "purchase"],
        )


def _serialise(table: pa.Table) -> pa.Buffer:
    """CSV text of `table` (no header), the separator byte turned into commas in place."""
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink, write_options=_WRITE_OPTIONS)
    buffer: pa.Buffer = sink.getvalue()
    text = np.frombuffer(buffer, dtype=np.uint8)
    np.putmask(text, text == ord(_SEPARATOR), ord(","))
    return buffer


def _write_expected(
    dataset: GeneratedDataset, fraction: float, days: int, lines: list[list[int]]
) -> None:
    """What Silver should find in these files: rows, and bad rows by rejection reason (totals
    and per file, with the line numbers of the bad rows; the header is line 1)."""
    compact = [json.dumps(file_lines, separators=(",", ":")) for file_lines in lines]
    files = [
        {
            "file": file.name,
            "rows": rows,
            "valid_rows": rows - sum(bad.values()),
            "bad_rows_by_reason": bad,
            "bad_lines": f"@lines{number}@",
        }
        for number, (file, rows, bad) in enumerate(
            zip(dataset.files, dataset.rows_per_file, dataset.bad_rows_per_file, strict=True)
        )
    ]
    document: dict[str, Any] = {
        "generator": "lakehouse.generator",
        "rows": dataset.rows,
        "seed": dataset.seed,
        "days": days,
        "bad_rows_fraction": fraction,
        "valid_rows": dataset.rows - dataset.bad_row_count,
        "bad_rows_by_reason": dataset.bad_rows,
        "users": dataset.users,
        "products": dataset.products,
        "files": files,
    }
    if len(files) == 1:
        document["bad_lines"] = "@lines0@"
    text = json.dumps(document, indent=1)
    for number, encoded in enumerate(compact):  # line lists on one line each
        text = text.replace(f'"@lines{number}@"', encoded)
    dataset.expected_file.write_text(text + "\n", encoding="utf-8")
