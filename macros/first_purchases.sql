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
    A select for the CTE `first_purchases`: per `key` (customer or product) and batch, how many of
    its `other` values (products or customers) the batch holds for the first time in all of
    `history` (the fact table, which already holds the new rows; read on incremental runs only).
    Summed over batches, that is the exact distinct count, without keeping a (customer, product)
    set beside the fact table. "First" follows batch_order_key (the rows get `landed_at` from the
    ledger). A batch that sorts before one the model holds (a backfill under an older date) makes
    its model re-read every batch (incremental_batch_filter with ordered=true).

    Each pair's first batch is the minimum of batch_order_key over the pair's rows; a batch's count
    is the number of pairs whose first batch it is. On an incremental run only the pairs the new
    rows touch are grouped (a semi join on the fact's two key columns), so a 1% batch groups 1% of
    the pairs; a touched pair first bought in an older batch yields a row for that older batch,
    which the caller's join on (key, batch of the new rows) leaves out. Comparing each new pair with
    its history instead (the earlier form) cost two more shuffles and a sort-merge join: the merge
    source took 2.03 s against 1.63 s (medians, 550k rows, one 1% batch; docs/design-notes.md).
    On a first build or a full refresh the new rows are the whole history: one aggregation over
    them, no join (at 5.5 M rows the join made each int_*_batch_sales model take 90 s).
#}
{% macro first_purchase_counts(new_rows, history, key, other) %}
    select
        {{ key }},
        first_seen.batch_id as batch_id,
        count(*) as first_purchase_count
    from (
        select
            pairs.{{ key }},
            pairs.{{ other }},
            min({{ batch_order_key('pairs') }}) as first_seen
        {%- if is_incremental() %}
        from {{ with_landed_at(history) }} as pairs
        left semi join {{ new_rows }} as touched
            on
                pairs.{{ key }} = touched.{{ key }}
                and pairs.{{ other }} = touched.{{ other }}
        {%- else %}
        from {{ with_landed_at(new_rows) }} as pairs
        {%- endif %}
        group by pairs.{{ key }}, pairs.{{ other }}
    ) as pair_history
    group by {{ key }}, first_seen.batch_id
{%- endmacro %}
