{#
    The order in which batches count as "earlier": by ingest date, then by the time the ledger
    committed them (`landed_at`, from stg_walmart__batches), then by id. The id alone (a content
    hash) would put a second batch of the same day before the first about half the time, and
    every such batch would look like a late arrival that makes the first-purchase models re-read
    all history. `alias`: the relation whose columns are ordered (none: unqualified); `line`: an extra last key.
#}
{% macro batch_order_key(alias=none, line=none) -%}
    {%- set prefix = alias ~ '.' if alias else '' -%}
    named_struct(
        'ingest_date', {{ prefix }}ingest_date,
        'landed_at', {{ prefix }}landed_at,
        'batch_id', {{ prefix }}batch_id
        {%- if line %}, 'line', {{ prefix }}{{ line }}{% endif %}
    )
{%- endmacro %}

{#- `rows` with the `landed_at` of their batch (an inner join: Silver only holds committed
    batches, and a row of no committed batch would go missing where the sums_match tests see it). -#}
{% macro with_landed_at(rows) -%}
    (
        select batch_rows.*, ledger.ingested_at as landed_at
        from {{ rows }} as batch_rows
        inner join {{ ref('stg_walmart__batches') }} as ledger
            on batch_rows.batch_id = ledger.batch_id
    )
{%- endmacro %}

{#
    A select for the CTE `first_purchases`: per `key` (customer or product) and batch of `new_rows`, how many of
    its `other` values (products or customers) the batch holds for the first time in all of
    `history` (the fact table, which already holds the new rows; read on incremental runs only). Summed over batches, that is
    the exact distinct count, without keeping a (customer, product) set beside the fact table.
    "First" follows batch_order_key (the rows get `landed_at` from the ledger). A batch that sorts
    before one the model holds (a backfill under an older date) makes its model re-read every
    batch (incremental_batch_filter with ordered=true).

    On an incremental run only the history of the pairs the new rows touch is grouped (a semi
    join), so a 1% batch groups 1% of the pairs; the fact's two key columns are still read once.
    On a first build or a full refresh the new rows are the whole history: one aggregation over
    them, no join (at 5.5 M rows the join made each int_*_batch_sales model take 90 s).
#}
{% macro first_purchase_counts(new_rows, history, key, other) %}
    {%- if not is_incremental() %}
    select
        {{ key }},
        first_seen.batch_id as batch_id,
        count(*) as first_purchase_count
    from (
        select
            {{ key }},
            {{ other }},
            min({{ batch_order_key() }}) as first_seen
        from {{ with_landed_at(new_rows) }} as timed_rows
        group by {{ key }}, {{ other }}
    ) as pair_history
    group by {{ key }}, first_seen.batch_id
    {%- else %}
    select
        new_pairs.{{ key }},
        new_pairs.batch_id,
        count(*) as first_purchase_count
    from (
        select distinct {{ key }}, {{ other }}, ingest_date, landed_at, batch_id
        from {{ with_landed_at(new_rows) }} as timed_rows
    ) as new_pairs
    inner join (
        select
            history.{{ key }},
            history.{{ other }},
            min({{ batch_order_key('history') }}) as first_seen
        from {{ with_landed_at(history) }} as history
        left semi join {{ new_rows }} as touched
            on
                history.{{ key }} = touched.{{ key }}
                and history.{{ other }} = touched.{{ other }}
        group by history.{{ key }}, history.{{ other }}
    ) as pair_history
        on
            new_pairs.{{ key }} = pair_history.{{ key }}
            and new_pairs.{{ other }} = pair_history.{{ other }}
    where pair_history.first_seen = {{ batch_order_key('new_pairs') }}
    group by new_pairs.{{ key }}, new_pairs.batch_id
    {%- endif %}
{%- endmacro %}
