-- For every committed batch: the rows the ledger says landed = the rows Bronze holds
-- = valid Silver rows + rejected rows. Nothing lost, nothing duplicated.
{{ config(tags=['lake']) }}

with ledger as (

    select
        batch_id,
        cast(ingest_date as string) as ingest_date,
        row_count
    from {{ ref('stg_walmart__batches') }}

),

bronze as (

    -- only the rows under the date each batch was committed with (what Silver reads)
    select
        walmart_sales.batch_id,
        count(*) as bronze_rows
    from {{ source('walmart', 'walmart_sales') }} as walmart_sales
    inner join ledger
        on
            walmart_sales.batch_id = ledger.batch_id
            and walmart_sales.ingest_date = ledger.ingest_date
    group by walmart_sales.batch_id

),

silver as (

    select
        batch_id,
        sum(case when is_valid then 1 else 0 end) as valid_rows,
        sum(case when is_valid then 0 else 1 end) as rejected_rows
    from {{ ref('slv_sales_validated') }}
    group by batch_id

),

compared as (

    select
        ledger.batch_id,
        ledger.row_count as ledger_rows,
        coalesce(bronze.bronze_rows, 0) as bronze_rows,
        coalesce(silver.valid_rows, 0) as valid_rows,
        coalesce(silver.rejected_rows, 0) as rejected_rows
    from ledger
    left join bronze on ledger.batch_id = bronze.batch_id
    left join silver on ledger.batch_id = silver.batch_id

)

select *
from compared
where
    ledger_rows <> bronze_rows
    or bronze_rows <> valid_rows + rejected_rows
