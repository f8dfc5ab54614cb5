-- For every committed batch: the rows the ledger says landed = the rows Bronze holds
-- = valid Silver rows + rejected rows. Nothing lost, nothing duplicated.
-- The counts are slv_batch_quality's (made once, for this test, the run summary, the audit
-- history and the Glue rehearsal); a batch of the ledger without its row there fails too.
-- Checked for the batches Silver built last (all of them on a first build or a full refresh;
-- every batch with --vars '{test_all_batches: true}'), as the row-level tests are: a built
-- batch's files and rows do not change (macros/test_scope.sql).
{{ config(tags=['lake']) }}

{%- set built_last = _new_batches_predicate(ref('slv_sales_validated')) %}

with ledger as (

    select batch_id
    from {{ ref('stg_walmart__batches') }}
    where {{ built_last }}

),

quality as (

    select *
    from {{ ref('slv_batch_quality') }}
    where {{ built_last }}

)

select
    ledger.batch_id,
    quality.ledger_rows,
    quality.bronze_rows,
    quality.valid_rows,
    quality.rejected_rows
from ledger
left join quality on ledger.batch_id = quality.batch_id
where
    quality.batch_id is null
    or quality.ledger_rows <> quality.bronze_rows
    or quality.bronze_rows <> quality.valid_rows + quality.rejected_rows
