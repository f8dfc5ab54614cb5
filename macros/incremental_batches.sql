{#
    Which Bronze batches an incremental lake model reads on this run, as a SQL predicate on
    `batch_id` / `ingest_date`. `batches` is a relation with one row per batch the upstream layer
    has (the ledger for Silver, Silver for Gold).

    - First build or full refresh: every batch in `batches`.
    - merge (Iceberg): only the batches this model does not hold yet; the merge on the unique key
      makes a re-run of a half-finished build exact.
    - insert_overwrite (Hive Parquet): whole ingest_date partitions are replaced, so every batch of
      each date that has a new batch is read again.

    The batch ids are rendered as literals (not a subquery) so that Spark prunes Bronze partitions
    and Iceberg files at planning time. With `match_ingest_date`, a row must also sit under the
    ingest date its batch was committed with: parts a crashed landing left under another date
    are never read (Silver reads Bronze this way).
#}
{% macro incremental_batch_filter(batches, match_ingest_date=false) %}
    {%- if not execute -%}
        {{ return('true') }}
    {%- endif -%}
    {%- set upstream = run_query(
        'select distinct batch_id, cast(ingest_date as string) as ingest_date from ' ~ batches
    ) -%}
    {%- set upstream_pairs = upstream.rows | map('list') | list -%}
    {%- if not is_incremental() -%}
        {{ return(_batch_predicate(upstream_pairs, none, match_ingest_date)) }}
    {%- endif -%}
    {%- set held = run_query('select distinct batch_id from ' ~ this).columns[0].values() | list -%}
    {%- set new_pairs = [] -%}
    {%- for pair in upstream_pairs if pair[0] not in held -%}
        {%- do new_pairs.append(pair) -%}
    {%- endfor -%}
    {%- if config.get('incremental_strategy') == 'insert_overwrite' -%}
        {%- set dates = new_pairs | map(attribute=1) | unique | list -%}
        {{ return(_batch_predicate(upstream_pairs, dates, match_ingest_date)) }}
    {%- endif -%}
    {{ return(_batch_predicate(new_pairs, none, match_ingest_date)) }}
{% endmacro %}

{#- pairs: [batch_id, ingest_date] lists; ingest_dates: whole partitions to re-read, or none. -#}
{% macro _batch_predicate(pairs, ingest_dates, match_ingest_date) %}
    {%- if pairs | length == 0 or (ingest_dates is not none and ingest_dates | length == 0) -%}
        {{ return('false') }}
    {%- endif -%}
    {%- if match_ingest_date -%}
        {%- set literals = [] -%}
        {%- for batch_id, ingest_date in pairs | sort -%}
            {%- do literals.append("('" ~ batch_id ~ "', date '" ~ ingest_date ~ "')") -%}
        {%- endfor -%}
        {%- set predicate = '(batch_id, ingest_date) in (' ~ literals | join(', ') ~ ')' -%}
    {%- else -%}
        {%- set predicate = 'batch_id in (' ~ _quoted(pairs | map(attribute=0) | list) ~ ')' -%}
    {%- endif -%}
    {%- if ingest_dates is not none -%}
        {%- set predicate = predicate ~ ' and ingest_date in (' ~ _quoted(ingest_dates, 'date') ~ ')' -%}
    {%- endif -%}
    {{ return(predicate) }}
{% endmacro %}

{% macro _quoted(values, literal_type='') %}
    {%- set literals = [] -%}
    {%- for value in values | sort -%}
        {%- do literals.append((literal_type ~ " '" ~ value ~ "'") | trim) -%}
    {%- endfor -%}
    {{ return(literals | join(', ')) }}
{% endmacro %}
