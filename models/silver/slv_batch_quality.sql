{{ config(**lake_incremental_config(
    unique_key='batch_id',
    partition_by=['ingest_date'],
    batches_from='slv_sales_validated',
)) }}

-- One row per committed batch Silver judged: the rows its ledger entry promised, the rows Bronze
-- holds for it, and Silver's verdict on them (valid, rejected, rejected per rule). The one place
-- these counts are made: assert_bronze_reconciles_with_silver checks them, and the run summary,
-- the audit history and the Glue rehearsal read them. Incremental by batch, so a build counts
-- only the batches Silver judged in it.
with ledger as (

    select
        batch_id,
        ingest_date,
        ingested_at as landed_at,
        row_count as ledger_rows
    from {{ ref('stg_walmart__batches') }}
    -- a ledger entry sits under its own date: the filter can then tell the merge which dates
    -- and batches the new rows hold (merge_partition_predicates) without running this query twice
    where {{ incremental_batch_filter(match_ingest_date=true) }}

),

-- only the rows under the date each batch was committed with (what Silver reads)
bronze as (

    select
        batch_id,
        count(*) as bronze_rows
    from {{ ref('stg_walmart__sales') }}
    where {{ incremental_batch_filter(match_ingest_date=true) }}
    group by batch_id

),

judged as (

    select
        batch_id,
        is_valid,
        purchase_amount,
        rejection_reasons
    from {{ ref('slv_sales_validated') }}
    where {{ incremental_batch_filter(match_ingest_date=true) }}

),

verdicts as (

    select
        batch_id,
        sum(case when is_valid then 1 else 0 end) as valid_rows,
        sum(case when is_valid then 0 else 1 end) as rejected_rows,
        sum(case when is_valid then purchase_amount else 0 end) as valid_purchase_amount
    from judged
    group by batch_id

),

-- a rejected row counts once under every rule it breaks
broken_rules as (

    select
        batch_id,
        explode(split(rejection_reasons, '; ')) as rejection_reason
    from judged
    where not is_valid

),

rule_counts as (

    select
        batch_id,
        rejection_reason,
        count(*) as rejected_rows
    from broken_rules
    group by batch_id, rejection_reason

),

reasons as (

    select
        batch_id,
        map_from_entries(
            collect_list(struct(rejection_reason, rejected_rows))
        ) as rejected_by_reason
    from rule_counts
    group by batch_id

),

final as (

    select
        ledger.batch_id,
        ledger.ingest_date,
        ledger.landed_at,
        ledger.ledger_rows,
        coalesce(bronze.bronze_rows, 0) as bronze_rows,
        coalesce(verdicts.valid_rows, 0) as valid_rows,
        coalesce(verdicts.rejected_rows, 0) as rejected_rows,
        coalesce(verdicts.valid_purchase_amount, 0) as valid_purchase_amount,
        -- no rejected row: an empty map (typed: a bare map() has no key and value types)
        coalesce(reasons.rejected_by_reason, map_from_arrays(
            cast(array() as array<string>), cast(array() as array<bigint>)
        )) as rejected_by_reason
    from ledger
    left join bronze on ledger.batch_id = bronze.batch_id
    left join verdicts on ledger.batch_id = verdicts.batch_id
    left join reasons on ledger.batch_id = reasons.batch_id

)

select * from final
