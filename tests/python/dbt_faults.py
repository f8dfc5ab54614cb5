"""The planted fault that makes each dbt data test fail (issue #15), as data.

`test_dbt_fault_injection.py` plants these in a throw-away lake and checks that each named test
fails; `test_dbt_selection.py` checks that every enabled data test has a fault here and that
docs/dbt-tests.md is this catalogue rendered (regenerate it with
`python -m tests.python.dbt_faults`).

A fault is one edit of one relation, applied by replacing the relation with a view over the
intact one (renamed aside), so undoing it is a rename back:
- ``dup``: a copy of the relation's first row (by key) is appended, with some columns changed;
- ``set``: columns of the first row are changed in place;
- ``drop``: the second row is left out.
The Bronze ledger (source of `stg_walmart__batches`) is faulted by planting ledger files.
Each round faults relations whose tests read nothing else that is faulted, so a test can only
fail because of the fault planted for it (or another fault of the same relation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tests.python.support import PROJECT_DIR

DOCS_PAGE = PROJECT_DIR / "docs" / "dbt-tests.md"


@dataclass(frozen=True)
class Fault:
    test: str  # the dbt test node's name
    kind: str  # dup | set | drop | ledger
    description: str
    changes: dict[str, str] = field(default_factory=dict)  # column -> SQL expression
    more_rows: tuple[dict[str, str], ...] = ()  # dup: further copies, each with its changes
    # the check of a combined test (primary_key, not_null_columns, accepted_values_by_column) the
    # fault must trip: one of the comma-separated parts of the failing rows' `failed_check`
    check: str = ""


@dataclass(frozen=True)
class Relation:
    name: str  # schema.table as both engines name it
    key: str  # order of rows: "first row" and "second row" are by this
    faults: tuple[Fault, ...]
    is_view: bool = False


@dataclass(frozen=True)
class Round:
    engine: str  # lake | warehouse
    relations: tuple[Relation, ...]
    with_ledger: bool = False  # plant LEDGER_FAULTS too


# The project's combined tests (tests/dbt/generic/): one test node for several checks, each failing
# row naming the checks it broke in `failed_check`. A fault of such a test names the check it must
# trip, so that every check is shown to fail, not only the test.
COMBINED_TESTS = ("primary_key", "not_null_columns", "accepted_values_by_column")


def is_combined(test: str) -> bool:
    return test.removeprefix("source_").startswith(COMBINED_TESTS)


def _nulls(test: str, column: str, key: str, value: str) -> Fault:
    return Fault(
        test,
        "dup",
        f"a copy of a row with `{column}` null",
        {key: value, column: "null"} if column != key else {column: "null"},
        check=f"null {column}" if is_combined(test) else "",
    )


def _primary_key(model: str, column: str, duplicate: str = "") -> tuple[Fault, Fault]:
    """The faults of a one-column `primary_key` test: a duplicated key, a null key."""
    test = f"primary_key_{model}_{column}"
    return (
        Fault(test, "dup", duplicate or f"a duplicated {column}", check="duplicate key"),
        _nulls(test, column, column, ""),
    )


# Ledger entries planted in Bronze (one JSON file each), for the source and staging tests.
LEDGER_FAULTS: tuple[tuple[Fault, dict[str, object]], ...] = (
    (
        Fault(
            "source_primary_key_walmart_walmart_sales_batches_batch_id",
            "ledger",
            "a second ledger entry with an existing batch_id",
            check="duplicate key",
        ),
        {"copy_of_first": True},
    ),
    (
        Fault(
            "primary_key_stg_walmart__batches_batch_id",
            "ledger",
            "a second ledger entry with an existing batch_id",
            check="duplicate key",
        ),
        {"copy_of_first": True},
    ),
    (
        Fault(
            "source_primary_key_walmart_walmart_sales_batches_batch_id",
            "ledger",
            "a ledger entry without batch_id",
            check="null batch_id",
        ),
        {"batch_id": None},
    ),
    (
        Fault(
            "primary_key_stg_walmart__batches_batch_id",
            "ledger",
            "a ledger entry without batch_id",
            check="null batch_id",
        ),
        {"batch_id": None},
    ),
    (
        Fault(
            "expression_is_true_stg_walmart__batches_row_count__row_count_0",
            "ledger",
            "a ledger entry with 0 rows",
        ),
        {"batch_id": "planted-empty", "rows": 0},
    ),
    (
        Fault(
            "not_null_stg_walmart__batches_ingest_date",
            "ledger",
            "a ledger entry without ingest_date",
        ),
        {"batch_id": "planted-undated", "ingest_date": None},
    ),
)

SALE = "concat('planted-', sale_id)"

_LAKE_GROUPS: tuple[Round, ...] = (
    Round(
        "lake",
        (
            Relation(
                "silver.slv_sales_validated",
                "sale_id",
                (
                    *_primary_key("slv_sales_validated", "sale_id"),
                    _nulls(
                        "not_null_columns_slv_sales_validated",
                        "is_valid",
                        "sale_id",
                        SALE + " || 'v'",
                    ),
                    _nulls(
                        "not_null_columns_slv_sales_validated",
                        "batch_id",
                        "sale_id",
                        SALE + " || 'b'",
                    ),
                    _nulls(
                        "not_null_columns_slv_sales_validated",
                        "ingest_date",
                        "sale_id",
                        SALE + " || 'd'",
                    ),
                    Fault(
                        "relationships_slv_sales_validated_batch_id__batch_id__ref_stg_walmart__batches_",
                        "dup",
                        "a row of a batch the ledger does not know",
                        {"sale_id": SALE + " || 'r'", "batch_id": "'no-such-batch'"},
                    ),
                ),
            ),
            Relation(
                "silver.slv_batch_quality",
                "batch_id",
                (
                    *_primary_key("slv_batch_quality", "batch_id"),
                    Fault(
                        "assert_bronze_reconciles_with_silver",
                        "set",
                        "a batch whose Silver rows fall one short of Bronze (a validated row "
                        "dropped)",
                        {"valid_rows": "valid_rows - 1"},
                    ),
                ),
            ),
        ),
    ),
    Round(
        "lake",
        (
            Relation(
                "silver.slv_sales",
                "sale_id",
                (
                    *_primary_key("slv_sales", "sale_id"),
                    Fault(
                        "assert_customer_demographics_agree",
                        "dup",
                        "a new customer with two rows of different genders",
                        {"sale_id": SALE + " || 'g1'", "customer_id": "9999998", "gender": "'M'"},
                        (
                            {
                                "sale_id": SALE + " || 'g2'",
                                "customer_id": "9999998",
                                "gender": "'F'",
                            },
                        ),
                    ),
                ),
                is_view=True,
            ),
            Relation(
                "silver.slv_sales_rejected",
                "sale_id",
                _primary_key("slv_sales_rejected", "sale_id"),
                is_view=True,
            ),
            Relation(
                "silver.age_bands",
                "age_band",
                (
                    *_primary_key("age_bands", "age_band"),
                    Fault(
                        "accepted_values_age_bands_age_group__Youth__Adult__Senior",
                        "set",
                        "an age_group outside Youth/Adult/Senior",
                        {"age_group": "'Elder'"},
                    ),
                ),
            ),
            Relation(
                "silver.city_categories",
                "city_category",
                _primary_key("city_categories", "city_category"),
            ),
            Relation(
                "silver.product_categories",
                "product_category",
                _primary_key("product_categories", "product_category"),
            ),
        ),
    ),
    Round(
        "lake",
        (
            Relation(
                "gold.fct_sales",
                "sale_id",
                (
                    *_primary_key("fct_sales", "sale_id"),
                    *(
                        _nulls("not_null_columns_fct_sales", c, "sale_id", f"{SALE} || '{c}'")
                        for c in (
                            "customer_id",
                            "product_id",
                            "product_category",
                            "purchase_amount",
                            "batch_id",
                            "ingest_date",
                        )
                    ),
                    Fault(
                        "relationships_fct_sales_customer_id__customer_id__ref_dim_customers_",
                        "dup",
                        "a sale of a customer missing from dim_customers",
                        {"sale_id": SALE + " || 'rc'", "customer_id": "9999999"},
                    ),
                    Fault(
                        "relationships_fct_sales_product_id__product_id__ref_dim_products_",
                        "dup",
                        "a sale of a product missing from dim_products",
                        {"sale_id": SALE + " || 'rp'", "product_id": "'P00000000'"},
                    ),
                    Fault("row_counts_match_fct_sales_ref_slv_sales_", "drop", "a dropped row"),
                    Fault(
                        "sums_match_fct_sales_purchase_amount__purchase_amount__ref_slv_sales_",
                        "set",
                        "one purchase amount changed by 1",
                        {"purchase_amount": "purchase_amount + 1"},
                    ),
                ),
            ),
        ),
    ),
    Round(
        "lake",
        (
            Relation(
                "gold.dim_customers",
                "customer_id",
                (
                    *_primary_key("dim_customers", "customer_id"),
                    Fault(
                        "accepted_values_by_column_dim_customers",
                        "set",
                        "an unknown age_group",
                        {"age_group": "'Elder'"},
                        check="unaccepted age_group",
                    ),
                    Fault(
                        "accepted_values_by_column_dim_customers",
                        "set",
                        "an unknown frequency_segment",
                        {"frequency_segment": "'Rare'"},
                        check="unaccepted frequency_segment",
                    ),
                    Fault(
                        "accepted_values_by_column_dim_customers",
                        "set",
                        "an unknown spend_segment",
                        {"spend_segment": "'Gold'"},
                        check="unaccepted spend_segment",
                    ),
                    Fault(
                        "sums_match_dim_customers_total_spent__spent_amount__ref_int_customer_batch_sales_",
                        "set",
                        "one customer's total_spent changed by 1",
                        {"total_spent": "total_spent + 1"},
                    ),
                ),
            ),
        ),
    ),
    Round(
        "lake",
        (
            *(
                Relation(
                    f"gold.int_{entity}_batch_sales",
                    f"{entity}_id, batch_id",
                    (
                        Fault(
                            f"primary_key_int_{entity}_batch_sales_{entity}_id__batch_id",
                            "dup",
                            f"a second row for an existing ({entity}_id, batch_id)",
                            check="duplicate key",
                        ),
                        _nulls(
                            f"primary_key_int_{entity}_batch_sales_{entity}_id__batch_id",
                            f"{entity}_id",
                            "batch_id",
                            "batch_id || 'n'",
                        ),
                        _nulls(
                            f"primary_key_int_{entity}_batch_sales_{entity}_id__batch_id",
                            "batch_id",
                            "batch_id",
                            "",
                        ),
                        Fault(
                            f"sums_match_int_{entity}_batch_sales_{amount}__purchase_amount"
                            "__ref_fct_sales_",
                            "set",
                            f"one {entity}'s {amount} in a batch changed by 1",
                            {amount: f"{amount} + 1"},
                        ),
                    ),
                )
                for entity, amount in (("customer", "spent_amount"), ("product", "revenue_amount"))
            ),
        ),
    ),
    Round(
        "lake",
        (
            Relation(
                "gold.dim_products",
                "product_id",
                (
                    *_primary_key("dim_products", "product_id"),
                    _nulls(
                        "not_null_dim_products_product_category",
                        "product_category",
                        "product_id",
                        "'P00000042'",
                    ),
                    Fault(
                        "unique_dim_products_revenue_rank",
                        "dup",
                        "a second product with an existing revenue_rank",
                        {"product_id": "'P00000142'"},
                    ),
                    Fault(
                        "accepted_values_by_column_dim_products",
                        "set",
                        "an abc_class outside A/B/C",
                        {"abc_class": "'D'"},
                        check="unaccepted abc_class",
                    ),
                    Fault(
                        "accepted_values_by_column_dim_products",
                        "set",
                        "an unknown product_segment",
                        {"product_segment": "'Bestseller'"},
                        check="unaccepted product_segment",
                    ),
                    Fault(
                        "sums_match_dim_products_total_revenue__revenue_amount__ref_int_product_batch_sales_",
                        "set",
                        "one product's total_revenue changed by 1",
                        {"total_revenue": "total_revenue + 1"},
                    ),
                ),
            ),
        ),
    ),
)


_BY_NAME = {r.name: r for group in _LAKE_GROUPS for r in group.relations}


def _lake_round(*names: str, with_ledger: bool = False) -> Round:
    return Round("lake", tuple(_BY_NAME[f"{name}"] for name in names), with_ledger)


# Three dbt invocations on the lake. In a round no test reads a faulted relation other than the
# one its fault is planted in (slv_sales reads slv_sales_validated, fct_sales' tests read
# slv_sales and the dimensions, the dimensions' and their state's sums read fct_sales: never in
# the same round).
LAKE_ROUNDS: tuple[Round, ...] = (
    _lake_round(
        "silver.slv_sales_validated",
        "gold.dim_customers",
        "silver.age_bands",
        "silver.city_categories",
        "silver.product_categories",
    ),
    _lake_round(
        "silver.slv_sales",
        "silver.slv_sales_rejected",
        "silver.slv_batch_quality",
        "gold.dim_products",
        "gold.int_customer_batch_sales",
        "gold.int_product_batch_sales",
    ),
    _lake_round("gold.fct_sales", with_ledger=True),
)


def _mart_sums(mart: str, column: str, compare: str = "purchase_amount__ref_fct_sales_") -> Fault:
    return Fault(
        f"sums_match_{mart}_{column}__{compare}",
        "set",
        f"`{column}` of one row changed by 1",
        {column: f"{column} + 1"},
    )


def _share(mart: str, column: str) -> Fault:
    return Fault(
        f"share_sums_to_100_{mart}_{column}",
        "set",
        f"one `{column}` raised by 5 points (the shares no longer sum to 100)",
        {column: f"{column} + 5"},
    )


# The marts are faulted together: their tests read only their own mart and Gold (intact).
WAREHOUSE_ROUNDS: tuple[Round, ...] = (
    Round(
        "warehouse",
        (
            Relation(
                "marts.mart_category_performance",
                "product_category",
                (
                    *_primary_key("mart_category_performance", "product_category"),
                    Fault(
                        "not_null_mart_category_performance_top_product_id",
                        "set",
                        "a category without top product",
                        {"top_product_id": "null"},
                    ),
                    _share("mart_category_performance", "revenue_share_pct"),
                    _mart_sums("mart_category_performance", "total_revenue"),
                ),
            ),
            Relation(
                "marts.mart_customer_segments",
                "spend_segment, frequency_segment",
                (
                    Fault(
                        "primary_key_mart_customer_segments_spend_segment__frequency_segment",
                        "dup",
                        "a duplicated (spend_segment, frequency_segment)",
                        check="duplicate key",
                    ),
                    Fault(
                        "accepted_values_mart_customer_segments_frequency_segment__High__Medium__Low",
                        "dup",
                        "a row with an unknown frequency_segment",
                        {"frequency_segment": "'Rare'"},
                    ),
                    Fault(
                        "accepted_values_mart_customer_segments_spend_segment__VIP__Loyal__Regular",
                        "dup",
                        "a row with an unknown spend_segment",
                        {"spend_segment": "'Gold'"},
                    ),
                    _share("mart_customer_segments", "revenue_share_pct"),
                    _share("mart_customer_segments", "customer_share_pct"),
                    _mart_sums("mart_customer_segments", "total_revenue"),
                ),
            ),
            Relation(
                "marts.mart_daily_sales",
                "ingest_date",
                (
                    *_primary_key("mart_daily_sales", "ingest_date"),
                    Fault(
                        "expression_is_true_mart_daily_sales_returning_customers__returning_customers_0",
                        "set",
                        "a day with -1 returning customers",
                        {"returning_customers": "-1"},
                    ),
                    _mart_sums("mart_daily_sales", "total_revenue"),
                    _mart_sums("mart_daily_sales", "new_customers", "1__ref_dim_customers_"),
                ),
            ),
            Relation(
                "marts.mart_high_value_customers",
                "customer_id",
                (
                    *_primary_key("mart_high_value_customers", "customer_id"),
                    Fault(
                        "not_null_mart_high_value_customers_spend_rank",
                        "set",
                        "a customer without spend_rank",
                        {"spend_rank": "null"},
                    ),
                    Fault(
                        "not_null_mart_high_value_customers_clv_rank",
                        "set",
                        "a customer without clv_rank",
                        {"clv_rank": "null"},
                    ),
                    _mart_sums("mart_high_value_customers", "total_spent"),
                ),
            ),
            Relation(
                "marts.mart_city_age_markets",
                "city_category, age_band",
                (
                    Fault(
                        "primary_key_mart_city_age_markets_city_category__age_band",
                        "dup",
                        "a duplicated (city, age band)",
                        check="duplicate key",
                    ),
                    _mart_sums("mart_city_age_markets", "total_revenue"),
                    _mart_sums("mart_city_age_markets", "customers", "1__ref_dim_customers_"),
                ),
            ),
            Relation(
                "marts.mart_insights_summary",
                "as_of_date",
                _primary_key("mart_insights_summary", "as_of_date", "a second summary row"),
            ),
            Relation(
                "marts.mart_market_segments",
                "city_category, age_band, gender, is_married",
                (
                    Fault(
                        "primary_key_mart_market_segments_city_category__age_band__gender__is_married",
                        "dup",
                        "a duplicated (city, age band, gender, marital status)",
                        check="duplicate key",
                    ),
                    Fault(
                        "not_null_mart_market_segments_revenue_rank",
                        "set",
                        "a segment without revenue_rank",
                        {"revenue_rank": "null"},
                    ),
                    _share("mart_market_segments", "revenue_share_pct"),
                    _mart_sums("mart_market_segments", "total_revenue"),
                ),
            ),
            Relation(
                "marts.mart_top_products",
                "product_id",
                (
                    *_primary_key("mart_top_products", "product_id"),
                    Fault(
                        "unique_mart_top_products_revenue_rank",
                        "dup",
                        "a second product with an existing revenue_rank",
                        {"product_id": "'P00000142'"},
                    ),
                    Fault(
                        "not_null_mart_top_products_revenue_rank",
                        "set",
                        "a product without revenue_rank",
                        {"revenue_rank": "null"},
                    ),
                    _mart_sums("mart_top_products", "total_revenue"),
                ),
            ),
        ),
    ),
)

ROUNDS = LAKE_ROUNDS + WAREHOUSE_ROUNDS


def all_faults() -> list[tuple[str, str, Fault]]:
    """(engine, relation, fault) for every planted fault, ledger faults included."""
    found = [("lake", "bronze.walmart_sales_batches (ledger files)", f) for f, _ in LEDGER_FAULTS]
    for round_ in ROUNDS:
        for relation in round_.relations:
            found += [(round_.engine, relation.name, fault) for fault in relation.faults]
    return found


def faulty_view_sql(relation: Relation, intact: str, columns: list[str]) -> str:
    """SQL of a view that is `intact` with the relation's faults applied (Spark and DuckDB)."""
    sets: dict[str, str] = {}
    for fault in relation.faults:
        if fault.kind == "set":
            sets.update(fault.changes)
    drop = any(f.kind == "drop" for f in relation.faults)

    def select(changes: dict[str, str], in_place: bool) -> str:
        parts = []
        for column in columns:
            if column in changes:
                expression = changes[column]
                if in_place:
                    expression = f"case when _fault_row = 1 then {expression} else {column} end"
                parts.append(f"{expression} as {column}")
            else:
                parts.append(column)
        return ", ".join(parts)

    body = [
        f"select {select(sets, in_place=True)} from numbered"
        + (" where _fault_row <> 2" if drop else "")
    ]
    for fault in relation.faults:
        if fault.kind == "dup":
            for changes in (fault.changes, *fault.more_rows):
                body.append(
                    f"select {select(changes, in_place=False)} from numbered where _fault_row = 1"
                )
    return (
        f"with numbered as (select *, row_number() over (order by {relation.key}) as _fault_row "
        f"from {intact})\n" + "\nunion all\n".join(body)
    )


def render_docs() -> str:
    lines = [
        "# dbt data tests and the fault that makes each fail",
        "",
        "Generated from `tests/python/dbt_faults.py` (`python -m tests.python.dbt_faults`).",
        "The suite `tests/python/test_dbt_fault_injection.py` (marker `spark`) plants every",
        "fault below in one throw-away lake built from `tests/fixtures/walmart_head_2000rows.csv`",
        "plus a generated day with bad rows, runs `dbt test` on the faulted relation's tests,",
        "checks each named test fails, then undoes the fault. A combined test (`primary_key`,",
        "`not_null_columns`, `accepted_values_by_column`: several checks in one query, because on",
        "the lake every test node costs about half a second whatever the rows) must fail with the",
        "check its fault names among its failing rows' `failed_check`.",
        "`tests/python/test_dbt_selection.py` checks that every enabled data test is listed here",
        "and that this page is up to date.",
        "",
        "The models' logic is proved by dbt unit tests (`models/*/_*__unit_tests.yml`).",
        "",
        "Which rows each lake test reads: that lake's last build built every batch, so every",
        "test reads all rows here. After a build with new batches, the row-level tests read the",
        "batches their model built last, and `sums_match` / `row_counts_match` between two",
        "models that both hold batches compare those batches, batch by batch",
        "(`macros/test_scope.sql`; every batch with `--vars '{test_all_batches: true}'`);",
        "`test_comparisons_after_an_incremental_build_check_the_batches_built_last` shows those",
        "comparisons fail on a fault in the batch built last. The dimensions are compared with",
        "the per-batch state they sum, which is compared with `fct_sales` batch by batch.",
        "",
        "| engine | relation faulted | test | check | planted fault |",
        "|---|---|---|---|---|",
    ]
    for engine, relation, fault in all_faults():
        check = f"`{fault.check}`" if fault.check else ""
        lines.append(
            f"| {engine} | `{relation}` | `{fault.test}` | {check} | {fault.description} |"
        )
    return "\n".join(lines) + "\n"


def write_docs(path: Path = DOCS_PAGE) -> None:
    path.write_text(render_docs())


if __name__ == "__main__":
    write_docs()
    print(f"wrote {DOCS_PAGE}")
