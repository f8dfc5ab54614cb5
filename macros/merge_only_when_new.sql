{#
    Overrides dbt-spark's merge for the local lake: when the incremental source is empty (no new
    batch), run no MERGE at all. Iceberg commits a new (empty) snapshot for a MERGE that changes
    nothing, so a rebuild on unchanged Bronze would still move every table's metadata; with this,
    it leaves the lake exactly as it was. dbt-glue has its own merge and is not affected.
#}
{% macro spark__get_merge_sql(target, source, unique_key, dest_columns, incremental_predicates) %}
    {%- set new_rows = run_query('select 1 from ' ~ source ~ ' limit 1') -%}
    {%- if new_rows.rows | length == 0 -%}
        {{ log('No new rows for ' ~ target ~ ': nothing to merge', info=False) }}
        select 'no new rows' as merge_skipped
    {%- else -%}
        {{ dbt.spark__get_merge_sql(target, source, unique_key, dest_columns, incremental_predicates) }}
    {%- endif -%}
{% endmacro %}
