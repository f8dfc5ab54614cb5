{#
    Bronze is the files the ingestion package landed; these macros put a catalog table over them so
    that dbt sources (models/bronze/_bronze__sources.yml) can read them. Run at the start of every
    lake build (on-run-start): idempotent, and cheap when nothing changed.

    walmart_sales          CSV, every column a string (Bronze keeps rows, Silver judges them),
                           partitioned by ingest_date and batch_id (Hive-style folders).
    walmart_sales_batches  the ingestion ledger: one JSON object per committed batch. Silver reads
                           only batches listed here, so a half-landed batch is never built.
#}

{% macro bronze_columns() %}
    {#- The ten columns of the raw file, in order, then the line number the ingestion adds. -#}
    {{ return([
        'User_ID', 'Product_ID', 'Gender', 'Age', 'Occupation', 'City_Category',
        'Stay_In_Current_City_Years', 'Marital_Status', 'Product_Category', 'Purchase',
        'source_line_number'
    ]) }}
{% endmacro %}

{% macro create_bronze_tables() %}
    {{ return(adapter.dispatch('create_bronze_tables', 'lakehouse')()) }}
{% endmacro %}

{% macro default__create_bronze_tables() %}
    {#- Warehouses never read Bronze. -#}
    {{ return('') }}
{% endmacro %}

{% macro spark__create_bronze_tables() %}
    {%- set location = var('bronze_location') -%}
    {%- set schema = generate_schema_name('bronze', none) -%}
    create database if not exists {{ schema }};
    create table if not exists {{ schema }}.walmart_sales (
        {%- for column in bronze_columns() %}
        {{ column }} string,
        {%- endfor %}
        ingest_date string,
        batch_id string
    )
    using csv
    options (header 'true', mode 'PERMISSIVE', encoding 'UTF-8', quote '"', escape '"')
    partitioned by (ingest_date, batch_id)
    location '{{ location }}/walmart_sales';
    msck repair table {{ schema }}.walmart_sales;
    create table if not exists {{ schema }}.walmart_sales_batches (
        batch_id string,
        ingest_date string,
        source_name string,
        source_sha256 string,
        rows bigint,
        bytes bigint,
        parts int,
        ingested_at timestamp
    )
    using json
    location '{{ location }}/_ledger/walmart_sales';
    refresh table {{ schema }}.walmart_sales_batches
{% endmacro %}
