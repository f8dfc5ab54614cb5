{{ config(**lake_incremental_config(
    unique_key=['product_id', 'batch_id'],
    partition_by=['ingest_date'],
    batches_from='fct_sales',
)) }}

-- One row per product per batch: what the batch added to the product's history. dim_products
-- sums these instead of re-reading every sale.
with sales as (

    select * from {{ ref('slv_sales') }}
    where {{ incremental_batch_filter(match_ingest_date=true, ordered=true) }}

),

product_totals as (

    select
        product_id,
        batch_id,
        ingest_date,
        max_by(product_category, source_line_number) as product_category,
        max(source_line_number) as last_line_number,
        sum(purchase_amount) as revenue_amount,
        count(*) as units_sold
    from sales
    group by product_id, batch_id, ingest_date

),

first_purchases as (

    {{ first_purchase_counts('sales', ref('fct_sales'), 'product_id', 'customer_id') }}

),

final as (

    select
        product_totals.product_id,
        product_totals.batch_id,
        product_totals.ingest_date,
        product_totals.landed_at,
        product_totals.product_category,
        product_totals.last_line_number,
        product_totals.revenue_amount,
        product_totals.units_sold,
        coalesce(first_purchases.first_purchase_count, 0) as new_customer_count
    -- each batch's commit time (the ledger's), which orders the batches of one day
    from {{ with_landed_at('product_totals') }} as product_totals
    left join first_purchases
        on
            product_totals.product_id = first_purchases.product_id
            and product_totals.batch_rank = first_purchases.batch_rank

)

select * from final
