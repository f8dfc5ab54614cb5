{{ config(**lake_incremental_config(
    unique_key='sale_id', partition_by=['ingest_date'], batches_from='slv_sales_validated'
)) }}

-- depends_on: {{ ref('stg_walmart__batches') }}
-- depends_on: {{ ref('slv_sales_validated') }}
-- One row per valid purchase line. Incremental by batch: a run reads only the Silver batches this
-- table does not hold yet, so a run with nothing new reads (almost) nothing.
with sales as (

    select * from {{ ref('slv_sales') }}
    where {{ incremental_batch_filter(match_ingest_date=true) }}

),

final as (

    select
        sale_id,
        customer_id,
        product_id,
        product_category,
        purchase_amount,
        batch_id,
        ingest_date
    from sales

)

select * from final
