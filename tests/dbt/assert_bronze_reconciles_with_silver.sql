-- For every committed batch: the rows the ledger says landed = the rows Bronze holds
-- = valid Silver rows + rejected rows. Nothing lost, nothing duplicated.
-- Checked for the batches Silver built last (all of them on a first build or a full refresh;
-- every batch with --vars '{test_all_batches: true}'), as the row-level tests are: a built
-- batch's files and rows do not change, and counting all of Bronze on every build was the
-- slowest test of an incremental build (macros/test_scope.sql).
{{ config(tags=['lake']) }}

{%- set built_last = _new_batches_predicate(ref('slv_sales_validated')) %}

with ledger as (

    select
        batch_id,
        cast(ingest_date as string) as ingest_date,
        row_count
    from {{ ref('stg_walmart__batches') }}
    where {{ built_last }}

),

bronze as (

    -- only the rows under the date each batch was committed with (what Silver reads)
    select
        walmart_sales.batch_id,
        count(*) as bronze_rows
    -- the predicate on Bronze itself too: a partition filter Spark prunes files with
    from (
        select * from {{ source('walmart', 'walmart_sales') }}
        where {{ built_last }}
    ) as walmart_sales
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
    where {{ built_last }}
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
