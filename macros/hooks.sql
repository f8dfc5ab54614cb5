{#- The project's on-run-start / on-run-end: one entry point each, dispatched per engine. -#}

{% macro lakehouse_on_run_start() %}
    {%- if execute -%}
        {%- set statements = create_layer_schemas() ~ ';' ~ create_bronze_tables() -%}
        {%- for statement in statements.split(';') if statement.strip() -%}
            {%- do run_query(statement) -%}
        {%- endfor -%}
    {%- endif -%}
    select 1
{% endmacro %}

{% macro lakehouse_on_run_end() %}
    select 1
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
