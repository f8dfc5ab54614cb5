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

{#- `rows` with the `landed_at` of their batch and its `batch_rank`: its place in batch order as
    one integer, 1 for the earliest. Ranked by batch_order_key itself, so the first purchases and
    the dimensions' latest profile never disagree on which batch came first; numbered over the
    whole ledger in the query that uses it, so a backfill that sorts before held batches
    renumbers consistently. An inner join: Silver only holds committed batches, and a row of no
    committed batch would go missing where the sums_match tests see it. -#}
{% macro with_landed_at(rows) -%}
    (
        select batch_rows.*, ledger.landed_at, ledger.batch_rank
        from {{ rows }} as batch_rows
        inner join (
            select
                batch_id,
                landed_at,
                row_number() over (order by {{ batch_order_key() }}) as batch_rank
            from (
                select batch_id, ingest_date, ingested_at as landed_at
                from {{ ref('stg_walmart__batches') }}
            ) as committed
        ) as ledger
            on batch_rows.batch_id = ledger.batch_id
    )
{%- endmacro %}

{#
    A select for the CTE `first_purchases`: per `key` (customer or product) and batch (`batch_rank`
    of with_landed_at), how many of its `other` values (products or customers) the batch holds for
    the first time in all of `history` (the fact table, which already holds the new rows; read on
    incremental runs only). Summed over batches, that is the exact distinct count, without keeping
    a (customer, product) set beside the fact table. "First" follows batch order. A batch that
    sorts before one the model holds (a backfill under an older date) makes its model re-read
    every batch (incremental_batch_filter with ordered=true).

    Each pair's first batch is the lowest batch rank over the pair's rows; a batch's count is the
    number of pairs whose first batch it is. On an incremental run only the pairs the new rows
    touch are grouped (a semi join on the fact's two key columns), so a 1% batch groups 1% of the
    pairs; a touched pair first bought in an older batch yields a row for that older batch, which
    the caller's join on (key, rank of the new rows' batch) leaves out. Comparing each new pair
    with its history instead (the earlier form) cost two more shuffles and a sort-merge join: the
    merge source took 2.03 s against 1.63 s (medians, 550k rows, one 1% batch;
    docs/design-notes.md). On a first build or a full refresh the new rows are the whole history:
    one aggregation over them, no join (at 5.5 M rows the join made each int_*_batch_sales model
    take 90 s). The pairs carry the batch's rank, not its (date, landing time, id) struct: a
    narrower shuffle and an integer comparison (both models, full refresh, medians of 3 alternating
    runs: 21.8 s against 25.9 s at 5.5 M rows, 9.8 against 10.3 at 550k; 4.7 against 4.3 at 29k,
    where the ranking window's extra stage costs more than it saves).
#}
{% macro first_purchase_counts(new_rows, history, key, other) %}
    select
        pairs.{{ key }},
        pairs.first_rank as batch_rank,
        count(*) as first_purchase_count
    from (
        select
            pair_rows.{{ key }},
            pair_rows.{{ other }},
            min(pair_rows.batch_rank) as first_rank
        from {{ with_landed_at(history if is_incremental() else new_rows) }} as pair_rows
        {%- if is_incremental() %}
        left semi join {{ new_rows }} as touched
            on
                pair_rows.{{ key }} = touched.{{ key }}
                and pair_rows.{{ other }} = touched.{{ other }}
        {%- endif %}
        group by pair_rows.{{ key }}, pair_rows.{{ other }}
    ) as pairs
    group by pairs.{{ key }}, pairs.first_rank
{%- endmacro %}
