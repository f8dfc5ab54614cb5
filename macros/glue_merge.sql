{#
    The merge of an incremental lake model on Glue.

    dbt-glue defines its own `get_merge_sql` (not dispatched), so the project's
    `spark__get_merge_sql` (macros/merge_only_when_new.sql) never applies on Glue, and dbt-glue's
    Iceberg merge ignores `on_schema_change: 'fail'` (it only looks at append_new_columns and
    sync_all_columns). A root-project `get_merge_sql` wins over both dbt's and dbt-glue's, so it
    dispatches: every adapter but Glue gets dbt's own (which dispatches to spark__get_merge_sql as
    before); Glue gets the same guarantees as the local lake (no merge without new rows, the
    merge kept to the new rows' partitions, an insert-only merge while no held row can change,
    on_schema_change 'fail'), then dbt-glue's own merge
    (`dbt.` names the internal packages flattened, the adapter's macros last, so on Glue
    `dbt.get_merge_sql` is dbt-glue's).
    Shown by `lakehouse rehearse glue` (docs/design-notes.md).
#}
{% macro get_merge_sql(target, source, unique_key, dest_columns, incremental_predicates=none) %}
    {{ return(adapter.dispatch('get_merge_sql', 'lakehouse')(target, source, unique_key, dest_columns, incremental_predicates)) }}
{% endmacro %}

{% macro default__get_merge_sql(target, source, unique_key, dest_columns, incremental_predicates) %}
    {{ return(dbt.get_merge_sql(target, source, unique_key, dest_columns, incremental_predicates)) }}
{% endmacro %}

{% macro glue__get_merge_sql(target, source, unique_key, dest_columns, incremental_predicates) %}
    {%- set full_source = glue__make_target_relation(source, config.get('file_format')) -%}
    {%- if config.get('on_schema_change') == 'fail' -%}
        {%- set target_columns = adapter.get_columns_in_relation(target) | map(attribute='name') | map('lower') | list -%}
        {%- set source_columns = adapter.get_columns_in_relation(source) | map(attribute='name') | map('lower') | list -%}
        {%- if target_columns and source_columns and target_columns != source_columns -%}
            {{ exceptions.raise_compiler_error(
                "The source and target schemas on this incremental model are out of sync (on_schema_change: 'fail'): "
                ~ target ~ " has " ~ target_columns | join(', ') ~ "; the model now selects "
                ~ source_columns | join(', ') ~ ". Run with --full-refresh, or change on_schema_change.") }}
        {%- endif -%}
    {%- endif -%}
    {%- set pruning = merge_partition_predicates(full_source) -%}
    {%- if pruning is none -%}
        {{ log('No new rows for ' ~ target ~ ': nothing to merge', info=False) }}
        {{ return("select 'no new rows' as merge_skipped") }}
    {%- endif -%}
    {%- if rows_only_added() -%}
        {%- set columns = (dest_columns or adapter.get_columns_in_relation(target)) | map(attribute='name') | list -%}
        {{ return(insert_new_keys_sql(
            glue__make_target_relation(target, config.get('file_format')), full_source, unique_key,
            (incremental_predicates or []) + pruning, columns)) }}
    {%- endif -%}
    {#- `dbt.` is every internal package, the adapter's last: on Glue, dbt-glue's own merge. -#}
    {{ return(dbt.get_merge_sql(target, source, unique_key, dest_columns, (incremental_predicates or []) + pruning)) }}
{% endmacro %}

{#
    dbt-glue builds an incremental model's new rows as an Iceberg table `<model>_tmp` next to it
    and drops it only after a successful merge: a failed run leaves it in the catalog (where
    Spectrum's gold schema shows it). On-run-end drops every one of them, whatever happened.
#}
{% macro drop_glue_tmp_tables() %}
    {%- set statements = [] -%}
    {%- set catalog = adapter.get_custom_iceberg_catalog_namespace() -%}
    {%- for node in graph.nodes.values()
        if node.resource_type == 'model' and node.config.materialized == 'incremental'
        and node.config.enabled and node.config.file_format == 'iceberg' -%}
        {%- set name = (catalog ~ '.' if catalog else '') ~ node.schema ~ '.' ~ node.alias ~ '_' ~ node.config.get('custom_temp_suffix', 'tmp') -%}
        {%- do statements.append('drop table if exists ' ~ name ~ ' purge') -%}
    {%- endfor -%}
    {{ return(statements | join(';\n')) }}
{% endmacro %}
