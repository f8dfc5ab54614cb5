"""The same Silver + Gold work as the lake build, in ONE DuckDB process: the lower bound one
machine gives. `python -m bench.duckdb_baseline --home LAKEHOUSE_HOME --out DIR`.

What it does, mirroring the dbt models:

- reads the Bronze gzip CSV parts of the batches in the ledger (every column a string, the
  ingest_date / batch_id partition folders as columns), like the `walmart` source;
- types every row like `stg_walmart__sales` (trim, upper, try_cast) and judges it with the same
  rules as `macros/validation.sql` (value sets read from the vars of dbt_project.yml), keeping
  every reason, like `slv_sales_validated`; writes that table as Parquet, partitioned by
  ingest_date (the lake persists it too);
- from the valid rows builds `fct_sales` (Parquet, partitioned by ingest_date),
  `dim_customers` (latest demographics, spend, CLV, spend/frequency segments, seeds' labels) and
  `dim_products` (revenue share, Top Seller, ABC class) as in models/gold/*.sql.

Rounded quotients (average purchase, revenue share, the means the segments compare with) are
computed in exact integer arithmetic, rounded half up like Spark's decimals, so the dimensions
come out identical. Known differences that the benchmark's data never hits: DuckDB's try_cast
rounds a decimal string ('1.5' -> 2) where Spark may not, and predicted CLV (only computed
with 3+ days of history) uses a double here. The harness checks that fct_sales row count and
purchase sum equal the lake's, and compares the dimensions row by row.

Writes `summary.json` in --out with the counts and the in-process time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

import duckdb
import yaml  # type: ignore[import-untyped,unused-ignore]

from bench import REPO_DIR
from ingestion.schema import EXPECTED_COLUMNS, SOURCE_TABLE

SUMMARY_FILE = "summary.json"


def project_vars() -> dict[str, Any]:
    project = yaml.safe_load((REPO_DIR / "dbt_project.yml").read_text())
    return dict(project["vars"])


def _quoted(values: list[Any]) -> str:
    return ", ".join("'" + str(value).replace("'", "''") + "'" for value in values)


def validation_rules(v: dict[str, Any]) -> list[tuple[str, str]]:
    """(reason, condition under which a staged row breaks it), as in macros/validation.sql."""
    cid, occ, cat = v["customer_id_range"], v["occupation_code_range"], v["product_category_range"]
    return [
        ("missing_line_number", "source_line_number is null"),
        (
            "invalid_customer_id",
            f"customer_id is null or customer_id not between {cid[0]} and {cid[1]}",
        ),
        (
            "invalid_product_id",
            f"product_id is null or not regexp_matches(product_id, '{v['product_id_pattern']}')",
        ),
        ("invalid_gender", f"gender is null or gender not in ({_quoted(v['valid_genders'])})"),
        (
            "invalid_age_band",
            f"age_band is null or age_band not in ({_quoted(v['valid_age_bands'])})",
        ),
        (
            "invalid_occupation_code",
            f"occupation_code is null or occupation_code not between {occ[0]} and {occ[1]}",
        ),
        (
            "invalid_city_category",
            "city_category is null or city_category not in "
            f"({_quoted(v['valid_city_categories'])})",
        ),
        (
            "invalid_years_in_city",
            f"years_in_city is null or years_in_city not in ({_quoted(v['valid_years_in_city'])})",
        ),
        (
            "invalid_marital_status",
            "marital_status_code is null or marital_status_code not in (0, 1)",
        ),
        ("married_minor", "age_band = '0-17' and marital_status_code = 1"),
        (
            "invalid_product_category",
            f"product_category is null or product_category not between {cat[0]} and {cat[1]}",
        ),
        ("invalid_purchase_amount", "purchase_amount is null or purchase_amount <= 0"),
    ]


def rejection_reasons_sql(v: dict[str, Any]) -> str:
    cases = ",\n        ".join(
        f"case when {broken} then '{name}' end" for name, broken in validation_rules(v)
    )
    return f"nullif(concat_ws('; ',\n        {cases}\n    ), '')"


# The ten columns of the raw file, as the ingestion lands them.
RAW_COLUMNS = EXPECTED_COLUMNS


def silver_sql(bronze: Path, v: dict[str, Any]) -> str:
    parts = bronze / SOURCE_TABLE / "*" / "*" / "part-*.csv.gz"
    ledger = bronze / "_ledger" / SOURCE_TABLE / "*.json"
    raw_record = ", ".join(f"'{column}': {column}" for column in RAW_COLUMNS)
    return f"""
    create table validated as
    with source as (
        select * from read_csv('{parts}', header = true, all_varchar = true,
            hive_partitioning = true,
            hive_types = {{'ingest_date': 'VARCHAR', 'batch_id': 'VARCHAR'}})
        where batch_id in (select batch_id from read_json_auto('{ledger}'))
    ),
    staged as (
        select
            concat(batch_id, ':', trim(source_line_number)) as sale_id,
            try_cast(trim(User_ID) as integer) as customer_id,
            upper(trim(Product_ID)) as product_id,
            upper(trim(Gender)) as gender,
            trim(Age) as age_band,
            try_cast(trim(Occupation) as integer) as occupation_code,
            upper(trim(City_Category)) as city_category,
            trim(Stay_In_Current_City_Years) as years_in_city,
            try_cast(trim(Marital_Status) as integer) as marital_status_code,
            try_cast(trim(Product_Category) as integer) as product_category,
            try_cast(trim(Purchase) as bigint) as purchase_amount,
            try_cast(trim(source_line_number) as integer) as source_line_number,
            batch_id,
            cast(ingest_date as date) as ingest_date,
            {{{raw_record}}} as raw_record
        from source
    ),
    judged as (
        select staged.*, {rejection_reasons_sql(v)} as rejection_reasons
        from staged
    )
    select
        sale_id, customer_id, product_id, gender, age_band, occupation_code, city_category,
        years_in_city, marital_status_code = 1 as is_married, product_category, purchase_amount,
        rejection_reasons is null as is_valid, rejection_reasons,
        case when rejection_reasons is not null then to_json(raw_record) end as raw_record,
        source_line_number, batch_id, ingest_date
    from judged
    """


FCT_SALES_SQL = """
    select sale_id, customer_id, product_id, product_category, purchase_amount, batch_id,
        ingest_date
    from validated where is_valid
"""


def dim_customers_sql(v: dict[str, Any]) -> str:
    margin = f"cast({v['clv_gross_margin']} as decimal(9, 4))"
    return f"""
    with sales as (select * from validated where is_valid),
    customer_totals as (
        select
            customer_id,
            arg_max(
                {{'gender': gender, 'age_band': age_band, 'occupation_code': occupation_code,
                  'city_category': city_category, 'years_in_city': years_in_city,
                  'is_married': is_married}},
                {{'ingest_date': ingest_date, 'batch_id': batch_id, 'line': source_line_number}}
            ) as latest,
            sum(purchase_amount) as total_spent,
            count(*) as purchase_count,
            count(distinct product_id) as distinct_products,
            min(ingest_date) as first_purchase_date,
            max(ingest_date) as last_purchase_date
        from sales
        group by customer_id
    ),
    lake_history as (
        select datediff('day', min(ingest_date), max(ingest_date)) + 1 as history_days from sales
    ),
    with_averages as (
        select
            customer_totals.*,
            cast(total_spent as decimal(18, 2)) / purchase_count as avg_purchase,
            -- Spark's avg of decimal(18, 2) is decimal(22, 6): in millionths, rounded half up
            half_up_div(sum(total_spent) over () * 1000000, count(*) over ()) as mean_micros,
            lake_history.history_days
        from customer_totals cross join lake_history
    )
    select
        w.customer_id,
        w.latest.gender as gender,
        w.latest.age_band as age_band,
        coalesce(a.age_group, 'Unknown') as age_group,
        w.latest.occupation_code as occupation_code,
        w.latest.city_category as city_category,
        coalesce(c.city_category_name, 'Unknown') as city_category_name,
        w.latest.years_in_city as years_in_city,
        w.latest.is_married as is_married,
        w.total_spent,
        w.purchase_count,
        w.distinct_products,
        cents(half_up_div(w.total_spent * 100, w.purchase_count)) as avg_purchase_amount,
        cast(round(w.total_spent * {margin}, 2) as decimal(18, 2)) as historic_clv,
        case when w.history_days >= {v["clv_min_history_days"]} then cast(round(
            w.total_spent * {margin}
            + cast(w.purchase_count as decimal(18, 6)) / w.history_days
            * {v["clv_horizon_days"]} * w.avg_purchase * {margin}, 2) as decimal(18, 2))
        end as predicted_clv,
        case
            when w.total_spent * 1000000 >= 2 * w.mean_micros then 'VIP'
            when w.total_spent * 1000000 >= w.mean_micros then 'Loyal'
            else 'Regular'
        end as spend_segment,
        case
            when w.distinct_products > 100 then 'High'
            when w.distinct_products > 30 then 'Medium'
            else 'Low'
        end as frequency_segment,
        w.first_purchase_date,
        w.last_purchase_date
    from with_averages w
    left join age_bands a on w.latest.age_band = a.age_band
    left join city_categories c on w.latest.city_category = c.city_category
    """


DIM_PRODUCTS_SQL = """
    with sales as (select * from validated where is_valid),
    product_totals as (
        select
            product_id,
            arg_max(product_category,
                {'ingest_date': ingest_date, 'batch_id': batch_id, 'line': source_line_number}
            ) as product_category,
            sum(purchase_amount) as total_revenue,
            count(*) as units_sold,
            count(distinct customer_id) as distinct_customers
        from sales
        group by product_id
    ),
    ranked as (
        select
            product_totals.*,
            sum(total_revenue) over () as all_revenue,
            half_up_div(sum(total_revenue) over () * 1000000, count(*) over ())
                as mean_revenue_micros,
            row_number() over (order by total_revenue desc, product_id) as revenue_rank,
            sum(total_revenue) over (
                order by total_revenue desc, product_id
                rows between unbounded preceding and current row
            ) as cumulative_revenue
        from product_totals
    )
    select
        r.product_id,
        r.product_category,
        coalesce(p.product_category_name, 'Unknown') as product_category_name,
        r.total_revenue,
        r.units_sold,
        r.distinct_customers,
        cents(half_up_div(r.total_revenue * 100, r.distinct_customers))
            as avg_revenue_per_customer,
        cast(cents(half_up_div(r.total_revenue * 10000, r.all_revenue)) as decimal(9, 2))
            as revenue_contribution_pct,
        cast(r.revenue_rank as integer) as revenue_rank,
        case when r.total_revenue * 1000000 > r.mean_revenue_micros then 'Top Seller'
            else 'Regular' end
            as product_segment,
        case
            when r.cumulative_revenue <= 0.80 * r.all_revenue then 'A'
            when r.cumulative_revenue <= 0.95 * r.all_revenue then 'B'
            else 'C'
        end as abc_class
    from ranked r
    left join product_categories p on r.product_category = p.product_category
"""

PARQUET = "format parquet, compression zstd"

# Spark divides decimals exactly and rounds half up; DuckDB divides decimals as doubles. Where a
# Gold column is a rounded quotient of whole numbers, compute it the exact way.
MACROS = """
    create macro half_up_div(num, den) as
        (2 * cast(num as hugeint) + den) // (2 * cast(den as hugeint));
    create macro cents(amount) as
        cast(cast(amount as decimal(18, 0)) * cast(0.01 as decimal(3, 2)) as decimal(18, 2));
"""


def run(home: Path, out: Path) -> dict[str, Any]:
    """Build Silver and Gold from the Bronze of `home` into Parquet files under `out`."""
    started = time.perf_counter()
    if out.exists():
        shutil.rmtree(out)
    (out / "silver").mkdir(parents=True)
    (out / "gold").mkdir(parents=True)
    v = project_vars()
    con = duckdb.connect()
    try:
        for seed in ("age_bands", "city_categories", "product_categories"):
            path = REPO_DIR / "seeds" / f"{seed}.csv"
            con.execute(f"create table {seed} as select * from read_csv('{path}', header = true)")
        con.execute(MACROS)
        con.execute(silver_sql(home / "bronze", v))
        con.execute(
            f"copy validated to '{out / 'silver' / 'slv_sales_validated'}' "
            f"({PARQUET}, partition_by (ingest_date))"
        )
        con.execute(
            f"copy ({FCT_SALES_SQL}) to '{out / 'gold' / 'fct_sales'}' "
            f"({PARQUET}, partition_by (ingest_date))"
        )
        dim_customers = out / "gold" / "dim_customers.parquet"
        con.execute(f"copy ({dim_customers_sql(v)}) to '{dim_customers}' ({PARQUET})")
        con.execute(
            f"copy ({DIM_PRODUCTS_SQL}) to '{out / 'gold' / 'dim_products.parquet'}' ({PARQUET})"
        )
        seconds = time.perf_counter() - started
        counts = _counts(con, out)
    finally:
        con.close()
    summary = {"in_process_s": round(seconds, 3), **counts}
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
    return summary


def _counts(con: duckdb.DuckDBPyConnection, out: Path) -> dict[str, Any]:
    """What the baseline produced, read back from its own files (not timed)."""
    gold = out / "gold"

    def one(sql: str) -> Any:
        row = con.execute(sql).fetchone()
        assert row is not None
        return row

    silver_rows, valid_rows = one(
        "select count(*), count(*) filter (where is_valid) from validated"
    )
    fct_rows, fct_sum = one(
        f"select count(*), coalesce(sum(purchase_amount), 0) "
        f"from read_parquet('{gold / 'fct_sales'}/**/*.parquet', hive_partitioning = true)"
    )
    return {
        "bronze_rows": int(silver_rows),
        "valid_rows": int(valid_rows),
        "rejected_rows": int(silver_rows - valid_rows),
        "fct_sales_rows": int(fct_rows),
        "fct_sales_purchase_amount": int(fct_sum),
        "dim_customers_rows": int(
            one(f"select count(*) from '{gold / 'dim_customers.parquet'}'")[0]
        ),
        "dim_products_rows": int(one(f"select count(*) from '{gold / 'dim_products.parquet'}'")[0]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True, help="the LAKEHOUSE_HOME to read")
    parser.add_argument("--out", type=Path, required=True, help="folder for the Parquet files")
    args = parser.parse_args()
    run(args.home.resolve(), args.out.resolve())


if __name__ == "__main__":
    main()
