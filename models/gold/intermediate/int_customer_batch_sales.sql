{{ config(**lake_incremental_config(
    unique_key=['customer_id', 'batch_id'],
    partition_by=['ingest_date'],
    batches_from='fct_sales',
)) }}

-- One row per customer per batch: what the batch added to the customer's history. dim_customers
-- sums these instead of re-reading every sale, so a run with a new batch reads that batch (and
-- the narrow key columns of fct_sales, to tell first purchases of a product from repeats).
with sales as (

    select * from {{ ref('slv_sales') }}
    where {{ incremental_batch_filter(match_ingest_date=true, ordered=true) }}

),

customer_totals as (

    select
        customer_id,
        batch_id,
        ingest_date,
        -- the customer's demographics as the last row of the batch gives them
        max_by(
            named_struct(
                'gender', gender,
                'age_band', age_band,
                'occupation_code', occupation_code,
                'city_category', city_category,
                'years_in_city', years_in_city,
                'is_married', is_married
            ),
            source_line_number
        ) as profile,
        max(source_line_number) as last_line_number,
        sum(purchase_amount) as spent_amount,
        count(*) as purchase_count
    from sales
    group by customer_id, batch_id, ingest_date

),

first_purchases as (

    {{ first_purchase_counts('sales', ref('fct_sales'), 'customer_id', 'product_id') }}

),

final as (

    select
        customer_totals.customer_id,
        customer_totals.batch_id,
        customer_totals.ingest_date,
        customer_totals.landed_at,
        customer_totals.profile,
        customer_totals.last_line_number,
        customer_totals.spent_amount,
        customer_totals.purchase_count,
        coalesce(first_purchases.first_purchase_count, 0) as new_product_count
    -- each batch's commit time (the ledger's), which orders the batches of one day
    from {{ with_landed_at('customer_totals') }} as customer_totals
    left join first_purchases
        on
            customer_totals.customer_id = first_purchases.customer_id
            and customer_totals.batch_rank = first_purchases.batch_rank

)

select * from final
