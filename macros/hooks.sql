{#- The project's on-run-start / on-run-end: one entry point each, dispatched per engine. -#}

{% macro lakehouse_on_run_start() %}
    {%- if execute -%}
        {%- set bronze = '' -%}
        {%- if target.type in ['spark', 'glue'] -%}
            {%- if selection_reads_bronze() -%}
                {%- set bronze = create_bronze_tables() -%}
            {%- else -%}
                {%- do log('Bronze left as it is: nothing selected reads it (a batch landed since'
                    ~ ' the last build waits for a command that does)', info=true) -%}
            {%- endif -%}
        {%- endif -%}
        {%- do run_statements(create_layer_schemas() ~ ';' ~ bronze ~ ';' ~ create_gold_views()) -%}
    {%- endif -%}
    select 1
{% endmacro %}

{% macro lakehouse_on_run_end() %}
    {%- if execute and flags.WHICH in ['run', 'build'] and target.type == 'spark'
        and gold_changed(results) -%}
        {%- do run_statements(publish_gold_manifest()) -%}
    {%- endif -%}
    {%- if execute and target.type == 'glue' -%}
        {%- do run_statements(drop_glue_tmp_tables()) -%}
    {%- endif -%}
    select 1
{% endmacro %}

{#- Whether this invocation built a Gold model: only then can the published manifest be stale. -#}
{% macro gold_changed(results) %}
    {%- for result in results
        if result.node.resource_type == 'model' and result.node.fqn[1] == 'gold'
        and result.status == 'success' -%}
        {{ return(true) }}
    {%- endfor -%}
    {{ return(false) }}
{% endmacro %}

{#- Spark runs one statement per call. -#}
{% macro run_statements(sql) %}
    {{ return(adapter.dispatch('run_statements', 'lakehouse')(sql)) }}
{% endmacro %}

{% macro default__run_statements(sql) %}
    {%- for statement in sql.split(';') if statement.strip() -%}
        {%- do run_query(statement) -%}
    {%- endfor -%}
{% endmacro %}

{#-
    dbt-glue cannot fetch the result of a statement that returns no columns: its SqlWrapper2
    answers `"results": null` and the cursor's fetchall iterates it (TypeError: 'NoneType' object
    is not iterable), so `run_query('create database ...')` fails on Glue. Execute without fetching.
    Shown by `lakehouse rehearse glue` (docs/design-notes.md).
-#}
{% macro glue__run_statements(sql) %}
    {%- for statement in sql.split(';') if statement.strip() -%}
        {%- do adapter.execute(statement, fetch=False) -%}
    {%- endfor -%}
{% endmacro %}

{% macro create_layer_schemas() %}
    {{ return(adapter.dispatch('create_layer_schemas', 'lakehouse')()) }}
{% endmacro %}

{% macro default__create_layer_schemas() %}
    {{ return('') }}
{% endmacro %}

{% macro spark__create_layer_schemas() %}
    {%- for layer in ['silver', 'gold'] %}
    create database if not exists {{ generate_schema_name(layer, none) }};
    {%- endfor %}
{% endmacro %}
